package ostest

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/stratalinux/strata/internal/ddi"
	"github.com/stratalinux/strata/internal/imagepolicy"
	"github.com/stratalinux/strata/internal/osimage"
	"github.com/stratalinux/strata/internal/testutil/exttest"
	"github.com/stratalinux/strata/internal/testutil/keytest"
)

// TestSignedDDIsInQEMU: in a guest whose kernel has device-mapper, a DDI
// signed by a key in /etc/verity.d merges under usr=signed through
// dm-verity; an unsigned one and one signed by an untrusted key are
// refused; one byte flipped in the data partition gives an I/O error on
// read, not wrong data.
func TestSignedDDIsInQEMU(t *testing.T) {
	w := setup(t)
	ctx := context.Background()
	dir := t.TempDir()
	key := func(cn string) (ddi.Request, []byte) {
		k := keytest.New(t, cn)
		return ddi.Request{SignKey: k.Signer, SignCert: k.Cert}, k.CertPEM
	}
	trusted, trustedPEM := key("trusted")
	untrusted, _ := key("untrusted")
	carrier := filepath.Join(dir, "carrier")
	bake := func(name string, signer ddi.Request) string {
		tree := exttest.SysextTree(t, filepath.Join(dir, name+"-tree"), name, "ID=_any\n", map[string]string{
			"usr/bin/" + name:            "#!/bin/sh\necho " + name + "\n",
			"usr/share/" + name + "/big": incompressible(512 << 10),
		})
		fs := exttest.Squashfs(t, tree, filepath.Join(dir, name+".squashfs"))
		out := filepath.Join(carrier, name+".raw")
		req := ddi.Request{FSImage: fs, Out: out, Designator: imagepolicy.Usr, Arch: "x86-64", Verity: true, Seed: name,
			SignKey: signer.SignKey, SignCert: signer.SignCert}
		if _, err := ddi.Bake(ctx, req); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if err := os.MkdirAll(carrier, 0o755); err != nil {
		t.Fatal(err)
	}
	bake("good", trusted)
	bake("evil", untrusted)
	bake("plain", ddi.Request{})
	flipped := bake("flipped", trusted)
	flipDataByte(t, flipped, 256<<10)
	if err := os.WriteFile(filepath.Join(carrier, "trusted.crt"), trustedPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	carrierImg := exttest.Ext4(t, carrier, filepath.Join(dir, "carrier.ext4"))

	disk := filepath.Join(w.dir, "ddi-host.img")
	if err := osimage.Bake(ctx, osimage.Request{Usr: w.usrTree("1.0.0", true), Kernel: w.host.Kernel, Initrd: w.initrd, Version: "1.0.0",
		Sizes: osimage.Sizes{USR: 64 * osimage.MiB, Root: 32 * osimage.MiB, ESP: 64 * osimage.MiB}, Output: disk}); err != nil {
		t.Fatal(err)
	}
	m := w.boot("ddi", disk, carrierImg)
	w.expectUp(m, "1.0.0")
	w.run(m, "mkdir -p /mnt /etc/verity.d /var/lib/extensions && mount -t ext4 -o ro /dev/vdb /mnt && cp /mnt/trusted.crt /etc/verity.d/", 0)
	policy := "--image-policy=root=absent:usr=signed+absent"
	try := func(name string, want int) {
		t.Helper()
		w.run(m, "cp /mnt/"+name+".raw /var/lib/extensions/ && strata sysext merge "+policy, want)
	}
	try("good", 0)
	// Merged through dm-verity: the device stays while mounted.
	w.run(m, "good | grep -qx good && cat /usr/share/good/big > /dev/null && ls /dev/mapper | grep -q '^strata-'", 0)
	w.run(m, "strata sysext unmerge && rm /var/lib/extensions/good.raw", 0)
	for _, name := range []string{"evil", "plain"} {
		try(name, 1)
		w.run(m, "test ! -e /usr/bin/"+name+" && rm /var/lib/extensions/"+name+".raw", 0)
	}
	// The flipped image's tree and signature are intact, so it merges; the
	// kernel refuses the corrupted block when it is read.
	try("flipped", 0)
	w.run(m, "cat /usr/share/flipped/big > /dev/null", 1)
	w.run(m, "cat /usr/share/flipped/big 2>&1 >/dev/null | grep -q 'Input/output error'", 0)
	w.run(m, "strata sysext unmerge", 0)
	w.reboot(m)
}

// flipDataByte inverts the byte at off inside the usr data partition of a DDI.
func flipDataByte(t *testing.T, img string, off int64) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	im, err := ddi.Open(f, st.Size(), ddi.Options{Arch: "x86-64"})
	if err != nil {
		t.Fatal(err)
	}
	p := im.Parts[imagepolicy.Usr]
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, p.Offset+off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, p.Offset+off); err != nil {
		t.Fatal(err)
	}
}

// incompressible is n bytes of a SHA-256 chain (squashfs stores them as they are).
func incompressible(n int) string {
	out := make([]byte, 0, n+32)
	sum := sha256.Sum256([]byte("strata"))
	for len(out) < n {
		out = append(out, sum[:]...)
		sum = sha256.Sum256(sum[:])
	}
	return string(out[:n])
}
