package flake

import "github.com/stratalinux/strata/internal/bytesize"

// ParseSize reads a size such as "20GiB", "20g", "512MB" or "1048576"
// (flake-pilot's ubyte units, and the "20g" its man page shows): binary
// multiples for single letters and *iB, decimal for kB/MB/GB.
func ParseSize(s string) (int64, error) { return bytesize.Parse(s, bytesize.FlakePilot) }

// DefaultBootArgs are the kernel arguments a new VM registration gets:
// flake-pilot's template for firecracker (so guests with sci keep
// working), a quiet serial-less console for Strata's qemu engine.
func DefaultBootArgs(engine string, noNet, resume, forceVsock bool) []string {
	var args []string
	if engine == EngineFirecracker {
		args = []string{"init=/usr/sbin/sci", "console=ttyS0", "root=/dev/vda", "acpi=off", "rd.neednet=1"}
		if !noNet {
			args = append(args, "ip=dhcp")
		}
		args = append(args, "quiet")
		if resume {
			args = append(args, "sci_resume=1")
		}
		if forceVsock {
			args = append(args, "sci_force_vsock=1")
		}
		return args
	}
	return []string{"console=ttyS0", "quiet", "loglevel=0", "panic=-1", "reboot=t"}
}
