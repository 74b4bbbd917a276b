package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// flakeContainersConf is the podman configuration the flake benchmarks
// (and tests) run with on this machine: runc, ulimits within the hard
// limits, no systemd, no network namespace setup.
const flakeContainersConf = `[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
`

// FlakeConfig sets up the flake benchmarks.
type FlakeConfig struct {
	StrataBin string
	// GuestInit is strata-guest-init (the VM rows are skipped without it).
	GuestInit string
	WorkDir   string
	Reps      int
	VMReps    int
	Log       func(string, ...any)
}

type flakeBench struct {
	cfg      FlakeConfig
	env      []string
	home     string
	vmKernel string
}

func (b *flakeBench) run(name string, args ...string) (time.Duration, error) {
	c := exec.Command(name, args...)
	c.Env = b.env
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	start := time.Now()
	err := c.Run()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return d, nil
}

// pair times a and b alternately reps times and returns both medians.
func (b *flakeBench) pair(reps int, a, s []string) (time.Duration, time.Duration, error) {
	var as, ss []time.Duration
	for range reps {
		da, err := b.run(a[0], a[1:]...)
		if err != nil {
			return 0, 0, err
		}
		ds, err := b.run(s[0], s[1:]...)
		if err != nil {
			return 0, 0, err
		}
		as, ss = append(as, da), append(ss, ds)
	}
	return Median(as), Median(ss), nil
}

// Flake measures the launcher against bare podman and qemu.
func Flake(ctx context.Context, cfg FlakeConfig) ([]Row, error) {
	if _, err := exec.LookPath("podman"); err != nil {
		return nil, fmt.Errorf("flake benchmarks need podman (./scripts/deps test)")
	}
	dir := filepath.Join(cfg.WorkDir, "flake")
	home := filepath.Join(dir, "home")
	for _, d := range []string{filepath.Join(home, "bin"), filepath.Join(dir, "xdg"), filepath.Join(dir, "tree", "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	conf := filepath.Join(dir, "containers.conf")
	storage := filepath.Join(dir, "storage.conf")
	// Podman's tmp_dir (locks, "alive" marker) must be private too, or it
	// clashes with the machine's own podman state in /run/libpod.
	os.WriteFile(conf, []byte(flakeContainersConf+fmt.Sprintf("tmp_dir = %q\n", filepath.Join(dir, "libpod-tmp"))), 0o644)
	os.WriteFile(storage, []byte(fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n", filepath.Join(dir, "graph"), filepath.Join(dir, "runroot"))), 0o644)
	b := &flakeBench{cfg: cfg, home: home, env: append(os.Environ(), "CONTAINERS_CONF="+conf, "CONTAINERS_STORAGE_CONF="+storage,
		"HOME="+home, "XDG_RUNTIME_DIR="+filepath.Join(dir, "xdg"), "STRATA_FLAKE_ROOT="+filepath.Join(dir, "sysroot"))}
	defer func() {
		c := exec.Command("podman", "system", "reset", "--force")
		c.Env = b.env
		_ = c.Run()
	}()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return nil, fmt.Errorf("flake benchmarks need busybox-static (./scripts/deps test)")
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return nil, err
	}
	tree := filepath.Join(dir, "tree")
	os.WriteFile(filepath.Join(tree, "bin/busybox"), data, 0o755)
	for _, c := range []string{"sh", "true", "sleep", "cat"} {
		os.Symlink("busybox", filepath.Join(tree, "bin", c))
	}
	layer := filepath.Join(dir, "layer")
	os.MkdirAll(filepath.Join(layer, "usr/share"), 0o755)
	os.WriteFile(filepath.Join(layer, "usr/share/delta.txt"), []byte("delta\n"), 0o644)
	for ref, t := range map[string]string{"localhost/bench-bb:1": tree, "localhost/bench-delta:1": layer} {
		if _, err := b.run("sh", "-c", "tar -C \"$1\" -c . | podman import - \"$2\"", "sh", t, ref); err != nil {
			return nil, err
		}
	}
	bin := filepath.Join(home, "bin")
	reg := func(app string, extra ...string) error {
		args := append([]string{"flake", "--user", "register", "podman", "--app", filepath.Join(bin, app), "--target", "/bin/true"}, extra...)
		_, err := b.run(cfg.StrataBin, args...)
		return err
	}
	if err := reg("oneshot", "--container", "localhost/bench-bb:1"); err != nil {
		return nil, err
	}
	if err := reg("resumed", "--container", "localhost/bench-bb:1", "--resume"); err != nil {
		return nil, err
	}
	if err := reg("delta", "--container", "localhost/bench-delta:1", "--base", "localhost/bench-bb:1"); err != nil {
		return nil, err
	}
	var rows []Row
	cfg.Log("flake: one-shot launch against podman run")
	peer, s, err := b.pair(cfg.Reps, []string{"podman", "run", "--rm", "-i", "--entrypoint", "/bin/true", "localhost/bench-bb:1"}, []string{filepath.Join(bin, "oneshot")})
	if err != nil {
		return nil, err
	}
	rows = append(rows, Row{Group: "flake", Case: "one-shot podman flake (/bin/true)", Peer: peer, Strata: s, PeerName: "bare podman", Note: "target ≤ 1.05×"})

	cfg.Log("flake: resume-mode exec against podman exec")
	if _, err := b.run(filepath.Join(bin, "resumed")); err != nil { // creates the instance
		return nil, err
	}
	peer, s, err = b.pair(cfg.Reps, []string{"podman", "exec", "-i", "flake-resumed-default", "/bin/true"}, []string{filepath.Join(bin, "resumed")})
	if err != nil {
		return nil, err
	}
	rows = append(rows, Row{Group: "flake", Case: "resume-mode launch (exec in running instance)", Peer: peer, Strata: s, PeerName: "bare podman", Note: "target ≤ 1.05×; peer is podman exec"})

	cfg.Log("flake: cached delta launch against a plain-image flake")
	if _, err := b.run(filepath.Join(bin, "delta")); err != nil { // assembles the delta once
		return nil, err
	}
	peer, s, err = b.pair(cfg.Reps, []string{filepath.Join(bin, "oneshot")}, []string{filepath.Join(bin, "delta")})
	if err != nil {
		return nil, err
	}
	rows = append(rows, Row{Group: "flake", Case: "delta flake launch, cached (base + delta)", Peer: peer, Strata: s, PeerName: "bare podman",
		Note: "peer column here: the plain-image flake; target ≤ 1.1×"})

	if vmRows, err := b.vm(ctx); err != nil {
		cfg.Log("flake: VM rows skipped: %v", err)
		rows = append(rows, Row{Group: "flake", Case: "VM launch to exit (software emulation)", Note: "not measured: " + err.Error()})
	} else {
		rows = append(rows, vmRows...)
	}
	return rows, nil
}

// vm times a VM flake (qemu, software emulation) against a bare boot of
// the same kernel to its first userspace moment (the kernel's own panic
// when it finds no root, with panic=-1 and -no-reboot: qemu exits).
func (b *flakeBench) vm(ctx context.Context) ([]Row, error) {
	rows, err := b.vmOneShot(ctx)
	if err != nil {
		return nil, err
	}
	// A resumed VM: the first launch boots it, later ones only run.
	app := filepath.Join(b.home, "bin", "vmresumed")
	kernel, rootfs := b.vmKernel, filepath.Join(b.cfg.WorkDir, "flake", "rootfs.sqfs")
	if _, err := b.run(b.cfg.StrataBin, "flake", "--user", "register", "vm", "--app", app, "--kernel", kernel, "--rootfs", rootfs,
		"--target", "/bin/true", "--memory", "256", "--resume"); err != nil {
		return rows, nil
	}
	if _, err := b.run(app); err != nil {
		return rows, nil
	}
	defer b.killResumedVMs()
	var ds []time.Duration
	for range b.cfg.Reps {
		d, err := b.run(app)
		if err != nil {
			return rows, nil
		}
		ds = append(ds, d)
	}
	rows = append(rows, Row{Group: "flake", Case: "resumed VM flake launch, /bin/true (VM running)", Strata: Median(ds),
		Note: "no bare equivalent: the VM is already up"})
	return rows, nil
}

// killResumedVMs stops the VMs resumed launches left running.
func (b *flakeBench) killResumedVMs() {
	files, _ := filepath.Glob(filepath.Join(b.cfg.WorkDir, "flake", "xdg", "flakes", "vm", "*.json"))
	for _, f := range files {
		var st struct {
			Pid int `json:"pid"`
		}
		if data, err := os.ReadFile(f); err == nil && json.Unmarshal(data, &st) == nil && st.Pid > 0 {
			_ = syscall.Kill(st.Pid, syscall.SIGKILL)
		}
	}
}

// vmOneShot times one-shot VM flakes with and without a network (user-mode
// networking, the default, against --no-net) against the bare boot,
// alternating the three.
func (b *flakeBench) vmOneShot(ctx context.Context) ([]Row, error) {
	row := Row{Group: "flake", Case: "VM flake launch to exit, /bin/true (qemu, software emulation)", FloorName: "bare qemu boot"}
	noNet := Row{Group: "flake", Case: "VM flake launch to exit, /bin/true, --no-net (qemu, software emulation)", FloorName: "bare qemu boot"}
	if b.cfg.GuestInit == "" {
		return nil, fmt.Errorf("no strata-guest-init")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return nil, fmt.Errorf("qemu-system-x86 is not installed")
	}
	kernels, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(kernels) == 0 {
		return nil, fmt.Errorf("no kernel in /boot")
	}
	sort.Strings(kernels)
	kernel := kernels[len(kernels)-1]
	b.vmKernel = kernel
	dir := filepath.Join(b.cfg.WorkDir, "flake")
	rootfs := filepath.Join(dir, "rootfs.sqfs")
	if _, err := b.run("mksquashfs", filepath.Join(dir, "tree"), rootfs, "-noappend", "-quiet"); err != nil {
		return nil, err
	}
	b.env = append(b.env, "STRATA_GUEST_INIT="+b.cfg.GuestInit, "STRATA_VM_ACCEL=tcg")
	app, appNoNet := filepath.Join(b.home, "bin", "vmtrue"), filepath.Join(b.home, "bin", "vmtrue-nonet")
	for _, reg := range [][]string{{"--app", app}, {"--app", appNoNet, "--no-net"}} {
		if _, err := b.run(b.cfg.StrataBin, append([]string{"flake", "--user", "register", "vm", "--kernel", kernel, "--rootfs", rootfs,
			"--target", "/bin/true", "--memory", "256"}, reg...)...); err != nil {
			return nil, err
		}
	}
	bare := []string{qemu, "-M", "pc", "-accel", "tcg", "-cpu", "max", "-m", "256", "-nodefaults", "-no-user-config", "-display", "none",
		"-no-reboot", "-serial", "null", "-kernel", kernel, "-append", "console=ttyS0 quiet loglevel=0 panic=-1 reboot=t"}
	var floors, nets, noNets []time.Duration
	for range b.cfg.VMReps {
		for _, m := range []struct {
			cmd []string
			ds  *[]time.Duration
		}{{bare, &floors}, {[]string{app}, &nets}, {[]string{appNoNet}, &noNets}} {
			d, err := b.run(m.cmd[0], m.cmd[1:]...)
			if err != nil {
				return nil, err
			}
			*m.ds = append(*m.ds, d)
		}
	}
	row.Floor, row.Strata = Median(floors), Median(nets)
	row.Note = "with a network (qemu user mode, the default); the floor boots the same kernel on the same machine type until it panics for want of a root"
	noNet.Floor, noNet.Strata = row.Floor, Median(noNets)
	noNet.Note = "no NIC, no network driver loaded; same floor, the three alternated"
	return []Row{row, noNet}, nil
}
