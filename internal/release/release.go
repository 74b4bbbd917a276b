// Package release is the vocabulary of an extension image's identity:
// its name, the OS and architecture it is for, the extension-release file
// that says so (read and written), and which of its directories hold
// systemd units. Baking, linting and inspecting all speak it; none of them
// owns it.
package release

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/osrelease"
)

// Release holds the fields of an extension-release file.
type Release struct {
	Class imageclass.Class
	// Name and Version are the image's own name and version
	// (SYSEXT_ID/SYSEXT_VERSION_ID, or the CONFEXT_ ones).
	Name, Version string
	// ID is the os-release ID the image is for; "_any" matches every OS.
	ID string
	// VersionID pins the OS version; Level the SYSEXT_LEVEL/CONFEXT_LEVEL.
	VersionID, Level string
	// Scope is SYSEXT_SCOPE/CONFEXT_SCOPE ("initrd system portable");
	// empty leaves it out (systemd's default: system and portable).
	Scope string
	// Arch is systemd's architecture name, or AnyArch to leave it out.
	Arch string
	// ReloadManager sets EXTENSION_RELOAD_MANAGER=1 (the image ships units).
	ReloadManager bool
	// Extra fields, written after the known ones in key order.
	Extra map[string]string
}

// ParseOS reads the --os flag: "ID", "ID:VERSION_ID" or "ID:level=LEVEL".
// A bare value after the colon is the OS's VERSION_ID (as os-release
// spells it: "12", "24.04", "3815.2.0"); the "level=" prefix selects
// SYSEXT_LEVEL (CONFEXT_LEVEL for a confext) instead, since both are free
// version strings and cannot be told apart by their shape.
func ParseOS(s string) (id, versionID, level string, err error) {
	if s == "" {
		return "_any", "", "", nil
	}
	id, rest, has := strings.Cut(s, ":")
	if !validReleaseValue(id, false) || id == "" {
		return "", "", "", fmt.Errorf("--os %q: ID must be lower-case letters, digits, '_', '-' and '.'", s)
	}
	if !has {
		return id, "", "", nil
	}
	if id == "_any" {
		return "", "", "", fmt.Errorf("--os %q: ID=_any cannot be pinned to a version or level", s)
	}
	switch {
	case strings.HasPrefix(rest, "level="):
		level = strings.TrimPrefix(rest, "level=")
	case strings.HasPrefix(rest, "version="):
		versionID = strings.TrimPrefix(rest, "version=")
	default:
		versionID = rest
	}
	if v := versionID + level; v == "" || !validReleaseValue(v, true) {
		return "", "", "", fmt.Errorf("--os %q: the version or level must be non-empty letters, digits, '.', '_', '-', '~' or '+'", s)
	}
	return id, versionID, level, nil
}

func validReleaseValue(s string, upper bool) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
		case upper && (r >= 'A' && r <= 'Z' || r == '~' || r == '+'):
		default:
			return false
		}
	}
	return true
}

func (r Release) prefix() string {
	if r.Class == imageclass.Confext {
		return "CONFEXT_"
	}
	return "SYSEXT_"
}

// Fields returns the key/value pairs in the order they are written.
func (r Release) Fields() [][2]string {
	var f [][2]string
	add := func(k, v string) {
		if v != "" {
			f = append(f, [2]string{k, v})
		}
	}
	id := r.ID
	if id == "" {
		id = "_any"
	}
	add("ID", id)
	add("VERSION_ID", r.VersionID)
	add(r.Class.LevelKey(), r.Level)
	add(r.Class.ScopeKey(), r.Scope)
	if r.Arch != AnyArch {
		add("ARCHITECTURE", r.Arch)
	}
	add(r.prefix()+"ID", r.Name)
	add(r.prefix()+"VERSION_ID", r.Version)
	if r.ReloadManager {
		add("EXTENSION_RELOAD_MANAGER", "1")
	}
	keys := make([]string, 0, len(r.Extra))
	for k := range r.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		add(k, r.Extra[k])
	}
	return f
}

// Map returns the fields as a map, as a parsed release file would give.
func (r Release) Map() map[string]string {
	m := map[string]string{}
	for _, kv := range r.Fields() {
		m[kv[0]] = kv[1]
	}
	return m
}

// Render writes the file in env-file syntax, quoting values that need it.
func (r Release) Render() []byte {
	var b bytes.Buffer
	for _, kv := range r.Fields() {
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(quoteValue(kv[1]))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func quoteValue(v string) string {
	plain := true
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-+~:/,@%^", r)) {
			plain = false
			break
		}
	}
	if plain {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`")
	return `"` + r.Replace(v) + `"`
}

// Parse reads an os-release style file (osrelease.Parse; lines
// it cannot read are skipped, as systemd skips them).
func Parse(data []byte) (map[string]string, error) {
	if len(data) > 64<<10 {
		return nil, fmt.Errorf("release file is %d bytes, more than 64 KiB", len(data))
	}
	r, _, err := osrelease.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return map[string]string(r), nil
}
