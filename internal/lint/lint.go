// Package lint checks an extension tree (a directory or an opened image)
// for what makes systemd refuse it, or makes it unsafe or unportable.
// Each finding has a severity, a rule id, a path and a message; errors stop
// a bake, warnings do not.
package lint

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/stratalinux/strata/internal/archive"
	"github.com/stratalinux/strata/internal/fsread"
	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/limitread"
	"github.com/stratalinux/strata/internal/release"
)

// Severity of a finding.
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Rule ids.
const (
	RuleOutside      = "outside-hierarchy"
	RuleOSRelease    = "os-release"
	RuleNoRelease    = "release-missing"
	RuleMisnamed     = "release-misnamed"
	RuleBadRelease   = "release-invalid"
	RuleDynamic      = "dynamic-elf"
	RuleUnitReload   = "unit-no-reload"
	RuleSetuid       = "setuid"
	RuleWorldWrite   = "world-writable"
	RuleSymlinkEsc   = "symlink-escape"
	RuleBadName      = "invalid-name"
	RuleTooBig       = "too-big"
	RuleDevice       = "device-node"
	RuleDropinSuffix = "dropin-suffix"
)

// Finding is one problem.
type Finding struct {
	Severity Severity `json:"severity"`
	Rule     string   `json:"rule"`
	Path     string   `json:"path"`
	Message  string   `json:"message"`
}

func (f Finding) String() string {
	p := f.Path
	if p == "" {
		p = "."
	}
	return fmt.Sprintf("%s: %s: %s [%s]", f.Severity, p, f.Message, f.Rule)
}

// Findings is a sorted list of findings.
type Findings []Finding

// Errors counts the findings of severity error.
func (fs Findings) Errors() int {
	n := 0
	for _, f := range fs {
		if f.Severity == Error {
			n++
		}
	}
	return n
}

// Err returns an error summarising the error findings, or nil.
func (fs Findings) Err(what string) error {
	var msgs []string
	for _, f := range fs {
		if f.Severity == Error {
			msgs = append(msgs, f.Path+": "+f.Message+" ["+f.Rule+"]")
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	if len(msgs) > 5 {
		msgs = append(msgs[:5], fmt.Sprintf("and %d more (run strata lint)", len(msgs)-5))
	}
	return fmt.Errorf("lint of %s failed: %s", what, strings.Join(msgs, "; "))
}

// Options say what the tree should be.
type Options struct {
	Class imageclass.Class
	// Name is the image name; empty infers it from the single
	// extension-release file in the tree.
	Name string
	// Generated tells that bake will add the extension-release itself,
	// so a missing one is fine.
	Generated bool
	// Release is the generated release (for the unit/reload check) when
	// Generated is set.
	Release map[string]string
	// MaxSize is the largest allowed image (or tree) size in bytes; 0 = no
	// limit. ImageSize is the image file's size (0 for a directory: the
	// sum of file sizes is used).
	MaxSize, ImageSize int64
}

// baseLibs are the shared libraries every glibc-based host has.
var baseLibs = map[string]bool{
	"libc.so.6": true, "libm.so.6": true, "libpthread.so.0": true, "libdl.so.2": true,
	"librt.so.1": true, "libresolv.so.2": true, "libutil.so.1": true, "libanl.so.1": true,
	"libcrypt.so.1": true, "libnsl.so.1": true, "libgcc_s.so.1": true, "libstdc++.so.6": true,
	"libz.so.1": true, "ld-linux-x86-64.so.2": true, "ld-linux-aarch64.so.1": true,
	"ld-linux.so.2": true, "ld-linux-armhf.so.3": true, "ld-linux-riscv64-lp64d.so.1": true,
	"ld64.so.2": true, "ld64.so.1": true, "linux-vdso.so.1": true,
}

// Run lints the tree t: a directory (os.DirFS or image.DirTree) or an
// opened image.
func Run(ctx context.Context, t fsread.FS, opt Options) (Findings, error) {
	l := &linter{t: t, opt: opt, names: map[string]bool{}}
	if err := l.walk(ctx); err != nil {
		return nil, err
	}
	l.release()
	if err := l.elves(ctx); err != nil {
		return nil, err
	}
	size := opt.ImageSize
	if size == 0 {
		size = l.total
	}
	if opt.MaxSize > 0 && size > opt.MaxSize {
		l.add(Error, RuleTooBig, "", "image is %d bytes, more than the limit of %d (raise --max-size)", size, opt.MaxSize)
	}
	sort.SliceStable(l.out, func(i, j int) bool {
		a, b := l.out[i], l.out[j]
		if a.Severity != b.Severity {
			return a.Severity == Error
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Rule < b.Rule
	})
	return l.out, nil
}

type linter struct {
	t        fsread.FS
	opt      Options
	out      Findings
	names    map[string]bool // base names of files and symlinks (for libraries)
	elfs     []string
	releases []string
	units    []string
	total    int64
}

func (l *linter) add(s Severity, rule, p, format string, args ...any) {
	l.out = append(l.out, Finding{Severity: s, Rule: rule, Path: p, Message: fmt.Sprintf(format, args...)})
}

func (l *linter) hierarchies() []string {
	if l.opt.Class == imageclass.Confext {
		return []string{"etc"}
	}
	return []string{"usr", "opt"}
}

func (l *linter) walk(ctx context.Context) error {
	top := l.hierarchies()
	n := 0
	return fs.WalkDir(l.t, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if p == "." {
			return nil
		}
		base := path.Base(p)
		if !utf8.ValidString(base) || strings.ContainsFunc(base, func(r rune) bool { return r < 0x20 || r == 0x7f }) || strings.Contains(base, "\\") {
			l.add(Error, RuleBadName, fmt.Sprintf("%q", p), "file name has control characters, backslashes or invalid UTF-8")
		}
		first, _, _ := strings.Cut(p, "/")
		inside := false
		for _, h := range top {
			if first == h {
				inside = true
			}
		}
		if !inside && p == "lost+found" && d.IsDir() {
			// mkfs.ext4 always makes it; systemd never looks there.
			if ents, err := fs.ReadDir(l.t, p); err == nil && len(ents) == 0 {
				return fs.SkipDir
			}
		}
		if !inside {
			l.add(Error, RuleOutside, p, "outside the %s hierarchies (%s/): systemd ignores it", l.opt.Class, strings.Join(top, "/, "))
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		mode := fi.Mode()
		switch {
		case p == "usr/lib/os-release" && l.opt.Class == imageclass.Sysext,
			p == "etc/os-release" && l.opt.Class == imageclass.Confext:
			l.add(Error, RuleOSRelease, p, "an extension must not ship os-release: it would replace the host's")
		}
		if mode&fs.ModeSymlink != 0 {
			l.names[base] = true
			target, err := l.t.ReadLink(p)
			if err != nil {
				return fmt.Errorf("reading link %s: %w", p, err)
			}
			if !strings.HasPrefix(target, "/") && archive.LinkEscapes(p, target) {
				l.add(Error, RuleSymlinkEsc, p, "symlink to %q points outside the image", target)
			}
			return nil
		}
		if mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0 {
			l.add(Error, RuleDevice, p, "device nodes, fifos and sockets do not belong in an extension image")
			return nil
		}
		if mode&fs.ModeSetuid != 0 || mode&fs.ModeSetgid != 0 && !d.IsDir() {
			l.add(Warning, RuleSetuid, p, "setuid/setgid file (mode %04o): make sure it has to be", perm(mode))
		}
		if mode&0o002 != 0 && !(d.IsDir() && mode&fs.ModeSticky != 0) {
			l.add(Warning, RuleWorldWrite, p, "world-writable (mode %04o)", perm(mode))
		}
		if d.IsDir() {
			if strings.HasSuffix(p, ".d") && isUnitDir(path.Dir(p)) {
				l.dropinDir(p)
			}
			return nil
		}
		l.names[base] = true
		l.total += fi.Size()
		dir := path.Dir(p)
		if dir == path.Dir(l.opt.Class.ReleasePath("x")) {
			l.releases = append(l.releases, p)
		}
		if isUnitDir(dir) {
			l.units = append(l.units, p)
		}
		if mode.IsRegular() && (mode&0o111 != 0 || strings.Contains(base, ".so")) && fi.Size() >= 64 {
			l.elfs = append(l.elfs, p)
		}
		return nil
	})
}

func perm(m fs.FileMode) uint32 {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}

func isUnitDir(dir string) bool {
	for _, d := range release.UnitDirs {
		if dir == d {
			return true
		}
	}
	return false
}

// dropinDir flags drop-in files that systemd ignores (no .conf suffix),
// the bakery's bird bug.
func (l *linter) dropinDir(dir string) {
	ents, err := fs.ReadDir(l.t, dir)
	if err != nil {
		return
	}
	wants := strings.HasSuffix(dir, ".wants") || strings.HasSuffix(dir, ".requires") || strings.HasSuffix(dir, ".upholds")
	for _, e := range ents {
		if !wants && !e.IsDir() && !strings.HasSuffix(e.Name(), ".conf") {
			l.add(Warning, RuleDropinSuffix, dir+"/"+e.Name(), "drop-in does not end in .conf: systemd ignores it")
		}
	}
}

func (l *linter) release() {
	want := ""
	if l.opt.Name != "" {
		want = l.opt.Class.ReleasePath(l.opt.Name)
	}
	var fields map[string]string
	found := false
	for _, r := range l.releases {
		if want != "" && r != want {
			l.add(Error, RuleMisnamed, r, "extension-release for another name: the image is %q, so systemd wants %s", l.opt.Name, want)
			continue
		}
		if want == "" && len(l.releases) > 1 {
			l.add(Error, RuleMisnamed, r, "more than one extension-release file; an image has exactly one, named after the image")
			continue
		}
		found = true
		data, err := limitread.ReadFile(l.t, r, 64<<10)
		if errors.Is(err, limitread.ErrTooLarge) {
			err = fmt.Errorf("larger than %d bytes", 64<<10)
		}
		if err == nil {
			fields, err = release.Parse(data)
		}
		if err != nil {
			l.add(Error, RuleBadRelease, r, "%v", err)
			continue
		}
		if fields["ID"] == "" {
			l.add(Error, RuleBadRelease, r, "ID= is missing (ID=_any matches every OS)")
		}
		if a := fields["ARCHITECTURE"]; a != "" {
			if _, err := release.NormalizeArch(a); err != nil {
				l.add(Error, RuleBadRelease, r, "ARCHITECTURE=%s is not a systemd architecture name", a)
			}
		}
	}
	if l.opt.Generated {
		if found {
			return
		}
		fields = l.opt.Release
		found = true
	}
	if !found && want == "" && len(l.releases) == 0 || !found && want != "" && !l.opt.Generated {
		p := want
		if p == "" {
			p = l.opt.Class.ReleasePath("NAME")
		}
		l.add(Error, RuleNoRelease, p, "no extension-release file: systemd refuses the image")
		return
	}
	if len(l.units) > 0 && fields != nil && fields["EXTENSION_RELOAD_MANAGER"] != "1" && l.opt.Class == imageclass.Sysext {
		l.add(Warning, RuleUnitReload, l.units[0], "the image ships %d unit file(s) but no EXTENSION_RELOAD_MANAGER=1: systemd will not reload on merge", len(l.units))
	}
}

// elves reads the dynamic section of every executable ELF file and flags
// libraries found neither in the image nor among the base libraries.
func (l *linter) elves(ctx context.Context) error {
	for _, p := range l.elfs {
		if err := ctx.Err(); err != nil {
			return err
		}
		libs, interp, ok := elfNeeds(l.t, p)
		if !ok || interp == "" && len(libs) == 0 {
			continue
		}
		var missing []string
		for _, lib := range libs {
			if !baseLibs[lib] && !l.names[lib] {
				missing = append(missing, lib)
			}
		}
		if len(missing) > 0 {
			l.add(Warning, RuleDynamic, p, "dynamically linked against %s, found neither in the image nor in a standard base system: ship a static binary", strings.Join(missing, ", "))
		}
	}
	return nil
}

func elfNeeds(t fs.FS, p string) (libs []string, interp string, ok bool) {
	f, err := t.Open(p)
	if err != nil {
		return nil, "", false
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil || !bytes.Equal(magic[:], []byte("\x7fELF")) {
		return nil, "", false
	}
	ra, isRA := f.(io.ReaderAt)
	if !isRA {
		fi, err := f.Stat()
		if err != nil || fi.Size() > 256<<20 {
			return nil, "", false
		}
		rest, err := io.ReadAll(f)
		if err != nil {
			return nil, "", false
		}
		ra = bytes.NewReader(append(magic[:], rest...))
	}
	ef, err := elf.NewFile(ra)
	if err != nil {
		return nil, "", false
	}
	defer ef.Close()
	for _, prog := range ef.Progs {
		if prog.Type == elf.PT_INTERP && prog.Filesz < 4096 {
			b := make([]byte, prog.Filesz)
			if _, err := prog.ReadAt(b, 0); err == nil {
				interp = strings.TrimRight(string(b), "\x00")
			}
		}
	}
	libs, err = ef.ImportedLibraries()
	if err != nil {
		return nil, interp, true
	}
	return libs, interp, true
}
