package download

import (
	"strconv"
	"testing"
)

// FuzzContentRange holds parseContentRange to RFC 9110's
// "bytes FIRST-LAST/COMPLETE": no panic, and an accepted range is one a
// server could have sent.
func FuzzContentRange(f *testing.F) {
	for _, s := range []string{
		"bytes 100-199/200", "bytes 0-0/*", "bytes */200", "bytes 0-1048575/1048576",
		"bytes 700000-1048698/1048699", "items 1-2/3", "bytes 5-1/3", "bytes -1-2/3",
		"bytes +1-2/3", "bytes 1-2/+3", "bytes 9223372036854775807-9223372036854775807/*",
		"bytes  1-2/3", "bytes 1-2/3 ", "bytes 0x1-2/3", "bytes 1-/3", "bytes 01-02/03",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		start, end, total, ok := parseContentRange(v)
		if !ok {
			return
		}
		if start < 0 || end < start {
			t.Fatalf("%q: accepted range %d-%d", v, start, end)
		}
		if total != -1 && (total <= 0 || end >= total) {
			t.Fatalf("%q: accepted range %d-%d of %d", v, start, end, total)
		}
		// What was accepted is exactly the canonical form.
		want := "bytes " + strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(end, 10) + "/"
		if total == -1 {
			want += "*"
		} else {
			want += strconv.FormatInt(total, 10)
		}
		if v != want {
			t.Fatalf("%q accepted, but it is not %q", v, want)
		}
	})
}
