// Package launch is the flake launcher: invoked under a registered app's
// name, it finds the registration, splits the launcher's own arguments
// (@NAME, %options) from the application's, and hands the run to the
// flake's engine (podman, the qemu or Firecracker VM, or a private
// extension merge).
package launch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/stratalinux/strata/internal/flake"
	"github.com/stratalinux/strata/internal/flake/podman"
	"github.com/stratalinux/strata/internal/flake/runas"
	"github.com/stratalinux/strata/internal/flake/vm"
	"golang.org/x/term"
)

// Launcher carries the process's context into a launch.
type Launcher struct {
	// Root prefixes the system registry's paths ("" or "/": the host's).
	Root                  string
	Getenv                func(string) string
	Stdin, Stdout, Stderr *os.File
	Log                   *slog.Logger
	// Self is the strata binary (for the sysext engine's private merge).
	Self string
	// NoExec keeps the launcher alive around the engine's final step
	// instead of replacing the process (tests).
	NoExec bool
}

// StateDir is where instance locks and state live: /run/flakes for root's
// system flakes, $XDG_RUNTIME_DIR/flakes otherwise (per user, also for
// root's --user flakes).
func StateDir(user bool, getenv func(string) string) string {
	uid := os.Geteuid()
	if uid == 0 && !user {
		return "/run/flakes"
	}
	if d := getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "flakes")
	}
	if uid == 0 {
		return "/run/flakes/user-0"
	}
	return filepath.Join("/run/user", strconv.Itoa(uid), "flakes")
}

// Run launches flake name with the caller's arguments and returns the
// application's exit code.
func (l Launcher) Run(ctx context.Context, name string, args []string) (int, error) {
	if l.Getenv == nil {
		l.Getenv = os.Getenv
	}
	if l.Log == nil {
		l.Log = slog.New(slog.DiscardHandler)
	}
	cfg, reg, err := flake.Lookup(l.Root, name)
	if err != nil {
		return 0, err
	}
	iv, err := flake.SplitArgs(args, l.Getenv)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	state := StateDir(reg.User, l.Getenv)
	tty := term.IsTerminal(int(l.Stdin.Fd())) && term.IsTerminal(int(l.Stdout.Fd()))
	if _, ok := iv.Options["interactive"]; ok {
		tty = term.IsTerminal(int(l.Stdin.Fd()))
	}
	env := os.Environ()
	if g, err := reg.ReadGlobal(); err == nil && g.Generic.PodmanStorageConf != "" && l.Getenv("CONTAINERS_STORAGE_CONF") == "" {
		env = append(env, "CONTAINERS_STORAGE_CONF="+g.Generic.PodmanStorageConf)
	}
	switch cfg.Engine() {
	case flake.EnginePodman:
		if cfg.Container.Name == "" {
			return 0, fmt.Errorf("flake %s: container.name is empty", name)
		}
		_, progress := iv.Options["progress"]
		progress = progress || term.IsTerminal(int(l.Stderr.Fd()))
		e := &podman.Engine{StateDir: state, Env: env, Stdin: l.Stdin, Stdout: l.Stdout, Stderr: l.Stderr, Log: l.Log, NoExec: l.NoExec, Progress: progress}
		if v := l.Getenv("STRATA_FLAKE_SYSTEMFILES_TIMEOUT"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return 0, fmt.Errorf("STRATA_FLAKE_SYSTEMFILES_TIMEOUT=%s: want a duration such as 30s or 5m", v)
			}
			e.SystemfilesTimeout = d
		}
		getenv, err := l.podmanUser(name, cfg.Container, e)
		if err != nil {
			return 0, err
		}
		return e.Launch(ctx, podman.Spec{Name: name, Instance: iv.Instance, Container: cfg.Container, Include: cfg.Include,
			Args: iv.Args, TTY: tty, Options: iv.Options, Getenv: getenv})
	case flake.EngineSysext:
		return l.sysext(name, cfg.Sysext, iv)
	case flake.EngineVM, flake.EngineFirecracker:
		e := &vm.Engine{StateDir: state, Stdin: l.Stdin, Stdout: l.Stdout, Stderr: l.Stderr, Log: l.Log, Getenv: l.Getenv}
		return e.Launch(ctx, vm.Spec{Name: name, Instance: iv.Instance, VM: cfg.VM, Include: cfg.Include, Args: iv.Args,
			TTY: tty, Options: iv.Options, Engine: cfg.Engine()})
	}
	return 0, fmt.Errorf("flake %s: the registration names no engine (container, vm or sysext)", name)
}

// RunAs is the registration's runtime.runas ("" when there is none).
func RunAs(c *flake.Container) string {
	if c.Runtime == nil {
		return ""
	}
	return c.Runtime.RunAs
}

// podmanUser applies runtime.runas to the engine: when the launcher (root)
// must run podman as another user, podman gets that user's credentials,
// environment and runtime directory, the instance state moves there, and
// %VAR in podman options sees the user's HOME, USER, LOGNAME and
// XDG_RUNTIME_DIR. It returns the getenv for that expansion.
func (l Launcher) podmanUser(name string, c *flake.Container, e *podman.Engine) (func(string) string, error) {
	d, err := runas.Decide(name, RunAs(c), runas.Caller(), runas.Lookup)
	if err != nil {
		return nil, err
	}
	if d.Kind != runas.Switch {
		return l.Getenv, nil
	}
	u := d.User
	if err := u.RootlessReady(exec.LookPath); err != nil {
		return nil, fmt.Errorf("flake %s: %w", name, err)
	}
	if err := u.EnsureRuntimeDir(); err != nil {
		return nil, fmt.Errorf("flake %s: %w", name, err)
	}
	e.User = &u
	// The caller's podman storage (flakes.yml's podman_storage_conf
	// included) is root's and unusable rootless: the user's default
	// storage under its home is used.
	e.Env = u.Env(os.Environ())
	e.StateDir = filepath.Join(u.RuntimeDir(), "flakes")
	own := map[string]string{"HOME": u.Home, "USER": u.Name, "LOGNAME": u.Name, "XDG_RUNTIME_DIR": u.RuntimeDir()}
	return func(k string) string {
		if v, ok := own[k]; ok {
			return v
		}
		return l.Getenv(k)
	}, nil
}

// sysext runs the target on the host with the extension image merged in
// a private mount namespace for this process only ("strata test"'s
// mechanism): the host's /usr is untouched and host changes to it do not
// reach the app's view of the image's files.
func (l Launcher) sysext(name string, s *flake.Sysext, iv flake.Invocation) (int, error) {
	if s.Image == "" {
		return 0, fmt.Errorf("flake %s: sysext.image is empty", name)
	}
	if _, err := os.Stat(s.Image); err != nil {
		return 0, fmt.Errorf("flake %s: extension image: %w", name, err)
	}
	target := s.TargetAppPath
	if target == "" {
		target = name
	}
	self := l.Self
	if self == "" {
		var err error
		if self, err = os.Executable(); err != nil {
			return 0, err
		}
	}
	argv := append([]string{"strata", "__merge-exec", s.Image, "--mutable=ephemeral", "--", target}, iv.Args...)
	c := exec.Command(self)
	c.Args = argv
	c.Stdin, c.Stdout, c.Stderr = l.Stdin, l.Stdout, l.Stderr
	c.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	code, err := runForwarding(c)
	if err != nil && errors.Is(err, syscall.EPERM) {
		return 0, fmt.Errorf("flake %s: a private mount namespace needs root (CAP_SYS_ADMIN): %w", name, err)
	}
	return code, err
}

func runForwarding(c *exec.Cmd) (int, error) {
	return podman.RunChild(c.Path, c.Args, os.Environ(), c.Stdin.(*os.File), c.Stdout.(*os.File), c.Stderr.(*os.File), c.SysProcAttr)
}
