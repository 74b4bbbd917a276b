// Command strata-bench runs Strata's benchmarks side by side with the
// peers and the physical floor and rewrites docs/benchmarks.md. It runs
// itself in a private mount namespace: nothing it mounts reaches the host.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/stratalinux/strata/internal/bench"
	fleetbench "github.com/stratalinux/strata/internal/fleet/bench"
	"golang.org/x/sys/unix"
)

const (
	childEnv       = "STRATA_BENCH_NAMESPACE"
	postgresEnv    = "STRATA_BENCH_POSTGRES"
	postgresErrEnv = "STRATA_BENCH_POSTGRES_ERROR"
)

func main() {
	strataBin := flag.String("strata", "bin/strata", "the strata binary to measure")
	out := flag.String("out", "docs/benchmarks.md", "where to write the report")
	reps := flag.Int("reps", 5, "repetitions per case (the median is reported)")
	quick := flag.Bool("quick", false, "small cases only (for a smoke run)")
	peer := flag.String("peer-sysext", "/usr/bin/systemd-sysext", "systemd-sysext to compare with")
	flag.Parse()

	if os.Getenv(childEnv) == "" {
		os.Exit(reexec())
	}
	if err := prepareNamespace(); err != nil {
		fmt.Fprintln(os.Stderr, "strata-bench:", err)
		os.Exit(1)
	}
	bin, err := filepath.Abs(*strataBin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata-bench:", err)
		os.Exit(1)
	}
	work, err := os.MkdirTemp("", "strata-bench")
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata-bench:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(work)
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	ctx := context.Background()

	ns := []int{1, 10, 50}
	if *quick {
		ns = []int{1, 10}
	}
	var sections []section
	mergeRows, err := bench.Merge(ctx, bench.MergeConfig{StrataBin: bin, PeerBin: *peer, WorkDir: work, Reps: *reps, Ns: ns, Log: logf})
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata-bench:", err)
		os.Exit(1)
	}
	sections = append(sections, section{"Merge: `strata sysext` against systemd-sysext 252", mergeNotes, mergeRows})
	for _, extra := range extraBenches {
		rows, title, notes, err := extra(ctx, bin, work, *quick, logf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "strata-bench:", err)
			os.Exit(1)
		}
		sections = append(sections, section{title, notes, rows})
	}
	if err := writeReport(*out, sections); err != nil {
		fmt.Fprintln(os.Stderr, "strata-bench:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "wrote", *out)
}

type section struct {
	title, notes string
	rows         []bench.Row
}

// extraBenches are the other benchmark groups (bake, update, …) that
// join the report.
var extraBenches = []func(ctx context.Context, strataBin, workDir string, quick bool, logf func(string, ...any)) ([]bench.Row, string, string, error){
	bench.BakeSection,
	fleetBench,
	updateBench,
	flakeBench,
	startupBench,
	bench.OSInstall,
	bench.Verity,
	bench.DDI,
	bench.InitrdBoot,
	bench.EtcdLock,
	bench.AgentIdle, bench.AgentUpdate,
}

const mergeNotes = `Each case: N extensions (10 scripts in usr/bin and ten 2 KiB files each,
the baseline's shape) in <root>/var/lib/extensions; merge, then add one and
refresh, then unmerge; medians of the repetitions, both tools run as
processes on identical scratch roots (--root) in one private mount
namespace. The floor is one bare overlay mount(2) (or umount(2)) over the
same lowerdirs already attached: it excludes attaching loop devices,
mounting the images and starting a process, all of which both tools must
do, so "Strata / floor" reads as the overhead over the kernel's own work.`

func reexec() int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata-bench:", err)
		return 1
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	// PostgreSQL's socket directory is under /run, which the namespace
	// hides: set the cluster up here and hand the child a TCP DSN.
	if os.Getenv(postgresEnv) == "" {
		if dsn, err := fleetbench.LocalPostgres(context.Background()); err != nil {
			cmd.Env = append(cmd.Env, postgresErrEnv+"="+err.Error())
		} else {
			cmd.Env = append(cmd.Env, postgresEnv+"="+dsn)
		}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "strata-bench: needs root to create a mount namespace:", err)
		return 1
	}
	return 0
}

func prepareNamespace() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make / shared: %w", err)
	}
	return unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755")
}

func writeReport(path string, sections []section) error {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\nWritten by `make bench` (internal/bench); do not edit by hand. Every table is\nmeasured in one run, Strata side by side with the peer and the floor.\n\n")
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fmt.Fprintf(&b, "- Run: %s\n- Machine: %d CPUs, kernel %s, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), strings.TrimSpace(string(kernel)), runtime.Version())
	for _, s := range sections {
		fmt.Fprintf(&b, "## %s\n\n%s\n\n%s\n", s.title, s.notes, bench.Table(s.rows))
	}
	tmp := path + ".tmp"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
