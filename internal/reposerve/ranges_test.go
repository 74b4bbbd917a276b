package reposerve

import (
	"strings"
	"testing"
)

// FuzzPlanRange: the Range header handed on is the client's, none, or
// sorted, disjoint ranges inside the file, at most MaxRanges of them.
func FuzzPlanRange(f *testing.F) {
	for _, s := range []string{"bytes=0-", "bytes=4-", "bytes=-5", "bytes=0-0,2-2", "bytes=10-19,15-29", "bytes=100-199,0-149,-100", "bytes=,,0-1,", "bytes=5-1", "items=0-1", "bytes=0-1,+2-3"} {
		f.Add(s, int64(1000))
	}
	f.Fuzz(func(t *testing.T, v string, size int64) {
		if size < 0 {
			size = -size
		}
		if size < 0 {
			return
		}
		got := planRange(v, size)
		if got == v || got == "" {
			return
		}
		spec, ok := strings.CutPrefix(got, "bytes=")
		if !ok {
			t.Fatalf("%q → %q", v, got)
		}
		parts := strings.Split(spec, ",")
		if len(parts) > MaxRanges {
			t.Fatalf("%q → %d ranges", v, len(parts))
		}
		prev := int64(-2)
		for _, p := range parts {
			r, ok := resolve(p, size)
			if !ok || r.first > r.last || r.first <= prev+1 || r.last >= size {
				t.Fatalf("%q (size %d) → %q: bad range %q", v, size, got, p)
			}
			prev = r.last
		}
	})
}
