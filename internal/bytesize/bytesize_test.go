package bytesize

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// oldStrata and oldFlake are the two parsers this package replaced
// (cli.parseSize and flake.ParseSize), kept to prove the one parser
// answers as they did.
func oldStrata(s string) (int64, error) {
	s = strings.TrimSpace(strings.TrimSuffix(strings.ToUpper(s), "B"))
	mult := int64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			s = s[:len(s)-1]
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a number with an optional K, M, G or T suffix", s)
	}
	return n * mult, nil
}

func oldFlake(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, fmt.Errorf("size %q: want a number and a unit, e.g. 20GiB or 20g", s)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q (use B, KiB, MiB, GiB, TiB, kB, MB, GB, TB or k, m, g, t)", s, unit)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("size %q: not a positive number", s)
	}
	v := f * mult
	if v > 1<<50 {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return int64(v), nil
}

// strataBlankB is the one input shape where the Strata dialect may
// answer otherwise than cli.parseSize did: blanks next to a B ("4 B",
// "4K B", "4B "), which that parser let through or refused by accident
// of the order it trimmed in. The dialect treats blanks around the input
// as blanks and refuses them inside it.
func strataBlankB(s string) bool {
	return strings.ContainsAny(s, "bB") && strings.IndexFunc(s, unicode.IsSpace) >= 0
}

var seeds = []string{"0", "1", "123", "10K", "10k", "64M", "4G", "4GB", "4gb", "1T", "1TB", " 8G ", "", "B", "K", "x",
	"4X", "-1", "-0", "+5", "1.5G", "4 K", "4K B", "4 B", "4KIB", "4BB", "007", "9223372036854775807", "4611686018427387904",
	"4194304T", "4194303T", "20GiB", "20g", "512MB", "1048576", "0.5k", "1e3", "..", "1.2.3", "20 GiB", "2000TB", "1024T", ".5g"}

func check(t *testing.T, s string) {
	n, err := Parse(s, Strata)
	on, oerr := oldStrata(s)
	if strataBlankB(s) {
		if tn, terr := Parse(strings.TrimSpace(s), Strata); tn != n || (terr == nil) != (err == nil) {
			t.Errorf("Strata %q = %d, %v; but %q = %d, %v", s, n, err, strings.TrimSpace(s), tn, terr)
		}
	} else if n != on || fmt.Sprint(err) != fmt.Sprint(oerr) {
		t.Errorf("Strata %q = %d, %v; before %d, %v", s, n, err, on, oerr)
	}
	n, err = Parse(s, FlakePilot)
	on, oerr = oldFlake(s)
	if n != on || fmt.Sprint(err) != fmt.Sprint(oerr) {
		t.Errorf("FlakePilot %q = %d, %v; before %d, %v", s, n, err, on, oerr)
	}
}

func TestParseAnswersAsBefore(t *testing.T) {
	for _, s := range seeds {
		check(t, s)
	}
	if n, _ := Parse("4G", Strata); n != 4<<30 {
		t.Errorf("4G = %d", n)
	}
	if n, _ := Parse("4GB", FlakePilot); n != 4e9 {
		t.Errorf("flake-pilot 4GB = %d", n)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 64 {
			return
		}
		check(t, s)
	})
}
