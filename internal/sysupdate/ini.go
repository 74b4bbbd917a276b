package sysupdate

import (
	"fmt"
	"strings"
)

// maxDefinitionSize bounds one definition file or drop-in: they are a few
// hundred bytes in practice.
const maxDefinitionSize = 1 << 20

// entry is one KEY=VALUE assignment with where it came from.
type entry struct {
	Section, Key, Value string
	File                string
	Line                int
}

// where names the file and line of an entry for error messages.
func (e entry) where() string { return fmt.Sprintf("%s:%d", e.File, e.Line) }

// parseINI reads systemd's unit-file syntax: [Section] headers,
// KEY=VALUE lines, '#' and ';' comments, a trailing backslash continues a
// line. Errors name file:line.
func parseINI(file string, data []byte) ([]entry, error) {
	if len(data) > maxDefinitionSize {
		return nil, fmt.Errorf("%s: file larger than %d bytes", file, maxDefinitionSize)
	}
	if strings.IndexByte(string(data), 0) >= 0 {
		return nil, fmt.Errorf("%s: contains a NUL byte", file)
	}
	var out []entry
	section := ""
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		lineNo := i + 1
		l := strings.TrimRight(lines[i], "\r")
		// Continuation lines: a trailing backslash joins the next line.
		for strings.HasSuffix(l, "\\") && i+1 < len(lines) {
			l = l[:len(l)-1] + " " + strings.TrimRight(lines[i+1], "\r")
			i++
		}
		t := strings.TrimSpace(l)
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		if t[0] == '[' {
			if t[len(t)-1] != ']' || len(t) < 3 {
				return nil, fmt.Errorf("%s:%d: invalid section header %q", file, lineNo, t)
			}
			section = t[1 : len(t)-1]
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: expected KEY=VALUE, got %q", file, lineNo, t)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "" {
			return nil, fmt.Errorf("%s:%d: empty key", file, lineNo)
		}
		if section == "" {
			return nil, fmt.Errorf("%s:%d: assignment %q outside of any section", file, lineNo, k)
		}
		out = append(out, entry{Section: section, Key: k, Value: v, File: file, Line: lineNo})
	}
	return out, nil
}

// Specifiers maps a specifier letter (%a, %A, …) to its value.
type Specifiers map[byte]string

// expand replaces %X specifiers; %% is a literal percent sign.
func (s Specifiers) expand(v string) (string, error) {
	if !strings.Contains(v, "%") {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+1 >= len(v) {
			return "", fmt.Errorf("lone %% at the end of %q", v)
		}
		i++
		if v[i] == '%' {
			b.WriteByte('%')
			continue
		}
		val, ok := s[v[i]]
		if !ok {
			return "", fmt.Errorf("unknown or unavailable specifier %%%c in %q", v[i], v)
		}
		b.WriteString(val)
	}
	return b.String(), nil
}

// unescapeWords splits a space-separated list and resolves C escapes and
// double or single quotes, as systemd's extract_first_word does.
func unescapeWords(v string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
			inWord = true
		case c == '\\':
			if i+1 >= len(v) {
				return nil, fmt.Errorf("trailing backslash in %q", v)
			}
			i++
			switch v[i] {
			case 'n':
				cur.WriteByte('\n')
			case 't':
				cur.WriteByte('\t')
			case 's':
				cur.WriteByte(' ')
			default:
				cur.WriteByte(v[i])
			}
			inWord = true
		case quote == 0 && (c == ' ' || c == '\t'):
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q", v)
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}
