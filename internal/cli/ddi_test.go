package cli

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/ddi"
	"github.com/stratalinux/strata/internal/dm"
	"github.com/stratalinux/strata/internal/imagepolicy"
	"github.com/stratalinux/strata/internal/testutil/exttest"
	"github.com/stratalinux/strata/internal/testutil/keytest"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// testKey is a signing key and its certificate (PEM) for root hashes.
type testKey struct {
	key     crypto.Signer
	cert    *x509.Certificate
	certPEM []byte
}

func newTestKey(t *testing.T, cn string) testKey {
	t.Helper()
	k := keytest.New(t, cn)
	return testKey{k.Signer, k.Cert, k.CertPEM}
}

// bakeDDI makes sysext NAME as a DDI (usr + verity [+ signature by k]).
func bakeDDI(t *testing.T, name, out string, k *testKey) []byte {
	t.Helper()
	dir := t.TempDir()
	tree := exttest.SysextTree(t, filepath.Join(dir, "tree"), name, "ID=_any\n", map[string]string{"usr/bin/" + name: "#!/bin/sh\necho " + name + "\n"})
	fsimg := exttest.Squashfs(t, tree, filepath.Join(dir, name+".squashfs"))
	req := ddi.Request{FSImage: fsimg, Out: out, Designator: imagepolicy.Usr, Arch: ddi.NativeArch(), Verity: true, Seed: name}
	if k != nil {
		req.SignKey, req.SignCert = k.key, k.cert
	}
	res, err := ddi.Bake(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return res.RootHash
}

// TestSignedDDIsAndImagePolicy: DDIs with verity, signed by a trusted key,
// by an untrusted one, or not signed, under systemd's image policies. This
// host has no device-mapper: a policy that accepts an image only verified
// refuses it with one line naming the missing device-mapper, and nothing
// is mounted; the default policy (which also accepts unprotected) merges
// it. The QEMU test does the verified merges.
func TestSignedDDIsAndImagePolicy(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	if dm.Available() == nil {
		t.Skip("this kernel has device-mapper: the refusal path is not reachable here (the QEMU test covers verified merges)")
	}
	trusted, untrusted := newTestKey(t, "trusted"), newTestKey(t, "untrusted")
	root := exttest.Root(t, exttest.DefaultOSRelease)
	exttest.Write(t, root, map[string]string{"etc/verity.d/trusted.crt": string(trusted.certPEM)})
	ext := filepath.Join(root, "var/lib/extensions")
	if err := os.MkdirAll(ext, 0o755); err != nil {
		t.Fatal(err)
	}
	signedOnly := "--image-policy=root=absent:usr=signed+absent"
	for _, c := range []struct {
		name string
		key  *testKey
		want string // in the refusal under signedOnly
		// what list --json and check report
		protection, signer string
		trusted            bool
		line               string
	}{
		{"good", &trusted, "device-mapper", "signed", "CN=trusted", true, `usr partition signed by "CN=trusted" (a trusted certificate)`},
		{"evil", &untrusted, "asks for 'signed", "verity", "CN=untrusted", false, `its signature by "CN=untrusted" does not count: `},
		{"plain", nil, "found with flags 'verity'", "verity", "", false, "usr partition verity-protected, root hash "}, // root hash from a .usrhash sidecar
	} {
		img := filepath.Join(ext, c.name+".raw")
		rootHash := bakeDDI(t, c.name, img, c.key)
		if c.key == nil {
			exttest.Write(t, ext, map[string]string{c.name + ".usrhash": hex.EncodeToString(rootHash) + "\n"})
		}
		// list --json and check say how it is protected, who signed it,
		// whether that counts, and which rule refuses it.
		for _, policy := range []string{"", signedOnly} {
			args := []string{"sysext", "--root", root}
			if policy != "" {
				args = append(args, policy)
			}
			row := listDDIRow(t, root, c.name, args)
			wantStatus, wantRule := "ready", ""
			if policy != "" {
				wantStatus, wantRule = "bad", "usr=signed+absent"
			}
			d := row.DDI
			if row.Status != wantStatus || d == nil || d.Partition != "usr" || d.Protection != c.protection || d.RootHash != hex.EncodeToString(rootHash) || d.RefusedBy != wantRule || (wantRule == "") != (d.Refused == "") || !strings.Contains(d.Refused, c.want) && wantRule != "" {
				t.Errorf("%s list --json %q: status %q ddi %+v", c.name, policy, row.Status, d)
			} else if s := d.Signature; (s != nil) != (c.key != nil) || s != nil && (s.Signer != c.signer || s.Trusted != c.trusted || (s.Problem == "") != c.trusted) {
				t.Errorf("%s list --json %q: signature %+v", c.name, policy, s)
			}
			r := strata(t, nil, append(args, "check", img)...)
			if wantCode := map[bool]int{true: 0, false: 1}[policy == ""]; r.code != wantCode || !strings.Contains(r.stdout, c.line) {
				t.Errorf("%s check %q: exit %d (want %d), stdout %q; want a line with %q", c.name, policy, r.code, wantCode, r.stdout, c.line)
			}
			if policy != "" && (!strings.Contains(r.stdout, "would not merge: bad image: ") || !strings.Contains(r.stdout, c.want) || !strings.Contains(r.stdout, "refused by the image policy's rule usr=signed+absent")) {
				t.Errorf("%s check %q: the refusal does not say why: %q", c.name, policy, r.stdout)
			}
		}
		r := strata(t, nil, "sysext", "--root", root, "merge", signedOnly)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, c.name) {
			t.Errorf("%s under %s: exit %d, stderr %q; want a refusal saying %q", c.name, signedOnly, r.code, r.stderr, c.want)
		}
		if m := exttest.Mounts(t, root); len(m) != 0 {
			t.Fatalf("%s: refusal left mounts %v", c.name, m)
		}
		if c.name == "evil" && !strings.Contains(r.stderr, "trusted") {
			t.Errorf("untrusted signature: the refusal does not say why: %q", r.stderr)
		}
		// The default policy accepts verity, signed and unprotected alike.
		if r := strata(t, nil, "sysext", "--root", root, "merge"); r.code != 0 {
			t.Fatalf("%s under the default policy: %+v", c.name, r)
		}
		if _, err := os.Stat(filepath.Join(root, "usr/bin", c.name)); err != nil {
			t.Fatalf("%s not merged: %v", c.name, err)
		}
		strata(t, nil, "sysext", "--root", root, "unmerge")
		if err := os.Remove(img); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(ext, c.name+".usrhash"))
	}

	// A signature partition over another root hash: refused whatever the policy.
	img := filepath.Join(ext, "liar.raw")
	bakeDDI(t, "liar", img, &trusted)
	other := filepath.Join(t.TempDir(), "other.raw")
	bakeDDI(t, "other", other, &trusted)
	swapSigPartition(t, img, other)
	if r := strata(t, nil, "sysext", "--root", root, "merge"); r.code == 0 || !strings.Contains(r.stderr, "does not match root hash") {
		t.Fatalf("a signature over another root hash: %+v", r)
	}
	if m := exttest.Mounts(t, root); len(m) != 0 {
		t.Fatalf("mounts left %v", m)
	}
}

// listDDIRow runs list --json with args and returns name's row.
func listDDIRow(t *testing.T, root, name string, args []string) listRow {
	t.Helper()
	r := strata(t, nil, append(args, "list", "--json=short")...)
	if r.code != 0 {
		t.Fatalf("list: %+v", r)
	}
	var rows []listRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("list --json: %v: %q", err, r.stdout)
	}
	for _, row := range rows {
		if row.Name == name {
			return row
		}
	}
	t.Fatalf("list --json under %s has no %s: %q", root, name, r.stdout)
	return listRow{}
}

// swapSigPartition copies other's signature partition over img's.
func swapSigPartition(t *testing.T, img, other string) {
	t.Helper()
	part := func(path string) ddi.Partition {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		st, _ := f.Stat()
		im, err := ddi.Open(f, st.Size(), ddi.Options{})
		if err != nil {
			t.Fatal(err)
		}
		p, ok := im.Parts[imagepolicy.VeritySigOf(imagepolicy.Usr)]
		if !ok {
			t.Fatalf("%s has no signature partition", path)
		}
		return p
	}
	dst, src := part(img), part(other)
	b, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b[src.Offset:src.Offset+min(src.Size, dst.Size)], dst.Offset); err != nil {
		t.Fatal(err)
	}
}
