package repo

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/pgpsign"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

func writeImage(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPublish(t *testing.T) {
	src, dir := t.TempDir(), filepath.Join(t.TempDir(), "repo")
	key, err := pgpsign.Generate("Repo", "repo@example.org")
	if err != nil {
		t.Fatal(err)
	}
	a := writeImage(t, src, "kubernetes-v1.30.2-x86-64.raw", "k30")
	b := writeImage(t, src, "kubernetes-v1.31.0-x86-64.raw", "k31")
	res, err := Publish(PublishOptions{Dir: dir, Images: []string{a, b}, SignKey: key.Private, URL: "https://ext.example.org/repo"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Added) != 2 || !res.Signed {
		t.Fatalf("result %+v", res)
	}
	sums, _ := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	m, err := ParseManifest(sums)
	if err != nil || len(m.Entries) != 2 {
		t.Fatalf("manifest %q: %v", sums, err)
	}
	sig, _ := os.ReadFile(filepath.Join(dir, "SHA256SUMS.gpg"))
	if _, err := pgpsign.Verify(key.Public, sums, sig); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"kubernetes.transfer", "kubernetes-v1.30.transfer", "kubernetes-v1.31.transfer"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("transfer %s: %v", f, err)
		}
	}
	tr, _ := os.ReadFile(filepath.Join(dir, "kubernetes-v1.30.transfer"))
	for _, want := range []string{"Verify=yes", "Path=https://ext.example.org/repo", "MatchPattern=kubernetes-v1.30.@v-%a.raw", "Path=/opt/extensions/kubernetes", "CurrentSymlink=/etc/extensions/kubernetes.raw", "InstancesMax=3"} {
		if !strings.Contains(string(tr), want) {
			t.Fatalf("transfer lacks %q:\n%s", want, tr)
		}
	}
	ixData, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	ix, err := ParseIndex(ixData)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := ix.Find("kubernetes")
	if !ok || len(e.Versions) != 2 || e.Versions[0].Version != "v1.31.0" || e.Versions[0].Size != 3 || len(e.Transfers) != 3 {
		t.Fatalf("index %+v", ix)
	}
	firstDate := e.Versions[1].Published

	// Publishing again adds, never rewrites; re-publishing the same file
	// is a no-op; different bytes under a published name are refused.
	c := writeImage(t, src, "kubernetes-v1.30.3-x86-64.raw", "k30.3")
	later := func() time.Time { return time.Now().Add(time.Hour) }
	res, err = Publish(PublishOptions{Dir: dir, Images: []string{a, c}, SignKey: key.Private, Now: later})
	if err != nil || len(res.Added) != 1 || len(res.Unchanged) != 1 {
		t.Fatalf("second publish: %+v %v", res, err)
	}
	ixData, _ = os.ReadFile(filepath.Join(dir, "index.json"))
	ix, _ = ParseIndex(ixData)
	e, _ = ix.Find("kubernetes")
	if len(e.Versions) != 3 || !e.Versions[2].Published.Equal(firstDate) {
		t.Fatalf("versions after republish: %+v", e.Versions)
	}
	evil := writeImage(t, t.TempDir(), "kubernetes-v1.30.2-x86-64.raw", "tampered")
	var ce *ConflictError
	if _, err := Publish(PublishOptions{Dir: dir, Images: []string{evil}}); !errors.As(err, &ce) {
		t.Fatalf("overwrite of a published version: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "kubernetes-v1.30.2-x86-64.raw")); string(got) != "k30" {
		t.Fatal("published image was rewritten")
	}
	// Names clashing by dash-prefix are refused before anything is copied.
	d := writeImage(t, src, "kubernetes-tools-1.0-x86-64.raw", "x")
	if _, err := Publish(PublishOptions{Dir: dir, Images: []string{d}}); err == nil || !strings.Contains(err.Error(), "clash") {
		t.Fatalf("prefix clash: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "kubernetes-tools-1.0-x86-64.raw")); err == nil {
		t.Fatal("clashing image copied")
	}
	// coreutils reads the manifest too.
	if _, err := exec.LookPath("sha256sum"); err == nil {
		c := exec.Command("sha256sum", "--check", "--strict", "SHA256SUMS")
		c.Dir = dir
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("sha256sum --check: %v\n%s", err, out)
		}
	}
	// No leftovers of the atomic writes.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("leftover %s", e.Name())
		}
	}
}

// TestSignatureVerifiesWithGnuPG: systemd-pull checks SHA256SUMS.gpg with
// gpg; the signature Strata writes must verify with GnuPG's gpgv against
// the public key Strata writes.
func TestSignatureVerifiesWithGnuPG(t *testing.T) {
	privtest.RequireTools(t, "gpg", "gpgv")
	gpgv, _ := exec.LookPath("gpgv")
	key, err := pgpsign.Generate("Repo", "repo@example.org")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	img := writeImage(t, t.TempDir(), "hello-1.0-x86-64.raw", "hello")
	if _, err := Publish(PublishOptions{Dir: dir, Images: []string{img}, SignKey: key.Private}); err != nil {
		t.Fatal(err)
	}
	// gpgv wants a binary keyring: dearmor with gpg.
	home := t.TempDir()
	ring := filepath.Join(home, "ring.gpg")
	dearmor := exec.Command("gpg", "--homedir", home, "--batch", "--dearmor", "-o", ring)
	dearmor.Stdin = bytes.NewReader(key.Public)
	if out, err := dearmor.CombinedOutput(); err != nil {
		t.Fatalf("gpg --dearmor: %v\n%s", err, out)
	}
	out, err := exec.Command(gpgv, "--homedir", home, "--keyring", ring, filepath.Join(dir, "SHA256SUMS.gpg"), filepath.Join(dir, "SHA256SUMS")).CombinedOutput()
	if err != nil {
		t.Fatalf("gpgv rejects Strata's signature: %v\n%s", err, out)
	}
	// And rejects a tampered manifest.
	os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(h1+"  evil-1-x86-64.raw\n"), 0o644)
	if err := exec.Command(gpgv, "--homedir", home, "--keyring", ring, filepath.Join(dir, "SHA256SUMS.gpg"), filepath.Join(dir, "SHA256SUMS")).Run(); err == nil {
		t.Fatal("gpgv accepted a tampered manifest")
	}
}
