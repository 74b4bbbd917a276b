package sysupdate

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/stratalinux/strata/internal/sdparse"
	"github.com/stratalinux/strata/internal/version"
)

// Pattern is one parsed MatchPattern= expression: literal text and
// wildcards (@v, @u, …) that capture and format an instance's properties.
type Pattern struct {
	src   string
	elems []elem
}

type elem struct {
	lit  string // literal text (may contain '/')
	wild byte   // wildcard letter, 0 for a literal
}

// wildcards are the letters systemd's pattern language knows.
const wildcards = "vufagrtmsdlh"

// reserved literal characters: shell globbing and escaping.
const reserved = "$*?[]!\\|"

// ParsePattern parses a match pattern the way systemd-sysupdate does:
// printable ASCII except the reserved characters, each wildcard at most
// once, @v mandatory, two wildcards separated by literal text, @@ for "@".
func ParsePattern(s string) (Pattern, error) {
	if s == "" {
		return Pattern{}, fmt.Errorf("empty pattern")
	}
	p := Pattern{src: s}
	var lit strings.Builder
	seen := map[byte]bool{}
	flush := func() {
		if lit.Len() > 0 {
			p.elems = append(p.elems, elem{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return Pattern{}, fmt.Errorf("pattern %q: character 0x%02x not allowed", s, c)
		}
		if strings.IndexByte(reserved, c) >= 0 {
			return Pattern{}, fmt.Errorf("pattern %q: reserved character %q not allowed", s, c)
		}
		if c != '@' {
			lit.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return Pattern{}, fmt.Errorf("pattern %q: lone '@' at the end (write @@ for a literal @)", s)
		}
		i++
		w := s[i]
		if w == '@' {
			lit.WriteByte('@')
			continue
		}
		if strings.IndexByte(wildcards, w) < 0 {
			return Pattern{}, fmt.Errorf("pattern %q: unknown wildcard @%c", s, w)
		}
		if seen[w] {
			return Pattern{}, fmt.Errorf("pattern %q: wildcard @%c used twice", s, w)
		}
		seen[w] = true
		if lit.Len() == 0 && len(p.elems) > 0 && p.elems[len(p.elems)-1].wild != 0 {
			return Pattern{}, fmt.Errorf("pattern %q: wildcards @%c and @%c must be separated by literal text", s, p.elems[len(p.elems)-1].wild, w)
		}
		flush()
		p.elems = append(p.elems, elem{wild: w})
	}
	flush()
	if !seen['v'] {
		return Pattern{}, fmt.Errorf("pattern %q: lacks the version wildcard @v", s)
	}
	return p, nil
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.src }

// Depth is the number of '/' in the pattern: how many directory levels
// an instance name spans.
func (p Pattern) Depth() int { return strings.Count(p.literalText(), "/") }

func (p Pattern) literalText() string {
	var b strings.Builder
	for _, e := range p.elems {
		b.WriteString(e.lit)
	}
	return b.String()
}

// Fields are the properties a pattern captures from, or writes into, an
// instance name. Nil pointers are "not given".
type Fields struct {
	Version       string
	PartitionUUID string
	Flags         *uint64
	NoAuto        *bool
	GrowFS        *bool
	ReadOnly      *bool
	Mtime         *uint64 // µs since the epoch
	Mode          *uint32
	Size          *uint64
	TriesDone     *uint64
	TriesLeft     *uint64
	SHA256        string
}

// Match reports whether name (a path relative to the resource, '/'
// separated) is an instance of the pattern, and what it captured. The
// whole name must be consumed; a wildcard captures up to the first
// occurrence of the literal that follows it and never across '/'.
func (p Pattern) Match(name string) (Fields, bool) {
	var f Fields
	rest := name
	for i, e := range p.elems {
		if e.wild == 0 {
			if !strings.HasPrefix(rest, e.lit) {
				return Fields{}, false
			}
			rest = rest[len(e.lit):]
			continue
		}
		var val string
		if i+1 < len(p.elems) {
			next := p.elems[i+1].lit
			k := strings.Index(rest, next)
			if k < 0 {
				return Fields{}, false
			}
			val = rest[:k]
		} else {
			val = rest
		}
		if val == "" || strings.Contains(val, "/") {
			return Fields{}, false
		}
		if err := f.set(e.wild, val); err != nil {
			return Fields{}, false
		}
		rest = rest[len(val):]
	}
	if rest != "" {
		return Fields{}, false
	}
	return f, true
}

func (f *Fields) set(w byte, v string) error {
	switch w {
	case 'v':
		if !version.IsValid(v) {
			return fmt.Errorf("invalid version %q", v)
		}
		f.Version = v
	case 'u':
		u, err := parseUUID(v)
		if err != nil {
			return err
		}
		f.PartitionUUID = u
	case 'f':
		n, err := strconv.ParseUint(v, 16, 64)
		if err != nil {
			return err
		}
		f.Flags = &n
	case 'a', 'g', 'r':
		b, err := sdparse.Boolean(v)
		if err != nil {
			return err
		}
		switch w {
		case 'a':
			f.NoAuto = &b
		case 'g':
			f.GrowFS = &b
		default:
			f.ReadOnly = &b
		}
	case 't':
		n, err := parseDecimal(v)
		if err != nil || n == ^uint64(0) || n/1e6 > 1<<62 {
			return fmt.Errorf("invalid time %q", v)
		}
		f.Mtime = &n
	case 'm':
		n, err := strconv.ParseUint(v, 8, 32)
		if err != nil || n&^0o775 != 0 {
			return fmt.Errorf("invalid mode %q", v)
		}
		m := uint32(n)
		f.Mode = &m
	case 's', 'd', 'l':
		n, err := parseDecimal(v)
		if err != nil {
			return err
		}
		switch w {
		case 's':
			f.Size = &n
		case 'd':
			f.TriesDone = &n
		default:
			f.TriesLeft = &n
		}
	case 'h':
		if len(v) != 64 {
			return fmt.Errorf("invalid sha256 %q", v)
		}
		if _, err := hex.DecodeString(v); err != nil {
			return err
		}
		f.SHA256 = strings.ToLower(v)
	}
	return nil
}

func parseDecimal(v string) (uint64, error) {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, fmt.Errorf("not a decimal number: %q", v)
		}
	}
	return strconv.ParseUint(v, 10, 64)
}

func parseUUID(v string) (string, error) {
	s := strings.ReplaceAll(v, "-", "")
	if len(s) != 32 {
		return "", fmt.Errorf("invalid UUID %q", v)
	}
	if len(v) == 36 && (v[8] != '-' || v[13] != '-' || v[18] != '-' || v[23] != '-') {
		return "", fmt.Errorf("invalid UUID %q", v)
	}
	if len(v) != 32 && len(v) != 36 {
		return "", fmt.Errorf("invalid UUID %q", v)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("invalid UUID %q", v)
	}
	return strings.ToLower(s), nil
}

// Format builds an instance name from fields. @l and @d default to 3 and
// 0 (systemd's defaults); every other wildcard must be given.
func (p Pattern) Format(f Fields) (string, error) {
	var b strings.Builder
	for _, e := range p.elems {
		if e.wild == 0 {
			b.WriteString(e.lit)
			continue
		}
		v, err := f.format(e.wild)
		if err != nil {
			return "", fmt.Errorf("pattern %q: %w", p.src, err)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func (f Fields) format(w byte) (string, error) {
	missing := fmt.Errorf("no value for @%c", w)
	b01 := func(p *bool) (string, error) {
		if p == nil {
			return "", missing
		}
		if *p {
			return "1", nil
		}
		return "0", nil
	}
	u := func(p *uint64, def *uint64) (string, error) {
		if p == nil {
			p = def
		}
		if p == nil {
			return "", missing
		}
		return strconv.FormatUint(*p, 10), nil
	}
	switch w {
	case 'v':
		if f.Version == "" {
			return "", missing
		}
		return f.Version, nil
	case 'u':
		if f.PartitionUUID == "" {
			return "", missing
		}
		return f.PartitionUUID, nil
	case 'f':
		if f.Flags == nil {
			return "", missing
		}
		return strconv.FormatUint(*f.Flags, 16), nil
	case 'a':
		return b01(f.NoAuto)
	case 'g':
		return b01(f.GrowFS)
	case 'r':
		return b01(f.ReadOnly)
	case 't':
		return u(f.Mtime, nil)
	case 'm':
		if f.Mode == nil {
			return "", missing
		}
		return fmt.Sprintf("%03o", *f.Mode), nil
	case 's':
		return u(f.Size, nil)
	case 'd':
		zero := uint64(0)
		return u(f.TriesDone, &zero)
	case 'l':
		three := uint64(3)
		return u(f.TriesLeft, &three)
	case 'h':
		if f.SHA256 == "" {
			return "", missing
		}
		return f.SHA256, nil
	}
	return "", missing
}

// MatchAny tries the patterns in order; the first match wins.
func MatchAny(ps []Pattern, name string) (Fields, bool) {
	for _, p := range ps {
		if f, ok := p.Match(name); ok {
			return f, true
		}
	}
	return Fields{}, false
}
