package release

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/stratalinux/strata/internal/sdparse"
)

// AnyArch marks an architecture-independent image: no ARCHITECTURE= line.
const AnyArch = "any"

// NormalizeArch returns systemd's name for an architecture given in
// systemd, Go or uname spelling; "" means the host's.
func NormalizeArch(s string) (string, error) {
	if s == "" {
		return HostArch(), nil
	}
	if s == AnyArch || s == "_any" {
		return AnyArch, nil
	}
	if sdparse.KnownArchitecture(s) {
		return s, nil
	}
	l := strings.ToLower(s)
	if a, ok := sdparse.ArchitectureFromGo(l); ok {
		return a, nil
	}
	if a, ok := sdparse.ArchitectureFromUname(l); ok {
		return a, nil
	}
	return "", fmt.Errorf("unknown architecture %q (use systemd's names: x86-64, arm64, x86, arm, riscv64, ppc64-le, s390x, loongarch64, or any)", s)
}

// HostArch is the systemd name of the architecture this binary runs on.
func HostArch() string {
	if a := sdparse.NativeArchitecture(); a != "" {
		return a
	}
	return runtime.GOARCH
}
