package reposerve

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// byteRange is an inclusive range of a file's bytes.
type byteRange struct{ first, last int64 }

// planRange decides how to answer a Range header for a file of size
// bytes. It returns the header to hand to http.ServeContent: v itself
// when it is fine, "" to serve the whole file (more than MaxRanges
// ranges, as Apache does), or the ranges sorted and coalesced when some
// overlap or touch, so no byte is sent twice (RFC 9110 §14.2 allows
// both). Syntax it does not understand is passed on unchanged:
// ServeContent answers it with 416.
func planRange(v string, size int64) string {
	spec, ok := strings.CutPrefix(v, "bytes=")
	if !ok {
		return v
	}
	n := 0
	for s := range strings.SplitSeq(spec, ",") {
		if strings.TrimSpace(s) != "" {
			if n++; n > MaxRanges {
				return ""
			}
		}
	}
	if n < 2 {
		return v
	}
	rs := make([]byteRange, 0, n)
	for s := range strings.SplitSeq(spec, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		r, ok := resolve(s, size)
		if !ok {
			return v
		}
		if r.first <= r.last {
			rs = append(rs, r)
		}
	}
	if len(rs) < 2 {
		return v
	}
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b byteRange) int { return cmp.Compare(a.first, b.first) })
	merged := sorted[:1]
	for _, r := range sorted[1:] {
		if m := &merged[len(merged)-1]; r.first <= m.last+1 {
			m.last = max(m.last, r.last)
			continue
		}
		merged = append(merged, r)
	}
	if len(merged) == len(rs) {
		return v // disjoint: answered as asked, in the order asked
	}
	var b strings.Builder
	b.WriteString("bytes=")
	for i, r := range merged {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(r.first, 10) + "-" + strconv.FormatInt(r.last, 10))
	}
	return b.String()
}

// resolve turns "FIRST-LAST", "FIRST-" or "-SUFFIX" into bytes of a file
// of size bytes; an unsatisfiable range comes back empty (first > last).
func resolve(s string, size int64) (byteRange, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return byteRange{}, false
	}
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if a == "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 0 || b[0] == '+' {
			return byteRange{}, false
		}
		return byteRange{max(size-n, 0), size - 1}, true
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 || a[0] == '+' {
		return byteRange{}, false
	}
	last := size - 1
	if b != "" {
		l, err := strconv.ParseInt(b, 10, 64)
		if err != nil || l < first || b[0] == '+' {
			return byteRange{}, false
		}
		last = min(l, size-1)
	}
	return byteRange{first, last}, true
}
