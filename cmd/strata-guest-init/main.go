// Command strata-guest-init is PID 1 inside Strata's flake VMs: the host
// puts it into the VM's initramfs as /init (see internal/flake/vm/guest).
package main

import "github.com/stratalinux/strata/internal/flake/vm/guest"

func main() { guest.Main() }
