// Package version orders and validates version strings the way systemd
// does, so that Strata picks the same "newest" extension image or
// sysupdate instance that systemd-sysext and systemd-sysupdate would.
//
// Compare follows systemd's strverscmp_improved() (the UAPI Version Format
// Specification); IsValid follows sysupdate's version_is_valid().
package version

import (
	"slices"
	"strings"
)

// maxLen mirrors NAME_MAX: sysupdate versions end up inside file names, so a
// version longer than one path component can hold is useless.
const maxLen = 255

// Compare reports whether a is older (-1), equal (0) or newer (+1) than b,
// using the UAPI version ordering:
//
//	122.1 < 123~rc1-1 < 123 < 123-a < 123-a.1 < 123-1 < 123-1.1 < 123^post1
//	      < 123.a-1 < 123.1-1 < 123a-1 < 124-1
//
// Strings are split into numeric and alphabetic segments; any byte other
// than [0-9A-Za-z~^.-] only separates segments. At a segment boundary the
// precedence is "~" < end of string < "-" < "^" < "." < a directly attached
// segment. Numeric segments compare by value (leading zeros ignored) and are
// newer than alphabetic ones; alphabetic segments compare bytewise.
//
// Like the C original, a NUL byte ends the string. One deliberate choice: in
// systemd the comparison "string ended vs. not" right after a shared "~" is
// done on plain char, so on signed-char platforms (x86) a byte >= 0x80 there
// sorts before the end of the string. Compare always treats the string that
// ended as older, which is systemd's behaviour on unsigned-char platforms
// (arm, and sd-boot's char16 build) and the documented intent.
func Compare(a, b string) int {
	a, b = cutNUL(a), cutNUL(b)
	i, j := 0, 0
	for {
		// Everything outside the version alphabet is a mere separator.
		for i < len(a) && !isVersionChar(a[i]) {
			i++
		}
		for j < len(b) && !isVersionChar(b[j]) {
			j++
		}

		// "~" marks a pre-release: it sorts before everything, even
		// before the end of the string.
		if r, skip := prefixRule(a, b, i, j, '~'); r != 0 {
			return r
		} else if skip {
			i++
			j++
		}

		// A string with fewer segments is older (only "~" beats that,
		// which is why this check comes second).
		if i >= len(a) || j >= len(b) {
			return cmpEnd(i >= len(a), j >= len(b))
		}

		// "-" (version/release separator), "^" (patched release) and
		// "." (point release), in rising precedence.
		for _, sep := range [...]byte{'-', '^', '.'} {
			if r, skip := prefixRule(a, b, i, j, sep); r != 0 {
				return r
			} else if skip {
				i++
				j++
			}
		}

		if isDigit(at(a, i)) || isDigit(at(b, j)) {
			ei, ej := scan(a, i, isDigit), scan(b, j, isDigit)
			// A number beats an alphabetic or empty segment.
			if r := cmpBool(ei != i, ej != j); r != 0 {
				return r
			}
			// Leading zeros carry no value: 00123 == 123.
			for i < ei && a[i] == '0' {
				i++
			}
			for j < ej && b[j] == '0' {
				j++
			}
			// Without leading zeros the longer number is larger;
			// equal lengths compare digit by digit, which avoids
			// overflow on arbitrarily long numbers.
			if r := cmpInt(ei-i, ej-j); r != 0 {
				return r
			}
			if r := strings.Compare(a[i:ei], b[j:ej]); r != 0 {
				return r
			}
			i, j = ei, ej
		} else {
			ei, ej := scan(a, i, isAlpha), scan(b, j, isAlpha)
			n := min(ei-i, ej-j)
			if r := strings.Compare(a[i:i+n], b[j:j+n]); r != 0 {
				return r
			}
			// "abc" < "abcde": the longer alphabetic run is newer.
			if r := cmpInt(ei-i, ej-j); r != 0 {
				return r
			}
			i, j = ei, ej
		}
	}
}

// prefixRule applies the shared rule for the prefix characters ~ - ^ .: if
// exactly one side is at sep, that side is older; if both are, both skip it.
func prefixRule(a, b string, i, j int, sep byte) (r int, skip bool) {
	ha, hb := at(a, i) == sep, at(b, j) == sep
	if !ha && !hb {
		return 0, false
	}
	if ha != hb {
		if ha {
			return -1, false
		}
		return 1, false
	}
	return 0, true
}

// cmpEnd orders two cursors of which at least one is at the end: the string
// that ended is older.
func cmpEnd(endA, endB bool) int {
	switch {
	case endA && endB:
		return 0
	case endA:
		return -1
	default:
		return 1
	}
}

func cmpBool(x, y bool) int {
	switch {
	case x == y:
		return 0
	case x:
		return 1
	default:
		return -1
	}
}

func cmpInt(x, y int) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	default:
		return 0
	}
}

// at returns s[i], or 0 past the end, so the scanner can look at "the
// current character" without bounds checks everywhere, just like C's NUL.
func at(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

func scan(s string, i int, class func(byte) bool) int {
	for i < len(s) && class(s[i]) {
		i++
	}
	return i
}

func cutNUL(s string) string {
	if k := strings.IndexByte(s, 0); k >= 0 {
		return s[:k]
	}
	return s
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlpha(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

func isVersionChar(c byte) bool {
	return isDigit(c) || isAlpha(c) || c == '~' || c == '-' || c == '^' || c == '.'
}

// IsValid reports whether v may be used as a sysupdate version (the @v
// wildcard of a match pattern): non-empty, at most 255 bytes and made only
// of [A-Za-z0-9.,_+-].
//
// The character set is systemd's (a superset of semver's); notably "~" and
// "^" are not allowed even though Compare gives them meaning. As in current
// systemd (filename_part_is_valid), "." and ".." are accepted: a version is
// only ever a part of a file name, never a whole one.
func IsValid(v string) bool {
	if v == "" || len(v) > maxLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !isDigit(c) && !isAlpha(c) && !strings.ContainsRune(".,_-+", rune(c)) {
			return false
		}
	}
	return true
}

// Sort orders vs from oldest to newest by Compare. It is stable, so strings
// that compare equal (e.g. "1.01" and "1.1") keep their input order and the
// result is deterministic.
func Sort(vs []string) {
	slices.SortStableFunc(vs, Compare)
}
