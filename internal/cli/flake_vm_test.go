package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/flake"
)

// A Firecracker flake's NIC is the host tap tap-APPNAME: a name Linux
// would refuse is refused at registration, with the fix, and nothing is
// written; --no-net needs no tap.
func TestRegisterFirecrackerTapName(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	kernel, rootfs := filepath.Join(home, "kernel"), filepath.Join(home, "rootfs")
	os.WriteFile(kernel, []byte("k"), 0o644)
	os.WriteFile(rootfs, []byte("r"), 0o644)
	register := func(app string, extra ...string) (int, string) {
		var out, errb bytes.Buffer
		args := append([]string{"strata", "flake", "--user", "register", "firecracker", "--app", filepath.Join(home, "bin", app),
			"--kernel", kernel, "--rootfs", rootfs}, extra...)
		code := Main(args, strings.NewReader(""), &out, &errb)
		return code, errb.String()
	}
	code, msg := register("longer-than-11")
	if code == 0 || !strings.Contains(msg, `"tap-longer-than-11" is 18 bytes, Linux allows 15 (IFNAMSIZ)`) || !strings.Contains(msg, "--no-net") {
		t.Fatalf("over-long tap name: exit %d, %q", code, msg)
	}
	if _, err := os.Lstat(filepath.Join(home, "bin", "longer-than-11")); err == nil {
		t.Fatal("a refused registration left its app link")
	}
	if code, msg := register("longer-than-11", "--no-net"); code != 0 {
		t.Fatalf("--no-net: exit %d, %q", code, msg)
	}
	if code, msg := register("fireshell"); code != 0 {
		t.Fatalf("short name: exit %d, %q", code, msg)
	}
	cfg, _, err := flake.Load(filepath.Join(home, ".config", "flakes"), "longer-than-11")
	if err != nil || !cfg.VM.Runtime.NoNet {
		t.Fatalf("--no-net registration: %+v %v", cfg, err)
	}
}
