package initrd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/testutil/keytest"
)

func TestTrustedCertificatesGoToVerityD(t *testing.T) {
	k := keytest.New(t, "OS vendor")
	dir := t.TempDir()
	pem := filepath.Join(dir, "vendor.pem")
	if err := os.WriteFile(pem, k.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	certs, err := ReadTrust([]string{pem})
	if err != nil || len(certs) != 1 || certs[0].Name != "vendor.crt" {
		t.Fatalf("ReadTrust: %+v, %v", certs, err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, Spec{Init: []byte("#!init"), Modules: fakeTree(), Wanted: []string{"erofs"}, Trust: certs}); err != nil {
		t.Fatal(err)
	}
	entries, err := ReadCPIO(bytes.NewReader(buf.Bytes()), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, e := range entries {
		if e.Name == "etc/verity.d/vendor.crt" {
			found = bytes.Equal(e.Data, k.CertPEM)
		}
	}
	if !found {
		t.Fatal("etc/verity.d/vendor.crt is not in the initrd with the certificate's bytes")
	}

	// Not a certificate, or a name that is not a plain .crt file: refused, naming the input.
	junk := filepath.Join(dir, "junk.crt")
	if err := os.WriteFile(junk, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTrust([]string{junk}); err == nil || !strings.Contains(err.Error(), "junk.crt") {
		t.Fatalf("junk: %v", err)
	}
	for _, name := range []string{"../x.crt", "x.pem", ".crt"} {
		_, err := Entries(Spec{Init: []byte("i"), Modules: fakeTree(), Wanted: []string{"erofs"}, Trust: []TrustedCert{{Name: name, PEM: k.CertPEM}}})
		if err == nil {
			t.Fatalf("name %q accepted", name)
		}
	}
}
