package bake

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/ddi"
	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/imagepolicy"
	"github.com/stratalinux/strata/internal/pkcs7"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// TestBakeDDI bakes --format ddi signed, for a sysext and a confext: the
// output is a DDI whose data partition is the class's, signed by the key,
// the same bytes twice, with its .sha256 beside it.
func TestBakeDDI(t *testing.T) {
	privtest.RequireTools(t, "mksquashfs")
	keyPEM, certPEM, err := pkcs7.Generate("ecdsa", "bake-test", time.Now(), 1)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pkcs7.ParsePrivateKeyPEM(keyPEM)
	certs, _ := pkcs7.ParseCertificatesPEM(certPEM)
	for _, c := range []struct {
		class imageclass.Class
		files map[string]string
		want  imagepolicy.Designator
	}{
		{imageclass.Sysext, map[string]string{"usr/bin/x": "#!/bin/sh\n"}, imagepolicy.Usr},
		{imageclass.Confext, map[string]string{"etc/x.conf": "x=1\n"}, imagepolicy.Root},
	} {
		tree := writeFiles(t, c.files)
		var first []byte
		for i := 0; i < 2; i++ {
			out := t.TempDir()
			res, err := Bake(context.Background(), Request{Dir: tree, Name: "x", Version: "1", Arch: "arm64", Class: c.class,
				Format: FormatDDI, OutDir: out, SignKey: key, SignCert: certs[0]})
			if err != nil {
				t.Fatalf("%v: %v", c.class, err)
			}
			b, err := os.ReadFile(res.Path)
			if err != nil {
				t.Fatal(err)
			}
			if sum, _ := os.ReadFile(res.SumPath); !strings.HasPrefix(string(sum), res.SHA256+"  x-1-arm64.raw") {
				t.Errorf("%v: sum file %q", c.class, sum)
			}
			if first != nil && !bytes.Equal(first, b) {
				t.Errorf("%v: two bakes differ", c.class)
			}
			first = b
			f, _ := os.Open(res.Path)
			im, err := ddi.Open(f, int64(len(b)), ddi.Options{Arch: "arm64"})
			if err != nil {
				t.Fatal(err)
			}
			a, err := ddi.Assess(im, f, []*x509.Certificate{certs[0]}, imagepolicy.Strict(map[imageclass.Class]imagepolicy.Class{imageclass.Sysext: imagepolicy.Sysext, imageclass.Confext: imagepolicy.Confext}[c.class]))
			f.Close()
			if err != nil || a.Refused != "" {
				t.Fatalf("%v: strict policy: %q %v", c.class, a.Refused, err)
			}
			if fd, _ := a.Finding(c.want); fd.Protection != imagepolicy.ProtSigned {
				t.Errorf("%v: %s partition is %v", c.class, c.want, fd.Protection)
			}
		}
	}
}

func TestPlanDDIRejects(t *testing.T) {
	for _, c := range []struct {
		req  Request
		want string
	}{
		{Request{Format: "erofs", Verity: true}, "need --format ddi"},
		{Request{Format: FormatDDI, Arch: "any"}, "give --arch"},
		{Request{Format: FormatDDI, Arch: "x86-64", SignCert: &x509.Certificate{}}, "go together"},
	} {
		c.req.Name, c.req.Version = "x", "1"
		if _, err := NewPlan(c.req, Tree{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.req, err, c.want)
		}
	}
	p, err := NewPlan(Request{Name: "x", Version: "1", Arch: "x86-64", Format: FormatDDI, Verity: true, OutDir: "o"}, Tree{})
	if err != nil || !p.DDI || p.Writer.Format() != "squashfs" || p.Output != filepath.Join("o", "x-1-x86-64.raw") {
		t.Errorf("plan %+v %v", p, err)
	}
}
