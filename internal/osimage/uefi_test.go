package osimage

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// TestBakeInstallsSystemdBoot: with a Bootloader, EFI-SYSTEM holds it as the removable-media loader
// and as systemd-boot's own file, a loader.conf without menu and one entry for the kernel and initrd
// whose options do not pin a slot; the disk is still reproducible. Without an initrd it is refused.
func TestBakeInstallsSystemdBoot(t *testing.T) {
	privtest.RequireTools(t, "mkfs.erofs", "mkfs.ext4", "mkfs.fat", "mcopy", "mtype")
	src := t.TempDir()
	files := map[string]string{"vmlinuz": "not really a kernel", "initrd": "not really an initrd", "sd-boot.efi": "MZ not really systemd-boot"}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(src, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	usr := usrTree(t, "1.0.0")
	bakeOne := func(out string, initrd string) error {
		return Bake(context.Background(), Request{Usr: usr, Kernel: filepath.Join(src, "vmlinuz"), Initrd: initrd, Version: "1.0.0",
			Sizes: Sizes{ESP: 34 * MiB, USR: 32 * MiB, OEM: 8 * MiB, Root: 32 * MiB}, Output: out,
			Bootloader: filepath.Join(src, "sd-boot.efi"), Cmdline: "console=ttyS0"})
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	for _, out := range []string{a, b} {
		if err := bakeOne(out, filepath.Join(src, "initrd")); err != nil {
			t.Fatal(err)
		}
	}
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if !bytes.Equal(da, db) {
		t.Fatal("two bakes with a boot loader differ")
	}
	f, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tb, _ := readTable(t, f)
	esp := tb.ByIndex(IndexESP)
	img := filepath.Join(dir, "esp.img")
	copyOut(t, f, esp.Start(), esp.Size(), img)
	for p, want := range map[string]string{
		"::/EFI/BOOT/BOOTX64.EFI":            files["sd-boot.efi"],
		"::/EFI/systemd/systemd-bootx64.efi": files["sd-boot.efi"],
		"::/loader/loader.conf":              "timeout 0\ndefault strata.conf\neditor no\n",
		"::/loader/entries/strata.conf":      "title Strata OS\nlinux /strata/vmlinuz\ninitrd /strata/initrd\noptions root=LABEL=ROOT mount.usrflags=ro console=ttyS0\n",
		"::/strata/initrd":                   files["initrd"],
	} {
		if got := run(t, "mtype", "-i", img, p); got != strings.TrimSuffix(want, "\n") && got != want {
			t.Fatalf("%s: %q, want %q", p, got, want)
		}
	}
	if err := bakeOne(filepath.Join(dir, "c.img"), ""); err == nil || !strings.Contains(err.Error(), "--bootloader needs --initrd") {
		t.Fatalf("no initrd: %v", err)
	}
}
