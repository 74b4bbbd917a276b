package flake

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseSize reads a size such as "20GiB", "20g", "512MB" or "1048576"
// (flake-pilot's ubyte units, and the "20g" its man page shows): binary
// multiples for single letters and *iB, decimal for kB/MB/GB.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, fmt.Errorf("size %q: want a number and a unit, e.g. 20GiB or 20g", s)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q (use B, KiB, MiB, GiB, TiB, kB, MB, GB, TB or k, m, g, t)", s, unit)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("size %q: not a positive number", s)
	}
	v := f * mult
	if v > 1<<50 {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return int64(v), nil
}

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
