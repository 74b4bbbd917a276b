package merge

import (
	"reflect"
	"testing"
)

// The one escape-aware split serves both mount options (',') and the
// lowerdir list (':'); a backslash protects the next byte from either.
func TestSplitEscaped(t *testing.T) {
	for _, c := range []struct {
		in   string
		sep  byte
		want []string
	}{
		{"", ',', []string{""}},
		{"a", ',', []string{"a"}},
		{"a,b,,c", ',', []string{"a", "b", "", "c"}},
		{`lowerdir=/a\,b:/c,noatime`, ',', []string{`lowerdir=/a\,b:/c`, "noatime"}},
		{`/a\:b:/c`, ':', []string{`/a\:b`, "/c"}},
		{`/a,b:/c`, ':', []string{"/a,b", "/c"}},
		{`a\\,b`, ',', []string{`a\\`, "b"}},
		{`trailing\`, ',', []string{`trailing\`}},
		{"a,", ',', []string{"a", ""}},
	} {
		if got := splitEscaped(c.in, c.sep); !reflect.DeepEqual(got, c.want) {
			t.Errorf("splitEscaped(%q, %q) = %q, want %q", c.in, c.sep, got, c.want)
		}
	}
}

// splitLayers gives fsconfig each layer's path with its escapes removed.
func TestSplitLayers(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"/a:/b", []string{"/a", "/b"}},
		{`/with\:colon:/with\,comma:/back\\slash`, []string{"/with:colon", "/with,comma", `/back\slash`}},
		{"/only", []string{"/only"}},
	} {
		if got := splitLayers(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("splitLayers(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
