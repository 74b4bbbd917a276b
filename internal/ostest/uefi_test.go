package ostest

import (
	"context"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/osimage"
	"github.com/stratalinux/strata/internal/slot"
	"github.com/stratalinux/strata/internal/testutil/privtest"
	"github.com/stratalinux/strata/internal/testutil/qemutest"
)

// TestOSBootsByUEFI: the disk os bake makes with systemd-boot boots by itself under UEFI firmware
// (OVMF), no -kernel: firmware → EFI/BOOT/BOOTX64.EFI (systemd-boot) → the loader entry's kernel
// and Strata's initrd → slot A. The running system installs B, and the next firmware boot takes B.
func TestOSBootsByUEFI(t *testing.T) {
	w := setup(t)
	ctx := context.Background()
	loader := osimage.DefaultBootloader("x86-64")
	if loader == "" {
		privtest.Missing(t, "no systemd-boot at /usr/lib/systemd/boot/efi (run ./scripts/deps test: systemd-boot-efi)")
	}
	fw, err := qemutest.OVMF(w.dir)
	if err != nil {
		privtest.Missing(t, "%v", err)
	}
	disk := filepath.Join(w.dir, "uefi.img")
	if err := osimage.Bake(ctx, osimage.Request{Usr: w.usrTree("1.0.0", true), Kernel: w.host.Kernel, Initrd: w.initrd, Version: "1.0.0",
		Sizes: osimage.Sizes{USR: 64 * osimage.MiB, Root: 32 * osimage.MiB, ESP: 64 * osimage.MiB}, Output: disk,
		Bootloader: loader, Cmdline: cmdline}); err != nil {
		t.Fatal(err)
	}
	payload2 := w.payload("2.0.0", true)
	boot := func(name string) *qemutest.Machine {
		t.Logf("boot %s (UEFI)", name)
		return qemutest.Start(t, qemutest.Config{Firmware: fw, Disks: []string{disk, payload2}, Memory: "768M", NoReboot: true})
	}
	m := boot("1-A")
	w.expectUp(m, "1.0.0")
	w.run(m, "grep -q 'root=LABEL=ROOT mount.usrflags=ro' /proc/cmdline && test -d /sys/firmware/efi", 0)
	w.run(m, "strata os install /dev/vdb", 0)
	w.reboot(m)
	w.wantSlots(disk, slot.Attr{Priority: 1, Successful: true}, slot.Attr{Priority: 2, Tries: 1})
	m = boot("2-B")
	if _, err := m.Expect(regexp.MustCompile(`booting slot B \(2\.0\.0\), tries 1 -> 0`), 4*time.Minute); err != nil {
		t.Fatal(err)
	}
	w.expectUp(m, "2.0.0")
	w.reboot(m)
}
