package release

import (
	"strings"
	"testing"
)

func TestParseOS(t *testing.T) {
	for _, c := range []struct {
		in, id, vid, level string
		bad                bool
	}{
		{"", "_any", "", "", false},
		{"debian", "debian", "", "", false},
		{"debian:12", "debian", "12", "", false},
		{"flatcar:level=1.0", "flatcar", "", "1.0", false},
		{"fedora:version=41", "fedora", "41", "", false},
		{"_any:1", "", "", "", true},
		{"Deb ian", "", "", "", true},
		{"debian:", "", "", "", true},
	} {
		id, vid, level, err := ParseOS(c.in)
		if (err != nil) != c.bad || id != c.id || vid != c.vid || level != c.level {
			t.Errorf("ParseOS(%q) = %q %q %q %v", c.in, id, vid, level, err)
		}
	}
}

func TestQuoteValue(t *testing.T) {
	r := Release{Name: "x", Version: "1", Arch: AnyArch, Extra: map[string]string{"SYSEXT_SCOPE_X": "a b $c"}}
	got := string(r.Render())
	if !strings.Contains(got, `SYSEXT_SCOPE_X="a b \$c"`) || strings.Contains(got, "ARCHITECTURE") {
		t.Errorf("%s", got)
	}
	m, err := Parse(r.Render())
	if err != nil || m["SYSEXT_SCOPE_X"] != "a b $c" {
		t.Errorf("round trip: %v %q", err, m["SYSEXT_SCOPE_X"])
	}
}

func TestValidName(t *testing.T) {
	for _, s := range []string{"a", "docker-compose", "foo_1.2", "a+b", "X9", strings.Repeat("n", 128)} {
		if err := ValidName(s); err != nil {
			t.Errorf("ValidName(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", ".x", "-x", "a/b", "a b", "ü", "a\x00", "..", strings.Repeat("n", 129)} {
		err := ValidName(s)
		if err == nil || !strings.Contains(err.Error(), "image name") {
			t.Errorf("ValidName(%q) = %v, want an image name error", s, err)
		}
	}
}

func TestNormalizeArch(t *testing.T) {
	for in, want := range map[string]string{"": HostArch(), "any": AnyArch, "_any": AnyArch, "x86-64": "x86-64", "amd64": "x86-64", "AARCH64": "arm64", "armv7l": "arm"} {
		if got, err := NormalizeArch(in); err != nil || got != want {
			t.Errorf("NormalizeArch(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := NormalizeArch("vax"); err == nil {
		t.Error("NormalizeArch(vax) accepted")
	}
}
