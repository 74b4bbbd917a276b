package sdparse

import (
	"runtime"
	"slices"
	"strconv"
)

// NativeArchitecture returns systemd's name for the architecture this
// program was built for ("x86-64", "arm64", "ppc64-le", …), or "" if
// systemd has no name for it (e.g. wasm).
//
// This is systemd's native_architecture(). The sysext compatibility check
// itself uses uname_architecture(), which follows uname(2) and therefore
// personality(2) (under "setarch i686" an x86-64 host reports "x86"); a
// caller that wants that exact behaviour should feed uname's machine field
// to ArchitectureFromUname instead.
func NativeArchitecture() string {
	a, _ := ArchitectureFromGo(runtime.GOARCH)
	return a
}

// ArchitectureFromGo maps a GOARCH value to systemd's architecture name.
func ArchitectureFromGo(goarch string) (string, bool) {
	var a string
	switch goarch {
	case "amd64":
		a = "x86-64"
	case "386":
		a = "x86"
	case "arm64":
		a = "arm64"
	case "arm64be":
		a = "arm64-be"
	case "arm":
		a = "arm"
	case "armbe":
		a = "arm-be"
	case "loong64":
		a = "loongarch64"
	case "mips":
		a = "mips"
	case "mipsle":
		a = "mips-le"
	// The n32 ABI (mips64p32*) runs on a 64-bit CPU; systemd names it
	// by the CPU, like the LP64 ABI.
	case "mips64", "mips64p32":
		a = "mips64"
	case "mips64le", "mips64p32le":
		a = "mips64-le"
	case "ppc":
		a = "ppc"
	case "ppc64":
		a = "ppc64"
	case "ppc64le":
		a = "ppc64-le"
	case "riscv":
		a = "riscv32"
	case "riscv64":
		a = "riscv64"
	case "s390":
		a = "s390"
	case "s390x":
		a = "s390x"
	case "sparc":
		a = "sparc"
	case "sparc64":
		a = "sparc64"
	default:
		// amd64p32 would be x32, which systemd no longer knows;
		// wasm has no systemd name at all.
		return "", false
	}
	return a, true
}

// ArchitectureFromUname maps a uname(2) machine string ("x86_64",
// "aarch64", "armv7l", "i686", "ppc64le", …) to systemd's architecture
// name, as uname_architecture() does.
//
// systemd only knows the machine names of the CPU family it was compiled
// for; this function knows all of them. Quirks kept on purpose: "mips64"
// and "mips" map to the big-endian names even on little-endian kernels
// (uname does not tell them apart), and "riscv" is riscv32 or riscv64
// according to this program's pointer size.
func ArchitectureFromUname(machine string) (string, bool) {
	var a string
	switch machine {
	case "aarch64":
		a = "arm64"
	case "aarch64_be":
		a = "arm64-be"
	case "armv8l", "armv7ml", "armv7l", "armv6l", "armv5tl", "armv5tel", "armv5tejl", "armv4tl", "armv4l":
		a = "arm"
	case "armv8b", "armv7mb", "armv7b", "armv6b", "armv5tejb", "armv5teb", "armv5tb", "armv4tb", "armv4b":
		a = "arm-be"
	case "alpha":
		a = "alpha"
	case "arc":
		a = "arc"
	case "arceb":
		a = "arc-be"
	case "crisv32":
		a = "cris"
	case "x86_64":
		a = "x86-64"
	case "i686", "i586", "i486", "i386":
		a = "x86"
	case "ia64":
		a = "ia64"
	case "parisc64":
		a = "parisc64"
	case "parisc":
		a = "parisc"
	case "loongarch64":
		a = "loongarch64"
	case "m68k":
		a = "m68k"
	case "mips64":
		a = "mips64"
	case "mips":
		a = "mips"
	case "nios2":
		a = "nios2"
	case "ppc64le":
		a = "ppc64-le"
	case "ppc64":
		a = "ppc64"
	case "ppcle":
		a = "ppc-le"
	case "ppc":
		a = "ppc"
	case "riscv64":
		a = "riscv64"
	case "riscv32":
		a = "riscv32"
	case "riscv":
		a = "riscv32"
		if strconv.IntSize == 64 {
			a = "riscv64"
		}
	case "s390x":
		a = "s390x"
	case "s390":
		a = "s390"
	case "sh5":
		a = "sh64"
	case "sh4a", "sh4", "sh3", "sh2a", "sh2":
		a = "sh"
	case "sparc64":
		a = "sparc64"
	case "sparc":
		a = "sparc"
	case "tilegx":
		a = "tilegx"
	default:
		return "", false
	}
	return a, true
}

// architectures are systemd's architecture names (architecture_table[]),
// the values valid in ARCHITECTURE= besides "_any".
var architectures = [...]string{
	"alpha", "arc", "arc-be", "arm", "arm64", "arm64-be", "arm-be", "cris",
	"ia64", "loongarch64", "m68k", "mips", "mips64", "mips64-le", "mips-le",
	"nios2", "parisc", "parisc64", "ppc", "ppc64", "ppc64-le", "ppc-le",
	"riscv32", "riscv64", "s390", "s390x", "sh", "sh64", "sparc", "sparc64",
	"tilegx", "x86", "x86-64",
}

// Architectures returns systemd's architecture names (a fresh slice).
func Architectures() []string { return append([]string(nil), architectures[:]...) }

// KnownArchitecture reports whether name is one of systemd's architecture
// names (the values valid in ARCHITECTURE=, besides "_any").
func KnownArchitecture(name string) bool {
	return slices.Contains(architectures[:], name)
}
