// Package repo is Strata's extension repository: the SHA256SUMS manifest
// in systemd-sysupdate's exact format, the index.json that describes every
// published version, the transfer definitions clients install, and
// publishing images into a flat directory atomically.
package repo

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxManifestSize bounds a SHA256SUMS read from the network.
const MaxManifestSize = 16 << 20

// ManifestName is the manifest's file name, SignatureName its detached
// OpenPGP signature.
const (
	ManifestName  = "SHA256SUMS"
	SignatureName = "SHA256SUMS.gpg"
)

// bestBeforePrefix marks a magic manifest entry carrying an expiry date.
const bestBeforePrefix = "BEST-BEFORE-"

// emptySHA256 is the hash a BEST-BEFORE entry should carry.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Entry is one manifest line.
type Entry struct {
	SHA256 string // lowercase hex
	Name   string
}

// Manifest is a parsed SHA256SUMS.
type Manifest struct {
	Entries []Entry
	// BestBefore is the date of a BEST-BEFORE-YYYY-MM-DD entry, if any.
	BestBefore *time.Time
	Warnings   []string
}

// Lookup returns the hash of name.
func (m *Manifest) Lookup(name string) (string, bool) {
	for _, e := range m.Entries {
		if e.Name == name {
			return e.SHA256, true
		}
	}
	return "", false
}

// ErrStale is returned when the manifest's best-before date has passed.
var ErrStale = errors.New("best before marker indicates out-of-date file list, refusing")

// CheckFresh refuses a manifest whose BEST-BEFORE date lies before now.
func (m *Manifest) CheckFresh(now time.Time) error {
	if m.BestBefore != nil && now.After(m.BestBefore.Add(24*time.Hour)) {
		return fmt.Errorf("%w (best before %s; set SYSTEMD_SYSUPDATE_VERIFY_FRESHNESS=0 to override)", ErrStale, m.BestBefore.Format(time.DateOnly))
	}
	return nil
}

// ParseManifest reads SHA256SUMS exactly as systemd-sysupdate does: each
// line is 64 hex digits, a space, ' ' or '*', a plain file name and '\n'.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("manifest larger than %d bytes", MaxManifestSize)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, fmt.Errorf("manifest contains a NUL byte")
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("manifest is not valid UTF-8")
	}
	m := &Manifest{}
	line := 0
	seen := map[string]bool{}
	for len(data) > 0 {
		line++
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("corrupt manifest at line %d: last line does not end in a newline", line)
		}
		l := string(data[:nl])
		data = data[nl+1:]
		if len(l) < 67 {
			return nil, fmt.Errorf("corrupt manifest at line %d: expected \"SHA256 *NAME\" or \"SHA256  NAME\", got %q", line, l)
		}
		if l[0] == '\\' {
			return nil, fmt.Errorf("manifest line %d: escaped file names are not supported", line)
		}
		sum := l[:64]
		if _, err := hex.DecodeString(sum); err != nil {
			return nil, fmt.Errorf("corrupt manifest at line %d: %q is not a SHA256 hex digest", line, sum)
		}
		if l[64] != ' ' || (l[65] != ' ' && l[65] != '*') {
			return nil, fmt.Errorf("corrupt manifest at line %d: expected a space and ' ' or '*' after the digest", line)
		}
		name := l[66:]
		if err := checkFileName(name); err != nil {
			return nil, fmt.Errorf("manifest line %d: %w", line, err)
		}
		sum = strings.ToLower(sum)
		if strings.HasPrefix(name, bestBeforePrefix) {
			d, err := time.Parse(time.DateOnly, strings.TrimPrefix(name, bestBeforePrefix))
			if err != nil || d.Format(time.DateOnly) != strings.TrimPrefix(name, bestBeforePrefix) {
				m.Warnings = append(m.Warnings, fmt.Sprintf("line %d: cannot parse best-before date %q, ignoring", line, name))
				continue
			}
			if sum != emptySHA256 {
				m.Warnings = append(m.Warnings, fmt.Sprintf("line %d: best-before entry does not carry the SHA256 of an empty file", line))
			}
			if m.BestBefore == nil || d.Before(*m.BestBefore) {
				m.BestBefore = &d
			}
			continue
		}
		if seen[name] {
			return nil, fmt.Errorf("manifest line %d: %s listed twice", line, name)
		}
		seen[name] = true
		m.Entries = append(m.Entries, Entry{SHA256: sum, Name: name})
	}
	return m, nil
}

// checkFileName accepts a plain file name: no '/', not "." or "..", no
// control characters, at most 255 bytes.
func checkFileName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 255 || strings.Contains(name, "/") {
		return fmt.Errorf("%q is not a valid file name", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%q contains control characters", name)
		}
	}
	return nil
}

// FormatManifest renders entries sorted by name in sha256sum's text
// format ("HEX  NAME\n"), which systemd parses.
func FormatManifest(entries []Entry) []byte {
	es := append([]Entry(nil), entries...)
	sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
	var b bytes.Buffer
	for _, e := range es {
		b.WriteString(e.SHA256)
		b.WriteString("  ")
		b.WriteString(e.Name)
		b.WriteByte('\n')
	}
	return b.Bytes()
}
