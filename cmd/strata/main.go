// Command strata is the one Strata binary. It is multi-call: invoked as
// systemd-sysext, systemd-confext or systemd-sysupdate it behaves as that
// tool; otherwise it offers the strata command tree.
package main

import (
	"os"

	"github.com/stratalinux/strata/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
