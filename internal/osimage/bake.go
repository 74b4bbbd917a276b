package osimage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stratalinux/strata/internal/fsimage"
	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/slot"
)

// Request is what Bake builds a disk from.
type Request struct {
	Usr     string   // a /usr directory (built as erofs) or an erofs/squashfs image
	Kernel  string   // copied to EFI-SYSTEM as /strata/vmlinuz
	Initrd  string   // optional, /strata/initrd
	Version string   // slot A's version
	Arch    string   // systemd architecture name; empty → x86-64
	Sysext  []string // extension images placed on ROOT in /var/lib/extensions/
	Sizes   Sizes
	Epoch   int64 // timestamps inside the filesystems
	Output  string
	Sign    *Signer // signs slot A's (or the payload's) root hash; nil: unsigned
	// Bootloader is a systemd-boot EFI binary installed on EFI-SYSTEM as the removable-media loader
	// (EFI/BOOT/BOOTX64.EFI), with a loader entry for /strata/vmlinuz and /strata/initrd, so UEFI
	// firmware boots the disk by itself; "" installs none (boot the kernel directly). Needs Initrd.
	Bootloader string
	// Cmdline is appended to the loader entry's options (e.g. console=); see EntryOptions.
	Cmdline string
}

// EntryOptions is the kernel command line of the loader entry: one for both slots, so it does not pin
// a slot (no verity.usr=): Strata's initrd picks it on the GPT and takes the root hash from the slot
// record (signed, with os initrd --trust). extra is appended.
func EntryOptions(extra string) string {
	return strings.TrimSpace("root=LABEL=ROOT mount.usrflags=ro " + extra)
}

// efiArch names the removable-media loader and systemd-boot's file for an architecture.
func efiArch(arch string) (removable, sdboot string, err error) {
	switch arch {
	case "x86-64", "":
		return "BOOTX64.EFI", "systemd-bootx64.efi", nil
	case "arm64":
		return "BOOTAA64.EFI", "systemd-bootaa64.efi", nil
	}
	return "", "", fmt.Errorf("no EFI boot loader name for architecture %s (x86-64 or arm64)", arch)
}

// ChooseBootloader turns os bake's --bootloader into Request.Bootloader: "auto" is the host's
// systemd-boot (DefaultBootloader) when there is an initrd for its entry, "none" or "" is none, and
// anything else is the file to install.
func ChooseBootloader(choice, arch string, haveInitrd bool) string {
	switch choice {
	case "auto":
		if haveInitrd {
			return DefaultBootloader(arch)
		}
		return ""
	case "none", "":
		return ""
	}
	return choice
}

// DefaultBootloader is where Debian's systemd-boot-efi puts systemd-boot for arch; "" when absent.
func DefaultBootloader(arch string) string {
	_, sd, err := efiArch(arch)
	if err != nil {
		return ""
	}
	p := "/usr/lib/systemd/boot/efi/" + sd
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
		return p
	}
	return ""
}

// Bake writes a whole OS disk image to req.Output (temp file + rename): GPT, EFI-SYSTEM with the kernel,
// slot A with the /usr payload, an empty slot B, an empty OEM and a ROOT holding the extensions.
func Bake(ctx context.Context, req Request) error {
	if req.Arch == "" {
		req.Arch = "x86-64"
	}
	dir, err := os.MkdirTemp(filepath.Dir(req.Output), ".strata-os-bake-")
	if err != nil {
		return fmt.Errorf("bake %s: %w", req.Output, err)
	}
	defer os.RemoveAll(dir)

	usrImg, err := usrImage(ctx, dir, req)
	if err != nil {
		return fmt.Errorf("bake: %w", err)
	}
	payloadPath := filepath.Join(dir, "usr.payload")
	pf, err := os.Create(payloadPath)
	if err != nil {
		return err
	}
	rec, err := WritePayload(ctx, usrImg, PayloadInfo{Version: req.Version, Arch: req.Arch, Sign: req.Sign}, pf)
	pf.Close()
	if err != nil {
		return fmt.Errorf("bake: %w", err)
	}

	sizes := req.Sizes.withDefaults()
	rootImg, err := buildRoot(ctx, dir, req, sizes.Root)
	if err != nil {
		return err
	}
	oemImg, err := buildExt4(ctx, dir, "oem", rootContent{}, req.Epoch, sizes.OEM)
	if err != nil {
		return err
	}
	espImg, err := buildESP(ctx, dir, req, sizes.ESP, KernelCmdline(slot.USRA, rec))
	if err != nil {
		return err
	}

	seed := rec.SHA256 + "\x00" + req.Version
	table, diskSize := Layout(sizes, seed)
	tmp := filepath.Join(filepath.Dir(req.Output), "."+filepath.Base(req.Output)+".tmp")
	out, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("bake: %w", err)
	}
	defer os.Remove(tmp)
	defer out.Close()
	if err := out.Truncate(diskSize); err != nil {
		return err
	}
	place := func(idx int, src string, label string) error {
		p := table.ByIndex(idx)
		if _, err := copySparse(out, p.Start(), p.Size(), src); err != nil {
			return fmt.Errorf("bake: %s: %w", p.Name, err)
		}
		if label != "" {
			if err := setExt4Label(out, p.Start(), label); err != nil {
				return fmt.Errorf("bake: %s: %w", p.Name, err)
			}
		}
		return nil
	}
	usrA := table.ByIndex(IndexUSRA)
	if rec.PayloadSize() > usrA.Size() {
		return fmt.Errorf("bake: the /usr payload is %d MiB, the slots are %d MiB (raise --usr-size)", rec.PayloadSize()>>20, usrA.Size()>>20)
	}
	if err := place(IndexESP, espImg, ""); err != nil {
		return err
	}
	// Slot A: the payload body at the start, the record at the end of the partition.
	pr, err := os.Open(payloadPath)
	if err != nil {
		return err
	}
	defer pr.Close()
	if _, err := copySparseReader(out, usrA.Start(), io.NewSectionReader(pr, 0, rec.BodySize())); err != nil {
		return fmt.Errorf("bake: USR-A: %w", err)
	}
	if err := WriteRecord(out, usrA.Start(), usrA.Size(), rec); err != nil {
		return err
	}
	if err := place(IndexOEM, oemImg, "OEM"); err != nil {
		return err
	}
	if err := place(IndexRoot, rootImg, "ROOT"); err != nil {
		return err
	}
	if err := table.Write(out, diskSize); err != nil {
		return fmt.Errorf("bake: %w", err)
	}
	if err := out.Sync(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, req.Output); err != nil {
		return fmt.Errorf("bake: %w", err)
	}
	return syncDir(filepath.Dir(req.Output))
}

// KernelCmdline is the command line that pins a slot and its root hash (Flatcar's and systemd's
// mode: the command line is the trust anchor). Bake writes slot A's to EFI-SYSTEM /strata/cmdline for a
// boot loader with one entry per slot; with one shared kernel and command line the initrd takes the
// root hash from the slot record instead (protects against corruption, not against a disk writer).
func KernelCmdline(partUUID gpt.GUID, rec Record) string {
	return "mount.usr=/dev/mapper/usr verity.usr=PARTUUID=" + partUUID.String() + " verity.usrhash=" + rec.RootHash +
		" mount.usrfstype=" + rec.FS + " mount.usrflags=ro root=LABEL=ROOT"
}

// buildRoot is ROOT's ext4 with the extensions placed as PlaceExtension says.
func buildRoot(ctx context.Context, dir string, req Request, size int64) (string, error) {
	var c rootContent
	if err := c.placeAll(req.Sysext); err != nil {
		return "", fmt.Errorf("bake: %w", err)
	}
	return buildExt4(ctx, dir, "root", c, req.Epoch, size)
}

// buildExt4 makes a writable ext4 of exactly size bytes (the partition's),
// so the node has ROOT's free space from the first boot.
func buildExt4(ctx context.Context, dir, name string, c rootContent, epoch, size int64) (string, error) {
	tree := filepath.Join(dir, name+".tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return "", err
	}
	if err := c.writeLinks(tree); err != nil {
		return "", fmt.Errorf("bake: %s links: %w", name, err)
	}
	if err := os.Chtimes(tree, time.Unix(epoch, 0), time.Unix(epoch, 0)); err != nil {
		return "", err
	}
	img := filepath.Join(dir, name+".ext4")
	w, _ := fsimage.New("ext4")
	if err := w.Write(ctx, tree, img, fsimage.Options{Epoch: epoch, Seed: name, Extra: c.files, StageDir: dir, Size: size}); err != nil {
		return "", fmt.Errorf("bake: build %s ext4: %w", name, err)
	}
	return img, nil
}

// setExt4Label writes s_volume_name (superblock offset 0x78). fsimage's ext4 has no metadata_csum, so no
// checksum needs updating.
func setExt4Label(w io.WriterAt, partStart int64, label string) error {
	b := make([]byte, 16)
	copy(b, label)
	return writeAt(w, b, partStart+1024+0x78, "ext4 label")
}

// buildESP makes the FAT EFI system partition with mkfs.fat and mcopy (dosfstools, mtools).
func buildESP(ctx context.Context, dir string, req Request, size int64, cmdline string) (string, error) {
	for _, tool := range []string{"mkfs.fat", "mcopy", "mmd"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("bake: %s not found: the EFI system partition needs dosfstools and mtools (apt-get install dosfstools mtools)", tool)
		}
	}
	img := filepath.Join(dir, "esp.fat")
	vg := DeriveGUID(req.Version, "esp-volid")
	volID := hex.EncodeToString(vg[:4])
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(req.Epoch, 10), "MTOOLS_SKIP_CHECK=1", "TZ=UTC")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("bake: %s: %w: %s", name, err, bytes.TrimSpace(stderr.Bytes()))
		}
		return nil
	}
	if err := run("mkfs.fat", "-C", "--invariant", "-i", volID, "-n", "EFI-SYSTEM", img, strconv.FormatInt(size/1024, 10)); err != nil {
		return "", err
	}
	dirs := []string{"::/strata"}
	type espFile struct{ name, flag, src string }
	cmdlineFile := filepath.Join(dir, "cmdline")
	if err := os.WriteFile(cmdlineFile, []byte(cmdline+"\n"), 0o644); err != nil {
		return "", err
	}
	files := []espFile{{"strata/vmlinuz", "kernel", req.Kernel}, {"strata/initrd", "initrd", req.Initrd}, {"strata/cmdline", "cmdline", cmdlineFile}}
	if req.Bootloader != "" {
		if req.Initrd == "" {
			return "", fmt.Errorf("bake: --bootloader needs --initrd: the loader entry boots /strata/vmlinuz with Strata's initrd")
		}
		removable, sdboot, err := efiArch(req.Arch)
		if err != nil {
			return "", fmt.Errorf("bake: %w", err)
		}
		loaderConf := filepath.Join(dir, "loader.conf")
		// timeout 0: no menu; editor no: the command line cannot be edited at the console.
		if err := os.WriteFile(loaderConf, []byte("timeout 0\ndefault strata.conf\neditor no\n"), 0o644); err != nil {
			return "", err
		}
		entry := filepath.Join(dir, "strata.conf")
		body := "title Strata OS\nlinux /strata/vmlinuz\ninitrd /strata/initrd\noptions " + EntryOptions(req.Cmdline) + "\n"
		if err := os.WriteFile(entry, []byte(body), 0o644); err != nil {
			return "", err
		}
		dirs = append(dirs, "::/EFI", "::/EFI/BOOT", "::/EFI/systemd", "::/loader", "::/loader/entries")
		files = append(files, espFile{"EFI/BOOT/" + removable, "bootloader", req.Bootloader}, espFile{"EFI/systemd/" + sdboot, "bootloader", req.Bootloader},
			espFile{"loader/loader.conf", "bootloader", loaderConf}, espFile{"loader/entries/strata.conf", "bootloader", entry})
	}
	for _, d := range dirs {
		if err := run("mmd", "-i", img, d); err != nil {
			return "", err
		}
	}
	// A fixed order: the FAT directory lists files in the order they were copied.
	for i, e := range files {
		name, src := e.name, e.src
		if src == "" {
			continue
		}
		// mcopy -m keeps the source's mtime: a staged copy with the epoch's time makes the FAT reproducible.
		staged := filepath.Join(dir, "esp-"+strconv.Itoa(i))
		b, err := os.ReadFile(src)
		if err != nil {
			return "", fmt.Errorf("bake: --%s: %w", e.flag, err)
		}
		if err := os.WriteFile(staged, b, 0o644); err != nil {
			return "", err
		}
		if err := os.Chtimes(staged, time.Unix(req.Epoch, 0), time.Unix(req.Epoch, 0)); err != nil {
			return "", err
		}
		if err := run("mcopy", "-m", "-i", img, staged, "::/"+name); err != nil {
			return "", err
		}
	}
	return img, nil
}

// copySparse copies the file src into the partition at start, refusing one larger than size.
func copySparse(w io.WriterAt, start, size int64, src string) (int64, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if st.Size() > size {
		return 0, fmt.Errorf("image of %d MiB does not fit the %d MiB partition (raise its size)", st.Size()>>20, size>>20)
	}
	return copySparseReader(w, start, f)
}

// copySparseReader writes r at off, skipping all-zero 64 KiB chunks so the output stays sparse (the
// output was truncated to size, so skipped chunks read as zero).
func copySparseReader(w io.WriterAt, off int64, r io.Reader) (int64, error) {
	buf := make([]byte, 64<<10)
	zero := make([]byte, len(buf))
	var n int64
	for {
		m, err := io.ReadFull(r, buf)
		if m > 0 {
			if !bytes.Equal(buf[:m], zero[:m]) {
				if _, werr := w.WriteAt(buf[:m], off+n); werr != nil {
					return n, werr
				}
			}
			n += int64(m)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// sha256Hex is the hex SHA-256 of n bytes of r from off.
func sha256Hex(r io.ReaderAt, off, n int64) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, off, n)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
