package inspect

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/ddi"
	"github.com/stratalinux/strata/internal/imagepolicy"
	"github.com/stratalinux/strata/internal/merge"
	"github.com/stratalinux/strata/internal/osrelease"
	"github.com/stratalinux/strata/internal/testutil/exttest"
	"github.com/stratalinux/strata/internal/testutil/keytest"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// TestSignedDDI: inspect reports who signed a DDI and whether that counts
// under --root's verity.d, and gives merge's refusal under a signed-only
// policy, without root and without mounting.
func TestSignedDDI(t *testing.T) {
	privtest.RequireTools(t, "mksquashfs")
	dir := t.TempDir()
	k := keytest.New(t, "fleet")
	certPEM := k.CertPEM
	tree := exttest.SysextTree(t, filepath.Join(dir, "tree"), "hello", "ID=debian\n", map[string]string{"usr/bin/hello": "#!/bin/sh\n"})
	fs := exttest.Squashfs(t, tree, filepath.Join(dir, "hello.squashfs"))
	img := filepath.Join(dir, "hello.raw")
	if _, err := ddi.Bake(context.Background(), ddi.Request{FSImage: fs, Out: img, Designator: imagepolicy.Usr, Arch: ddi.NativeArch(), Verity: true, SignKey: k.Signer, SignCert: k.Cert, Seed: "hello"}); err != nil {
		t.Fatal(err)
	}
	trustedRoot, emptyRoot := filepath.Join(dir, "trusted"), filepath.Join(dir, "empty")
	exttest.Write(t, trustedRoot, map[string]string{"etc/verity.d/fleet.crt": string(certPEM)})
	if err := os.MkdirAll(emptyRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	signedOnly := imagepolicy.MustParse("usr=signed+absent:root=absent")
	host := osrelease.Release{"ID": "debian"}
	for _, c := range []struct {
		root       string
		policy     *imagepolicy.Policy
		protection string
		trusted    bool
		ok         bool
		rule       string
	}{
		{trustedRoot, nil, "signed", true, true, ""},
		{emptyRoot, nil, "verity", false, true, ""},
		{emptyRoot, &signedOnly, "verity", false, false, merge.RuleImagePolicy},
	} {
		rep, err := Image(context.Background(), img, Options{Host: host, Arch: ddi.NativeArch(), NoHash: true, Root: c.root, Policy: c.policy})
		if err != nil {
			t.Fatal(err)
		}
		d := rep.DDI
		if d == nil || d.Protection != c.protection || d.Signature == nil || d.Signature.Signer != "CN=fleet" || d.Signature.Trusted != c.trusted {
			t.Fatalf("root %s policy %v: ddi %+v", c.root, c.policy, d)
		}
		if got := rep.Compatible; got == nil || got.OK != c.ok || c.rule != "" && got.Rule != c.rule {
			t.Errorf("root %s policy %v: compatible %+v, want ok=%v rule %q", c.root, c.policy, got, c.ok, c.rule)
		}
		if c.ok != (rep.DDIError == "") || !c.ok && (!strings.Contains(rep.DDIError, "asks for 'signed+absent'") || d.RefusedBy != "usr=signed+absent") {
			t.Errorf("root %s policy %v: error %q refused by %q", c.root, c.policy, rep.DDIError, d.RefusedBy)
		}
	}
}
