package ostest

import (
	"context"
	"crypto/x509"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/initrd"
	"github.com/stratalinux/strata/internal/osimage"
	"github.com/stratalinux/strata/internal/slot"
	"github.com/stratalinux/strata/internal/testutil/keytest"
)

// TestOSSignedSlotsInQEMU: with an initrd that trusts the OS vendor's certificate (os initrd --trust),
// slot A signed by the vendor boots with its root hash "from signed"; the running system refuses to
// install a payload signed by someone else; a B written onto the disk behind its back with that
// signature is refused by the initrd and A boots; a vendor-signed B installed from the running system
// boots.
func TestOSSignedSlotsInQEMU(t *testing.T) {
	w := setup(t)
	ctx := context.Background()
	vendor, mallory := keytest.New(t, "OS vendor"), keytest.New(t, "Mallory")
	// The running system trusts what its initrd trusts: the vendor ships the certificate in /usr.
	w.files = map[string]string{"lib/verity.d/vendor.crt": string(vendor.CertPEM)}

	bin, err := os.ReadFile(w.strata)
	if err != nil {
		t.Fatal(err)
	}
	w.initrd = filepath.Join(w.dir, "initrd-trust.cpio")
	f, err := os.Create(w.initrd)
	if err != nil {
		t.Fatal(err)
	}
	err = initrd.Write(f, initrd.Spec{Init: bin, Modules: os.DirFS(w.host.Modules), Wanted: slices.Clone(initrd.DefaultModules),
		Trust: []initrd.TrustedCert{{Name: "vendor.crt", PEM: vendor.CertPEM}}})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}

	signed := func(k keytest.Key) *osimage.Signer { return &osimage.Signer{Key: k.Signer, Cert: k.Cert} }
	disk := filepath.Join(w.dir, "signed.img")
	if err := osimage.Bake(ctx, osimage.Request{Usr: w.usrTree("1.0.0", true), Kernel: w.host.Kernel, Version: "1.0.0",
		Sizes: osimage.Sizes{USR: 64 * osimage.MiB, Root: 32 * osimage.MiB, ESP: 64 * osimage.MiB}, Output: disk, Sign: signed(vendor)}); err != nil {
		t.Fatal(err)
	}
	payload := func(name string, k keytest.Key) string {
		out := filepath.Join(w.dir, "payload-2.0.0-"+name)
		if _, err := osimage.BuildPayload(ctx, osimage.Request{Usr: w.usrTree("2.0.0", true), Version: "2.0.0", Sign: signed(k)}, out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	byVendor, byMallory := payload("vendor", vendor), payload("mallory", mallory)

	// 1. A boots on its signed root hash; installing Mallory's payload is refused, nothing is armed.
	m := w.boot("1-A-signed", disk, byMallory)
	if _, err := m.Expect(regexp.MustCompile(`booting slot A \(1\.0\.0\), .*root hash from signed \(CN=OS vendor\)`), 4*time.Minute); err != nil {
		t.Fatal(err)
	}
	w.expectUp(m, "1.0.0")
	w.run(m, "strata os install /dev/vdb 2>&1 | grep 'signed by \"CN=Mallory\".*not trusted'", 0)
	w.reboot(m)
	w.wantSlots(disk, slot.Attr{Priority: 1, Successful: true}, slot.Attr{})

	// 2. Someone who can write the disk puts Mallory's B there and arms it: the initrd refuses it (its
	// try is used up first) and reboots; the next boot takes A.
	writeBehindBack(t, disk, byMallory, mallory.Cert)
	m = w.boot("2-B-untrusted", disk, byMallory)
	refused, err := m.Expect(regexp.MustCompile(`slot B \(2\.0\.0\) refused: .*CN=Mallory.*rebooting`), 4*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("console: %s", refused[0])
	if err := m.Wait(time.Minute); err != nil {
		t.Fatal(err)
	}
	w.wantSlots(disk, slot.Attr{Priority: 1, Successful: true}, slot.Attr{Priority: 2})

	// 3. A boots again and installs the vendor's B; 4. B boots on its signed root hash.
	m = w.boot("3-A-installs-vendor-B", disk, byVendor)
	w.expectUp(m, "1.0.0")
	w.run(m, "strata os install /dev/vdb", 0)
	w.reboot(m)
	m = w.boot("4-B-signed", disk, byVendor)
	if _, err := m.Expect(regexp.MustCompile(`booting slot B \(2\.0\.0\), .*root hash from signed \(CN=OS vendor\)`), 4*time.Minute); err != nil {
		t.Fatal(err)
	}
	w.expectUp(m, "2.0.0")
	w.reboot(m)
}

// writeBehindBack installs a payload into B of a disk file as an attacker with write access to the
// disk would: Install told to trust the attacker's own certificate.
func writeBehindBack(t *testing.T, disk, payload string, cert *x509.Certificate) {
	t.Helper()
	d, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	p, err := os.Open(payload)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dsize, _ := d.Seek(0, io.SeekEnd)
	psize, _ := p.Seek(0, io.SeekEnd)
	if _, err := osimage.Install(context.Background(), d, dsize, p, psize, osimage.InstallOptions{Booted: "A", Trusted: []*x509.Certificate{cert}}); err != nil {
		t.Fatal(err)
	}
}
