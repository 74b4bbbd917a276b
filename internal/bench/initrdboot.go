package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/initrd"
	"github.com/stratalinux/strata/internal/osimage"
	"github.com/stratalinux/strata/internal/testutil/qemutest"
)

// InitrdBootTitle heads the initrd boot section.
const InitrdBootTitle = "Boot: Strata's initrd to switch-root against a minimal busybox initrd doing the same mounts"

// InitrdBootNotes explain the row.
const InitrdBootNotes = `One disk baked by osimage.Bake (slot A: an erofs /usr with busybox and an init that prints a
marker and powers off), a fresh copy per boot, booted in QEMU under software emulation (TCG, 2 vCPUs,
512 MiB, the kernel by PVH) with the same kernel and command line. Strata: ` + "`strata os initrd`" + `
(the static strata as /init: slot choice on the GPT, modules, dm-verity from the slot record, ROOT
and /usr mounts, extension merge, switch_root). Peer: a busybox initrd that loads the same modules
(unpacked), opens slot A with veritysetup (its libraries copied in) using the root hash given on the
command line, mounts ROOT and /usr and runs busybox switch_root. Time: QEMU start to the marker of the
real init, medians of the runs, interleaved; the note gives the guests' own uptime at the marker.`

var benchUp = regexp.MustCompile(`BENCH-UP uptime=([0-9.]+)`)

const benchGuestInit = `#!/usr/bin/busybox sh
[ -r /proc/uptime ] || /usr/bin/busybox mount -t proc proc /proc
echo "BENCH-UP uptime=$(/usr/bin/busybox cut -d' ' -f1 /proc/uptime)"
/usr/bin/busybox poweroff -f
`

// peerInit is the busybox initrd's /init: the same steps as Strata's,
// without choosing the slot (A is the only bootable one).
const peerInit = `#!/bin/sh
/bin/busybox mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s /bin
export PATH=/bin LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/lib64:/lib
mount -t proc proc /proc
mount -t sysfs sys /sys
mkdir -p /run/cryptsetup /sysroot
for m in $(cat /mods/list); do insmod /mods/$m || echo "insmod $m failed"; done
arg() { tr ' ' '\n' < /proc/cmdline | grep "^$1=" | cut -d= -f2; }
i=0; while [ ! -b /dev/vda9 ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done
veritysetup open /dev/vda3 usr /dev/vda3 $(arg bench.usrhash) --hash-offset=$(arg bench.hashoffset) || echo "PEER-FAIL verity"
mount -t ext4 /dev/vda9 /sysroot || echo "PEER-FAIL root"
mkdir -p /sysroot/usr /sysroot/proc /sysroot/sys /sysroot/dev
mount -t erofs -o ro /dev/mapper/usr /sysroot/usr || echo "PEER-FAIL usr"
mount --move /proc /sysroot/proc; mount --move /sys /sysroot/sys; mount --move /dev /sysroot/dev
exec switch_root /sysroot /usr/lib/bench/init
`

const initrdBootCmdline = "console=ttyS0 panic=1 loglevel=3 init=/usr/lib/bench/init"

// InitrdBoot is the bench group of the initrd boot (quick: one run).
func InitrdBoot(ctx context.Context, strataBin, workDir string, quick bool, logf func(string, ...any)) ([]Row, string, string, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	reps := 3
	if quick {
		reps = 1
	}
	host, err := qemutest.FindHost()
	if err != nil {
		return nil, "", "", fmt.Errorf("initrd boot bench: %w", err)
	}
	if host.Modules == "" {
		return nil, "", "", fmt.Errorf("initrd boot bench: no module tree for kernel %s in /lib/modules", host.KernelVersion)
	}
	dir := filepath.Join(workDir, "initrdboot")
	if err := os.RemoveAll(dir); err != nil {
		return nil, "", "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", "", err
	}
	defer os.RemoveAll(dir)

	ours := filepath.Join(dir, "strata-initrd.cpio")
	if help, _ := exec.CommandContext(ctx, strataBin, "os", "initrd", "--help").CombinedOutput(); !bytes.Contains(help, []byte("--kernel-version")) {
		// A build without the initrd's /init: nothing to compare yet.
		logf("initrd boot bench: %s has no `os initrd`; row left empty", strataBin)
		return []Row{{Group: "initrd boot", Case: "busybox /usr, slot A", PeerName: "busybox initrd", Note: "this strata has no `os initrd`"}}, InitrdBootTitle, InitrdBootNotes, nil
	}
	if out, err := exec.CommandContext(ctx, strataBin, "os", "initrd", "--kernel-version", host.KernelVersion,
		"--modules-dir", filepath.Dir(host.Modules), "--strata", strataBin, "--output", ours).CombinedOutput(); err != nil {
		return nil, "", "", fmt.Errorf("strata os initrd: %v: %s", err, out)
	}
	peer := filepath.Join(dir, "busybox-initrd.cpio")
	if err := writePeerInitrd(ctx, peer, host.Modules); err != nil {
		return nil, "", "", fmt.Errorf("initrd boot bench: busybox initrd: %w", err)
	}
	usr := filepath.Join(dir, "usr")
	if err := writeBenchUsr(usr); err != nil {
		return nil, "", "", err
	}
	disk := filepath.Join(dir, "disk.img")
	logf("initrd boot bench: baking the disk")
	if err := osimage.Bake(ctx, osimage.Request{Usr: usr, Kernel: host.Kernel, Initrd: ours, Version: "1.0.0",
		Sizes: osimage.Sizes{USR: 32 * osimage.MiB, Root: 32 * osimage.MiB, ESP: 64 * osimage.MiB}, Output: disk}); err != nil {
		return nil, "", "", fmt.Errorf("initrd boot bench: %w", err)
	}
	rec, err := slotARecord(disk)
	if err != nil {
		return nil, "", "", fmt.Errorf("initrd boot bench: %w", err)
	}
	peerCmdline := initrdBootCmdline + " bench.usrhash=" + rec.RootHash + " bench.hashoffset=" + strconv.FormatInt(rec.HashOffset, 10)

	var oursT, peerT []time.Duration
	var oursUp, peerUp []string
	for i := 0; i < reps; i++ {
		for _, side := range []string{"strata", "peer"} {
			copyDisk := filepath.Join(dir, "boot.img")
			if out, err := exec.CommandContext(ctx, "cp", "--sparse=always", disk, copyDisk).CombinedOutput(); err != nil {
				return nil, "", "", fmt.Errorf("copy %s: %v: %s", disk, err, out)
			}
			c := qemutest.Config{Kernel: host.Kernel, Initrd: ours, Append: initrdBootCmdline, Disks: []string{copyDisk}, NoReboot: true}
			if side == "peer" {
				c.Initrd, c.Append = peer, peerCmdline
			}
			at, up, err := bootToMarker(c, filepath.Join(dir, side+"-console.log"))
			if err != nil {
				return nil, "", "", fmt.Errorf("initrd boot bench (%s initrd): %w", side, err)
			}
			if side == "strata" {
				oursT, oursUp = append(oursT, at), append(oursUp, up)
			} else {
				peerT, peerUp = append(peerT, at), append(peerUp, up)
			}
		}
	}
	r := Row{Group: "initrd boot", Case: "busybox /usr, slot A", Peer: Median(peerT), Strata: Median(oursT), PeerName: "busybox initrd"}
	r.Note = fmt.Sprintf("ratio %s; guest uptime at the marker: strata %s s, busybox %s s", Ratio(r.Strata, r.Peer), strings.Join(oursUp, "/"), strings.Join(peerUp, "/"))
	logf("initrd boot bench: strata %s, busybox %s (%s)", Fmt(r.Strata), Fmt(r.Peer), r.Note)
	return []Row{r}, InitrdBootTitle, InitrdBootNotes, nil
}

// bootToMarker boots c and returns when the marker arrived (from QEMU's
// start) and the guest's uptime it printed.
func bootToMarker(c qemutest.Config, logPath string) (time.Duration, string, error) {
	m, err := qemutest.Boot(c, logPath)
	if err != nil {
		return 0, "", err
	}
	defer m.Kill()
	match, at, err := m.ExpectAt(benchUp, 5*time.Minute)
	if err != nil {
		return 0, "", fmt.Errorf("%w (console: %s)", err, logPath)
	}
	if err := m.Wait(time.Minute); err != nil {
		return 0, "", err
	}
	return at, match[1], nil
}

func writeBenchUsr(usr string) error {
	bb, err := os.ReadFile(qemutest.Busybox)
	if err != nil {
		return fmt.Errorf("initrd boot bench needs the static busybox (busybox-static): %w", err)
	}
	files := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{"bin/busybox", bb, 0o755},
		{"lib/os-release", []byte("ID=strata\nVERSION_ID=1.0.0\n"), 0o644},
		{"lib/bench/init", []byte(benchGuestInit), 0o755},
	}
	for _, f := range files {
		p := filepath.Join(usr, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// slotARecord reads slot A's record from the baked disk.
func slotARecord(disk string) (osimage.Record, error) {
	f, err := os.Open(disk)
	if err != nil {
		return osimage.Record{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return osimage.Record{}, err
	}
	t, err := gpt.Read(f, fi.Size())
	if err != nil {
		return osimage.Record{}, fmt.Errorf("read the GPT of %s: %w", disk, err)
	}
	p := t.ByIndex(osimage.IndexUSRA)
	if p == nil {
		return osimage.Record{}, fmt.Errorf("%s has no USR-A", disk)
	}
	return osimage.ReadRecord(f, p.Start(), p.Size())
}

// writePeerInitrd writes the busybox initrd: busybox, veritysetup with
// its libraries, the modules Strata's initrd loads (unpacked, in the
// same order) and peerInit.
func writePeerInitrd(ctx context.Context, out, modules string) error {
	entries, err := qemutest.BusyboxEntries([]byte(peerInit))
	if err != nil {
		return err
	}
	vs, err := exec.LookPath("veritysetup")
	if err != nil {
		return fmt.Errorf("needs veritysetup (cryptsetup-bin): %w", err)
	}
	bins, err := withLibraries(ctx, vs)
	if err != nil {
		return err
	}
	for name, p := range bins {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		entries = append(entries, initrd.Entry{Name: name, Mode: initrd.ModeRegular | 0o755, Data: b})
	}
	mods, err := initrd.ResolveModules(os.DirFS(modules), initrd.DefaultModules)
	if err != nil {
		return err
	}
	var list strings.Builder
	for _, m := range mods {
		b, err := unpackModule(ctx, filepath.Join(modules, m.Path))
		if err != nil {
			return err
		}
		name := strings.ReplaceAll(m.Name, "_", "-") + ".ko"
		entries = append(entries, initrd.Entry{Name: "mods/" + name, Mode: initrd.ModeRegular | 0o644, Data: b})
		list.WriteString(name + "\n")
	}
	entries = append(entries,
		initrd.Entry{Name: "mods/list", Mode: initrd.ModeRegular | 0o644, Data: []byte(list.String())},
		initrd.Entry{Name: "run", Mode: initrd.ModeDir | 0o755})
	var b bytes.Buffer
	if err := initrd.WriteCPIO(&b, entries); err != nil {
		return err
	}
	return os.WriteFile(out, b.Bytes(), 0o644)
}

// withLibraries maps archive names to host files: the program as
// bin/NAME and each library ldd lists at its own path.
func withLibraries(ctx context.Context, prog string) (map[string]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", prog).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", prog, err)
	}
	files := map[string]string{"bin/" + filepath.Base(prog): prog}
	for _, f := range regexp.MustCompile(`(/[^ ]+) \(0x`).FindAllStringSubmatch(string(out), -1) {
		real, err := filepath.EvalSymlinks(f[1])
		if err != nil {
			return nil, err
		}
		files[strings.TrimPrefix(f[1], "/")] = real
	}
	return files, nil
}

// unpackModule reads a module file, unpacking .ko.xz/.ko.zst/.ko.gz
// (busybox insmod takes plain modules).
func unpackModule(ctx context.Context, p string) ([]byte, error) {
	var tool string
	switch {
	case strings.HasSuffix(p, ".xz"):
		tool = "xz"
	case strings.HasSuffix(p, ".zst"):
		tool = "zstd"
	case strings.HasSuffix(p, ".gz"):
		tool = "gzip"
	default:
		return os.ReadFile(p)
	}
	out, err := exec.CommandContext(ctx, tool, "-dc", p).Output()
	if err != nil {
		return nil, fmt.Errorf("%s -dc %s: %w", tool, p, err)
	}
	return out, nil
}
