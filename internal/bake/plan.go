// Package bake turns a populated tree into a reproducible extension image:
// it decides the bake plan (pure: name, file names, extension-release,
// writer options) and carries it out (write aside, lint in parallel,
// fsync, hash, rename).
package bake

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/stratalinux/strata/internal/ddi"
	"github.com/stratalinux/strata/internal/fsimage"
	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/imagepolicy"
	"github.com/stratalinux/strata/internal/limitread"
	"github.com/stratalinux/strata/internal/release"
)

// Request is what the user asked for.
type Request struct {
	Dir         string
	Name        string
	Version     string
	Arch        string // any spelling; "" = host
	Class       imageclass.Class
	Format      string // "" = squashfs
	Compression string
	OS          string // --os ID[:VERSION_ID|:level=LEVEL]
	Scope       string
	OutDir      string
	Epoch       int64
	// Reload forces EXTENSION_RELOAD_MANAGER on (true) or off (false);
	// nil decides from whether the tree ships units.
	Reload *bool
	// NoLint skips linting the tree while it is baked (Bake).
	NoLint bool
	// MaxSize is the largest image lint allows, in bytes; 0 = no limit.
	MaxSize int64
	// Progress receives the image tool's progress output (nil: quiet).
	Progress io.Writer
	// Verity adds a dm-verity partition to a DDI (Format "ddi"); signing implies it.
	Verity bool
	// SignKey and SignCert sign a DDI's verity root hash (both or neither).
	SignKey  crypto.Signer
	SignCert *x509.Certificate
}

// FormatDDI is the Format that wraps the squashfs image in a Discoverable
// Disk Image (GPT; with --verity or signing, verity and signature partitions).
const FormatDDI = "ddi"

// Tree is what the plan needs to know about the source tree.
type Tree struct {
	// Release is the content of the extension-release file for Name if
	// the tree has one (nil otherwise).
	Release []byte
	// HasUnits tells whether the tree ships systemd units.
	HasUnits bool
}

// Plan is a bake decided in full; Execute carries it out.
type Plan struct {
	Req    Request
	Arch   string
	Writer fsimage.Writer
	// DDI is true when the filesystem image is wrapped into a DDI (internal/ddi).
	DDI     bool
	Release release.Release
	// ReleasePath is where the extension-release lives in the image.
	ReleasePath string
	// Generate is true when the release file is added (the tree has none).
	Generate bool
	// FileName is the output's base name: NAME-VERSION-ARCH.raw (a
	// directory image has no .raw).
	FileName string
	// Output is the full output path.
	Output string
}

// ValidVersion checks a version: it sits between two '-' in the file
// name, so it may not contain '-' itself (sysupdate's @v and the bakery's
// redirector split there).
func ValidVersion(s string) error {
	if s == "" {
		return errors.New("the version is empty (give --version)")
	}
	if len(s) > 128 {
		return fmt.Errorf("version %q is longer than 128 bytes", s)
	}
	for _, r := range s {
		if r == '-' {
			return fmt.Errorf("version %q contains '-', which splits NAME-VERSION-ARCH.raw wrongly: use '~' or '_' (e.g. %s)", s, strings.ReplaceAll(s, "-", "~"))
		}
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._+~^", r)) {
			return fmt.Errorf("version %q: only letters, digits, '.', '_', '+', '~' and '^' are allowed", s)
		}
	}
	return nil
}

// NewPlan decides the bake from the request and the facts about the tree.
func NewPlan(req Request, tree Tree) (Plan, error) {
	if req.Name == "" {
		return Plan{}, errors.New("the image name is empty (give --name)")
	}
	if err := release.ValidName(req.Name); err != nil {
		return Plan{}, err
	}
	if err := ValidVersion(req.Version); err != nil {
		return Plan{}, err
	}
	arch, err := release.NormalizeArch(req.Arch)
	if err != nil {
		return Plan{}, err
	}
	isDDI := req.Format == FormatDDI
	fsFormat := req.Format
	if isDDI {
		fsFormat = "squashfs"
		if arch == release.AnyArch {
			return Plan{}, errors.New("a DDI's partition types name an architecture: give --arch (x86-64, arm64, ...) with --format ddi")
		}
		if _, err := ddi.PartitionTypes(imagepolicy.Usr, arch); err != nil {
			return Plan{}, err
		}
	} else if req.Verity || req.SignKey != nil || req.SignCert != nil {
		return Plan{}, fmt.Errorf("--verity, --sign-key and --sign-cert need --format ddi (not %s)", formatName(req.Format))
	}
	if (req.SignKey == nil) != (req.SignCert == nil) {
		return Plan{}, errors.New("--sign-key and --sign-cert go together")
	}
	w, err := fsimage.New(fsFormat)
	if err != nil {
		return Plan{}, err
	}
	id, vid, level, err := release.ParseOS(req.OS)
	if err != nil {
		return Plan{}, err
	}
	if req.Epoch < 0 {
		return Plan{}, fmt.Errorf("SOURCE_DATE_EPOCH=%d is negative", req.Epoch)
	}
	reload := tree.HasUnits && req.Class == imageclass.Sysext
	if req.Reload != nil {
		reload = *req.Reload
	}
	rel := release.Release{Class: req.Class, Name: req.Name, Version: req.Version, ID: id, VersionID: vid,
		Level: level, Scope: req.Scope, Arch: arch, ReloadManager: reload}
	p := Plan{Req: req, Arch: arch, Writer: w, DDI: isDDI, Release: rel, ReleasePath: req.Class.ReleasePath(req.Name)}
	if tree.Release != nil {
		fields, err := release.Parse(tree.Release)
		if err != nil {
			return Plan{}, fmt.Errorf("%s in %s: %w", p.ReleasePath, req.Dir, err)
		}
		if errs := CheckRelease(fields, rel); len(errs) > 0 {
			return Plan{}, fmt.Errorf("%s in %s: %w", p.ReleasePath, req.Dir, errors.Join(errs...))
		}
	} else {
		p.Generate = true
	}
	base := req.Name + "-" + req.Version + "-" + arch
	if w.IsDir() {
		p.FileName = base
	} else {
		p.FileName = base + ".raw"
	}
	out := req.OutDir
	if out == "" {
		out = "."
	}
	p.Output = filepath.Join(out, p.FileName)
	return p, nil
}

func formatName(f string) string {
	if f == "" {
		return "squashfs"
	}
	return f
}

// Designator is the DDI data partition for the class: usr for a sysext, root for a confext.
func (p Plan) Designator() imagepolicy.Designator {
	if p.Req.Class == imageclass.Confext {
		return imagepolicy.Root
	}
	return imagepolicy.Usr
}

// ScanTree reads the facts NewPlan needs from the tree on disk.
func ScanTree(dir string, class imageclass.Class, name string) (Tree, error) {
	var t Tree
	fi, err := os.Stat(dir)
	if err != nil {
		return t, err
	}
	if !fi.IsDir() {
		return t, fmt.Errorf("%s is not a directory", dir)
	}
	rp := filepath.Join(dir, filepath.FromSlash(class.ReleasePath(name)))
	if b, err := readSmall(rp, 64<<10); err == nil {
		t.Release = b
	} else if !errors.Is(err, fs.ErrNotExist) {
		return t, err
	}
	t.HasUnits = HasUnits(dir, class)
	return t, nil
}

func readSmall(p string, limit int64) ([]byte, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, limit)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Bounded again: the file may have grown since Lstat.
	data, err := limitread.ReadAll(f, limit)
	if errors.Is(err, limitread.ErrTooLarge) {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, limit)
	}
	return data, err
}

// HasUnits tells whether the tree ships any systemd unit or drop-in.
func HasUnits(dir string, class imageclass.Class) bool {
	for _, d := range release.UnitDirs {
		if class == imageclass.Sysext && strings.HasPrefix(d, "etc/") || class == imageclass.Confext && !strings.HasPrefix(d, "etc/") {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(dir, d))
		if err == nil && len(ents) > 0 {
			return true
		}
	}
	return false
}
