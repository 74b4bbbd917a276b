package merge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/stratalinux/strata/internal/imageclass"
	"golang.org/x/sys/unix"
)

// Origin records what a merge was made from, so that a refresh can skip
// the remount when nothing changed (systemd v260's origin file).
type Origin struct {
	Mutable      OriginMutable              `json:"mutable"`
	MountOptions string                     `json:"mountOptions,omitempty"`
	Extensions   map[string]OriginExtension `json:"extensions"`
}

// OriginMutable is the mutable mode and the directories it used.
type OriginMutable struct {
	Mode        Mode              `json:"mode"`
	MutableDirs map[string]string `json:"mutableDirs,omitempty"`
}

// OriginExtension identifies one merged image.
type OriginExtension struct {
	Path  string `json:"path"`
	Dev   uint64 `json:"dev"`
	Inode uint64 `json:"inode"`
	Mtime int64  `json:"mtime"`
}

func makeOrigin(in Input, exts []Extension) Origin {
	o := Origin{Mutable: OriginMutable{Mode: in.Mode}, Extensions: map[string]OriginExtension{}}
	if in.Mode != MutableNo {
		o.Mutable.MutableDirs = map[string]string{}
		for _, h := range in.Hierarchies {
			o.Mutable.MutableDirs[h.Path] = filepath.Join(MutableBase, MutableComponent(h.Path))
		}
	}
	if in.OverlayOptions != nil {
		o.MountOptions = *in.OverlayOptions
	}
	for _, e := range exts {
		o.Extensions[e.Name] = OriginExtension{Path: e.Entry, Dev: e.Dev, Inode: e.Ino, Mtime: e.Mtime}
	}
	return o
}

// Marshal renders the origin file: pretty JSON with a trailing newline.
func (o Origin) Marshal() []byte {
	b, _ := json.MarshalIndent(o, "", "  ")
	return append(b, '\n')
}

// SameOrigin compares two origin files semantically.
func SameOrigin(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// MarkerFiles are the files placed in the marker directory of a merged
// hierarchy.
func MarkerFiles(c imageclass.Class, hp HierarchyPlan, origin Origin, dev uint64) map[string][]byte {
	files := map[string][]byte{
		c.Plural(): []byte(joinLines(hp.Extensions)),
		"dev":      []byte(fmt.Sprintf("%d:%d\n", unix.Major(dev), unix.Minor(dev))),
		"origin":   origin.Marshal(),
	}
	if hp.BackingDev != 0 {
		files["backing"] = []byte(fmt.Sprintf("%d:%d\n", unix.Major(hp.BackingDev), unix.Minor(hp.BackingDev)))
	}
	if hp.WorkDirMarker != "" {
		files["work_dir"] = []byte(cEscape(hp.WorkDirMarker) + "\n")
	}
	return files
}

func joinLines(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

// cEscape escapes a path the way systemd's cescape() does.
func cEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\'':
			b.WriteString(`\'`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 || c >= 0x7f {
				fmt.Fprintf(&b, `\x%02x`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	return b.String()
}

// cUnescape reverses cEscape; it refuses malformed input.
func cUnescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i >= len(s) {
			return "", fmt.Errorf("trailing backslash")
		}
		switch s[i] {
		case '\\', '"', '\'':
			b.WriteByte(s[i])
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'x':
			if i+3 > len(s) {
				return "", fmt.Errorf("short \\x escape")
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", fmt.Errorf("bad \\x escape")
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			return "", fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return b.String(), nil
}

// MergedState is what the marker directory of a hierarchy says.
type MergedState struct {
	Hierarchy  string
	Ours       bool
	Extensions []string
	Since      int64 // microseconds since the epoch
	Origin     []byte
	WorkDir    string // relative to root, unescaped; empty when none
}

// ReadState tells whether host path target is a merge of ours (a mount
// point whose marker "dev" file names its own device) and what it holds.
func ReadState(c imageclass.Class, hierarchy, target string) (MergedState, error) {
	st := MergedState{Hierarchy: hierarchy}
	var s unix.Stat_t
	if err := unix.Lstat(target, &s); err != nil {
		if os.IsNotExist(err) {
			return st, nil
		}
		return st, fmt.Errorf("stat %s: %w", target, err)
	}
	marker := filepath.Join(target, c.MarkerDir())
	devData, err := os.ReadFile(filepath.Join(marker, "dev"))
	if err != nil {
		return st, nil
	}
	var maj, min uint32
	if _, err := fmt.Sscanf(strings.TrimSpace(string(devData)), "%d:%d", &maj, &min); err != nil {
		return st, nil
	}
	if unix.Mkdev(maj, min) != uint64(s.Dev) {
		return st, nil // a copied tree with a stale marker is not ours
	}
	mp, err := isMountPoint(target)
	if err != nil || !mp {
		return st, err
	}
	st.Ours = true
	st.Since = s.Mtim.Sec*1e6 + s.Mtim.Nsec/1e3
	if data, err := os.ReadFile(filepath.Join(marker, c.Plural())); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if l != "" {
				st.Extensions = append(st.Extensions, l)
			}
		}
	}
	st.Origin, _ = os.ReadFile(filepath.Join(marker, "origin"))
	if data, err := os.ReadFile(filepath.Join(marker, "work_dir")); err == nil {
		wd, err := parseWorkDir(data)
		if err != nil {
			return st, fmt.Errorf("%s/work_dir: %w", marker, err)
		}
		st.WorkDir = wd
	}
	return st, nil
}

func parseWorkDir(data []byte) (string, error) {
	line := strings.TrimSuffix(string(data), "\n")
	wd, err := cUnescape(line)
	if err != nil {
		return "", fmt.Errorf("malformed work directory %q: %w", line, err)
	}
	clean := filepath.Clean(wd)
	if wd == "" || filepath.IsAbs(wd) || clean == ".." || strings.HasPrefix(clean, "../") || clean == "." {
		return "", fmt.Errorf("malformed work directory %q: must be a relative path inside the root", line)
	}
	return clean, nil
}

// isMountPoint compares the mount IDs of path and its parent, which works
// for bind mounts within one filesystem too.
func isMountPoint(p string) (bool, error) {
	var a, b unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &a); err != nil {
		return false, fmt.Errorf("statx %s: %w", p, err)
	}
	if err := unix.Statx(unix.AT_FDCWD, filepath.Join(p, ".."), 0, unix.STATX_MNT_ID, &b); err != nil {
		return false, fmt.Errorf("statx %s/..: %w", p, err)
	}
	if a.Mask&unix.STATX_MNT_ID == 0 {
		return a.Dev_major != b.Dev_major || a.Dev_minor != b.Dev_minor, nil
	}
	return a.Mnt_id != b.Mnt_id || (a.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0), nil
}
