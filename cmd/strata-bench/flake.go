package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/stratalinux/strata/internal/bench"
)

const flakeNotes = `Launch overhead of flakes (strata as the app's launcher) against the
bare podman or qemu command doing the same work, alternated in one run,
medians. Images are a busybox-static tree imported into a private podman
store; podman runs with runc and no network namespace (the tests'
containers.conf). The VM row boots Debian's kernel under software
emulation with strata-guest-init as PID 1 and runs /bin/true from a
squashfs rootfs; its floor boots the same kernel until it panics for want
of a root file system.`

// flakeBench builds the guest init and runs the flake benchmarks.
func flakeBench(ctx context.Context, strataBin, workDir string, quick bool, logf func(string, ...any)) ([]bench.Row, string, string, error) {
	// podman exec alone varies by ±20 ms run to run: 21 pairs keep the
	// median ratio steady.
	reps, vmReps := 21, 3
	if quick {
		reps, vmReps = 3, 1
	}
	gi := filepath.Join(workDir, "strata-guest-init")
	build := exec.CommandContext(ctx, "go", "build", "-o", gi, "./cmd/strata-guest-init")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		logf("flake: building strata-guest-init failed (%v): %s", err, out)
		gi = ""
	}
	rows, err := bench.Flake(ctx, bench.FlakeConfig{StrataBin: strataBin, GuestInit: gi, WorkDir: workDir, Reps: reps, VMReps: vmReps, Log: logf})
	return rows, "Flakes: launcher against bare podman and qemu", flakeNotes, err
}
