package repo

import (
	"strings"
	"testing"
	"time"
)

const h1 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseManifest(t *testing.T) {
	in := h1 + "  docker-28.0.4-x86-64.raw\n" +
		strings.ToUpper(h1) + " *docker-28.0.4-arm64.raw\n" +
		emptySHA256 + "  BEST-BEFORE-2030-01-31\n"
	m, err := ParseManifest([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Entries) != 2 || m.Entries[1].SHA256 != h1 || m.Entries[1].Name != "docker-28.0.4-arm64.raw" {
		t.Fatalf("entries %+v", m.Entries)
	}
	if m.BestBefore == nil || m.BestBefore.Format(time.DateOnly) != "2030-01-31" {
		t.Fatalf("best before %v", m.BestBefore)
	}
	if err := m.CheckFresh(time.Date(2030, 1, 31, 23, 0, 0, 0, time.UTC)); err != nil {
		t.Fatalf("fresh on the day itself: %v", err)
	}
	if err := m.CheckFresh(time.Date(2030, 2, 2, 0, 0, 0, 0, time.UTC)); err == nil {
		t.Fatal("stale manifest accepted")
	}
	// Round trip through the writer.
	m2, err := ParseManifest(FormatManifest(m.Entries))
	if err != nil || len(m2.Entries) != 2 {
		t.Fatalf("round trip: %v %+v", err, m2)
	}
}

func TestParseManifestErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{h1 + "  a.raw", "does not end in a newline"},
		{h1 + " a.raw\n", "line 1"},
		{h1 + "  a.raw\n\n", "corrupt manifest at line 2"},
		{"zz" + h1[2:] + "  a.raw\n", "not a SHA256 hex digest"},
		{h1 + "xxa.raw\n", "expected a space"},
		{h1 + "  dir/a.raw\n", "not a valid file name"},
		{h1 + "  ..\n", "not a valid file name"},
		{"\\" + h1 + "  a\\nb\n", "escaped file names are not supported"},
		{h1 + "  a\x01b\n", "control characters"},
		{h1 + "  a\x00\n", "NUL"},
		{h1 + "  \xff\xfe\n", "UTF-8"},
		{h1 + "  a.raw\n" + h1 + "  a.raw\n", "listed twice"},
	} {
		if _, err := ParseManifest([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseManifest(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
	m, err := ParseManifest([]byte(emptySHA256 + "  BEST-BEFORE-2030-13-45\n"))
	if err != nil || m.BestBefore != nil || len(m.Warnings) != 1 {
		t.Fatalf("unparsable best-before date must be a warning: %v %+v", err, m)
	}
}

// FuzzManifest: the parser never panics; whatever it accepts, the writer
// reproduces and the parser accepts again with the same entries.
func FuzzManifest(f *testing.F) {
	f.Add(h1 + "  docker-28.0.4-x86-64.raw\n")
	f.Add(h1 + " *a\n" + emptySHA256 + "  BEST-BEFORE-2024-02-29\n")
	f.Add("\n")
	f.Fuzz(func(t *testing.T, in string) {
		m, err := ParseManifest([]byte(in))
		if err != nil {
			return
		}
		m2, err := ParseManifest(FormatManifest(m.Entries))
		if err != nil {
			t.Fatalf("re-parse of written manifest: %v", err)
		}
		if len(m2.Entries) != len(m.Entries) {
			t.Fatalf("entries %d → %d", len(m.Entries), len(m2.Entries))
		}
		for _, e := range m.Entries {
			if h, ok := m2.Lookup(e.Name); !ok || h != e.SHA256 {
				t.Fatalf("lost %s", e.Name)
			}
		}
	})
}

func TestParseImageName(t *testing.T) {
	for _, tc := range []struct{ in, name, ver, arch string }{
		{"docker-28.0.4-x86-64.raw", "docker", "28.0.4", "x86-64"},
		{"docker-compose-2.24.5-arm64.raw", "docker-compose", "2.24.5", "arm64"},
		{"kubernetes-v1.30.2-x86-64.raw", "kubernetes", "v1.30.2", "x86-64"},
		{"k3s-v1.32.2+k3s1-x86-64.raw", "k3s", "v1.32.2+k3s1", "x86-64"},
		{"tool-rolling-x86.raw", "tool", "rolling", "x86"},
		// Every systemd architecture name, the longest suffix winning.
		{"tool-1-arm64-be.raw", "tool", "1", "arm64-be"},
		{"tool-1-mips64.raw", "tool", "1", "mips64"},
		{"tool-1-mips64-le.raw", "tool", "1", "mips64-le"},
		{"tool-1-parisc64.raw", "tool", "1", "parisc64"},
		{"tool-1-nios2.raw", "tool", "1", "nios2"},
	} {
		n, err := ParseImageName(tc.in)
		if err != nil || n.Name != tc.name || n.Version != tc.ver || n.Arch != tc.arch {
			t.Errorf("ParseImageName(%q) = %+v %v", tc.in, n, err)
		}
		if err == nil && n.File() != tc.in {
			t.Errorf("File() = %s", n.File())
		}
	}
	for _, bad := range []string{"docker.img", "docker-1.0.raw", "-1.0-x86-64.raw", "a b-1-x86-64.raw"} {
		if _, err := ParseImageName(bad); err == nil {
			t.Errorf("ParseImageName(%q) accepted", bad)
		}
	}
	if l, ok := MinorLine("v1.30.2"); !ok || l != "v1.30" {
		t.Fatalf("MinorLine = %q %v", l, ok)
	}
	if _, ok := MinorLine("28.0"); ok {
		t.Fatal("two components have no minor line")
	}
}
