// Package osrelease reads os-release(5) and extension-release files and
// decides, as systemd-sysext and systemd-confext do, whether an extension
// image's release data is compatible with the host.
//
// Parsing follows systemd's env-file reader (load_env_file_pairs), because a
// file that systemd reads one way and Strata another would make the two
// disagree about which extensions to merge. Where this package deliberately
// differs (it reports problems as warnings and skips keys that are not valid
// environment variable names) the differences cannot change a compatibility
// decision, since every key that decision looks at is a valid name.
package osrelease

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxSize bounds how much release data Parse reads. Real os-release files are
// a few hundred bytes; the bound keeps a hostile image from making us buffer
// an unbounded file.
const MaxSize = 4 << 20

var (
	// ErrTooLarge is returned (wrapped) for input longer than MaxSize.
	ErrTooLarge = errors.New("release data too large")
	// ErrInvalidUTF8 is returned (wrapped) when an assignment's key or value
	// is not valid UTF-8. systemd refuses the whole file in that case, not
	// just the line, so we do too.
	ErrInvalidUTF8 = errors.New("invalid UTF-8")
)

// Release holds the KEY=VALUE pairs of an os-release or extension-release
// file. A key that is present with an empty value ("SYSEXT_SCOPE=") is
// different from an absent key: systemd treats them differently.
type Release map[string]string

// Warning describes a problem in the input that was tolerated: the offending
// line was skipped (or, for an unterminated quote, taken as is).
type Warning struct {
	Line int // 1-based line on which the problem starts
	Msg  string
}

func (w Warning) String() string {
	return fmt.Sprintf("line %d: %s", w.Line, w.Msg)
}

// ParseFile reads and parses the release file at path.
func ParseFile(path string) (Release, []Warning, error) {
	f, err := os.Open(path)
	if err != nil {
		// *PathError already names the file.
		return nil, nil, fmt.Errorf("reading release file: %w", err)
	}
	defer f.Close()
	rel, warns, err := Parse(f)
	if err != nil {
		return nil, warns, fmt.Errorf("release file %s: %w", path, err)
	}
	return rel, warns, nil
}

// Parse reads release data in systemd's env-file syntax:
//
//   - Lines are KEY=VALUE. Whitespace before the key, around "=" and at
//     the end of an unquoted value is dropped; whitespace inside the key is
//     kept (and then makes the key invalid).
//   - Lines whose first non-blank character is "#" or ";" are comments. A
//     "#" later in a line is ordinary text.
//   - A value may mix unquoted, '…' and "…" parts, which are concatenated,
//     as long as the quotes open the value or follow a closing quote
//     (A="x"'y'z is "xyz"; in A=x"y" the quotes are literal).
//   - Unquoted, a backslash takes the next character literally and a
//     backslash-newline joins lines. Inside double quotes only \" \\ \` \$
//     are escapes and backslash-newline joins lines; any other backslash is
//     kept. Inside single quotes nothing is special.
//   - "\r" ends a line just like "\n"; a NUL byte ends the input.
//   - A later assignment to the same key wins.
//
// Lines without "=" and keys that are not valid environment variable names
// are skipped with a Warning. Parse fails on input larger than MaxSize, on
// read errors, and on an assignment that is not valid UTF-8 (matching
// systemd, which rejects the whole file).
func Parse(r io.Reader) (Release, []Warning, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading release data: %w", err)
	}
	if len(data) > MaxSize {
		return nil, nil, fmt.Errorf("more than %d bytes: %w", MaxSize, ErrTooLarge)
	}
	return parseBytes(data)
}

type state int

const (
	preKey       state = iota // skipping blanks before a key
	inKey                     // reading the key, before "="
	preValue                  // after "=" or a closing quote
	inValue                   // unquoted value text
	valueEscape               // after a backslash in unquoted text
	inSingle                  // inside '…'
	inDouble                  // inside "…"
	doubleEscape              // after a backslash inside "…"
	inComment                 // rest of a comment line
)

// parser is the state of one Parse call; it carries no state between calls.
type parser struct {
	rel   Release
	warns []Warning
	seen  map[string]int // key → line it was last assigned on

	key, value []byte
	// keyTrail/valueTrail are where trailing blanks of the key / unquoted
	// value start, or -1; that is how systemd trims "KEY =" and "=v  ".
	keyTrail, valueTrail int
	keyLine, quoteLine   int
}

func isNewline(c byte) bool { return c == '\n' || c == '\r' }
func isBlank(c byte) bool   { return c == ' ' || c == '\t' || isNewline(c) }

// needsEscape lists what a backslash escapes inside double quotes; it is the
// shell's set, so shell-sourced os-release files mean the same thing here.
func needsEscape(c byte) bool { return c == '"' || c == '\\' || c == '`' || c == '$' }

func parseBytes(data []byte) (Release, []Warning, error) {
	p := &parser{rel: Release{}, seen: map[string]int{}, keyTrail: -1, valueTrail: -1}

	// systemd walks the buffer as a C string, so a NUL byte silently ends
	// the input. Say so instead of silently dropping the rest.
	if k := bytes.IndexByte(data, 0); k >= 0 {
		p.warn(1+lineBreaks(data[:k]), "NUL byte; ignoring the rest of the input")
		data = data[:k]
	}

	st := preKey
	line := 1
	for i := 0; i < len(data); i++ {
		c := data[i]
		var err error
		switch st {
		case preKey:
			switch {
			case c == '#' || c == ';':
				st = inComment
			case !isBlank(c):
				st = inKey
				p.key = append(p.key[:0], c)
				p.keyTrail = -1
				p.keyLine = line
			}

		case inKey:
			switch {
			case isNewline(c):
				p.warn(p.keyLine, fmt.Sprintf("no '=' in %s; ignoring line", quoteForMsg(string(p.key))))
				st = preKey
			case c == '=':
				st = preValue
				p.value = p.value[:0]
				p.valueTrail = -1
			default:
				p.key, p.keyTrail = appendTracked(p.key, p.keyTrail, c)
			}

		case preValue:
			switch {
			case isNewline(c):
				err = p.push(false)
				st = preKey
			case c == '\'':
				st = inSingle
				p.quoteLine = line
			case c == '"':
				st = inDouble
				p.quoteLine = line
			case c == '\\':
				st = valueEscape
			case !isBlank(c):
				st = inValue
				p.value = append(p.value, c)
			}

		case inValue:
			switch {
			case isNewline(c):
				err = p.push(true)
				st = preKey
			case c == '\\':
				// An escaped character is never trailing blank
				// space, even if it is a blank.
				st = valueEscape
				p.valueTrail = -1
			default:
				p.value, p.valueTrail = appendTracked(p.value, p.valueTrail, c)
			}

		case valueEscape:
			st = inValue
			if !isNewline(c) { // backslash-newline joins lines
				p.value = append(p.value, c)
			}

		case inSingle:
			if c == '\'' {
				st = preValue
			} else {
				p.value = append(p.value, c)
			}

		case inDouble:
			switch c {
			case '"':
				st = preValue
			case '\\':
				st = doubleEscape
			default:
				p.value = append(p.value, c)
			}

		case doubleEscape:
			st = inDouble
			switch {
			case needsEscape(c):
				p.value = append(p.value, c)
			case c == '\n':
				// Continuation line: both characters vanish. Note
				// that systemd checks only "\n" here, so a "\r"
				// after the backslash is kept with it.
			default:
				// Like the shell, keep the backslash of a
				// non-escape such as "\n" written as two chars.
				p.value = append(p.value, '\\', c)
			}

		case inComment:
			// systemd ≥ 254 no longer continues a comment line ending
			// in a backslash, so a comment simply ends at the newline.
			if isNewline(c) {
				st = preKey
			}
		}
		if err != nil {
			return nil, p.warns, err
		}
		// Count "\r\n" as one line break for messages; the parser
		// itself treats each of them as a newline.
		if c == '\n' || (c == '\r' && (i+1 == len(data) || data[i+1] != '\n')) {
			line++
		}
	}

	// At the end of input an assignment in progress still counts, even an
	// unterminated quote (systemd takes what was read so far).
	var err error
	switch st {
	case inKey:
		p.warn(p.keyLine, fmt.Sprintf("no '=' in %s; ignoring line", quoteForMsg(string(p.key))))
	case preValue, valueEscape:
		err = p.push(false)
	case inValue:
		err = p.push(true)
	case inSingle, inDouble, doubleEscape:
		p.warn(p.quoteLine, fmt.Sprintf("unterminated quote in value of %s at end of input", quoteForMsg(p.trimmedKey())))
		err = p.push(false)
	}
	if err != nil {
		return nil, p.warns, err
	}
	return p.rel, p.warns, nil
}

// appendTracked appends c to buf and maintains the start of its trailing
// run of blanks.
func appendTracked(buf []byte, trail int, c byte) ([]byte, int) {
	if !isBlank(c) {
		trail = -1
	} else if trail < 0 {
		trail = len(buf)
	}
	return append(buf, c), trail
}

func (p *parser) trimmedKey() string {
	if p.keyTrail >= 0 {
		return string(p.key[:p.keyTrail])
	}
	return string(p.key)
}

// push stores the assignment just completed. chomp says whether the value
// ended unquoted, so its trailing blanks are dropped.
func (p *parser) push(chomp bool) error {
	key := p.trimmedKey()
	val := p.value
	if chomp && p.valueTrail >= 0 {
		val = val[:p.valueTrail]
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("line %d: key %s: %w", p.keyLine, quoteForMsg(key), ErrInvalidUTF8)
	}
	if !utf8.Valid(val) {
		return fmt.Errorf("line %d: value of %s: %w", p.keyLine, quoteForMsg(key), ErrInvalidUTF8)
	}
	if !ValidKey(key) {
		p.warn(p.keyLine, fmt.Sprintf("invalid key %s; ignoring line", quoteForMsg(key)))
		return nil
	}
	if prev, ok := p.seen[key]; ok {
		p.warn(p.keyLine, fmt.Sprintf("%s already set on line %d; the later value wins", key, prev))
	}
	p.seen[key] = p.keyLine
	p.rel[key] = string(val)
	return nil
}

func (p *parser) warn(line int, msg string) {
	p.warns = append(p.warns, Warning{Line: line, Msg: msg})
}

func lineBreaks(b []byte) int {
	n := 0
	for i, c := range b {
		if c == '\n' || (c == '\r' && (i+1 == len(b) || b[i+1] != '\n')) {
			n++
		}
	}
	return n
}

// ValidKey reports whether k is a valid environment variable name, the rule
// os-release(5) gives for keys: [A-Za-z_][A-Za-z0-9_]*.
func ValidKey(k string) bool {
	if k == "" || (k[0] >= '0' && k[0] <= '9') {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			return false
		}
	}
	return true
}

// quoteForMsg renders untrusted text (it comes from extension images) for
// a one-line message: as is when harmless, Go-quoted otherwise, so control
// characters and newlines can't forge log lines.
func quoteForMsg(s string) string {
	const maxShown = 64
	if len(s) > maxShown {
		s = s[:maxShown] + "…"
	}
	if s == "" || strings.ContainsFunc(s, func(r rune) bool {
		return r == utf8.RuneError || r <= ' ' || r == '"' || r == 0x7f || (r >= 0x80 && r < 0xa0)
	}) {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// Format serialises r in the syntax Parse reads, one KEY=VALUE per line in
// key order, so the output is deterministic and Parse(Format(r)) == r.
// Values made only of safe characters are written bare (ID=fedora); all
// others are double-quoted with ", \, ` and $ escaped. Format fails for
// keys that are not valid names and for values that cannot survive a round
// trip: those with a NUL byte or invalid UTF-8.
func Format(r Release) ([]byte, error) {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	slices.Sort(keys)

	var b bytes.Buffer
	for _, k := range keys {
		v := r[k]
		if !ValidKey(k) {
			return nil, fmt.Errorf("format release data: invalid key %s", quoteForMsg(k))
		}
		if strings.IndexByte(v, 0) >= 0 {
			return nil, fmt.Errorf("format release data: value of %s contains a NUL byte", k)
		}
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("format release data: value of %s: %w", k, ErrInvalidUTF8)
		}
		b.WriteString(k)
		b.WriteByte('=')
		if isBare(v) {
			b.WriteString(v)
		} else {
			b.WriteByte('"')
			for i := 0; i < len(v); i++ {
				if needsEscape(v[i]) {
					b.WriteByte('\\')
				}
				b.WriteByte(v[i])
			}
			b.WriteByte('"')
		}
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// isBare reports whether v can be written without quotes: a conservative
// set that no shell or env-file reader treats specially.
func isBare(v string) bool {
	if v == "" {
		return false // VAR="" reads better than VAR=
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("._-+,:/@%", c) >= 0:
		default:
			return false
		}
	}
	return true
}
