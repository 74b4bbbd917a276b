package osboot

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stratalinux/strata/internal/ddi"
	"github.com/stratalinux/strata/internal/dm"
	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/initrd"
	"github.com/stratalinux/strata/internal/merge"
	"github.com/stratalinux/strata/internal/osimage"
	"github.com/stratalinux/strata/internal/slot"
	"github.com/stratalinux/strata/internal/verity"
)

// IsInit says whether this process is the initrd's /init: PID 1, started as /init (the kernel's
// rdinit= default).
func IsInit(args0 string) bool { return os.Getpid() == 1 && args0 == "/init" }

// Run is /init: it boots and, on success, does not return (it execs the real init). On failure it
// prints one line on the console and reboots; it returns only if even that fails.
func Run(ctx context.Context, console io.Writer) int {
	b := &booter{console: console, start: time.Now()}
	err := b.boot(ctx)
	var se *SlotError
	switch {
	case errors.As(err, &se):
		b.say("slot %s refused: %v; rebooting so the next boot takes the other slot", se.Plan.SlotLabel(), oneLine(se.Err))
	case errors.Is(err, slot.ErrNoBootable):
		b.say("%v; powering off", err)
		unix.Sync()
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		return 1
	default:
		b.say("boot failed: %v; rebooting", oneLine(err))
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		b.say("reboot: %v", err)
	}
	return 1
}

type booter struct {
	console io.Writer
	start   time.Time
	debug   bool
}

// say prints one console line with the time since the kernel started (from /proc/uptime, so the
// lines line up with the kernel's own).
func (b *booter) say(format string, args ...any) {
	fmt.Fprintf(b.console, "strata-init[%s]: %s\n", uptime(), fmt.Sprintf(format, args...))
}

func (b *booter) debugf(format string, args ...any) {
	if b.debug {
		b.say(format, args...)
	}
}

func uptime() string {
	data, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return "?"
	}
	return f[0] + "s"
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

func (b *booter) boot(ctx context.Context) error {
	if err := mountAPI(); err != nil {
		return err
	}
	reopenConsole()
	raw, err := os.ReadFile("/proc/cmdline") // procfs: at most a page
	if err != nil {
		return fmt.Errorf("read /proc/cmdline: %w", err)
	}
	opt, err := ParseCmdline(string(raw))
	if err != nil {
		return err
	}
	b.debug = opt.Debug
	b.debugf("loading kernel modules")
	if err := loadModules("/", initrd.ModuleListPath); err != nil {
		return err
	}
	b.debugf("waiting for the disk")
	d, err := findDisk(ctx, opt, time.Now().Add(opt.DiskTimeout))
	if err != nil {
		return err
	}
	defer d.f.Close()
	b.debugf("disk %s", d.name)

	records := map[string]SlotRecord{}
	for _, s := range slot.Slots(d.table) {
		p := d.table.ByIndex(s.Index)
		rec, err := osimage.ReadRecord(d.f, p.Start(), p.Size())
		records[s.Name] = SlotRecord{rec, err}
	}
	// The initrd's own verity.d: certificates baked in with os initrd --trust. Reading them cannot
	// fail the boot; a file that does not parse is named and left out.
	certs, skipped, err := ddi.TrustedCertificates("/")
	if err != nil {
		b.say("reading trusted certificates: %s", oneLine(err))
	}
	for _, s := range skipped {
		b.say("skipped certificate %s", s)
	}
	plan, perr := Plan(opt, d.table, records, ddi.Certs(certs))
	var se *SlotError
	if perr != nil && !errors.As(perr, &se) {
		return fmt.Errorf("%s: %w", d.dev, perr)
	}
	if se != nil {
		plan = se.Plan
	}
	// The try is used up before anything of the slot is touched: a boot that dies anywhere after
	// this line counts.
	if plan.Decrement {
		slot.Apply(d.table, plan.Slots)
		if err := d.table.Write(d.f, d.size); err != nil {
			return &SlotError{plan, fmt.Errorf("write the decremented tries to the GPT of %s: %w", d.dev, err)}
		}
		if err := d.f.Sync(); err != nil {
			return &SlotError{plan, fmt.Errorf("sync the GPT of %s: %w", d.dev, err)}
		}
	}
	if se != nil {
		return se
	}
	trust := plan.Trust
	if plan.Signer != "" {
		trust += " (" + plan.Signer + ")"
	}
	b.say("booting slot %s, tries %d -> %d, root hash from %s", plan.SlotLabel(), plan.Slot.Attr.Tries, triesAfter(plan), trust)
	if plan.Warning != "" {
		b.say("%s", plan.Warning)
	}
	if err := b.mountSlot(ctx, d, plan, opt); err != nil {
		return &SlotError{plan, err}
	}
	return &SlotError{plan, b.switchRoot(plan)}
}

func triesAfter(p BootPlan) uint8 {
	for _, s := range p.Slots {
		if s.Name == p.Slot.Name {
			return s.Attr.Tries
		}
	}
	return p.Slot.Attr.Tries
}

func mountAPI() error {
	for _, m := range []struct{ src, dst, fstype string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", m.dst, err)
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	return nil
}

// reopenConsole gives /init a console when the kernel could not open one (no /dev/console in the
// initrd before devtmpfs was mounted).
func reopenConsole() {
	var st unix.Stat_t
	if unix.Fstat(1, &st) == nil {
		return
	}
	fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return
	}
	for i := 0; i < 3; i++ {
		_ = unix.Dup3(fd, i, 0)
	}
	if fd > 2 {
		unix.Close(fd)
	}
}

// loadModules loads the initrd's modules in the order of its load-order file.
func loadModules(root, list string) error {
	data, err := os.ReadFile(filepath.Join(root, list))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // an initrd without modules: everything is built in
	}
	if err != nil {
		return fmt.Errorf("read the module list: %w", err)
	}
	for _, m := range initrd.ParseModuleList(data) {
		if err := loadModule(filepath.Join(root, initrd.ModulesDir, m)); err != nil {
			return err
		}
	}
	return nil
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("load kernel module: %w", err)
	}
	defer f.Close()
	flags := 0
	if strings.HasSuffix(path, ".xz") || strings.HasSuffix(path, ".zst") {
		flags = unix.MODULE_INIT_COMPRESSED_FILE
	}
	if err := unix.FinitModule(int(f.Fd()), "", flags); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load kernel module %s: %w", filepath.Base(path), err)
	}
	return nil
}

type disk struct {
	name  string // vda
	dev   string // /dev/vda
	f     *os.File
	size  int64
	table *gpt.Table
}

// findDisk waits for the disk whose GPT has the /usr slots (or the pinned verity.usr= partition).
func findDisk(ctx context.Context, opt Options, deadline time.Time) (*disk, error) {
	var lastErr error
	for {
		names, _ := os.ReadDir("/sys/block")
		for _, n := range names {
			name := n.Name()
			if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") || strings.HasPrefix(name, "dm-") || strings.HasPrefix(name, "zram") {
				continue
			}
			d, err := openDisk(name)
			if err != nil {
				lastErr = err
				continue
			}
			if hasSlots(d.table, opt) {
				return d, nil
			}
			d.f.Close()
		}
		if time.Now().After(deadline) {
			msg := "no disk with a GPT holding USR-A/USR-B appeared"
			if lastErr != nil {
				msg += " (last: " + lastErr.Error() + ")"
			}
			return nil, fmt.Errorf("%s within %v; raise strata.disktimeout= or check the kernel modules for the disk controller", msg, opt.DiskTimeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func hasSlots(t *gpt.Table, opt Options) bool {
	if opt.Pinned() {
		_, err := ResolveSpec(opt.UsrDevice, t, nil)
		return err == nil
	}
	return t.ByUUID(slot.USRA) != nil || t.ByUUID(slot.USRB) != nil
}

func openDisk(name string) (*disk, error) {
	dev := "/dev/" + name
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil || size == 0 {
		f.Close()
		return nil, fmt.Errorf("size of %s: %v", dev, err)
	}
	t, err := gpt.Read(f, size)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", dev, err)
	}
	return &disk{name: name, dev: dev, f: f, size: size, table: t}, nil
}

// partition is the sysfs name ("vda3") and device number ("254:3") of partition idx of the disk.
func (d *disk) partition(idx int) (name, devno string, err error) {
	ents, err := os.ReadDir(filepath.Join("/sys/block", d.name))
	if err != nil {
		return "", "", err
	}
	for _, e := range ents {
		n, err := os.ReadFile(filepath.Join("/sys/block", d.name, e.Name(), "partition"))
		if err != nil || strings.TrimSpace(string(n)) != strconv.Itoa(idx) {
			continue
		}
		dn, err := os.ReadFile(filepath.Join("/sys/block", d.name, e.Name(), "dev"))
		if err != nil {
			return "", "", err
		}
		return e.Name(), strings.TrimSpace(string(dn)), nil
	}
	return "", "", fmt.Errorf("partition %d of %s has no device (the kernel did not read the GPT?)", idx, d.dev)
}

func (d *disk) labels() map[int]string {
	out := map[int]string{}
	head := make([]byte, 4096)
	for _, p := range d.table.Partitions {
		if _, err := d.f.ReadAt(head, p.Start()); err != nil {
			continue
		}
		if l, ok := FSLabel(head); ok {
			out[p.Index] = l
		}
	}
	return out
}

// mountSlot opens the slot through dm-verity, mounts ROOT at /sysroot and /usr over it, and merges
// the extensions on ROOT.
func (b *booter) mountSlot(ctx context.Context, d *disk, p BootPlan, opt Options) error {
	_, devno, err := d.partition(p.Partition.Index)
	if err != nil {
		return err
	}
	part := io.NewSectionReader(d.f, p.Partition.Start(), p.Partition.Size())
	sb, err := verity.ReadSuperblock(part, p.Record.HashOffset)
	if err != nil {
		return fmt.Errorf("verity superblock at byte %d: %w", p.Record.HashOffset, err)
	}
	if int64(sb.DataBlocks)*int64(sb.DataBlockSize) != p.Record.DataSize {
		return fmt.Errorf("verity superblock covers %d blocks of %d bytes, the slot record %d bytes", sb.DataBlocks, sb.DataBlockSize, p.Record.DataSize)
	}
	table := verity.Table(devno, devno, sb, p.Record.HashOffset, p.RootHash)
	b.debugf("dm-verity: %s", table)
	if _, err := dm.CreateVerity(UsrMapper, "STRATA-USR-"+hex.EncodeToString(p.RootHash[:8]), table); err != nil {
		return err
	}
	if err := checkVerified(); err != nil {
		return err
	}
	root, usr := p.Mounts[0], p.Mounts[1]
	src := root.Source
	if !strings.HasPrefix(src, "/dev/") {
		idx, err := ResolveSpec(src, d.table, d.labels())
		if err != nil {
			return fmt.Errorf("root=%s: %w", src, err)
		}
		name, _, err := d.partition(idx)
		if err != nil {
			return err
		}
		src = "/dev/" + name
	}
	if err := mountOne(src, root); err != nil {
		return err
	}
	if err := os.MkdirAll(usr.Target, 0o755); err != nil {
		return fmt.Errorf("create %s on ROOT: %w", usr.Target, err)
	}
	if err := mountOne(usr.Source, usr); err != nil {
		return err
	}
	// Mounting read the filesystem's first blocks through verity; a corrupt one fails the mount
	// (EIO) or turns the status to "C".
	if err := checkVerified(); err != nil {
		return err
	}
	if !opt.NoMerge {
		b.mergeExtensions(ctx, root.Target)
	}
	return nil
}

func checkVerified() error {
	st, err := dm.Status(UsrMapper)
	if err != nil {
		return err
	}
	if strings.TrimSpace(st) != "V" {
		return fmt.Errorf("dm-verity reports %q for /usr, not \"V\": a block does not match the root hash", strings.TrimSpace(st))
	}
	return nil
}

func mountOne(src string, m Mount) error {
	var flags uintptr
	if m.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount(src, m.Target, m.FSType, flags, ""); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", src, m.FSType, m.Target, err)
	}
	return nil
}

// mergeExtensions merges the sysexts and confexts found under root with Strata's merge engine, as
// systemd-sysext's initrd service does. A failure is reported and the boot goes on: the OS itself is
// fine, and the running system can merge again.
func (b *booter) mergeExtensions(ctx context.Context, root string) {
	run := filepath.Join(root, "run")
	if err := os.MkdirAll(run, 0o755); err == nil {
		if err := unix.Mount("tmpfs", run, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
			b.say("mount tmpfs on %s: %v", run, err)
		}
	}
	log := slog.New(slog.NewTextHandler(b.console, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for _, c := range []imageclass.Class{imageclass.Sysext, imageclass.Confext} {
		e, err := merge.NewEngine(c, root, merge.Flags{}, os.LookupEnv, log)
		if err != nil {
			b.say("%s: %v", c, err)
			continue
		}
		disc, err := e.Discover()
		if err != nil {
			b.say("find %s images: %v", c, oneLine(err))
			continue
		}
		if len(disc.Images) == 0 {
			continue
		}
		res, err := e.Merge(ctx)
		if err != nil {
			b.say("merge %s: %v", c, oneLine(err))
			continue
		}
		var names []string
		for _, v := range res.Verdicts {
			if v.Use {
				names = append(names, v.Name)
			} else {
				b.say("%s %s not merged: %s", c, v.Name, v.Reason)
			}
		}
		if len(names) > 0 {
			b.say("merged %s: %s", c, strings.Join(names, " "))
		}
	}
}

// switchRoot moves the API filesystems and /sysroot over /, frees the initrd's files and execs init.
// It returns only on failure.
func (b *booter) switchRoot(p BootPlan) error {
	const newRoot = "/sysroot"
	for _, m := range []string{"/dev", "/proc", "/sys"} {
		dst := newRoot + m
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return fmt.Errorf("create %s on ROOT: %w", dst, err)
		}
		if err := unix.Mount(m, dst, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s to %s: %w", m, dst, err)
		}
	}
	freeInitrd(newRoot)
	if err := unix.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot to the new root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if _, err := os.Stat(p.Init); err != nil {
		return fmt.Errorf("init %s: %w (set init= on the kernel command line)", p.Init, err)
	}
	b.say("switching root to slot %s, exec %s", p.SlotLabel(), p.Init)
	env := append(os.Environ(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
	if err := unix.Exec(p.Init, []string{p.Init}, env); err != nil {
		return fmt.Errorf("exec %s: %w", p.Init, err)
	}
	return nil
}

// freeInitrd removes the initrd's files (they live in RAM) except the new root; what sits on another
// filesystem is left alone.
func freeInitrd(keep string) {
	var rootSt unix.Stat_t
	if unix.Lstat("/", &rootSt) != nil {
		return
	}
	ents, err := os.ReadDir("/")
	if err != nil {
		return
	}
	for _, e := range ents {
		p := "/" + e.Name()
		if p == keep {
			continue
		}
		removeSameFS(p, rootSt.Dev)
	}
}

func removeSameFS(p string, dev uint64) {
	var st unix.Stat_t
	if unix.Lstat(p, &st) != nil || st.Dev != dev {
		return
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		ents, _ := os.ReadDir(p)
		for _, e := range ents {
			removeSameFS(filepath.Join(p, e.Name()), dev)
		}
		_ = unix.Rmdir(p)
		return
	}
	_ = unix.Unlink(p)
}
