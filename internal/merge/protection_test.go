package merge

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/ddi"
	"github.com/stratalinux/strata/internal/image"
	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/imagepolicy"
	"github.com/stratalinux/strata/internal/osrelease"
	"github.com/stratalinux/strata/internal/testutil/exttest"
	"github.com/stratalinux/strata/internal/testutil/keytest"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// TestReadCandidateProtection: the engine reads a signed DDI under its
// image policy with the root's verity.d trusted, without privileges:
// list and check get the signer and, under usr=signed with the signer not
// trusted, a refusal with rule image-policy that fails a merge (Fatal).
func TestReadCandidateProtection(t *testing.T) {
	privtest.RequireTools(t, "mksquashfs")
	dir := t.TempDir()
	k := keytest.New(t, "fleet")
	certPEM := k.CertPEM
	tree := exttest.SysextTree(t, filepath.Join(dir, "tree"), "hello", "ID=_any\n", map[string]string{"usr/bin/hello": "#!/bin/sh\n"})
	fs := exttest.Squashfs(t, tree, filepath.Join(dir, "hello.squashfs"))
	img := filepath.Join(dir, "hello.raw")
	if _, err := ddi.Bake(context.Background(), ddi.Request{FSImage: fs, Out: img, Designator: imagepolicy.Usr, Arch: ddi.NativeArch(), Verity: true, SignKey: k.Signer, SignCert: k.Cert, Seed: "hello"}); err != nil {
		t.Fatal(err)
	}
	host := osrelease.Host{Release: osrelease.Release{"ID": "debian"}, Scope: osrelease.ScopeSystem}
	noEnv := func(string) (string, bool) { return "", false }
	for _, c := range []struct {
		trusted bool
		policy  string
		use     bool
		rule    string
	}{
		{true, "", true, ""},
		{false, "", true, ""},
		{false, "usr=signed+absent:root=absent", false, RuleImagePolicy},
	} {
		root := t.TempDir()
		if c.trusted {
			exttest.Write(t, root, map[string]string{"etc/verity.d/fleet.crt": string(certPEM)})
		}
		e, err := NewEngine(imageclass.Sysext, root, Flags{ImagePolicy: c.policy}, noEnv, nil)
		if err != nil {
			t.Fatal(err)
		}
		cand := e.ReadCandidate(image.Image{Name: "hello", Path: img, Entry: img, Kind: image.KindRaw})
		p := cand.Protection
		if p == nil || p.Signature == nil || p.Signature.Signer != "CN=fleet" || p.Signature.Trusted != c.trusted {
			t.Fatalf("trusted=%v policy %q: protection %+v", c.trusted, c.policy, p)
		}
		v := Check(cand, imageclass.Sysext, host, false, e.Hierarchies)
		if v.Use != c.use || c.rule != "" && (v.Rule != c.rule || v.Fatal == nil || p.RefusedBy != "usr=signed+absent") {
			t.Errorf("trusted=%v policy %q: verdict %+v, refused by %q", c.trusted, c.policy, v, p.RefusedBy)
		}
		var pe *PolicyError
		if !c.use && (!errors.As(cand.OpenErr, &pe) || !strings.Contains(v.Reason, "asks for 'signed+absent'")) {
			t.Errorf("refusal %v, reason %q", cand.OpenErr, v.Reason)
		}
	}
	// The package-level ReadCandidate trusts nothing and applies no policy.
	cand := ReadCandidate(image.Image{Name: "hello", Path: img, Entry: img, Kind: image.KindRaw}, imageclass.Sysext, []string{"/usr"}, ddi.NativeArch())
	if cand.OpenErr != nil || cand.Protection == nil || cand.Protection.Signature.Trusted || cand.Protection.Protection != "verity" {
		t.Errorf("ReadCandidate: %v %+v", cand.OpenErr, cand.Protection)
	}
}
