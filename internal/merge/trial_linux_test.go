package merge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/imageclass"
)

// writeTree writes files (path → content) under a new directory dir/name.
func writeTree(t *testing.T, name string, files map[string]string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), name)
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func writeOSRelease(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "os-release")
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTrialImageChoosesClassAndName(t *testing.T) {
	const arch = "x86-64"
	sys := writeTree(t, "hello", map[string]string{
		"usr/lib/extension-release.d/extension-release.hello": "ID=_any\n",
		"usr/bin/hello": "#!/bin/sh\n",
	})
	conf := writeTree(t, "motd", map[string]string{
		"etc/extension-release.d/extension-release.motd": "ID=_any\n",
		"etc/motd": "hi\n",
	})
	baked := writeTree(t, "hello-1.0-x86-64", map[string]string{
		"usr/lib/extension-release.d/extension-release.hello": "ID=_any\n",
		"usr/bin/hello": "#!/bin/sh\n",
	})
	cases := []struct {
		path, flag string
		class      imageclass.Class
		name       string
		renamed    bool
	}{
		{sys, "", imageclass.Sysext, "hello", false},
		{conf, "", imageclass.Confext, "motd", false},
		{conf, "sysext", imageclass.Sysext, "motd", false}, // the flag wins
		{baked, "", imageclass.Sysext, "hello", true},
		{baked, "confext", imageclass.Confext, "hello-1.0-x86-64", false},
	}
	for _, c := range cases {
		img, class, renamed, err := TrialImage(c.path, c.flag, arch)
		if err != nil {
			t.Fatalf("TrialImage(%s, %q): %v", c.path, c.flag, err)
		}
		if class != c.class || img.Name != c.name || renamed != c.renamed {
			t.Errorf("TrialImage(%s, %q) = %s %q renamed=%v; want %s %q renamed=%v",
				filepath.Base(c.path), c.flag, class, img.Name, renamed, c.class, c.name, c.renamed)
		}
	}
	if _, _, _, err := TrialImage(sys, "portable", arch); err == nil {
		t.Error("TrialImage accepted class portable")
	}
	missing := filepath.Join(t.TempDir(), "nope.raw")
	if _, _, _, err := TrialImage(missing, "", arch); err == nil || !strings.HasPrefix(err.Error(), "test "+missing+": ") {
		t.Errorf("missing image: %v", err)
	}
}

func TestNewTrialDecidesBeforeMerging(t *testing.T) {
	good := writeTree(t, "hello", map[string]string{
		"usr/lib/extension-release.d/extension-release.hello": "ID=debian\nVERSION_ID=12\n",
		"usr/bin/hello": "#!/bin/sh\n",
	})
	debian := writeOSRelease(t, "ID=debian\nVERSION_ID=12\n")
	fedora := writeOSRelease(t, "ID=fedora\nVERSION_ID=40\n")
	trial := func(p, osr string, force bool, mutable string) error {
		img, c, _, err := TrialImage(p, "", "x86-64")
		if err != nil {
			t.Fatal(err)
		}
		e, err := NewTrial(p, img, c, TrialOptions{OSRelease: osr, Force: force, Mutable: mutable})
		if err == nil {
			if e.Root != "/" || !e.Stack || len(e.Images) != 1 || e.Images[0].Name != img.Name || e.Force != force {
				t.Errorf("engine for %s: %+v", p, e)
			}
		}
		return err
	}
	if err := trial(good, debian, false, "ephemeral"); err != nil {
		t.Errorf("compatible image: %v", err)
	}
	err := trial(good, fedora, false, "ephemeral")
	if err == nil || !strings.Contains(err.Error(), "would not merge on this host") || !strings.HasSuffix(err.Error(), "(use --force to test anyway)") {
		t.Errorf("incompatible image: %v", err)
	}
	if err := trial(good, fedora, true, "ephemeral"); err != nil {
		t.Errorf("incompatible image with --force: %v", err)
	}
	if err := trial(good, filepath.Join(t.TempDir(), "no-os-release"), false, "ephemeral"); err == nil {
		t.Error("NewTrial accepted a missing --os-release file")
	}
	if err := trial(good, debian, false, "sometimes"); err == nil {
		t.Error("NewTrial accepted --mutable=sometimes")
	}
}
