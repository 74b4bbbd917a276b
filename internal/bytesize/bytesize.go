// Package bytesize reads sizes given on the command line and in
// configuration: a number and an optional unit. Strata's own flags
// (--max-size, --max-download, …) and flake-pilot's overlay sizes use
// the one parser with different unit tables.
package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

// Units is a size dialect: what each unit multiplies by, and whether the
// number may be a fraction or zero.
type Units struct {
	mult      map[string]float64 // lower-case unit → multiplier
	fractions bool               // "1.5g" (else a whole number, which may carry a sign)
	blankUnit bool               // blanks allowed between number and unit ("20 GiB")
	zero      bool               // "0" (Strata's "no limit")
	max       float64            // largest size
	// badNumber and badUnit word the errors.
	badNumber func(s string) error
	badUnit   func(s, unit string) error
}

// Strata is Strata's own flags' dialect: a whole number with an optional
// K, M, G or T, powers of 1024 (a trailing B is allowed: 4G, 4GB, 4g); 0
// is allowed and means no limit where a flag says so.
var Strata = Units{
	mult: map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kb": 1 << 10,
		"m": 1 << 20, "mb": 1 << 20,
		"g": 1 << 30, "gb": 1 << 30,
		"t": 1 << 40, "tb": 1 << 40,
	},
	zero: true,
	max:  1 << 62,
	badNumber: func(s string) error {
		return fmt.Errorf("size %q: want a number with an optional K, M, G or T suffix", strataNumber(s))
	},
}

// strataNumber is what Strata's errors have always quoted: the input in
// upper case without its unit.
func strataNumber(s string) string {
	s = strings.TrimSpace(strings.TrimSuffix(strings.ToUpper(s), "B"))
	if s != "" && strings.ContainsRune("KMGT", rune(s[len(s)-1])) {
		s = s[:len(s)-1]
	}
	return s
}

// FlakePilot is flake-pilot's ubyte dialect ("20GiB", "20g", "512MB"):
// binary multiples for single letters and *iB, decimal for kB/MB/GB;
// fractions allowed, zero not.
var FlakePilot = Units{
	mult: map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	},
	fractions: true,
	blankUnit: true,
	max:       1 << 50,
	badNumber: func(s string) error { return fmt.Errorf("size %q: not a positive number", s) },
	badUnit: func(s, unit string) error {
		return fmt.Errorf("size %q: unknown unit %q (use B, KiB, MiB, GiB, TiB, kB, MB, GB, TB or k, m, g, t)", s, unit)
	},
}

// Parse reads s in the dialect u.
func Parse(s string, u Units) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	if !u.fractions && i < len(t) && (t[i] == '+' || t[i] == '-') {
		i++
	}
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || u.fractions && t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(t[i:])
	if u.blankUnit {
		unit = strings.TrimSpace(unit)
	}
	mult, ok := u.mult[unit]
	switch {
	case num == "" && u.badUnit != nil:
		return 0, fmt.Errorf("size %q: want a number and a unit, e.g. 20GiB or 20g", s)
	case !ok && u.badUnit != nil:
		return 0, u.badUnit(s, unit)
	case !ok:
		return 0, u.badNumber(s)
	}
	if !u.fractions {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n < 0 || n == 0 && !u.zero || n > int64(u.max/mult) {
			return 0, u.badNumber(s)
		}
		return n * int64(mult), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || f == 0 && !u.zero {
		return 0, u.badNumber(s)
	}
	if f*mult > u.max {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return int64(f * mult), nil
}
