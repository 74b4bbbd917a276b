package image

import (
	"testing"

	"github.com/stratalinux/strata/internal/imageclass"
)

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		fn   func(string, imageclass.Class) (string, bool)
		in   string
		c    imageclass.Class
		want string
		ok   bool
	}{
		{NameOfRaw, "foo.raw", imageclass.Sysext, "foo", true},
		{NameOfRaw, "foo.sysext.raw", imageclass.Sysext, "foo", true},
		{NameOfRaw, "foo.confext.raw", imageclass.Sysext, "foo.confext", true},
		{NameOfRaw, "foo.confext.raw", imageclass.Confext, "foo", true},
		{NameOfRaw, "foo.img", imageclass.Sysext, "", false},
		{NameOfRaw, ".raw", imageclass.Sysext, "", false},
		{NameOfRaw, ".#foo.raw", imageclass.Sysext, "", false},
		{NameOfRaw, "a\x01b.raw", imageclass.Sysext, "", false},
		{NameOfRaw, "\xff.raw", imageclass.Sysext, "", false},
		{NameOfDir, "foo", imageclass.Sysext, "foo", true},
		{NameOfDir, "foo.sysext", imageclass.Sysext, "foo", true},
		{NameOfDir, "..", imageclass.Sysext, "", false},
	} {
		got, ok := tc.fn(tc.in, tc.c)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("%q (%v): got %q,%v want %q,%v", tc.in, tc.c, got, ok, tc.want, tc.ok)
		}
	}
	long := make([]byte, 256)
	for i := range long {
		long[i] = 'a'
	}
	if NameIsValid(string(long)) {
		t.Error("256-byte name accepted")
	}
}

func TestExtractImageName(t *testing.T) {
	for in, want := range map[string]string{
		"foo": "foo", "foo_1.2": "foo", "foo+3": "foo", "foo_1.2.raw": "foo", "foo.sysext.raw": "foo", "a-b_c+d": "a-b",
	} {
		if got := ExtractImageName(in); got != want {
			t.Errorf("ExtractImageName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestVersionedEntry(t *testing.T) {
	for _, tc := range []struct {
		fn, name, suffix string
		ok               bool
		want             VersionedEntry
	}{
		{"foo_1.2.raw", "foo", ".raw", true, VersionedEntry{Version: "1.2", TriesLeft: -1}},
		{"foo_1.2_x86-64.raw", "foo", ".raw", true, VersionedEntry{Version: "1.2", Architecture: "x86-64", TriesLeft: -1}},
		{"foo_1.2+3-1.raw", "foo", ".raw", true, VersionedEntry{Version: "1.2", TriesLeft: 3, TriesDone: 1}},
		{"foo_1.2_arm64+0.raw", "foo", ".raw", true, VersionedEntry{Version: "1.2", Architecture: "arm64", TriesLeft: 0}},
		{"foo_2", "foo", "", true, VersionedEntry{Version: "2", TriesLeft: -1}},
		{"bar_1.raw", "foo", ".raw", false, VersionedEntry{}},
		{"foo_.raw", "foo", ".raw", false, VersionedEntry{}},
		{"foo_1+x.raw", "foo", ".raw", false, VersionedEntry{}},
	} {
		got, ok := ParseVersionedEntry(tc.fn, tc.name, tc.suffix, IsArchitectureName)
		if ok != tc.ok {
			t.Errorf("%s: ok=%v want %v", tc.fn, ok, tc.ok)
			continue
		}
		tc.want.Filename = tc.fn
		if ok && got != tc.want {
			t.Errorf("%s: got %+v want %+v", tc.fn, got, tc.want)
		}
	}
}

func FuzzNames(f *testing.F) {
	for _, s := range []string{"foo.raw", "foo.sysext.raw", "x.v", "foo_1+2-3.raw", ".#a", "\xff", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, c := range []imageclass.Class{imageclass.Sysext, imageclass.Confext} {
			if n, ok := NameOfRaw(s, c); ok && !NameIsValid(n) {
				t.Fatalf("NameOfRaw(%q) gave invalid %q", s, n)
			}
			if n, ok := NameOfDir(s, c); ok && !NameIsValid(n) {
				t.Fatalf("NameOfDir(%q) gave invalid %q", s, n)
			}
			if n, _, ok := NameOfVersioned(s, c); ok && !NameIsValid(n) {
				t.Fatalf("NameOfVersioned(%q) gave invalid %q", s, n)
			}
		}
		_ = ExtractImageName(s)
		_, _ = ParseVersionedEntry(s, "foo", ".raw", IsArchitectureName)
	})
}

func TestBakedName(t *testing.T) {
	for _, c := range []struct {
		base  string
		names []string
		want  string
	}{
		{"hello-1.0-x86-64", []string{"hello"}, "hello"},
		{"hello-1.0", []string{"hello"}, "hello"},
		{"my-tool-2~rc1-arm64", []string{"my-tool"}, "my-tool"},
		{"hello-1.0-amd64", []string{"hello"}, ""}, // not a systemd architecture
		{"hello-", []string{"hello"}, ""},
		{"hello", []string{"hello"}, ""},
		{"hello-1.0-x86-64", []string{"bye"}, ""},
		{"a-b-1-x86", []string{"a", "a-b"}, "a-b"}, // "a" leaves "b-1-x86": not VERSION-ARCH
		{"a-1-x86", []string{"a", "a"}, ""},        // two files, no single answer
	} {
		if got, ok := BakedName(c.base, c.names); got != c.want && ok || ok != (c.want != "") {
			t.Errorf("BakedName(%q, %q) = %q, %v; want %q", c.base, c.names, got, ok, c.want)
		}
	}
}
