package cli

import (
	"strings"
	"testing"
)

// TestOneImageNameRule checks that bake and ext add refuse the same bad
// image names with the same message.
func TestOneImageNameRule(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, sampleTree)
	for _, name := range []string{".x", "-x", "a/b", "a b", "ü", strings.Repeat("n", 129)} {
		_, bakeErr, bakeCode := runCLI(t, "bake", src, "--name", name, "--version", "1", "--format", "dir", "-o", t.TempDir())
		_, addErr, addCode := runCLI(t, "ext", "add", "--repo", "http://127.0.0.1:1", "--root", t.TempDir(), "--", name)
		addErr = strings.TrimSpace(addErr)
		if bakeCode != 1 || addCode != 1 || addErr == "" || !strings.Contains(bakeErr, addErr) || strings.Contains(addErr, "\n") {
			t.Errorf("name %q: bake exit %d %q, ext add exit %d %q (want exit 1 and one message)", name, bakeCode, bakeErr, addCode, addErr)
		}
	}
	// A good name passes both checks: bake succeeds.
	if _, stderr, code := runCLI(t, "bake", src, "--name", "a_b+c.d-e", "--version", "1", "--format", "dir", "-o", t.TempDir()); code != 0 {
		t.Errorf("bake a_b+c.d-e: exit %d %s", code, stderr)
	}
}
