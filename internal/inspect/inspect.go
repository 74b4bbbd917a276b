// Package inspect describes an extension image without root and without
// mounting it: format, size, sha256, extension-release, a summary of its
// files and whether this host would merge it (merge's verdict, the one
// strata check and list give).
package inspect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/stratalinux/strata/internal/ddi"
	"github.com/stratalinux/strata/internal/fsread"
	"github.com/stratalinux/strata/internal/image"
	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/imagepolicy"
	"github.com/stratalinux/strata/internal/merge"
	"github.com/stratalinux/strata/internal/osrelease"
	"github.com/stratalinux/strata/internal/release"
)

// Report is what inspect prints.
type Report struct {
	Path   string `json:"path"`
	Name   string `json:"name"`
	Class  string `json:"class"`
	Format string `json:"format"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	// ReleasePath is where the extension-release was found.
	ReleasePath string            `json:"release_path,omitempty"`
	Release     map[string]string `json:"release"`
	// ReleaseError is why no release was read: missing (with what to
	// do), larger than 64 KiB, unparsable; the words check and list use.
	ReleaseError   string  `json:"release_error,omitempty"`
	ReleaseMissing bool    `json:"-"`
	Files          Summary `json:"files"`
	Compatible     *Compat `json:"compatible,omitempty"`
	// DDI is how a disk image is protected and signed, and the image
	// policy rule that refuses it (merge's assessment, as list and check
	// give it); DDIError is why the image cannot be assessed at all.
	DDI      *ddi.Report `json:"ddi,omitempty"`
	DDIError string      `json:"ddi_error,omitempty"`
}

// Summary counts the image's entries.
type Summary struct {
	Files       int      `json:"files"`
	Directories int      `json:"directories"`
	Symlinks    int      `json:"symlinks"`
	Other       int      `json:"other"`
	Bytes       int64    `json:"bytes"`
	TopLevel    []string `json:"top_level"`
	Units       []string `json:"units"`
	Executables int      `json:"executables"`
}

// Compat is the host compatibility decision.
type Compat struct {
	OK     bool   `json:"ok"`
	Rule   string `json:"rule"`
	Reason string `json:"reason,omitempty"`
	Host   string `json:"host"`
}

// Options for Image.
type Options struct {
	// Host is the host's os-release; nil skips the compatibility check.
	Host osrelease.Release
	// Arch is the host architecture (systemd name).
	Arch string
	// NoHash skips hashing the image.
	NoHash bool
	// Root is where the trusted verity.d certificates are looked up ("" = /).
	Root string
	// Policy is the image policy to judge a disk image by; nil is the
	// class's default, as systemd-sysext and -confext use it.
	Policy *imagepolicy.Policy
}

// Image inspects an image file or a directory image.
func Image(ctx context.Context, p string, opt Options) (*Report, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	rep := &Report{Path: p}
	var fsys fsread.FS
	if fi.IsDir() {
		rep.Format = "dir"
		fsys = image.DirTree{Root: p}
	} else {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		rep.Size = fi.Size()
		img, err := fsread.Open(f, fi.Size(), opt.Arch)
		if err != nil {
			return nil, err
		}
		rep.Format = string(img.Format)
		if img.Format == fsread.GPT {
			rep.Format = "gpt+" + string(img.FSFormat)
		}
		fsys = img.FS
		if !opt.NoHash {
			h := sha256.New()
			if _, err := io.Copy(h, io.NewSectionReader(f, 0, fi.Size())); err != nil {
				return nil, fmt.Errorf("hashing %s: %w", p, err)
			}
			rep.SHA256 = hex.EncodeToString(h.Sum(nil))
		}
	}
	if err := summarize(ctx, fsys, rep); err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	base := strings.TrimSuffix(filepath.Base(p), ".raw")
	class, name, rel, relErr := findRelease(fsys, base)
	rep.Class, rep.Name, rep.ReleasePath, rep.Release = class.String(), name, rel.File, rel.Fields
	if rep.Release == nil {
		rep.Release = map[string]string{}
	}
	if relErr != nil {
		rep.ReleaseError, rep.ReleaseMissing = relErr.Error(), errors.Is(relErr, image.ErrNoReleaseData)
	}
	var openErr error
	if !fi.IsDir() {
		if openErr, err = assess(rep, p, name, class, opt); err != nil {
			return nil, err
		}
	}
	if opt.Host != nil {
		rep.Compatible = compat(fsys, fi.IsDir(), p, name, class, relErr, openErr, opt)
	}
	return rep, nil
}

// assess fills the report's protection facts from merge's assessment of
// the raw image under the policy, with the root's verity.d certificates
// trusted. The refusal (or the structural error) is returned as what
// merge would open the image with, for the compatibility verdict.
func assess(rep *Report, p, name string, class imageclass.Class, opt Options) (openErr, err error) {
	pol := opt.Policy
	if pol == nil {
		d, err := imagepolicy.Parse(class.DefaultImagePolicy())
		if err != nil {
			return nil, err
		}
		pol = &d
	}
	certs, _, err := ddi.TrustedCertificates(opt.Root)
	if err != nil {
		return nil, err
	}
	img := image.Image{Name: name, Path: p, Entry: p, Kind: image.KindRaw}
	rep.DDI, openErr = merge.Protection(img, opt.Arch, pol, ddi.Certs(certs))
	if openErr != nil {
		rep.DDIError = openErr.Error()
	}
	return openErr, nil
}

// compat is merge's verdict on the image for this host (merge.Check, as
// strata check and list give it), in inspect's words: a missing or
// invalid release is told as ReleaseError tells it.
func compat(t fsread.FS, isDir bool, p, name string, class imageclass.Class, relErr, openErr error, opt Options) *Compat {
	img := image.Image{Name: name, Path: p, Entry: p, Kind: image.KindRaw}
	if isDir {
		img.Kind = image.KindDirectory
	}
	hierarchies := class.DefaultHierarchies()
	cand := merge.CandidateFromTree(img, t, class, hierarchies)
	cand.OpenErr = openErr
	host := osrelease.Host{Release: opt.Host, Scope: osrelease.ScopeSystem, Architecture: opt.Arch}
	v := merge.Check(cand, class, host, false, hierarchies)
	c := &Compat{OK: v.Use, Rule: v.Rule, Reason: v.Reason}
	if relErr != nil && (v.Rule == merge.RuleNoReleaseData || v.Rule == merge.RuleReleaseInvalid) {
		c.Reason = relErr.Error()
	}
	hostName := opt.Host["ID"]
	if v := opt.Host["VERSION_ID"]; v != "" {
		hostName += " " + v
	}
	c.Host = hostName + " " + opt.Arch
	return c
}

func summarize(ctx context.Context, fsys fs.FS, rep *Report) error {
	top := map[string]bool{}
	n := 0
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if p == "." {
			return nil
		}
		first, _, _ := strings.Cut(p, "/")
		top[first] = true
		switch {
		case d.IsDir():
			rep.Files.Directories++
		case d.Type()&fs.ModeSymlink != 0:
			rep.Files.Symlinks++
		case d.Type().IsRegular():
			rep.Files.Files++
			fi, err := d.Info()
			if err != nil {
				return err
			}
			rep.Files.Bytes += fi.Size()
			if fi.Mode()&0o111 != 0 {
				rep.Files.Executables++
			}
			if dir := path.Dir(p); isUnitDir(dir) {
				rep.Files.Units = append(rep.Files.Units, path.Base(p))
			}
		default:
			rep.Files.Other++
		}
		return nil
	})
	for t := range top {
		rep.Files.TopLevel = append(rep.Files.TopLevel, t)
	}
	sort.Strings(rep.Files.TopLevel)
	sort.Strings(rep.Files.Units)
	if rep.Files.Units == nil {
		rep.Files.Units = []string{}
	}
	return err
}

func isUnitDir(d string) bool {
	for _, u := range release.UnitDirs {
		if d == u {
			return true
		}
	}
	return false
}

// findRelease reads the extension-release with the rules (and the words)
// of check and merge: image.ReadRelease for the file's own name, or for
// the name strata bake gave it (hello-1.0-x86-64.raw: hello), as a
// sysext, else as a confext. Without one, the class is guessed from the
// top-level directories and the error says what is missing.
func findRelease(t fsread.FS, base string) (imageclass.Class, string, image.Release, error) {
	var firstErr error
	for _, c := range []imageclass.Class{imageclass.Sysext, imageclass.Confext} {
		rel, err := image.ReadRelease(t, c, base)
		if err == nil || !errors.Is(err, image.ErrNoReleaseData) {
			return c, base, rel, err
		}
		if n, ok := image.BakedReleaseName(t, c, base); ok {
			rel, err := image.ReadRelease(t, c, n)
			return c, n, rel, err
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	class, err := imageclass.Sysext, firstErr
	if _, statErr := fs.Stat(t, "etc"); statErr == nil {
		if _, statErr := fs.Stat(t, "usr"); errors.Is(statErr, fs.ErrNotExist) {
			class = imageclass.Confext
			_, err = image.ReadRelease(t, class, base)
		}
	}
	return class, base, image.Release{}, err
}

// HostRelease reads the host's os-release (/etc/os-release, else
// /usr/lib/os-release) below root, or the file given.
func HostRelease(file string) (osrelease.Release, error) {
	files := []string{"/etc/os-release", "/usr/lib/os-release"}
	if file != "" {
		files = []string{file}
	}
	var last error
	for _, f := range files {
		r, _, err := osrelease.ParseFile(f)
		if err == nil {
			return r, nil
		}
		last = err
	}
	return nil, last
}
