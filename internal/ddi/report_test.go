package ddi

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/imagepolicy"
)

// TestReport: what list, check and inspect say about a baked DDI signed by
// a trusted key, by an untrusted one, unsigned with a .usrhash sidecar, an
// unprotected DDI, and a bare filesystem (nothing to say), under the
// default policy and a signed-only one.
func TestReport(t *testing.T) {
	dir := t.TempDir()
	fs := fsImage(t, dir)
	good, evil := newSigner(t, dir, "fleet"), newSigner(t, dir, "stranger")
	trusted := Certs([]TrustedCert{{Cert: good.cert}})
	signedOnly := imagepolicy.MustParse("root=absent:usr=signed+absent")
	def := imagepolicy.Default(imagepolicy.Sysext)

	mk := func(name string, s *signer, verity bool) string {
		p := filepath.Join(dir, name+".raw")
		req := Request{FSImage: fs, Out: p, Designator: imagepolicy.Usr, Arch: "x86-64", Verity: verity, Seed: name}
		if s != nil {
			req.SignKey, req.SignCert = s.key, s.cert
		}
		res := bake(t, req)
		if s == nil && verity {
			if err := os.WriteFile(filepath.Join(dir, name+".usrhash"), []byte(hex.EncodeToString(res.RootHash)+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	report := func(p string, pol imagepolicy.Policy) *Report {
		t.Helper()
		sc, err := LoadSidecars(p)
		if err != nil {
			t.Fatal(err)
		}
		im, f := openImage(t, p, Options{Arch: "x86-64", Sidecars: sc})
		a, err := Assess(im, f, trusted, pol)
		if err != nil {
			t.Fatalf("Assess %s: %v", p, err)
		}
		return NewReport(im, a, pol)
	}
	for _, c := range []struct {
		name       string
		signer     *signer
		verity     bool
		protection string
		subject    string // subject in the report
		trusted    bool
		refused    string // the refusing rule under signedOnly, "" if accepted
		line       []string
	}{
		{"good", &good, true, "signed", "CN=fleet", true, "", []string{`usr partition signed by "CN=fleet" (a trusted certificate), root hash `}},
		{"evil", &evil, true, "verity", "CN=stranger", false, "usr=signed+absent", []string{`its signature by "CN=stranger" does not count: `, "not trusted", "refused by the image policy's rule usr=signed+absent"}},
		{"plain", nil, true, "verity", "", false, "usr=signed+absent", []string{"usr partition verity-protected, root hash ", ", not signed"}},
		{"unprotected", nil, false, "unprotected", "", false, "usr=signed+absent", []string{"usr partition unprotected"}},
	} {
		p := mk(c.name, c.signer, c.verity)
		r := report(p, def)
		if r == nil {
			t.Fatalf("%s: no report", c.name)
		}
		if r.Partition != "usr" || r.Protection != c.protection || r.Refused != "" || r.RefusedBy != "" || r.Policy != def.String() {
			t.Errorf("%s under the default policy: %+v", c.name, r)
		}
		if (r.RootHash != "") != c.verity {
			t.Errorf("%s: root hash %q", c.name, r.RootHash)
		}
		if (r.Signature != nil) != (c.signer != nil) {
			t.Fatalf("%s: signature %+v", c.name, r.Signature)
		}
		if s := r.Signature; s != nil && (s.Signer != c.subject || s.Trusted != c.trusted || !strings.Contains(s.From, "partition") || (s.Problem != "") == c.trusted) {
			t.Errorf("%s: signature %+v", c.name, s)
		}
		r = report(p, signedOnly)
		if r.RefusedBy != c.refused || (r.Refused == "") != (c.refused == "") {
			t.Errorf("%s under %s: refused by %q: %q", c.name, signedOnly, r.RefusedBy, r.Refused)
		}
		for _, want := range c.line {
			if l := r.Line(); !strings.Contains(l, want) {
				t.Errorf("%s: line %q lacks %q", c.name, l, want)
			}
		}
	}
	// A bare filesystem without verity data: nothing to report.
	sc, _ := LoadSidecars(fs)
	im, f := openImage(t, fs, Options{Arch: "x86-64", Sidecars: sc})
	a, err := Assess(im, f, trusted, def)
	if err != nil {
		t.Fatal(err)
	}
	if r := NewReport(im, a, def); r != nil {
		t.Errorf("bare squashfs: report %+v", r)
	}
}
