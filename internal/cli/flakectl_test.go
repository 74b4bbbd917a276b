package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// flakeCtl runs the built binary as flake-ctl (registration links the
// app to the running executable, which must be strata).
func flakeCtl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	r := runBin(t, filepath.Join(filepath.Dir(strataBin), "flake-ctl"), nil, args...)
	return r.code, r.stdout, r.stderr
}

// flake-ctl's command line, as flake-pilot documents it, drives the same
// registry: pull a VM, register an app on it, list, remove by VM name.
func TestFlakeCtlFirecrackerCycle(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	for _, f := range []string{"kernel", "rootfs"} {
		if err := os.WriteFile(filepath.Join(src, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, errs := flakeCtl(t, "--root", root, "firecracker", "pull", "--name", "vm1",
		"--kernel", filepath.Join(src, "kernel"), "--rootfs", filepath.Join(src, "rootfs")); code != 0 {
		t.Fatalf("pull: exit %d: %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/firecracker/images/vm1/rootfs")); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := flakeCtl(t, "--root", root, "firecracker", "register", "--vm", "vm1", "--app", "/usr/bin/vmapp",
		"--overlay-size", "1g", "--no-net", "--resume"); code != 0 {
		t.Fatalf("register: exit %d: %s", code, errs)
	}
	yml, err := os.ReadFile(filepath.Join(root, "usr/share/flakes/vmapp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: vm1", "host_app_path: /usr/bin/vmapp", "resume: true", "overlay_size: 1g"} {
		if !strings.Contains(string(yml), want) {
			t.Errorf("vmapp.yaml lacks %q:\n%s", want, yml)
		}
	}
	if fi, err := os.Lstat(filepath.Join(root, "usr/bin/vmapp")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("app link: %v %v", fi, err)
	}
	code, out, errs := flakeCtl(t, "--root", root, "list", "--format", "csv")
	if code != 0 || !strings.Contains(out, "vmapp,firecracker,/usr/bin/vmapp,/usr/bin/vmapp,vm1") {
		t.Fatalf("list csv: exit %d: %q %s", code, out, errs)
	}
	code, out, _ = flakeCtl(t, "--root", root, "firecracker", "show", "--format", "json")
	if code != 0 || !strings.Contains(out, `"vmapp"`) {
		t.Fatalf("show json: exit %d: %s", code, out)
	}
	if code, _, errs := flakeCtl(t, "--root", root, "podman", "remove"); code == 0 || !strings.Contains(errs, "--container NAME or --app PATH") {
		t.Fatalf("remove without a target: exit %d: %s", code, errs)
	}
	if code, _, errs := flakeCtl(t, "--root", root, "firecracker", "remove", "--vm", "vm1"); code != 0 {
		t.Fatalf("remove: exit %d: %s", code, errs)
	}
	for _, p := range []string{"usr/share/flakes/vmapp.yaml", "usr/bin/vmapp"} {
		if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("%s still there after remove: %v", p, err)
		}
	}
}
