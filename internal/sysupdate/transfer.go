package sysupdate

import (
	"fmt"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/stratalinux/strata/internal/sdparse"
	"github.com/stratalinux/strata/internal/version"
)

// ResourceType is a [Source] or [Target] Type=.
type ResourceType string

// The resource types of sysupdate.d(5).
const (
	URLFile     ResourceType = "url-file"
	URLTar      ResourceType = "url-tar"
	Tar         ResourceType = "tar"
	RegularFile ResourceType = "regular-file"
	Directory   ResourceType = "directory"
	Subvolume   ResourceType = "subvolume"
	Partition   ResourceType = "partition"
)

// Remote reports whether the resource is fetched over a URL.
func (t ResourceType) Remote() bool { return t == URLFile || t == URLTar }

// isFileLike says the resource's instances are single files.
func (t ResourceType) isFileLike() bool {
	return t == URLFile || t == RegularFile || t == Tar || t == Partition
}

// Resource is a transfer's source or target.
type Resource struct {
	Type           ResourceType
	Path           string // URL for url-*, else an absolute path (without --root)
	PathRelativeTo string
	Patterns       []Pattern
}

// Transfer is one parsed *.transfer (or *.conf) definition.
type Transfer struct {
	ID   string // file name without suffix
	File string // path of the definition (inside --root)

	MinVersion        string
	MaxVersion        string
	ProtectVersions   []string
	Verify            bool
	ChangeLog         []string
	AppStream         []string
	Features          []string
	RequisiteFeatures []string

	Source Resource
	Target Resource

	InstancesMax    int // 0: default (3 for file system targets)
	RemoveTemporary bool
	CurrentSymlink  string
	Mode            *uint32
	ReadOnly        *bool
	TriesLeft       *uint64
	TriesDone       *uint64

	// Partition keys are parsed for completeness; partition targets are
	// refused until the OS A/B updater exists.
	MatchPartitionType      string
	PartitionUUID           string
	PartitionFlags          *uint64
	PartitionNoAuto         *bool
	PartitionGrowFileSystem *bool
}

// DefaultInstancesMax is systemd's default for file system targets.
const DefaultInstancesMax = 3

// Max is the effective InstancesMax.
func (t *Transfer) Max() int {
	if t.InstancesMax == 0 {
		return DefaultInstancesMax
	}
	return t.InstancesMax
}

// Feature is one parsed *.feature definition.
type Feature struct {
	ID            string
	File          string
	Description   string
	Documentation string
	AppStream     string
	Enabled       bool
}

// ParseTransfer parses one transfer definition from its main file and
// drop-ins (entries in order). Errors name file:line.
func ParseTransfer(id, file string, entries []entry, spec Specifiers) (*Transfer, error) {
	t := &Transfer{ID: id, File: file, Verify: true, RemoveTemporary: true}
	var last entry
	targetPatternSet := false
	for _, e := range entries {
		last = e
		if err := t.set(e, spec, &targetPatternSet); err != nil {
			return nil, fmt.Errorf("%s: %s=: %w", e.where(), e.Key, err)
		}
	}
	if err := t.finalize(targetPatternSet); err != nil {
		if last.File == "" {
			last.File = file
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return t, nil
}

func (t *Transfer) set(e entry, spec Specifiers, targetPatternSet *bool) error {
	val, err := spec.expand(e.Value)
	if err != nil {
		return err
	}
	key := e.Section + "." + e.Key
	switch key {
	case "Transfer.MinVersion", "Transfer.MaxVersion":
		if val != "" && !version.IsValid(val) {
			return fmt.Errorf("invalid version %q", val)
		}
		if e.Key == "MinVersion" {
			t.MinVersion = val
		} else {
			t.MaxVersion = val
		}
	case "Transfer.ProtectVersion":
		ws, err := unescapeWords(val)
		if err != nil {
			return err
		}
		if len(ws) == 0 {
			t.ProtectVersions = nil
		}
		for _, w := range ws {
			if !version.IsValid(w) {
				return fmt.Errorf("invalid version %q", w)
			}
			t.ProtectVersions = appendUnique(t.ProtectVersions, w)
		}
	case "Transfer.Verify":
		b, err := sdparse.Boolean(val)
		if err != nil {
			return fmt.Errorf("not a boolean: %q", val)
		}
		t.Verify = b
	case "Transfer.ChangeLog", "Transfer.AppStream":
		ws, err := unescapeWords(val)
		if err != nil {
			return err
		}
		for _, w := range ws {
			if u, err := url.Parse(w); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
				return fmt.Errorf("not an http(s) URL: %q", w)
			}
		}
		if e.Key == "ChangeLog" {
			t.ChangeLog = resetOrAppend(t.ChangeLog, ws)
		} else {
			t.AppStream = resetOrAppend(t.AppStream, ws)
		}
	case "Transfer.Features", "Transfer.RequisiteFeatures":
		ws, err := unescapeWords(val)
		if err != nil {
			return err
		}
		if e.Key == "Features" {
			t.Features = resetOrAppend(t.Features, ws)
		} else {
			t.RequisiteFeatures = resetOrAppend(t.RequisiteFeatures, ws)
		}
	case "Source.Type", "Target.Type":
		rt := ResourceType(val)
		switch rt {
		case URLFile, URLTar, Tar, RegularFile, Directory, Subvolume, Partition:
		default:
			return fmt.Errorf("unknown resource type %q", val)
		}
		if e.Section == "Source" {
			if rt == Partition {
				return fmt.Errorf("partition is not a valid source type")
			}
			t.Source.Type = rt
		} else {
			if rt.Remote() || rt == Tar {
				return fmt.Errorf("%s is not a valid target type", rt)
			}
			t.Target.Type = rt
		}
	case "Source.Path", "Target.Path":
		if e.Section == "Source" {
			t.Source.Path = val
		} else {
			t.Target.Path = val
		}
	case "Source.PathRelativeTo", "Target.PathRelativeTo":
		switch val {
		case "root", "esp", "xbootldr", "boot", "explicit", "":
		default:
			return fmt.Errorf("unknown value %q (root, esp, xbootldr, boot or explicit)", val)
		}
		if e.Section == "Source" {
			t.Source.PathRelativeTo = val
		} else {
			if val == "explicit" {
				return fmt.Errorf("explicit is not allowed for targets")
			}
			t.Target.PathRelativeTo = val
		}
	case "Source.MatchPattern", "Target.MatchPattern":
		ws, err := unescapeWords(val)
		if err != nil {
			return err
		}
		r := &t.Source
		if e.Section == "Target" {
			r = &t.Target
			*targetPatternSet = true
		}
		if len(ws) == 0 {
			r.Patterns = nil
		}
		for _, w := range ws {
			p, err := ParsePattern(w)
			if err != nil {
				return fmt.Errorf("MatchPattern= string is not valid: %w", err)
			}
			if !slices.ContainsFunc(r.Patterns, func(q Pattern) bool { return q.src == p.src }) {
				r.Patterns = append(r.Patterns, p)
			}
		}
	case "Target.MatchPartitionType":
		t.MatchPartitionType = val
	case "Target.PartitionUUID":
		u, err := parseUUID(val)
		if err != nil {
			return err
		}
		t.PartitionUUID = u
	case "Target.PartitionFlags":
		n, err := strconv.ParseUint(strings.TrimPrefix(val, "0x"), 16, 64)
		if err != nil {
			return fmt.Errorf("not a hexadecimal number: %q", val)
		}
		t.PartitionFlags = &n
	case "Target.PartitionNoAuto", "Target.PartitionGrowFileSystem", "Target.ReadOnly":
		b, err := sdparse.Boolean(val)
		if err != nil {
			return fmt.Errorf("not a boolean: %q", val)
		}
		switch e.Key {
		case "PartitionNoAuto":
			t.PartitionNoAuto = &b
		case "PartitionGrowFileSystem":
			t.PartitionGrowFileSystem = &b
		default:
			t.ReadOnly = &b
		}
	case "Target.Mode":
		n, err := strconv.ParseUint(val, 8, 32)
		if err != nil || n > 0o7777 {
			return fmt.Errorf("not an octal mode: %q", val)
		}
		m := uint32(n)
		t.Mode = &m
	case "Target.TriesLeft", "Target.TriesDone":
		n, err := parseDecimal(val)
		if err != nil {
			return err
		}
		if e.Key == "TriesLeft" {
			t.TriesLeft = &n
		} else {
			t.TriesDone = &n
		}
	case "Target.InstancesMax":
		if val == "" {
			t.InstancesMax = 0
			return nil
		}
		n, err := strconv.Atoi(val)
		if err != nil || n < 1 {
			return fmt.Errorf("not a positive integer: %q", val)
		}
		if n == 1 {
			n = 2 // systemd bumps 1 to 2: one old instance must remain
		}
		t.InstancesMax = n
	case "Target.RemoveTemporary":
		b, err := sdparse.Boolean(val)
		if err != nil {
			return fmt.Errorf("not a boolean: %q", val)
		}
		t.RemoveTemporary = b
	case "Target.CurrentSymlink":
		if val != "" && (strings.Contains(val, "\x00") || path.Clean(val) != val) {
			return fmt.Errorf("not a normalized path: %q", val)
		}
		t.CurrentSymlink = val
	default:
		switch e.Section {
		case "Transfer", "Source", "Target":
			return fmt.Errorf("unknown key in [%s]", e.Section)
		}
		return fmt.Errorf("unknown section [%s]", e.Section)
	}
	return nil
}

func (t *Transfer) finalize(targetPatternSet bool) error {
	if t.Source.Type == "" {
		return fmt.Errorf("[Source] Type= is missing")
	}
	if t.Target.Type == "" {
		// systemd infers the target type from the source.
		switch t.Source.Type {
		case URLFile, RegularFile:
			t.Target.Type = RegularFile
			if strings.HasPrefix(t.Target.Path, "/dev/") {
				t.Target.Type = Partition
			}
		case Subvolume:
			t.Target.Type = Subvolume
		default:
			t.Target.Type = Directory
		}
	}
	if t.Source.Path == "" {
		return fmt.Errorf("[Source] Path= is missing")
	}
	if t.Target.Path == "" {
		return fmt.Errorf("[Target] Path= is missing")
	}
	if len(t.Source.Patterns) == 0 {
		return fmt.Errorf("[Source] MatchPattern= is missing")
	}
	if !targetPatternSet || len(t.Target.Patterns) == 0 {
		t.Target.Patterns = t.Source.Patterns
	}
	fileSource := t.Source.Type == URLFile || t.Source.Type == RegularFile
	fileTarget := t.Target.Type == RegularFile || t.Target.Type == Partition
	if fileSource != fileTarget {
		return fmt.Errorf("target type %q is incompatible with source type %q, refusing", t.Target.Type, t.Source.Type)
	}
	if t.Source.Type.Remote() {
		u, err := url.Parse(t.Source.Path)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") || (u.Scheme != "file" && u.Host == "") {
			return fmt.Errorf("[Source] Path=%q is not a valid http(s) or file URL", t.Source.Path)
		}
	} else if t.Source.PathRelativeTo != "explicit" {
		if err := checkAbs(t.Source.Path); err != nil {
			return fmt.Errorf("[Source] Path=: %w", err)
		}
	}
	if t.Target.Type == Partition {
		return fmt.Errorf("partition targets are not supported yet (they come with the OS A/B updater); use a regular-file or directory target")
	}
	if t.Target.Type == Subvolume || t.Source.Type == Subvolume {
		return fmt.Errorf("btrfs subvolumes are not supported; use directory")
	}
	if err := checkAbs(t.Target.Path); err != nil {
		return fmt.Errorf("[Target] Path=: %w", err)
	}
	switch t.Target.PathRelativeTo {
	case "", "root":
	default:
		return fmt.Errorf("[Target] PathRelativeTo=%s is not supported (no ESP/XBOOTLDR handling yet)", t.Target.PathRelativeTo)
	}
	if t.Source.PathRelativeTo == "explicit" {
		return fmt.Errorf("[Source] PathRelativeTo=explicit needs --transfer-source=, which Strata does not support")
	}
	if t.MinVersion != "" && t.MaxVersion != "" && version.Compare(t.MinVersion, t.MaxVersion) > 0 {
		return fmt.Errorf("MinVersion=%s is newer than MaxVersion=%s", t.MinVersion, t.MaxVersion)
	}
	return nil
}

func checkAbs(p string) error {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return fmt.Errorf("%q is not an absolute, normalized path", p)
	}
	return nil
}

// ParseFeature parses one feature definition.
func ParseFeature(id, file string, entries []entry, spec Specifiers) (*Feature, error) {
	f := &Feature{ID: id, File: file}
	for _, e := range entries {
		if e.Section != "Feature" {
			return nil, fmt.Errorf("%s: unknown section [%s]", e.where(), e.Section)
		}
		val, err := spec.expand(e.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %s=: %w", e.where(), e.Key, err)
		}
		switch e.Key {
		case "Description":
			f.Description = val
		case "Documentation":
			f.Documentation = val
		case "AppStream":
			f.AppStream = val
		case "Enabled":
			b, err := sdparse.Boolean(val)
			if err != nil {
				return nil, fmt.Errorf("%s: Enabled=: not a boolean: %q", e.where(), val)
			}
			f.Enabled = b
		default:
			return nil, fmt.Errorf("%s: %s=: unknown key in [Feature]", e.where(), e.Key)
		}
	}
	return f, nil
}

func appendUnique(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

func resetOrAppend(s, ws []string) []string {
	if len(ws) == 0 {
		return nil
	}
	for _, w := range ws {
		s = appendUnique(s, w)
	}
	return s
}
