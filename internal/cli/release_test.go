package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/testutil/exttest"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// A missing extension-release is reported by check and list with the
// file looked for and what to do, not as "No medium found".
func TestMissingReleaseMessage(t *testing.T) {
	root := exttest.Root(t, exttest.DefaultOSRelease)
	ext := filepath.Join(root, "var/lib/extensions")
	src := t.TempDir()
	os.MkdirAll(ext, 0o755)
	exttest.Write(t, filepath.Join(src, "none"), map[string]string{"usr/bin/none": "x"})
	exttest.SysextTree(t, filepath.Join(src, "other"), "bar", "ID=_any\n", map[string]string{"usr/bin/bar": "x"})
	exttest.Squashfs(t, filepath.Join(src, "none"), filepath.Join(ext, "none.raw"))
	exttest.Squashfs(t, filepath.Join(src, "other"), filepath.Join(ext, "foo.raw"))
	want := map[string][]string{
		"none.raw": {"no usr/lib/extension-release.d/extension-release.none in the image", "add it"},
		"foo.raw":  {"no usr/lib/extension-release.d/extension-release.foo in the image", "it has extension-release.bar", "name the image bar.raw"},
	}
	for file, parts := range want {
		r := strata(t, nil, "sysext", "--root", root, "check", filepath.Join(ext, file))
		for _, p := range parts {
			if r.code != 1 || !strings.Contains(r.stdout, p) || strings.Contains(r.stdout, "No medium found") {
				t.Errorf("check %s: exit %d, want %q:\n%s%s", file, r.code, p, r.stdout, r.stderr)
			}
		}
	}
	r := strata(t, nil, "sysext", "--root", root, "list")
	for _, parts := range want {
		if !strings.Contains(r.stdout, parts[0]) || strings.Contains(r.stdout, "No medium found") {
			t.Errorf("list: want %q:\n%s%s", parts[0], r.stdout, r.stderr)
		}
	}
}

// An oversized extension-release gets one verdict in one wording from
// check and inspect.
func TestOversizedReleaseSameVerdict(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	exttest.SysextTree(t, src, "big", "ID=_any\n#"+strings.Repeat("x", 70<<10)+"\n", map[string]string{"usr/bin/big": "x"})
	img := exttest.Squashfs(t, src, filepath.Join(dir, "big.raw"))
	osr := filepath.Join(dir, "os-release")
	os.WriteFile(osr, []byte("ID=debian\nVERSION_ID=12\n"), 0o644)
	const want = "usr/lib/extension-release.d/extension-release.big is larger than 64 KiB"
	r := strata(t, nil, "sysext", "check", img, "--os-release", osr)
	if r.code != 1 || !strings.Contains(r.stdout, want) {
		t.Errorf("check: exit %d, want %q:\n%s%s", r.code, want, r.stdout, r.stderr)
	}
	r = strata(t, nil, "inspect", "--no-hash", img, "--os-release", osr)
	if r.code != 0 || strings.Contains(r.stdout, "none") || strings.Count(r.stdout, want) != 2 || !strings.Contains(r.stdout, "NOT compatible") {
		t.Errorf("inspect: exit %d, want %q as the release and the verdict:\n%s%s", r.code, want, r.stdout, r.stderr)
	}
}

// A file named as bake names it (hello-1.0-x86-64.raw, carrying
// extension-release.hello) is taken by check, inspect, lint and test
// under its release's name, with one line saying so; merging it from a
// search directory still refuses it, as systemd-sysext does.
func TestBakedFileName(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	dir := t.TempDir()
	writeTree(t, filepath.Join(dir, "tree"), map[string]string{"usr/bin/hello-t": "#!/bin/sh\necho hello from the image\n"})
	if r := strata(t, nil, "bake", filepath.Join(dir, "tree"), "--name", "hello", "--version", "1.0", "--arch", "x86-64", "-o", dir); r.code != 0 {
		t.Fatalf("bake: %+v", r)
	}
	img := filepath.Join(dir, "hello-1.0-x86-64.raw")
	const note = "hello-1.0-x86-64.raw: extension name 'hello' taken from its extension-release.hello\n"
	for _, c := range []struct {
		args []string
		out  string
	}{
		{[]string{"sysext", "check", img}, `would merge as sysext "hello"`},
		{[]string{"inspect", "--no-hash", img}, "Name:       hello\n"},
		{[]string{"lint", img}, ""},
		{[]string{"test", img, "--", "hello-t"}, "hello from the image\n"},
	} {
		r := strata(t, nil, c.args...)
		if r.code != 0 || !strings.Contains(r.stdout, c.out) || strings.Count(r.stderr, note) != 1 {
			t.Errorf("%v: exit %d, want %q and the note once:\n%s%s", c.args, r.code, c.out, r.stdout, r.stderr)
		}
	}
	// hello-1.0-x86-64.raw that is hello-1.0 (no such architecture) or
	// has another name's release is not renamed.
	other := filepath.Join(dir, "hello-1.0-amd64.raw")
	os.Link(img, other)
	if r := strata(t, nil, "sysext", "check", other); r.code != 1 || strings.Contains(r.stderr, "taken from") {
		t.Errorf("check %s: %+v", other, r)
	}
	root := exttest.Root(t, exttest.DefaultOSRelease)
	ext := filepath.Join(root, "var/lib/extensions")
	os.MkdirAll(ext, 0o755)
	os.Link(img, filepath.Join(ext, "hello-1.0-x86-64.raw"))
	if r := strata(t, nil, "sysext", "--root", root, "merge"); r.code == 0 || !strings.Contains(r.stderr, "name the image hello.raw") {
		t.Errorf("merge from /var/lib/extensions: %+v", r)
	}
	if m := exttest.Mounts(t, root); len(m) != 0 {
		t.Errorf("mounts left %v", m)
	}
}
