// Package startup measures how long the strata binary takes to start and
// exit on commands that do almost nothing — the fixed cost every node-side
// invocation pays — against systemd-sysext and against a Go hello-world
// built the same way (CGO_ENABLED=0, -trimpath), the floor any Go binary
// pays for exec and runtime start-up.
package startup

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/stratalinux/strata/internal/bench"
)

// Title and Notes head the section in docs/benchmarks.md.
const (
	Title = "Start-up: `strata` against systemd-sysext 252 and a Go hello-world"
	Notes = `Wall time from fork to exit of commands that do almost nothing, the fixed
cost of every node-side invocation (merge, status, sysupdate, a flake
launcher). All commands alternate in one loop; medians of the repetitions.
The floor is a Go hello-world built like strata (CGO_ENABLED=0, -trimpath):
what exec, the Go runtime and exit cost before any package initialiser.
"status" runs on an empty --root. See docs/startup.md.`
)

// Config says what to measure.
type Config struct {
	StrataBin string
	// PeerBin is systemd-sysext; missing means no peer column.
	PeerBin string
	// WorkDir receives the floor program, an alias link and an empty root.
	WorkDir string
	Reps    int
	Log     func(format string, args ...any)
}

// benchCase is one row: the peer's and strata's argv.
type benchCase struct {
	name   string
	peer   []string
	strata []string
}

// Run builds the floor, then times every case's commands alternately.
func Run(ctx context.Context, c Config) ([]bench.Row, error) {
	if c.Reps < 1 {
		c.Reps = 1
	}
	floor, err := buildFloor(ctx, filepath.Join(c.WorkDir, "startup-floor"))
	if err != nil {
		return nil, err
	}
	root := filepath.Join(c.WorkDir, "startup-root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	// Invoked as systemd-sysext, strata builds only that command tree.
	aliasDir := filepath.Join(c.WorkDir, "startup-alias")
	if err := os.MkdirAll(aliasDir, 0o755); err != nil {
		return nil, err
	}
	alias := filepath.Join(aliasDir, "systemd-sysext")
	_ = os.Remove(alias)
	if err := os.Symlink(c.StrataBin, alias); err != nil {
		return nil, err
	}
	peer := c.PeerBin
	if peer != "" {
		if _, err := os.Stat(peer); err != nil {
			if c.Log != nil {
				c.Log("startup: no peer (%v)", err)
			}
			peer = ""
		}
	}
	cases := []benchCase{
		{"--version", []string{peer, "--version"}, []string{c.StrataBin, "--version"}},
		{"sysext status, empty root", []string{peer, "status", "--root", root}, []string{c.StrataBin, "sysext", "status", "--root", root}},
		{"as systemd-sysext: status, empty root", []string{peer, "status", "--root", root}, []string{alias, "status", "--root", root}},
	}
	type samples struct{ peer, strata, floor []time.Duration }
	type run struct {
		argv []string
		dst  *[]time.Duration
	}
	got := make([]samples, len(cases))
	// Round -1 warms the page cache and dentries; it is not recorded.
	for rep := -1; rep < c.Reps; rep++ {
		for i, bc := range cases {
			runs := []run{{bc.strata, &got[i].strata}, {[]string{floor}, &got[i].floor}}
			if peer != "" {
				runs = append(runs, run{bc.peer, &got[i].peer})
			}
			for _, r := range runs {
				d, err := timeRun(ctx, r.argv)
				if err != nil {
					return nil, fmt.Errorf("startup %s: %w", bc.name, err)
				}
				if rep >= 0 {
					*r.dst = append(*r.dst, d)
				}
			}
		}
	}
	var rows []bench.Row
	for i, bc := range cases {
		rows = append(rows, bench.Row{
			Group: "startup", Case: bc.name,
			Peer: bench.Median(got[i].peer), Strata: bench.Median(got[i].strata), Floor: bench.Median(got[i].floor),
			PeerName: "systemd-sysext 252", FloorName: "Go hello-world",
		})
	}
	return rows, nil
}

// timeRun runs argv to completion, output discarded, and returns the wall
// time from start to exit.
func timeRun(ctx context.Context, argv []string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%v: %w", argv, err)
	}
	return time.Since(start), nil
}

const floorSource = `// The start-up floor: print a version line and exit.
package main

import "os"

func main() { os.Stdout.WriteString("floor 1\n") }
`

// buildFloor writes and builds the hello-world in dir and returns its path.
func buildFloor(ctx context.Context, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module floor\n\ngo 1.22\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(floorSource), 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "floor")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the start-up floor: %w: %s", err, out)
	}
	return bin, nil
}
