// Package vm is the virtual-machine engine of flakes: Strata's qemu
// microvm engine (a static Go guest init that speaks a framed protocol
// over virtio-serial) and flake-pilot's Firecracker engine (its JSON
// configuration, boot arguments and vsock CONNECT protocol).
package vm

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"

	"github.com/stratalinux/strata/internal/flake"
)

// Spec is one VM launch, as values.
type Spec struct {
	Name     string
	Instance string
	VM       *flake.VM
	Include  flake.Include
	Args     []string
	TTY      bool
	Options  map[string]string
	// Engine is flake.EngineVM (qemu) or flake.EngineFirecracker.
	Engine string
}

// Engine carries out VM launches.
type Engine struct {
	StateDir              string
	Stdin, Stdout, Stderr *os.File
	Log                   *slog.Logger
	Getenv                func(string) string
	// Qemu and Firecracker are the hypervisor binaries (PATH when empty).
	Qemu, Firecracker string
}

// Launch boots the VM, runs the target and returns its exit code.
func (e *Engine) Launch(ctx context.Context, s Spec) (int, error) {
	if s.VM == nil || s.VM.Runtime == nil || s.VM.Runtime.Firecracker == nil {
		return 0, fmt.Errorf("flake %s: vm.runtime.firecracker (kernel, rootfs) is missing", s.Name)
	}
	if s.Engine == flake.EngineFirecracker {
		bin := e.Firecracker
		if bin == "" {
			p, err := exec.LookPath("firecracker")
			if err != nil {
				return 0, fmt.Errorf("flake %s: firecracker is not installed (it is not packaged by Debian); install it, or re-register the flake with --engine qemu", s.Name)
			}
			bin = p
		}
		return e.firecracker(ctx, bin, s)
	}
	return e.qemu(ctx, s)
}
