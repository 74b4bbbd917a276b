package inspect

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/osrelease"
)

func TestDirImage(t *testing.T) {
	root := filepath.Join(t.TempDir(), "cfg")
	for p, c := range map[string]string{
		"etc/extension-release.d/extension-release.cfg": "ID=debian\nVERSION_ID=12\nARCHITECTURE=arm64\n",
		"etc/cfg.conf": "x=1\n",
	} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(c), 0o644)
	}
	host := osrelease.Release{"ID": "debian", "VERSION_ID": "12"}
	rep, err := Image(context.Background(), root, Options{Host: host, Arch: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Name != "cfg" || rep.Class != "confext" || rep.Format != "dir" || rep.Files.Files != 2 || rep.Compatible == nil || !rep.Compatible.OK {
		t.Errorf("%+v %+v", rep, rep.Compatible)
	}
	rep, _ = Image(context.Background(), root, Options{Host: osrelease.Release{"ID": "debian", "VERSION_ID": "13"}, Arch: "arm64"})
	if rep.Compatible.OK || rep.Compatible.Rule != osrelease.RuleVersionID {
		t.Errorf("%+v", rep.Compatible)
	}
}

func TestNotAnImage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.raw")
	os.WriteFile(p, []byte("this is not a file system image at all, just text"), 0o644)
	if _, err := Image(context.Background(), p, Options{}); err == nil {
		t.Error("accepted garbage")
	}
}

// inspect gives merge's verdict, so it cannot disagree with check and
// list: a sysext carrying usr/lib/os-release is refused although its
// release matches the host (osrelease.Compatible alone would accept it),
// and an image providing nothing is refused too.
func TestVerdictIsMerges(t *testing.T) {
	host := osrelease.Release{"ID": "debian", "VERSION_ID": "12"}
	write := func(root string, files map[string]string) {
		for p, c := range files {
			if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	rel := "ID=debian\nVERSION_ID=12\n"
	dir := t.TempDir()
	osr := filepath.Join(dir, "osr")
	write(osr, map[string]string{
		"usr/lib/extension-release.d/extension-release.osr": rel,
		"usr/lib/os-release": "ID=debian\n",
	})
	ok := filepath.Join(dir, "ok")
	write(ok, map[string]string{"usr/lib/extension-release.d/extension-release.ok": rel, "usr/bin/ok": "x"})
	missing := filepath.Join(dir, "missing")
	write(missing, map[string]string{"usr/bin/x": "x"})
	for _, c := range []struct {
		path     string
		ok       bool
		rule     string
		inReason string
	}{
		{osr, false, "os-release", "must not carry usr/lib/os-release"},
		{ok, true, osrelease.RuleVersionID, ""},
		{missing, false, osrelease.RuleNoReleaseData, "no usr/lib/extension-release.d/extension-release.missing in the image"},
	} {
		rep, err := Image(context.Background(), c.path, Options{Host: host, Arch: "x86-64"})
		if err != nil {
			t.Fatal(err)
		}
		got := rep.Compatible
		if got == nil || got.OK != c.ok || got.Rule != c.rule || !strings.Contains(got.Reason, c.inReason) || got.Host != "debian 12 x86-64" {
			t.Errorf("%s: %+v, want ok=%v rule=%s reason ~ %q", filepath.Base(c.path), got, c.ok, c.rule, c.inReason)
		}
	}
	// The missing release is told in ReleaseError's words, as before.
	rep, _ := Image(context.Background(), missing, Options{Host: host, Arch: "x86-64"})
	if rep.Compatible.Reason != rep.ReleaseError {
		t.Errorf("reason %q, release error %q", rep.Compatible.Reason, rep.ReleaseError)
	}
}
