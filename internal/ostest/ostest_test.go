package ostest

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/initrd"
	"github.com/stratalinux/strata/internal/osimage"
	"github.com/stratalinux/strata/internal/slot"
	"github.com/stratalinux/strata/internal/testutil/privtest"
	"github.com/stratalinux/strata/internal/testutil/qemutest"
)

// guestInit is the real init of the test OS, in /usr (ROOT is made by Bake and holds only the
// extensions; Bake's ext4 is shrunk to its content, so ROOT gets one symlink, /bin -> usr/bin, for
// the health checks' /bin/sh): a marker with the booted version, then a shell on the console that the
// test drives.
const guestInit = `#!/usr/bin/busybox sh
[ -e /bin ] || /usr/bin/busybox ln -s usr/bin /bin
export PATH=/usr/bin
. /usr/lib/os-release
echo "GUEST-UP version=$VERSION_ID uptime=$(cut -d' ' -f1 /proc/uptime)"
exec sh
`

// healthCheck is the slot's own health check: it passes when the /usr tree says it is healthy.
const healthCheck = "test -e /usr/lib/strata-test/healthy"

const cmdline = "console=ttyS0 panic=1 loglevel=3 init=/usr/lib/strata-test/init"

type world struct {
	t      *testing.T
	init   string            // the guest's init script in /usr; "" is guestInit
	files  map[string]string // more files of every /usr tree (path under /usr → content)
	host   qemutest.Host
	dir    string
	strata string // static strata binary
	initrd string
}

// TestOSBootUpdateCommitRollback boots a baked disk's slot A in QEMU, installs B from the running
// guest, boots B and marks it good; then, on disks prepared the same way, a B whose health check fails
// is rolled back to A by the next boot alone, and a B with one byte flipped is refused by dm-verity
// and A boots.
func TestOSBootUpdateCommitRollback(t *testing.T) {
	w := setup(t)
	ctx := context.Background()

	usrA := w.usrTree("1.0.0", true)
	disk := filepath.Join(w.dir, "disk.img")
	if err := osimage.Bake(ctx, osimage.Request{Usr: usrA, Kernel: w.host.Kernel, Initrd: w.initrd, Version: "1.0.0",
		Sizes: osimage.Sizes{USR: 64 * osimage.MiB, Root: 32 * osimage.MiB, ESP: 64 * osimage.MiB}, Output: disk}); err != nil {
		t.Fatal(err)
	}
	baked := w.copy(disk, "baked.img")
	payload2 := w.payload("2.0.0", true)
	payload3 := w.payload("3.0.0", false)

	// 1. Slot A boots; the running system installs 2.0.0 into B.
	m := w.boot("1-A", disk, payload2)
	w.expectUp(m, "1.0.0")
	w.run(m, "strata os status", 0)
	w.run(m, "strata os install /dev/vdb", 0)
	w.reboot(m)
	w.wantSlots(disk, slot.Attr{Priority: 1, Successful: true}, slot.Attr{Priority: 2, Tries: 1})
	armed := w.copy(disk, "armed.img")

	// 2. B boots (its one try used up before /usr was mounted), passes its health check, is marked good.
	m = w.boot("2-B", disk, payload2)
	w.expectUp(m, "2.0.0")
	w.run(m, "strata os mark-good --check '"+healthCheck+"'", 0)
	w.reboot(m)
	w.wantSlots(disk, slot.Attr{Priority: 1, Successful: true}, slot.Attr{Priority: 2, Successful: true})

	// 3. A B whose health check fails stays unmarked; the next boot takes A with nobody touching it.
	failing := w.copy(baked, "failing.img")
	w.hostInstall(failing, payload3)
	m = w.boot("3-B-unhealthy", failing, payload3)
	w.expectUp(m, "3.0.0")
	w.run(m, "strata os mark-good --check '"+healthCheck+"'", 1)
	w.reboot(m)
	w.wantSlots(failing, slot.Attr{Priority: 1, Successful: true}, slot.Attr{Priority: 2})
	m = w.boot("4-A-after-rollback", failing, payload3)
	w.expectUp(m, "1.0.0")
	w.reboot(m)

	// 4. A B with one byte flipped in its /usr image is refused by verity; the slot fails, A boots.
	tampered := w.copy(armed, "tampered.img")
	w.flipUsrByte(tampered, osimage.IndexUSRB, 1024+100)
	m = w.boot("5-B-tampered", tampered, payload2)
	if _, err := m.Expect(regexp.MustCompile(`slot B \(2\.0\.0\) refused: .*rebooting`), 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(time.Minute); err != nil {
		t.Fatal(err)
	}
	w.wantSlots(tampered, slot.Attr{Priority: 1, Successful: true}, slot.Attr{Priority: 2})
	m = w.boot("6-A-after-refusal", tampered, payload2)
	w.expectUp(m, "1.0.0")
	w.reboot(m)
}

func setup(t *testing.T, extraModules ...string) *world {
	host := qemutest.Require(t)
	if host.Modules == "" {
		privtest.Missing(t, "no module tree for kernel %s in /lib/modules (run ./scripts/deps test)", host.KernelVersion)
	}
	privtest.RequireTools(t, "busybox", "mkfs.erofs", "mkfs.fat", "mcopy", "go")
	if _, err := os.Stat("/bin/busybox"); err != nil {
		privtest.Missing(t, "no static busybox at /bin/busybox (run ./scripts/deps test: busybox-static)")
	}
	w := &world{t: t, host: host, dir: t.TempDir()}
	w.strata = filepath.Join(w.dir, "strata")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", w.strata, "github.com/stratalinux/strata/cmd/strata")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the static strata: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(w.strata)
	if err != nil {
		t.Fatal(err)
	}
	w.initrd = filepath.Join(w.dir, "initrd.cpio")
	f, err := os.Create(w.initrd)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := initrd.Write(f, initrd.Spec{Init: bin, Modules: os.DirFS(host.Modules), Wanted: append(slices.Clone(initrd.DefaultModules), extraModules...)}); err != nil {
		t.Fatal(err)
	}
	return w
}

// usrTree is a /usr with busybox, the static strata, an os-release naming version and the init.
func (w *world) usrTree(version string, healthy bool) string {
	d := filepath.Join(w.dir, "usr-"+version)
	files := map[string]string{
		"lib/os-release":        "ID=strata\nNAME=\"Strata test OS\"\nVERSION_ID=" + version + "\nSYSEXT_LEVEL=1\n",
		"lib/strata-test/init":  cmp.Or(w.init, guestInit),
		"bin/busybox":           "@/bin/busybox",
		"bin/strata":            "@" + w.strata,
		"lib/strata-test/.keep": "",
	}
	if healthy {
		files["lib/strata-test/healthy"] = ""
	}
	for p, c := range w.files {
		files[p] = c
	}
	applets, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		w.t.Fatalf("busybox --list: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(d, "bin"), 0o755); err != nil {
		w.t.Fatal(err)
	}
	for _, a := range strings.Fields(string(applets)) {
		if a == "busybox" || a == "strata" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(d, "bin", a)); err != nil && !os.IsExist(err) {
			w.t.Fatal(err)
		}
	}
	for p, c := range files {
		full := filepath.Join(d, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			w.t.Fatal(err)
		}
		data := []byte(c)
		if strings.HasPrefix(c, "@") {
			var err error
			if data, err = os.ReadFile(c[1:]); err != nil {
				w.t.Fatal(err)
			}
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(p, "bin/") || strings.HasSuffix(p, "/init") {
			mode = 0o755
		}
		if err := os.WriteFile(full, data, mode); err != nil {
			w.t.Fatal(err)
		}
	}
	return d
}

func (w *world) payload(version string, healthy bool) string {
	out := filepath.Join(w.dir, "payload-"+version)
	if _, err := osimage.BuildPayload(context.Background(), osimage.Request{Usr: w.usrTree(version, healthy), Version: version}, out); err != nil {
		w.t.Fatal(err)
	}
	return out
}

func (w *world) copy(src, name string) string {
	dst := filepath.Join(w.dir, name)
	// cp keeps the disk sparse.
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		w.t.Fatalf("copy %s: %v: %s", src, err, out)
	}
	return dst
}

// boot starts QEMU on the disk with the payload as a second disk; a guest reboot ends QEMU.
func (w *world) boot(name, disk, payload string) *qemutest.Machine {
	w.t.Logf("boot %s", name)
	return qemutest.Start(w.t, qemutest.Config{Kernel: w.host.Kernel, Initrd: w.initrd, Append: cmdline,
		Disks: []string{disk, payload}, Memory: "768M", NoReboot: true})
}

var switchRE = regexp.MustCompile(`strata-init\[([0-9.]+)s\]: switching root to slot ([AB]) \(([^)]*)\)`)

// expectUp waits for the guest's marker and logs the initrd's switch-root time (guest uptime, from
// kernel start).
func (w *world) expectUp(m *qemutest.Machine, version string) {
	w.t.Helper()
	sw, err := m.Expect(switchRE, 4*time.Minute)
	if err != nil {
		w.t.Fatal(err)
	}
	if sw[3] != version {
		w.t.Fatalf("switched root to slot %s version %s, want version %s", sw[2], sw[3], version)
	}
	up, at, err := m.ExpectAt(regexp.MustCompile(`GUEST-UP version=(\S+) uptime=([0-9.]+)`), 2*time.Minute)
	if err != nil {
		w.t.Fatal(err)
	}
	if up[1] != version {
		w.t.Fatalf("guest runs version %s, want %s", up[1], version)
	}
	secs, _ := strconv.ParseFloat(sw[1], 64)
	w.t.Logf("slot %s (%s): kernel start to switch_root %.2f s (guest clock), shell up at %s host time", sw[2], version, secs, at.Round(10*time.Millisecond))
}

var rcRE = regexp.MustCompile(`RC=(\d+)`)

// run types a command on the guest's shell and checks its exit code.
func (w *world) run(m *qemutest.Machine, command string, want int) {
	w.t.Helper()
	if err := m.Send(command + "; echo RC=$?"); err != nil {
		w.t.Fatal(err)
	}
	got, err := m.Expect(rcRE, 3*time.Minute)
	if err != nil {
		w.t.Fatal(err)
	}
	if rc, _ := strconv.Atoi(got[1]); (want == 0) != (rc == 0) {
		w.t.Fatalf("guest: %s: exit %d, want %d", command, rc, want)
	}
}

func (w *world) reboot(m *qemutest.Machine) {
	w.t.Helper()
	if err := m.Send("sync; reboot -f"); err != nil {
		w.t.Fatal(err)
	}
	if err := m.Wait(time.Minute); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) hostInstall(disk, payload string) {
	w.t.Helper()
	d, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	defer d.Close()
	p, err := os.Open(payload)
	if err != nil {
		w.t.Fatal(err)
	}
	defer p.Close()
	dsize, _ := d.Seek(0, io.SeekEnd)
	psize, _ := p.Seek(0, io.SeekEnd)
	if _, err := osimage.Install(context.Background(), d, dsize, p, psize, osimage.InstallOptions{Booted: "A", Arch: "x86-64"}); err != nil {
		w.t.Fatal(err)
	}
}

// wantSlots checks the slots' attributes on the disk file after the guest ended.
func (w *world) wantSlots(disk string, a, b slot.Attr) {
	w.t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	size, _ := f.Seek(0, io.SeekEnd)
	tb, err := gpt.Read(f, size)
	if err != nil {
		w.t.Fatal(err)
	}
	got := map[string]slot.Attr{}
	for _, s := range slot.Slots(tb) {
		got[s.Name] = s.Attr
	}
	if got["A"] != a || got["B"] != b {
		w.t.Fatalf("%s: slots A %v, B %v; want A %v, B %v", filepath.Base(disk), got["A"], got["B"], a, b)
	}
}

// flipUsrByte inverts one byte of a slot's filesystem image on the disk file.
func (w *world) flipUsrByte(disk string, index int, off int64) {
	w.t.Helper()
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	size, _ := f.Seek(0, io.SeekEnd)
	tb, err := gpt.Read(f, size)
	if err != nil {
		w.t.Fatal(err)
	}
	p := tb.ByIndex(index)
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, p.Start()+off); err != nil {
		w.t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, p.Start()+off); err != nil {
		w.t.Fatal(err)
	}
	w.t.Logf("flipped byte %d of %s's /usr image (%s)", off, p.Name, fmt.Sprintf("now %#02x", b[0]))
}
