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

	"github.com/stratalinux/strata/internal/flake"
	"github.com/stratalinux/strata/internal/flake/podman"
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
		return e.Launch(ctx, podman.Spec{Name: name, Instance: iv.Instance, Container: cfg.Container, Include: cfg.Include,
			Args: iv.Args, TTY: tty, Options: iv.Options, Getenv: l.Getenv})
	case flake.EngineSysext:
		return l.sysext(name, cfg.Sysext, iv)
	case flake.EngineVM, flake.EngineFirecracker:
		e := &vm.Engine{StateDir: state, Stdin: l.Stdin, Stdout: l.Stdout, Stderr: l.Stderr, Log: l.Log, Getenv: l.Getenv}
		return e.Launch(ctx, vm.Spec{Name: name, Instance: iv.Instance, VM: cfg.VM, Include: cfg.Include, Args: iv.Args,
			TTY: tty, Options: iv.Options, Engine: cfg.Engine()})
	}
	return 0, fmt.Errorf("flake %s: the registration names no engine (container, vm or sysext)", name)
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
