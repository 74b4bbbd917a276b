package osimage

import (
	"crypto/x509"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/testutil/keytest"
)

func testSigner(k keytest.Key) *Signer { return &Signer{Key: k.Signer, Cert: k.Cert} }

// TestInstallChecksRootHashSignature: on a disk whose slot A is signed, only a payload signed by a
// trusted certificate is armed; anything else is refused before the target is touched.
func TestInstallChecksRootHashSignature(t *testing.T) {
	vendor, mallory := keytest.New(t, "OS vendor"), keytest.New(t, "Mallory")
	dir := t.TempDir()
	signedBase := bakeSigned(t, dir, "1.0.0", testSigner(vendor))
	unsignedBase := bake(t, t.TempDir(), "1.0.0")
	byVendor, _ := payload(t, dir, "2.0.0", testSigner(vendor))
	byMallory, _ := payload(t, dir, "2.0.0", testSigner(mallory))
	unsigned, _ := payload(t, dir, "2.0.0")
	trusted := []*x509.Certificate{vendor.Cert}

	for _, c := range []struct {
		name, base, payload string
		opt                 InstallOptions
		want                string // "" → installed
	}{
		{"trusted signer", signedBase, byVendor, InstallOptions{Trusted: trusted}, ""},
		{"untrusted signer", signedBase, byMallory, InstallOptions{Trusted: trusted}, `signed by "CN=Mallory"`},
		{"unsigned after signed", signedBase, unsigned, InstallOptions{Trusted: trusted}, "the booted slot is signed"},
		{"signed, no certificates", signedBase, byVendor, InstallOptions{}, "no certificate is trusted"},
		{"unsigned, required", unsignedBase, unsigned, InstallOptions{RequireSigned: true}, "requires a signed /usr"},
		{"unsigned system, unsigned payload", unsignedBase, unsigned, InstallOptions{Trusted: trusted}, ""},
		{"unsigned system, untrusted signer", unsignedBase, byMallory, InstallOptions{Trusted: trusted}, "not trusted"},
		{"unsigned system, nothing to check against", unsignedBase, byMallory, InstallOptions{}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			disk := filepath.Join(t.TempDir(), "disk.img")
			run(t, "cp", "--sparse=always", c.base, disk)
			sumB := partSum(t, disk, IndexUSRB)
			res, err := install(t, disk, c.payload, c.opt)
			s, infos := next(t, disk)
			if c.want == "" {
				if err != nil || s.Name != "B" {
					t.Fatalf("install: %v; next %s", err, s.Name)
				}
				if c.opt.Trusted != nil && c.payload == byVendor && res.Signer != "CN=OS vendor" {
					t.Fatalf("signer %q", res.Signer)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err %v, want one line with %q", err, c.want)
			}
			if s.Name != "A" || infos[1].Record != nil || partSum(t, disk, IndexUSRB) != sumB {
				t.Fatalf("refused install touched slot B: next %s, B %+v", s.Name, infos[1])
			}
		})
	}
}

func TestSignedRecordRoundTripAndBounds(t *testing.T) {
	k := keytest.New(t, "OS vendor")
	rec := Record{Version: "1.2.3", Arch: "x86-64", FS: "erofs", DataSize: 8192, HashOffset: 8192, HashSize: verityHashSize(8192),
		RootHash: strings.Repeat("ab", 32), Salt: "0011", SHA256: strings.Repeat("cd", 32)}
	if err := SignRecord(&rec, *testSigner(k)); err != nil {
		t.Fatal(err)
	}
	b, err := EncodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := VerifyRecord(got, []*x509.Certificate{k.Cert}); err != nil || c.Subject.CommonName != "OS vendor" {
		t.Fatalf("verify: %v", err)
	}
	if SignerName(got) != "CN=OS vendor" {
		t.Fatalf("signer %q", SignerName(got))
	}
	// The signature covers the root hash: a record pointing at other data does not verify.
	got.RootHash = strings.Repeat("ef", 32)
	if _, err := VerifyRecord(got, []*x509.Certificate{k.Cert}); err == nil {
		t.Fatal("signature verified for another root hash")
	}
	for name, sig := range map[string]string{"not base64": "!!!", "too long": strings.Repeat("A", 8<<10)} {
		bad := rec
		bad.Signature = sig
		if err := bad.Check(); err == nil {
			t.Fatalf("%s: Check accepted it", name)
		}
	}
	if _, err := VerifyRecord(Record{}, nil); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("unsigned: %v", err)
	}
}
