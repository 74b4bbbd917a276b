package repo

import (
	"strings"
	"testing"
)

func TestLookupSum(t *testing.T) {
	h := strings.Repeat("ab", 32)
	data := []byte("# comment\n" + strings.Repeat("cd", 32) + "  other.tgz\n" + h + " *dist/tool-linux.tgz\n")
	if got, ok := LookupSum(data, "tool-linux.tgz"); !ok || got != h {
		t.Errorf("got %q %v", got, ok)
	}
	if _, ok := LookupSum(data, "nope"); ok {
		t.Error("found missing entry")
	}
	if got, ok := FirstHash([]byte(strings.ToUpper(h) + "  file\n")); !ok || got != h {
		t.Errorf("FirstHash %q", got)
	}
	if _, ok := FirstHash([]byte("zz" + h[2:])); ok {
		t.Error("FirstHash accepted non-hex")
	}
}
