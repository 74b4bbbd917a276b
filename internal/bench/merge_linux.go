package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/loop"
	"github.com/stratalinux/strata/internal/merge"
	"golang.org/x/sys/unix"
)

// MergeConfig says what the merge benchmark compares.
type MergeConfig struct {
	StrataBin string
	PeerBin   string // systemd-sysext; empty or missing: peer columns stay empty
	WorkDir   string
	Reps      int
	Ns        []int
	Log       func(format string, args ...any)
}

// Merge times merge, refresh (after adding one image) and unmerge of N
// directory and squashfs extensions with Strata and with systemd-sysext,
// on identical scratch roots, plus the floor: one bare overlay mount(2)
// over the same lowerdirs, already attached. It must run in a private
// mount namespace with / shared and a tmpfs on /run (systemd-sysext 252
// needs both).
func Merge(ctx context.Context, cfg MergeConfig) ([]Row, error) {
	if cfg.Reps <= 0 {
		cfg.Reps = 5
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	if _, err := os.Stat(cfg.PeerBin); err != nil {
		cfg.PeerBin = ""
	}
	var rows []Row
	for _, kind := range []string{"dir", "squashfs"} {
		for _, n := range cfg.Ns {
			if err := ctx.Err(); err != nil {
				return rows, err
			}
			r, err := mergeCase(ctx, cfg, kind, n)
			if err != nil {
				return rows, fmt.Errorf("merge bench %s N=%d: %w", kind, n, err)
			}
			rows = append(rows, r...)
		}
	}
	return rows, nil
}

func mergeCase(ctx context.Context, cfg MergeConfig, kind string, n int) ([]Row, error) {
	base := filepath.Join(cfg.WorkDir, fmt.Sprintf("merge-%s-%d", kind, n))
	if err := os.RemoveAll(base); err != nil {
		return nil, err
	}
	defer os.RemoveAll(base)
	src := filepath.Join(base, "src")
	for i := 1; i <= n+1; i++ {
		if err := makeExtension(src, i, kind); err != nil {
			return nil, err
		}
	}
	tools := []string{"strata"}
	if cfg.PeerBin != "" {
		tools = append(tools, "peer")
	}
	roots := map[string]string{}
	for _, tool := range tools {
		root := filepath.Join(base, "root-"+tool)
		if err := makeBenchRoot(root); err != nil {
			return nil, err
		}
		for i := 1; i <= n; i++ {
			if err := placeExtension(src, root, i, kind); err != nil {
				return nil, err
			}
		}
		roots[tool] = root
	}
	cmdFor := func(tool, verb, root string) *exec.Cmd {
		if tool == "peer" {
			return exec.CommandContext(ctx, cfg.PeerBin, "--root="+root, verb)
		}
		return exec.CommandContext(ctx, cfg.StrataBin, "sysext", "--root="+root, verb)
	}
	times := map[string]map[string][]time.Duration{}
	for _, tool := range tools {
		times[tool] = map[string][]time.Duration{}
	}
	for rep := 0; rep < cfg.Reps; rep++ {
		for _, tool := range tools {
			root := roots[tool]
			for _, step := range []string{"merge", "refresh", "unmerge"} {
				if step == "refresh" {
					if err := placeExtension(src, root, n+1, kind); err != nil {
						return nil, err
					}
				}
				start := time.Now()
				out, err := cmdFor(tool, step, root).CombinedOutput()
				d := time.Since(start)
				if err != nil {
					return nil, fmt.Errorf("%s %s: %v: %s", tool, step, err, out)
				}
				want := map[string]int{"merge": 4 + 10*n, "refresh": 4 + 10*(n+1), "unmerge": 4}[step]
				if got := countEntries(filepath.Join(root, "usr/bin")); got != want {
					return nil, fmt.Errorf("%s %s: usr/bin has %d entries, want %d", tool, step, got, want)
				}
				times[tool][step] = append(times[tool][step], d)
			}
			if err := removeExtension(root, n+1, kind); err != nil {
				return nil, err
			}
		}
	}
	floorMount, floorUmount, err := overlayFloor(base, src, roots["strata"], n, kind, cfg.Reps)
	if err != nil {
		return nil, err
	}
	inproc, err := inProcessMerge(ctx, roots["strata"], cfg.Reps)
	if err != nil {
		return nil, err
	}
	fullFloor, err := syscallFloor(base, src, roots["strata"], n, kind, cfg.Reps)
	if err != nil {
		return nil, err
	}
	var rows []Row
	for _, step := range []string{"merge", "refresh", "unmerge"} {
		r := Row{Group: "merge", Case: fmt.Sprintf("%s N=%d %s", kind, n, step), PeerName: "systemd-sysext 252", FloorName: "bare overlay mount(2)",
			Strata: Median(times["strata"][step]), Peer: Median(times["peer"][step])}
		switch step {
		case "merge", "refresh":
			r.Floor = floorMount
		case "unmerge":
			r.Floor = floorUmount
		}
		rows = append(rows, r)
		cfg.Log("%-28s strata %-9s peer %-9s floor %s", r.Case, Fmt(r.Strata), Fmt(r.Peer), Fmt(r.Floor))
	}
	r := Row{Group: "merge", Case: fmt.Sprintf("%s N=%d merge, in-process", kind, n), PeerName: "systemd-sysext 252", FloorName: "bare overlay mount(2)",
		Strata: inproc, Floor: fullFloor, Note: "merge.Engine without process start; floor here: attach + mount every image + overlay, by a minimal Go program"}
	cfg.Log("%-28s strata %-9s floor %s", r.Case, Fmt(r.Strata), Fmt(r.Floor))
	return append(rows, r), nil
}

// inProcessMerge times merge.Engine.Merge itself (median), without the
// cost of starting a process.
func inProcessMerge(ctx context.Context, root string, reps int) (time.Duration, error) {
	var ds []time.Duration
	for i := 0; i < reps; i++ {
		e := &merge.Engine{Class: imageclass.Sysext, Root: root, Hierarchies: imageclass.Sysext.DefaultHierarchies(), Mode: merge.MutableNo}
		start := time.Now()
		if _, err := e.Merge(ctx); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
		if _, err := e.Unmerge(ctx); err != nil {
			return 0, err
		}
	}
	return Median(ds), nil
}

// syscallFloor times the least work a merge can do: attach and mount
// each image (squashfs) and mount one overlay over them.
func syscallFloor(base, src, root string, n int, kind string, reps int) (time.Duration, error) {
	var ds []time.Duration
	target := filepath.Join(base, "floor-full")
	if err := os.MkdirAll(target, 0o755); err != nil {
		return 0, err
	}
	for r := 0; r < reps; r++ {
		var lowers, mounted []string
		start := time.Now()
		for i := n; i >= 1; i-- {
			name := fmt.Sprintf("ext%d", i)
			if kind == "dir" {
				lowers = append(lowers, filepath.Join(src, name, "usr"))
				continue
			}
			mp := filepath.Join(base, "floor-full-m", name)
			if err := os.MkdirAll(mp, 0o755); err != nil {
				return 0, err
			}
			dev, err := loop.Attach(filepath.Join(src, name+".raw"), loop.Options{})
			if err != nil {
				return 0, err
			}
			err = unix.Mount(dev.Path, mp, "squashfs", unix.MS_RDONLY|unix.MS_NODEV, "")
			dev.Close()
			if err != nil {
				return 0, err
			}
			mounted = append(mounted, mp)
			lowers = append(lowers, filepath.Join(mp, "usr"))
		}
		lowers = append(lowers, filepath.Join(root, "usr"))
		if err := unix.Mount("overlay", target, "overlay", unix.MS_RDONLY|unix.MS_NODEV, "lowerdir="+strings.Join(lowers, ":")); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
		_ = unix.Unmount(target, 0)
		for _, m := range mounted {
			_ = unix.Unmount(m, unix.MNT_DETACH)
		}
	}
	return Median(ds), nil
}

// makeExtension writes extension i: ten scripts in usr/bin, ten 2 KiB
// files in usr/share/extI and its release file (the baseline's shape),
// and for squashfs also packs it.
func makeExtension(src string, i int, kind string) error {
	name := fmt.Sprintf("ext%d", i)
	dir := filepath.Join(src, name)
	for _, d := range []string{"usr/bin", "usr/share/" + name, "usr/lib/extension-release.d"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	for j := 0; j < 10; j++ {
		if err := os.WriteFile(filepath.Join(dir, "usr/bin", fmt.Sprintf("%s-tool%d", name, j)), []byte("#!/bin/sh\necho "+name+"\n"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "usr/share", name, fmt.Sprintf("data%d", j)), []byte(strings.Repeat("d", 2048)), 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "usr/lib/extension-release.d/extension-release."+name), []byte("ID=_any\nARCHITECTURE=x86-64\n"), 0o644); err != nil {
		return err
	}
	if kind == "squashfs" {
		out, err := exec.Command("mksquashfs", dir, filepath.Join(src, name+".raw"), "-all-root", "-noappend", "-quiet", "-no-progress").CombinedOutput()
		if err != nil {
			return fmt.Errorf("mksquashfs: %v: %s", err, out)
		}
	}
	return nil
}

func placeExtension(src, root string, i int, kind string) error {
	name := fmt.Sprintf("ext%d", i)
	dst := filepath.Join(root, "var/lib/extensions")
	if kind == "squashfs" {
		return os.Link(filepath.Join(src, name+".raw"), filepath.Join(dst, name+".raw"))
	}
	out, err := exec.Command("cp", "-a", filepath.Join(src, name), filepath.Join(dst, name)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp: %v: %s", err, out)
	}
	return nil
}

func removeExtension(root string, i int, kind string) error {
	p := filepath.Join(root, "var/lib/extensions", fmt.Sprintf("ext%d", i))
	if kind == "squashfs" {
		p += ".raw"
	}
	return os.RemoveAll(p)
}

func makeBenchRoot(root string) error {
	for _, d := range []string{"usr/bin", "usr/lib", "etc", "var/lib/extensions"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(root, "usr/lib/os-release"), []byte("ID=debian\nVERSION_ID=12\n"), 0o644); err != nil {
		return err
	}
	if err := os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release")); err != nil {
		return err
	}
	for j := 0; j < 4; j++ {
		if err := os.WriteFile(filepath.Join(root, "usr/bin", fmt.Sprintf("base%d", j)), []byte("x"), 0o755); err != nil {
			return err
		}
	}
	return nil
}

func countEntries(dir string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	return len(entries)
}

// overlayFloor times one overlay mount(2) (and its umount) over the N
// lowerdirs, already attached: directories as they are, squashfs images
// attached to loop devices and mounted beforehand.
func overlayFloor(base, src, root string, n int, kind string, reps int) (time.Duration, time.Duration, error) {
	var lowers []string
	var mounted []string
	defer func() {
		for _, m := range mounted {
			_ = unix.Unmount(m, unix.MNT_DETACH)
		}
	}()
	for i := n; i >= 1; i-- {
		name := fmt.Sprintf("ext%d", i)
		if kind == "dir" {
			lowers = append(lowers, filepath.Join(src, name, "usr"))
			continue
		}
		mp := filepath.Join(base, "floor", name)
		if err := os.MkdirAll(mp, 0o755); err != nil {
			return 0, 0, err
		}
		dev, err := loop.Attach(filepath.Join(src, name+".raw"), loop.Options{})
		if err != nil {
			return 0, 0, err
		}
		err = unix.Mount(dev.Path, mp, "squashfs", unix.MS_RDONLY|unix.MS_NODEV, "")
		dev.Close()
		if err != nil {
			return 0, 0, err
		}
		mounted = append(mounted, mp)
		lowers = append(lowers, filepath.Join(mp, "usr"))
	}
	lowers = append(lowers, filepath.Join(root, "usr"))
	target := filepath.Join(base, "floor-target")
	if err := os.MkdirAll(target, 0o755); err != nil {
		return 0, 0, err
	}
	opts := "lowerdir=" + strings.Join(lowers, ":")
	var ms, us []time.Duration
	for r := 0; r < reps; r++ {
		start := time.Now()
		if err := unix.Mount("overlay", target, "overlay", unix.MS_RDONLY|unix.MS_NODEV, opts); err != nil {
			return 0, 0, fmt.Errorf("floor overlay mount: %w", err)
		}
		ms = append(ms, time.Since(start))
		start = time.Now()
		if err := unix.Unmount(target, 0); err != nil {
			return 0, 0, err
		}
		us = append(us, time.Since(start))
	}
	return Median(ms), Median(us), nil
}
