package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stratalinux/strata/internal/testutil/privtest"
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

// flake-ctl takes --root and, without it, STRATA_FLAKE_ROOT (as strata
// flake and the launcher do): registrations land in the scratch root,
// list reads it, the flag wins over the variable, and the system registry
// stays empty. /usr/share and /var/lib are tmpfs in this test's mount
// namespace, so a registration that went astray cannot reach the
// machine's own.
func TestFlakeCtlRootAndEnv(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	for _, d := range []string{"/usr/share", "/var/lib"} {
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, "mode=0755"); err != nil {
			t.Fatal(err)
		}
	}
	byFlag, byEnv, src := t.TempDir(), t.TempDir(), t.TempDir()
	for _, f := range []string{"kernel", "rootfs"} {
		os.WriteFile(filepath.Join(src, f), []byte(f), 0o644)
	}
	ctl := func(env []string, args ...string) result {
		t.Helper()
		return runBin(t, filepath.Join(filepath.Dir(strataBin), "flake-ctl"), env, args...)
	}
	for _, c := range []struct {
		root string
		env  []string
		args []string
	}{
		{byFlag, nil, []string{"--root", byFlag}},
		{byEnv, []string{"STRATA_FLAKE_ROOT=" + byEnv}, nil},
	} {
		app := "/usr/share/strata-t/" + filepath.Base(c.root)
		pull := append(append([]string{}, c.args...), "firecracker", "pull", "--name", "vm1",
			"--kernel", filepath.Join(src, "kernel"), "--rootfs", filepath.Join(src, "rootfs"))
		if r := ctl(c.env, pull...); r.code != 0 {
			t.Fatalf("%v: exit %d: %s", pull, r.code, r.stderr)
		}
		reg := append(append([]string{}, c.args...), "firecracker", "register", "--vm", "vm1", "--app", app)
		if r := ctl(c.env, reg...); r.code != 0 {
			t.Fatalf("%v: exit %d: %s", reg, r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(c.root, "usr/share/flakes", filepath.Base(app)+".yaml")); err != nil {
			t.Errorf("%v: not in the scratch root: %v", reg, err)
		}
	}
	// Each root is listed by flag and by variable; the flag wins.
	for _, c := range []struct {
		env       []string
		args      []string
		want, not string
	}{
		{nil, []string{"--root", byFlag}, filepath.Base(byFlag), filepath.Base(byEnv)},
		{[]string{"STRATA_FLAKE_ROOT=" + byEnv}, nil, filepath.Base(byEnv), filepath.Base(byFlag)},
		{[]string{"STRATA_FLAKE_ROOT=" + byEnv}, []string{"--root", byFlag}, filepath.Base(byFlag), filepath.Base(byEnv)},
		{[]string{"STRATA_FLAKE_ROOT=" + byFlag}, nil, filepath.Base(byFlag), filepath.Base(byEnv)},
	} {
		args := append(append([]string{}, c.args...), "list", "--format", "csv")
		r := ctl(c.env, args...)
		if r.code != 0 || !strings.Contains(r.stdout, c.want+",firecracker") || strings.Contains(r.stdout, c.not) {
			t.Errorf("%v %v: exit %d, want %s and not %s: %q %s", c.env, args, r.code, c.want, c.not, r.stdout, r.stderr)
		}
	}
	for _, d := range []string{"/usr/share", "/var/lib"} {
		if ents, err := os.ReadDir(d); err != nil || len(ents) != 0 {
			t.Errorf("the system registry was written: %s: %v %v", d, ents, err)
		}
	}
	if r := ctl(nil, "--help"); !strings.Contains(r.stdout, "--root") {
		t.Errorf("flake-ctl --help does not show --root:\n%s", r.stdout)
	}
}
