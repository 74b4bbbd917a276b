package sdparse

import (
	"runtime"
	"strconv"
	"testing"
)

func TestArchitectureFromGo(t *testing.T) {
	tests := []struct {
		goarch, want string
		ok           bool
	}{
		{"amd64", "x86-64", true},
		{"386", "x86", true},
		{"arm64", "arm64", true},
		{"arm", "arm", true},
		{"riscv64", "riscv64", true},
		{"ppc64le", "ppc64-le", true},
		{"ppc64", "ppc64", true},
		{"s390x", "s390x", true},
		{"loong64", "loongarch64", true},
		{"mips64le", "mips64-le", true},
		{"mips64", "mips64", true},
		{"mipsle", "mips-le", true},
		{"mips", "mips", true},
		{"wasm", "", false},
		{"amd64p32", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := ArchitectureFromGo(tt.goarch)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ArchitectureFromGo(%q) = %q, %v; want %q, %v", tt.goarch, got, ok, tt.want, tt.ok)
		}
		if ok && !KnownArchitecture(got) {
			t.Errorf("ArchitectureFromGo(%q) = %q, not a known architecture", tt.goarch, got)
		}
	}
}

func TestArchitectureFromUname(t *testing.T) {
	riscv := "riscv32"
	if strconv.IntSize == 64 {
		riscv = "riscv64"
	}
	tests := []struct {
		machine, want string
		ok            bool
	}{
		{"x86_64", "x86-64", true},
		{"i686", "x86", true},
		{"i386", "x86", true},
		{"aarch64", "arm64", true},
		{"aarch64_be", "arm64-be", true},
		{"armv7l", "arm", true},
		{"armv7b", "arm-be", true},
		{"armv8l", "arm", true},
		{"ppc64le", "ppc64-le", true},
		{"ppc64", "ppc64", true},
		{"s390x", "s390x", true},
		{"riscv64", "riscv64", true},
		{"riscv", riscv, true},
		{"loongarch64", "loongarch64", true},
		{"mips64", "mips64", true}, // big-endian name even on LE kernels, as systemd
		{"sh4a", "sh", true},
		{"sh5", "sh64", true},
		{"crisv32", "cris", true},
		{"x32", "", false}, // dropped from systemd
		{"amd64", "", false},
		{"X86_64", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := ArchitectureFromUname(tt.machine)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ArchitectureFromUname(%q) = %q, %v; want %q, %v", tt.machine, got, ok, tt.want, tt.ok)
		}
		if ok && !KnownArchitecture(got) {
			t.Errorf("ArchitectureFromUname(%q) = %q, not a known architecture", tt.machine, got)
		}
	}
}

func TestNativeArchitecture(t *testing.T) {
	want, _ := ArchitectureFromGo(runtime.GOARCH)
	if got := NativeArchitecture(); got != want {
		t.Errorf("NativeArchitecture() = %q, want %q", got, want)
	}
	if runtime.GOARCH == "amd64" && NativeArchitecture() != "x86-64" {
		t.Errorf("NativeArchitecture() on amd64 = %q", NativeArchitecture())
	}
}

func TestKnownArchitecture(t *testing.T) {
	for _, a := range []string{"x86-64", "arm64", "ppc64-le", "mips64-le", "tilegx"} {
		if !KnownArchitecture(a) {
			t.Errorf("KnownArchitecture(%q) = false", a)
		}
	}
	for _, a := range []string{"", "_any", "x86_64", "amd64", "x32", "X86-64"} {
		if KnownArchitecture(a) {
			t.Errorf("KnownArchitecture(%q) = true", a)
		}
	}
}
