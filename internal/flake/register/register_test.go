package register

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/flake"
	"github.com/stratalinux/strata/internal/flake/runas"
)

var (
	rootUser  = runas.User{Name: "root", UID: 0}
	alice     = runas.User{Name: "alice", UID: 1000}
	bob       = runas.User{Name: "bob", UID: 1001}
	lookupAll = func(name string) (runas.User, error) {
		for _, u := range []runas.User{rootUser, alice, bob} {
			if u.Name == name {
				return u, nil
			}
		}
		return runas.User{}, errors.New("no such user")
	}
)

func TestPodmanRunAsPolicy(t *testing.T) {
	cases := []struct {
		given      bool
		v          string
		caller     runas.User
		record     string
		storageFor string // "" = the caller's storage
		err        string
	}{
		{given: true, v: "caller", caller: alice, record: ""},
		{given: true, v: "  ", caller: alice, err: `--run-as: empty; give NAME, #UID, root or "caller"`},
		{given: true, v: "ghost", caller: rootUser, err: "--run-as ghost: no such user; create the user first or choose another"},
		{given: true, v: "alice", caller: alice, record: "alice"},
		{given: true, v: "bob", caller: alice, err: "--run-as bob: you are alice; only root can register a flake that runs podman as another user"},
		{given: true, v: "bob", caller: rootUser, record: "bob", storageFor: "bob"},
	}
	for _, c := range cases {
		rec, u, err := PodmanRunAs(c.given, c.v, lookupAll, c.caller)
		if c.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), c.err) {
				t.Errorf("%q as %s: error %v, want %q", c.v, c.caller.Name, err, c.err)
			}
			continue
		}
		if err != nil || rec != c.record {
			t.Errorf("%q as %s: record %q err %v, want %q", c.v, c.caller.Name, rec, err, c.record)
		}
		if got := ""; u != nil {
			got = u.Name
			if got != c.storageFor {
				t.Errorf("%q as %s: storage of %q, want %q", c.v, c.caller.Name, got, c.storageFor)
			}
		} else if c.storageFor != "" {
			t.Errorf("%q as %s: caller's storage, want %q", c.v, c.caller.Name, c.storageFor)
		}
	}
}

type storage map[string]bool

func (s storage) Check(_ context.Context, _ *runas.User, images []string) error {
	for _, i := range images {
		if !s[i] {
			return errors.New("image " + i + " is not in podman's storage")
		}
	}
	return nil
}

func TestPodmanConfig(t *testing.T) {
	ctx := context.Background()
	have := storage{"app:1": true, "base:1": true, "layer:1": true}
	cfg, err := PodmanConfig(ctx, Podman{App: App{Path: "/usr/bin/hello"}, Container: "app:1", Base: "base:1", Layers: []string{"layer:1"},
		Opts: []string{`\--net host`}, AllowSystemfiles: true}, have)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Container
	if c.Name != "app:1" || c.TargetAppPath != "/usr/bin/hello" || c.BaseContainer != "base:1" || c.Runtime.Podman[0] != "--net host" || c.Strata == nil || !c.Strata.AllowSystemfiles {
		t.Fatalf("config %+v runtime %+v", c, c.Runtime)
	}
	for _, bad := range []struct {
		p    Podman
		want string
	}{
		{Podman{App: App{Path: "/a"}}, "--container IMAGE is required"},
		{Podman{App: App{Path: "/a"}, Container: "app:1", Layers: []string{"layer:1"}}, "--layer needs --base"},
		{Podman{App: App{Path: "/a", Resume: true}, Container: "app:1", Attach: true}, "--resume and --attach exclude each other"},
		{Podman{App: App{Path: "/a"}, Container: "typo:1"}, "image typo:1 is not in podman's storage"},
		{Podman{App: App{Path: "/a"}, Container: "app:1", Base: "nobase"}, "image nobase is not"},
	} {
		if _, err := PodmanConfig(ctx, bad.p, have); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: %v, want %q", bad.p, err, bad.want)
		}
	}
}

func touch(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVMConfigDefaultsAndRules(t *testing.T) {
	images := t.TempDir()
	touch(t, filepath.Join(images, "shell/kernel"))
	touch(t, filepath.Join(images, "shell/rootfs"))
	touch(t, filepath.Join(images, "shell/initrd"))
	cfg, err := VMConfig(VM{App: App{Path: "/usr/bin/shell"}, Engine: "vm", ImagesDir: images, Caller: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	fc := cfg.VM.Runtime.Firecracker
	if fc.KernelImagePath != filepath.Join(images, "shell/kernel") || fc.InitrdPath != filepath.Join(images, "shell/initrd") ||
		cfg.VM.Runtime.Engine != "qemu" || cfg.VM.Runtime.RunAs != "alice" || cfg.VM.Name != "shell" {
		t.Fatalf("pulled VM defaults not applied: %+v %+v", cfg.VM, fc)
	}
	for _, bad := range []struct {
		v    VM
		want string
	}{
		{VM{Engine: "vm"}, "register: --app PATH is required"},
		{VM{App: App{Path: "/usr/bin/longer-than-11"}, Engine: flake.EngineFirecracker, ImagesDir: images}, "use a shorter app name, or --no-net"},
		{VM{App: App{Path: "/usr/bin/other"}, Engine: "vm", ImagesDir: images}, "register vm: --kernel: "},
		{VM{App: App{Path: "/usr/bin/shell"}, Engine: "vm", ImagesDir: images, OverlaySize: "lots"}, "--overlay-size:"},
		{VM{App: App{Path: "/usr/bin/shell", IncludeTar: []string{"/x.tar"}}, Engine: "vm", ImagesDir: images}, "need --overlay-size"},
	} {
		if _, err := VMConfig(bad.v); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: %v, want %q", bad.v, err, bad.want)
		}
	}
	// A short firecracker name passes the tap rule.
	if _, err := VMConfig(VM{App: App{Path: "/usr/bin/shell"}, Engine: flake.EngineFirecracker, ImagesDir: images}); err != nil {
		t.Fatal(err)
	}
}

func TestIntoChecksTargetAndIncludes(t *testing.T) {
	reg := flake.Registry{Root: t.TempDir()}
	cfg := &flake.Config{Sysext: &flake.Sysext{Image: "/x.raw", TargetAppPath: "/usr/bin/x", HostAppPath: "/usr/bin/x"}}
	for _, c := range []struct {
		a    App
		want string
	}{
		{App{Path: "/usr/bin/x", Target: "relative"}, "--target relative: must be an absolute path inside the engine"},
		{App{Path: "/usr/bin/x", IncludeTar: []string{"rel.tar"}}, "include rel.tar: must be an absolute host path"},
		{App{Path: "/usr/bin/x", IncludePath: []string{"/does/not/exist"}}, "include /does/not/exist:"},
	} {
		if err := Into(reg, c.a, "/usr/bin/strata", cfg); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.a, err, c.want)
		}
	}
}

func TestSysextAndPullVM(t *testing.T) {
	if _, err := Sysext(App{Path: "/usr/bin/x", Resume: true}, "/x.raw"); err == nil || !strings.Contains(err.Error(), "do not apply") {
		t.Fatalf("resume with sysext: %v", err)
	}
	if _, err := Sysext(App{Path: "/usr/bin/x"}, "/does/not/exist.raw"); err == nil || !strings.HasPrefix(err.Error(), "--from-sysext /does/not/exist.raw") {
		t.Fatalf("missing image: %v", err)
	}
	src := t.TempDir()
	touch(t, filepath.Join(src, "vmlinuz"))
	touch(t, filepath.Join(src, "root.img"))
	images := t.TempDir()
	var downloaded []string
	dir, err := PullVM(context.Background(), images, "tiny", filepath.Join(src, "vmlinuz"), filepath.Join(src, "root.img"), "https://example.invalid/initrd",
		func(_ context.Context, url, dst string) error {
			downloaded = append(downloaded, url)
			return os.WriteFile(dst, []byte("i"), 0o644)
		})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"kernel", "rootfs", "initrd"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not pulled: %v", f, err)
		}
	}
	if len(downloaded) != 1 {
		t.Errorf("downloads %v", downloaded)
	}
	if _, err := PullVM(context.Background(), images, "../bad", "k", "r", "", nil); err == nil || !strings.HasPrefix(err.Error(), "--name:") {
		t.Errorf("bad name: %v", err)
	}
}
