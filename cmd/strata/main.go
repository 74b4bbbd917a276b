// Command strata is the one Strata binary. It is multi-call: invoked as
// systemd-sysext, systemd-confext or systemd-sysupdate it behaves as that
// tool; as PID 1 started as /init (inside Strata's initrd) it boots the OS;
// otherwise it offers the strata command tree.
package main

import (
	"context"
	"os"

	"github.com/stratalinux/strata/internal/cli"
	"github.com/stratalinux/strata/internal/osboot"
)

func main() {
	if osboot.IsInit(os.Args[0]) {
		os.Exit(osboot.Run(context.Background(), os.Stdout))
	}
	os.Exit(cli.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
