package archive

import "testing"

// TestLinkEscapes is the table for the one symlink-escape rule that both
// archive (unpacking) and lint (baked trees) apply.
func TestLinkEscapes(t *testing.T) {
	for _, c := range []struct {
		link, target string
		want         bool
	}{
		// Absolute and empty targets resolve outside the tree on disk.
		{"usr/bin/x", "/etc/passwd", true},
		{"x", "/", true},
		{"usr/bin/x", "", true},
		// Climbing with "..": a link in usr/bin may climb two levels.
		{"usr/bin/x", "../lib/x", false},
		{"usr/bin/x", "../../x", false},
		{"usr/bin/x", "../../../x", true},
		{"x", "..", true},
		{"x", "../x", true},
		{"x", "y", false},
		{"x", "./y/../z", false},
		// Nested dirs: going down first buys depth, climbing past it does not.
		{"usr/x", "a/../../..", true},
		{"usr/x", "a/b/../../../x", false},
		{"usr/x", "a/b/../../../../x", true},
		{"a/b/c/d/x", "../../../../etc", false},
		{"a/b/c/d/x", "../../../../../etc", true},
		// Repeated slashes and dots in target or link change nothing.
		{"usr//bin/x", "../..//x", false},
		{"./usr/bin/x", "../../x", false},
		{"usr/bin/x", ".././../.././x", true},
	} {
		if got := LinkEscapes(c.link, c.target); got != c.want {
			t.Errorf("LinkEscapes(%q, %q) = %v, want %v", c.link, c.target, got, c.want)
		}
	}
}
