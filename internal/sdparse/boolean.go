// Package sdparse reads systemd's basic value vocabulary the way systemd
// does: booleans (parse_boolean) and architecture names (architecture.c).
// Every configuration file, xattr and command-line flag that systemd would
// read with these rules goes through here, so that Strata accepts exactly
// the spellings systemd accepts, in every place.
package sdparse

import "fmt"

// Boolean parses a boolean the way systemd's parse_boolean() does:
// 1/yes/y/true/t/on and 0/no/n/false/f/off, ignoring ASCII case. Nothing
// else is accepted, not even surrounding blanks.
func Boolean(s string) (bool, error) {
	// ASCII-only folding on purpose: strings.EqualFold would also accept
	// e.g. "yeſ" (U+017F folds to s), which systemd's strcaseeq does not.
	for _, t := range [...]string{"1", "yes", "y", "true", "t", "on"} {
		if asciiEqualFold(s, t) {
			return true, nil
		}
	}
	for _, f := range [...]string{"0", "no", "n", "false", "f", "off"} {
		if asciiEqualFold(s, f) {
			return false, nil
		}
	}
	return false, fmt.Errorf("invalid boolean %q", s)
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
