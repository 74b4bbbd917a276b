// Package register decides what registering a flake means: which engine
// configuration a request becomes, who may register a flake that runs as
// another user, the default paths of a pulled VM, the tap-name rule, and
// that includes and images exist. The command line binds flags to a
// request and calls it; the registry write is flake.Registry's.
package register

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stratalinux/strata/internal/flake"
	"github.com/stratalinux/strata/internal/flake/runas"
	"github.com/stratalinux/strata/internal/flake/vm"
)

// App is what every registration names: the host command and what it runs.
type App struct {
	Path        string // host path of the command; its base name is the flake's name
	Target      string // program inside the engine ("" = Path)
	IncludeTar  []string
	IncludePath []string
	Resume      bool
	RunAs       string
}

func (a App) target() string {
	if a.Target != "" {
		return a.Target
	}
	return a.Path
}

func (a App) includes() flake.Include {
	return flake.Include{Tar: a.IncludeTar, Path: a.IncludePath}
}

// Sysext is a flake that runs the app on the host with image merged for it.
func Sysext(a App, image string) (*flake.Config, error) {
	if a.Resume || len(a.IncludeTar)+len(a.IncludePath) > 0 {
		return nil, errors.New("register --from-sysext: --resume and --include-* do not apply (the app runs on the host, with the image merged for it)")
	}
	img, err := filepath.Abs(image)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(img); err != nil {
		return nil, fmt.Errorf("--from-sysext %s: %w", image, err)
	}
	return &flake.Config{Sysext: &flake.Sysext{Image: img, TargetAppPath: a.target(), HostAppPath: a.Path}}, nil
}

// Podman are the options of a podman flake.
type Podman struct {
	App
	RunAsGiven       bool // --run-as was on the command line
	Container, Base  string
	Layers           []string
	Attach           bool
	Opts             []string
	CheckHostDeps    bool
	AllowSystemfiles bool
}

// Images tells whether an image is in podman's storage (of user u, or the
// caller's when u is nil).
type Images interface {
	Check(ctx context.Context, u *runas.User, images []string) error
}

// PodmanConfig checks p and returns its configuration. images is asked
// about every image the flake needs, so a typo is reported now rather
// than at the first launch.
func PodmanConfig(ctx context.Context, p Podman, images Images) (*flake.Config, error) {
	if p.Container == "" {
		return nil, errors.New("register podman: --container IMAGE is required")
	}
	if len(p.Layers) > 0 && p.Base == "" {
		return nil, errors.New("register podman: --layer needs --base (layers go over a base image)")
	}
	if p.Resume && p.Attach {
		return nil, errors.New("register podman: --resume and --attach exclude each other")
	}
	runAs, user, err := PodmanRunAs(p.RunAsGiven, p.RunAs, runas.Lookup, runas.Caller())
	if err != nil {
		return nil, err
	}
	need := append([]string{p.Container}, p.Layers...)
	if p.Base != "" {
		need = append(need, p.Base)
	}
	if err := images.Check(ctx, user, need); err != nil {
		return nil, err
	}
	opts := make([]string, 0, len(p.Opts))
	for _, o := range p.Opts {
		opts = append(opts, strings.TrimPrefix(o, `\`))
	}
	c := &flake.Container{Name: p.Container, TargetAppPath: p.target(), HostAppPath: p.Path, BaseContainer: p.Base,
		Layers: p.Layers, Runtime: &flake.PodmanRuntime{RunAs: runAs, Resume: p.Resume, Attach: p.Attach, Podman: opts}}
	c.CheckHostDependencies = p.CheckHostDeps
	if p.AllowSystemfiles {
		c.Strata = &flake.ContainerExtra{AllowSystemfiles: true}
	}
	return &flake.Config{Container: c, Include: p.includes()}, nil
}

// PodmanRunAs checks --run-as and returns the runtime.runas to record and
// the user whose podman storage must hold the images (nil: the caller's).
// "caller" records an empty runas: whoever launches the flake runs it.
// Only root may register a flake that runs podman as another user.
func PodmanRunAs(given bool, v string, lookup func(string) (runas.User, error), caller runas.User) (string, *runas.User, error) {
	switch {
	case !given:
		return runas.CallerValue(), nil, nil
	case v == "caller":
		return "", nil, nil
	case strings.TrimSpace(v) == "":
		return "", nil, errors.New(`--run-as: empty; give NAME, #UID, root or "caller"`)
	}
	u, err := lookup(v)
	if err != nil {
		return "", nil, fmt.Errorf("--run-as %s: %w; create the user first or choose another", v, err)
	}
	switch {
	case u.UID == caller.UID:
		return v, nil, nil
	case !caller.Root():
		return "", nil, fmt.Errorf("--run-as %s: you are %s; only root can register a flake that runs podman as another user (it switches to the user at launch)", v, caller.Name)
	}
	return v, &u, nil
}

// VM are the options of a qemu ("vm") or firecracker flake.
type VM struct {
	App
	Engine      string // "vm" or flake.EngineFirecracker
	Name        string // pulled VM image name ("" = the app's base name)
	ImagesDir   string // where pulled VM images live
	Kernel      string
	Rootfs      string
	Initrd      string
	OverlaySize string
	VCPUs       int
	MemMiB      int
	NoNet       bool
	ForceVsock  bool
	Caller      string // recorded runas when RunAs is empty
}

// VMConfig checks v and returns its configuration: a VM pulled under
// ImagesDir supplies the kernel, rootfs and initrd when none is given.
func VMConfig(v VM) (*flake.Config, error) {
	if v.Path == "" {
		return nil, errors.New("register: --app PATH is required")
	}
	name := v.Name
	if name == "" {
		name = filepath.Base(v.Path)
	}
	if v.Engine == flake.EngineFirecracker && !v.NoNet {
		// The guest's NIC is the host tap tap-APPNAME: refuse a name
		// Linux would refuse now, not at the first launch.
		if _, err := vm.TapName(filepath.Base(v.Path)); err != nil {
			return nil, fmt.Errorf("register firecracker --app %s: %w; use a shorter app name, or --no-net", v.Path, err)
		}
	}
	kernel, rootfs, initrd := v.Kernel, v.Rootfs, v.Initrd
	if kernel == "" && rootfs == "" {
		dir := filepath.Join(v.ImagesDir, name)
		kernel, rootfs = filepath.Join(dir, "kernel"), filepath.Join(dir, "rootfs")
		if _, err := os.Stat(filepath.Join(dir, "initrd")); err == nil {
			initrd = filepath.Join(dir, "initrd")
		}
	}
	for _, f := range []struct{ flag, path string }{{"--kernel", kernel}, {"--rootfs", rootfs}, {"--initrd", initrd}} {
		if f.path == "" {
			if f.flag != "--initrd" {
				return nil, fmt.Errorf("register %s: %s FILE is required (or pull the VM first)", v.Engine, f.flag)
			}
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return nil, fmt.Errorf("register %s: %s: %w", v.Engine, f.flag, err)
		}
	}
	if v.OverlaySize != "" {
		if _, err := flake.ParseSize(v.OverlaySize); err != nil {
			return nil, fmt.Errorf("--overlay-size: %w", err)
		}
	}
	if len(v.IncludeTar)+len(v.IncludePath) > 0 && v.OverlaySize == "" {
		return nil, errors.New("register: --include-tar/--include-path need --overlay-size (they are written to the overlay disk)")
	}
	runAs := v.RunAs
	if runAs == "" {
		runAs = v.Caller
	}
	fc := &flake.Firecracker{BootArgs: flake.DefaultBootArgs(v.Engine, v.NoNet, v.Resume, v.ForceVsock), OverlaySize: v.OverlaySize,
		RootfsImagePath: abs(rootfs), KernelImagePath: abs(kernel), InitrdPath: abs(initrd), MemSizeMiB: v.MemMiB, VcpuCount: v.VCPUs}
	rt := &flake.VMRuntime{RunAs: runAs, Resume: v.Resume, ForceVsock: v.ForceVsock, Firecracker: fc, NoNet: v.NoNet}
	if v.Engine == "vm" {
		rt.Engine = "qemu"
	}
	return &flake.Config{VM: &flake.VM{Name: name, TargetAppPath: v.target(), HostAppPath: v.Path, Runtime: rt}, Include: v.includes()}, nil
}

func abs(p string) string {
	if p == "" {
		return ""
	}
	a, _ := filepath.Abs(p)
	return a
}

// Into checks what every registration needs (an app path, an absolute
// target, existing absolute includes) and writes cfg into reg with
// launcher as the program the app links to.
func Into(reg flake.Registry, a App, launcher string, cfg *flake.Config) error {
	if a.Path == "" {
		return errors.New("register: --app PATH is required")
	}
	if !strings.HasPrefix(a.target(), "/") {
		return fmt.Errorf("--target %s: must be an absolute path inside the engine", a.Target)
	}
	for _, p := range append(append([]string(nil), a.IncludeTar...), a.IncludePath...) {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("include %s: must be an absolute host path", p)
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("include %s: %w", p, err)
		}
	}
	return reg.Register(flake.Registration{App: a.Path, Launcher: launcher, Config: cfg})
}
