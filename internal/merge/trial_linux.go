package merge

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/stratalinux/strata/internal/image"
	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/osrelease"
	"github.com/stratalinux/strata/internal/sdparse"
	"golang.org/x/sys/unix"
)

// A trial is "strata test": merge one image over this machine's
// hierarchies in a private mount namespace and run a command there. The
// choices (which name, which class, whether the image would merge at all)
// are made here without privileges; the caller makes the namespace, merges
// and execs.

// TrialOptions are the choices of one trial once its image and class are
// known (TrialImage).
type TrialOptions struct {
	OSRelease string // judge compatibility against this file instead of the host's
	Force     bool
	Mutable   string // a mutable mode in systemd's words (ParseMode)
	Log       *slog.Logger
}

// TrialImage opens the image at path for a trial and chooses its class:
// the one named, else the one whose release file the image carries. An
// image whose file is named as strata bake names it takes its name from
// its extension-release (BakedName); renamed says so.
func TrialImage(path, class, arch string) (img image.Image, c imageclass.Class, renamed bool, err error) {
	img, err = image.FromPath(path, imageclass.Sysext)
	if err != nil {
		return image.Image{}, 0, false, fmt.Errorf("test %s: %w", path, err)
	}
	for _, k := range imageclass.All() {
		if class == "" || class == k.String() {
			if img, renamed = BakedName(img, k, arch); renamed {
				break
			}
		}
	}
	c, err = trialClass(class, img, arch)
	return img, c, renamed, err
}

// trialClass takes the class from the flag, else from which release file
// the image carries.
func trialClass(flag string, img image.Image, arch string) (imageclass.Class, error) {
	if flag != "" {
		return imageclass.Parse(flag)
	}
	for _, c := range imageclass.All() {
		cand := ReadCandidate(img, c, c.DefaultHierarchies(), arch)
		if cand.ReleaseErr == nil && cand.OpenErr == nil {
			return c, nil
		}
	}
	return imageclass.Sysext, nil
}

// NewTrial returns the engine that merges img (of class c, found at path)
// for a trial, after deciding that it would merge: an image that would not
// merge is reported as such rather than tested as an empty merge. It reads
// the host's os-release (or o.OSRelease) and the image, and needs no
// privileges.
func NewTrial(path string, img image.Image, c imageclass.Class, o TrialOptions) (*Engine, error) {
	mode, err := ParseMode(o.Mutable)
	if err != nil {
		return nil, err
	}
	e := &Engine{Class: c, Root: "/", Hierarchies: c.DefaultHierarchies(), Mode: mode, Force: o.Force,
		Log: o.Log, Images: []image.Image{img}, Stack: true}
	if o.OSRelease != "" {
		rel, _, err := osrelease.ParseFile(o.OSRelease)
		if err != nil {
			return nil, err
		}
		e.Host = &osrelease.Host{Release: rel, Scope: "system", Architecture: sdparse.NativeArchitecture()}
	}
	host, err := e.HostRelease()
	if err != nil {
		return nil, err
	}
	cand := ReadCandidate(img, c, e.Hierarchies, sdparse.NativeArchitecture())
	switch v := Check(cand, c, host, o.Force, e.Hierarchies); {
	case v.Fatal != nil:
		return nil, v.Fatal
	case v.Status == StatusEmpty:
		return nil, fmt.Errorf("test %s: the image %s", path, v.Reason)
	case !v.Use:
		return nil, fmt.Errorf("test %s: the image would not merge on this host: %s (use --force to test anyway)", path, v.Reason)
	}
	return e, nil
}

// MakeMountsPrivate stops mounts made in this (fresh) mount namespace from
// propagating back to the host's: the first step of a trial's child.
func MakeMountsPrivate() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make the test's mount namespace private: %w", err)
	}
	return nil
}

// RunTrial merges the trial's image; the caller then execs the command.
func RunTrial(ctx context.Context, path string, e *Engine) error {
	if _, err := e.Merge(ctx); err != nil {
		return fmt.Errorf("test %s: %w", path, err)
	}
	return nil
}
