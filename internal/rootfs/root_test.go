package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRoot(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, tc := range []struct {
		in, path string
		host     bool
	}{
		{"", "/", true},
		{"/", "/", true},
		{"//.", "/", true},
		{dir, dir, false},
		{dir + "/sub/../", dir, false},
		{"sub", filepath.Join(dir, "sub"), false},
		{"./sub/.", filepath.Join(dir, "sub"), false},
	} {
		r, err := ParseRoot(tc.in)
		if err != nil {
			t.Fatalf("ParseRoot(%q): %v", tc.in, err)
		}
		if r.Path() != tc.path || r.IsHost() != tc.host || r.String() != tc.path {
			t.Errorf("ParseRoot(%q) = %q host=%v, want %q host=%v", tc.in, r.Path(), r.IsHost(), tc.path, tc.host)
		}
	}
	for _, bad := range []string{file, filepath.Join(dir, "absent"), "absent", file + "/x"} {
		_, err := ParseRoot(bad)
		if !errors.Is(err, ErrNotDirectory) || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseRoot(%q) = %v, want ErrNotDirectory naming the input", bad, err)
		}
	}
}

func TestRootZeroIsHost(t *testing.T) {
	var r Root
	if !r.IsHost() || r.Path() != "/" || r != Host() {
		t.Fatalf("zero Root = %q host=%v", r.Path(), r.IsHost())
	}
	if got := r.Join("etc/os-release"); got != "/etc/os-release" {
		t.Fatalf("host Join = %q", got)
	}
}

// Join stays below the root whatever p holds: ".." and absolute paths are
// taken inside it.
func TestRootJoinStaysInside(t *testing.T) {
	dir := t.TempDir()
	r, err := ParseRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"/etc/extensions/a.raw": dir + "/etc/extensions/a.raw",
		"etc/x":                 dir + "/etc/x",
		"../../etc/passwd":      dir + "/etc/passwd",
		"/a/../../..":           dir,
		"":                      dir,
	} {
		if got := r.Join(p); got != want {
			t.Errorf("Join(%q) = %q, want %q", p, got, want)
		}
	}
}

func FuzzRootJoin(f *testing.F) {
	for _, s := range []string{"/etc", "../..", "a/../../b", "//x/./y/", ""} {
		f.Add(s)
	}
	dir := f.TempDir()
	r, err := ParseRoot(dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got := r.Join(p)
		if got != dir && !strings.HasPrefix(got, dir+"/") {
			t.Fatalf("Join(%q) = %q escapes %s", p, got, dir)
		}
	})
}
