// Package recipe parses and validates bake recipes: small YAML files that
// name an extension, how to list its upstream versions, the artifacts per
// version and architecture, how to verify them, how to map them into the
// image tree, and its units, tmpfiles.d and sysusers.d entries. Every
// error names the file, the line and the key.
package recipe

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/release"
)

// MaxSize bounds a recipe file.
const MaxSize = 1 << 20

// Recipe is a parsed, validated recipe.
type Recipe struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Class       string `yaml:"class"`
	Homepage    string `yaml:"homepage"`
	// Versions says how to list upstream versions.
	Versions Versions `yaml:"versions"`
	// Arch maps systemd architecture names to template variables; a plain
	// string is the value of {arch}.
	Arch      map[string]ArchVars `yaml:"arch"`
	Artifacts []Artifact          `yaml:"artifacts"`
	Files     []StaticFile        `yaml:"files"`
	Symlinks  []Symlink           `yaml:"symlinks"`
	Units     []Unit              `yaml:"units"`
	Tmpfiles  []string            `yaml:"tmpfiles"`
	Sysusers  []string            `yaml:"sysusers"`
	Release   ReleaseSpec         `yaml:"release"`

	// File is the recipe's file name, for messages.
	File string `yaml:"-"`
	// lines maps key paths ("artifacts[0].url") to line numbers.
	lines map[string]int
}

// Versions lists upstream versions.
type Versions struct {
	// GitHub is "owner/repo": versions are its release tags.
	GitHub string `yaml:"github"`
	// URL is a page (plain list or HTML index) the versions are read from
	// with Match.
	URL string `yaml:"url"`
	// List is a fixed list of versions.
	List []string `yaml:"list"`
	// Match is a regular expression a tag (or the page) must match; its
	// first group, if any, is the version.
	Match string `yaml:"match"`
	// Prerelease includes GitHub pre-releases.
	Prerelease bool `yaml:"prerelease"`
}

// ArchVars are template variables for one architecture.
type ArchVars map[string]string

// UnmarshalYAML accepts a plain string as {arch: value}.
func (a *ArchVars) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*a = ArchVars{"arch": n.Value}
		return nil
	}
	m := map[string]string{}
	if err := n.Decode(&m); err != nil {
		return err
	}
	*a = m
	return nil
}

// Artifact is one download.
type Artifact struct {
	URL    string    `yaml:"url"`
	Verify Verify    `yaml:"verify"`
	Type   string    `yaml:"type"` // tar.gz, tar.xz, tar.zst, zip, file; default from URL
	Strip  int       `yaml:"strip"`
	Map    []Mapping `yaml:"map"`
}

// Verify says how an artifact's sha256 is known. Exactly one is set.
type Verify struct {
	// SHA256 pins hashes: version → arch → hex.
	SHA256 map[string]map[string]string `yaml:"sha256"`
	// Sums is the URL of a SHA256SUMS-style file listing the artifact.
	Sums string `yaml:"sums"`
	// SHA256URL is the URL of a file whose first word is the hash.
	SHA256URL string `yaml:"sha256-url"`
	// GitHubDigest takes the hash from the GitHub release asset's digest.
	GitHubDigest bool `yaml:"github-digest"`
	// None explains why upstream cannot be verified; bake then requires
	// --allow-unverified.
	None string `yaml:"none"`
}

// Mapping copies archive members matching From (a path.Match pattern
// after Strip) to To in the image (a directory when it ends in '/').
type Mapping struct {
	From string `yaml:"from"`
	To   string `yaml:"to"`
	Mode string `yaml:"mode"`
}

// StaticFile is a file written from the recipe.
type StaticFile struct {
	Path    string `yaml:"path"`
	Content string `yaml:"content"`
	Mode    string `yaml:"mode"`
}

// Symlink is a link created in the image.
type Symlink struct {
	Path   string `yaml:"path"`
	Target string `yaml:"target"`
}

// Unit is a systemd unit shipped in the image.
type Unit struct {
	Name    string `yaml:"name"`
	Content string `yaml:"content"`
	// Enable wires the unit with an Upholds= drop-in in its target (the
	// bakery's auto-start); default true for services, sockets and timers.
	Enable *bool `yaml:"enable"`
	// Target overrides the target that upholds the unit.
	Target string `yaml:"target"`
	// DropIns are extra drop-ins for this unit: file name → content.
	DropIns map[string]string `yaml:"dropins"`
}

// ReleaseSpec are extension-release choices.
type ReleaseSpec struct {
	OS            string `yaml:"os"`
	Scope         string `yaml:"scope"`
	ReloadManager *bool  `yaml:"reload-manager"`
}

// Error is a recipe error at a line.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// lineRE and templateVar are compiled on first use, not at package
// init: every strata invocation links this package (docs/startup.md).
var lineRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`) })

// Parse reads and validates a recipe. file names it in errors.
func Parse(file string, data []byte) (*Recipe, error) {
	if len(data) > MaxSize {
		return nil, &Error{File: file, Msg: fmt.Sprintf("recipe is %d bytes, more than %d", len(data), MaxSize)}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlErr(file, err)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, &Error{File: file, Line: 1, Msg: "a recipe is a YAML mapping (name:, versions:, artifacts:, …)"}
	}
	var r Recipe
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return nil, yamlErr(file, err)
	}
	r.File = file
	r.lines = map[string]int{}
	collectLines(root.Content[0], "", r.lines)
	if err := r.validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

func yamlErr(file string, err error) error {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := lineRE().FindStringSubmatch(msg); m != nil {
		var line int
		fmt.Sscan(m[1], &line)
		return &Error{File: file, Line: line, Msg: m[2]}
	}
	return &Error{File: file, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

func collectLines(n *yaml.Node, prefix string, out map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out[p] = n.Content[i].Line
			collectLines(n.Content[i+1], p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", prefix, i)
			out[p] = c.Line
			collectLines(c, p, out)
		}
	}
}

// errAt builds an error for key, with the line of the key or of its
// nearest parent that has one.
func (r *Recipe) errAt(key, format string, args ...any) error {
	line := 0
	for k := key; k != ""; {
		if l, ok := r.lines[k]; ok {
			line = l
			break
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return &Error{File: r.File, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)}
}

// ClassValue is the recipe's extension class.
func (r *Recipe) ClassValue() imageclass.Class {
	c, _ := imageclass.Parse(r.classOrDefault())
	return c
}

func (r *Recipe) classOrDefault() string {
	if r.Class == "" {
		return "sysext"
	}
	return r.Class
}

// Arches lists the recipe's architectures in systemd names, sorted.
func (r *Recipe) Arches() []string {
	var a []string
	for k := range r.Arch {
		a = append(a, k)
	}
	sort.Strings(a)
	return a
}

var templateVar = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\{([a-z_][a-z0-9_]*)\}`) })

func (r *Recipe) validate() error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	if err := release.ValidName(r.Name); err != nil {
		add(r.errAt("name", "%v", err))
	}
	if _, err := imageclass.Parse(r.classOrDefault()); err != nil {
		add(r.errAt("class", "%v", err))
	}
	v := r.Versions
	n := 0
	if v.GitHub != "" {
		n++
		if parts := strings.Split(v.GitHub, "/"); len(parts) != 2 || parts[0] == "" || parts[1] == "" {
			add(r.errAt("versions.github", "want OWNER/REPO, got %q", v.GitHub))
		}
	}
	if v.URL != "" {
		n++
		if err := checkURL(v.URL); err != nil {
			add(r.errAt("versions.url", "%v", err))
		}
		if v.Match == "" {
			add(r.errAt("versions.url", "a version page needs versions.match to find the versions in it"))
		}
	}
	if len(v.List) > 0 {
		n++
	}
	if n != 1 {
		add(r.errAt("versions", "give exactly one of github, url or list"))
	}
	if v.Match != "" {
		if re, err := regexp.Compile(v.Match); err != nil {
			add(r.errAt("versions.match", "invalid regular expression: %v", err))
		} else if re.NumSubexp() > 1 {
			add(r.errAt("versions.match", "at most one capture group (the version)"))
		}
	}
	vars := map[string]bool{"version": true, "tag": true, "name": true, "arch_systemd": true, "version_no_v": true}
	if len(r.Arch) == 0 {
		add(r.errAt("arch", "list the architectures (x86-64:, arm64:) with their upstream spellings"))
	}
	for a, m := range r.Arch {
		if n, err := release.NormalizeArch(a); err != nil || n != a {
			add(r.errAt("arch."+a, "not a systemd architecture name (x86-64, arm64, …)"))
		}
		for k := range m {
			vars[k] = true
		}
	}
	for a, m := range r.Arch {
		for k := range vars {
			if _, ok := m[k]; !ok && !map[string]bool{"version": true, "tag": true, "name": true, "arch_systemd": true, "version_no_v": true}[k] {
				add(r.errAt("arch."+a, "no value for {%s}, which another architecture sets", k))
			}
		}
	}
	checkTemplate := func(key, s string) {
		for _, m := range templateVar().FindAllStringSubmatch(s, -1) {
			if !vars[m[1]] {
				add(r.errAt(key, "unknown template variable {%s}", m[1]))
			}
		}
	}
	if len(r.Artifacts) == 0 {
		add(r.errAt("artifacts", "a recipe needs at least one artifact"))
	}
	for i, a := range r.Artifacts {
		k := fmt.Sprintf("artifacts[%d]", i)
		if a.URL == "" {
			add(r.errAt(k+".url", "missing"))
		} else if err := checkURL(templateVar().ReplaceAllString(a.URL, "x")); err != nil {
			add(r.errAt(k+".url", "%v", err))
		}
		checkTemplate(k+".url", a.URL)
		vf := a.Verify
		nv := 0
		if len(vf.SHA256) > 0 {
			nv++
			for ver, m := range vf.SHA256 {
				for arch, h := range m {
					if !isHex64(h) {
						add(r.errAt(k+".verify.sha256."+ver+"."+arch, "not a sha256 (64 hex digits)"))
					}
				}
			}
		}
		if vf.Sums != "" {
			nv++
			checkTemplate(k+".verify.sums", vf.Sums)
			if err := checkURL(templateVar().ReplaceAllString(vf.Sums, "x")); err != nil {
				add(r.errAt(k+".verify.sums", "%v", err))
			}
		}
		if vf.SHA256URL != "" {
			nv++
			checkTemplate(k+".verify.sha256-url", vf.SHA256URL)
			if err := checkURL(templateVar().ReplaceAllString(vf.SHA256URL, "x")); err != nil {
				add(r.errAt(k+".verify.sha256-url", "%v", err))
			}
		}
		if vf.GitHubDigest {
			nv++
			if r.Versions.GitHub == "" {
				add(r.errAt(k+".verify.github-digest", "needs versions.github"))
			}
		}
		if vf.None != "" {
			nv++
		}
		if nv != 1 {
			add(r.errAt(k+".verify", "give exactly one of sha256, sums, sha256-url, github-digest or none (with the reason upstream cannot be verified)"))
		}
		typ := a.Type
		if typ == "" {
			typ = TypeFromURL(a.URL)
		}
		if !validTypes[typ] {
			add(r.errAt(k+".type", "unknown artifact type %q (want tar.gz, tar.xz, tar.zst, tar, zip or file)", a.Type))
		}
		if a.Strip < 0 || a.Strip > 16 {
			add(r.errAt(k+".strip", "must be 0…16"))
		}
		if len(a.Map) == 0 {
			add(r.errAt(k+".map", "say where the artifact's files go (from:, to:)"))
		}
		for j, m := range a.Map {
			mk := fmt.Sprintf("%s.map[%d]", k, j)
			if typ == "file" {
				if m.From != "" {
					add(r.errAt(mk+".from", "a single-file artifact has no members; leave from: out"))
				}
			} else if m.From == "" {
				add(r.errAt(mk+".from", "missing"))
			} else if _, err := path.Match(m.From, ""); err != nil {
				add(r.errAt(mk+".from", "invalid pattern: %v", err))
			}
			if err := r.checkImagePath(strings.TrimSuffix(m.To, "/")); err != nil {
				add(r.errAt(mk+".to", "%v", err))
			}
			if _, err := ParseMode(m.Mode); err != nil {
				add(r.errAt(mk+".mode", "%v", err))
			}
		}
	}
	for i, f := range r.Files {
		k := fmt.Sprintf("files[%d]", i)
		if err := r.checkImagePath(f.Path); err != nil {
			add(r.errAt(k+".path", "%v", err))
		}
		if _, err := ParseMode(f.Mode); err != nil {
			add(r.errAt(k+".mode", "%v", err))
		}
	}
	for i, s := range r.Symlinks {
		k := fmt.Sprintf("symlinks[%d]", i)
		if err := r.checkImagePath(s.Path); err != nil {
			add(r.errAt(k+".path", "%v", err))
		}
		if s.Target == "" || strings.ContainsRune(s.Target, 0) {
			add(r.errAt(k+".target", "missing"))
		}
	}
	for i, u := range r.Units {
		k := fmt.Sprintf("units[%d]", i)
		if !validUnitName(u.Name) {
			add(r.errAt(k+".name", "%q is not a unit name (NAME.service, .socket, .timer, .path, .mount, .target)", u.Name))
		}
		if strings.TrimSpace(u.Content) == "" {
			add(r.errAt(k+".content", "missing"))
		}
		if u.Target != "" && !strings.HasSuffix(u.Target, ".target") {
			add(r.errAt(k+".target", "%q is not a target", u.Target))
		}
		for name := range u.DropIns {
			if !strings.HasSuffix(name, ".conf") || strings.Contains(name, "/") {
				add(r.errAt(k+".dropins."+name, "a drop-in is a NAME.conf file; systemd ignores anything else"))
			}
		}
	}
	for i, l := range append(append([]string{}, r.Tmpfiles...), r.Sysusers...) {
		if strings.ContainsAny(l, "\n\r") {
			key := fmt.Sprintf("tmpfiles[%d]", i)
			if i >= len(r.Tmpfiles) {
				key = fmt.Sprintf("sysusers[%d]", i-len(r.Tmpfiles))
			}
			add(r.errAt(key, "one entry per list item"))
		}
	}
	if r.Release.OS != "" {
		if _, _, _, err := release.ParseOS(r.Release.OS); err != nil {
			add(r.errAt("release.os", "%v", err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

func (r *Recipe) checkImagePath(p string) error {
	if p == "" {
		return errors.New("missing")
	}
	if strings.HasPrefix(p, "/") || !fs.ValidPath(p) {
		return fmt.Errorf("%q must be a clean relative path inside the image (no '..', no leading '/')", p)
	}
	top, _, _ := strings.Cut(p, "/")
	allowed := map[string]bool{"usr": true, "opt": true}
	if r.ClassValue() == imageclass.Confext {
		allowed = map[string]bool{"etc": true}
	}
	if !allowed[top] {
		return fmt.Errorf("%q is outside the %s hierarchies", p, r.classOrDefault())
	}
	return nil
}

var validTypes = map[string]bool{"tar.gz": true, "tar.xz": true, "tar.zst": true, "tar": true, "zip": true, "file": true}

// TypeFromURL guesses the artifact type from the URL's file name.
func TypeFromURL(u string) string {
	base := path.Base(u)
	switch {
	case strings.HasSuffix(base, ".tar.gz"), strings.HasSuffix(base, ".tgz"):
		return "tar.gz"
	case strings.HasSuffix(base, ".tar.xz"), strings.HasSuffix(base, ".txz"):
		return "tar.xz"
	case strings.HasSuffix(base, ".tar.zst"), strings.HasSuffix(base, ".tzst"):
		return "tar.zst"
	case strings.HasSuffix(base, ".tar"):
		return "tar"
	case strings.HasSuffix(base, ".zip"):
		return "zip"
	}
	return "file"
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL: %v", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func validUnitName(s string) bool {
	if s == "" || len(s) > 255 || strings.ContainsAny(s, "/ \t\n") || s[0] == '.' {
		return false
	}
	for _, suf := range []string{".service", ".socket", ".timer", ".path", ".mount", ".target"} {
		if strings.HasSuffix(s, suf) && len(s) > len(suf) {
			return true
		}
	}
	return false
}

// ParseMode reads an octal mode ("0755"); empty is 0 (default).
func ParseMode(s string) (fs.FileMode, error) {
	if s == "" {
		return 0, nil
	}
	var m uint32
	if _, err := fmt.Sscanf(s, "%o", &m); err != nil || m > 0o7777 || fmt.Sprintf("%o", m) != strings.TrimLeft(s, "0") && m != 0 {
		return 0, fmt.Errorf("mode %q is not an octal mode like 0755", s)
	}
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	return mode, nil
}
