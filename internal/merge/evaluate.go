package merge

import (
	"errors"
	"fmt"
	"strings"

	"github.com/stratalinux/strata/internal/ddi"
	"github.com/stratalinux/strata/internal/image"
	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/osrelease"
)

// Candidate is a discovered image with what was read from inside it.
type Candidate struct {
	Image   image.Image
	Release image.Release
	// ReleaseErr is image.ErrNoReleaseData when the image has no
	// extension-release file for its name, or the error reading it.
	ReleaseErr error
	// OpenErr is set when the image could not be opened at all.
	OpenErr error
	// HasOSRelease is set when the image carries usr/lib/os-release.
	HasOSRelease bool
	// OtherClassRelease is set when the image has no release data for
	// this class but has it for the other one (a confext seen by sysext).
	OtherClassRelease bool
	// Provides lists the hierarchies (e.g. "/usr") the image holds as
	// non-empty directories.
	Provides []string
	// Protection is how a raw image is protected and signed, and the
	// image policy rule that refuses it (nil for directories and bare
	// filesystems without verity data).
	Protection *ddi.Report
}

// Status is the outcome of evaluating one image.
type Status string

const (
	StatusReady        Status = "ready"        // would be merged
	StatusMerged       Status = "merged"       // is merged now
	StatusIncompatible Status = "incompatible" // release data does not match the host
	StatusNoRelease    Status = "no-release"   // no extension-release file (also: masking entries)
	StatusBad          Status = "bad"          // cannot be used; merging fails
	StatusShadowed     Status = "shadowed"     // a higher-precedence entry has the name
	StatusEmpty        Status = "empty"        // provides none of the hierarchies
)

// Verdict is what Evaluate decided for one image and why.
type Verdict struct {
	Name   string
	Use    bool
	Status Status
	Reason string
	// Rule is a stable key for the deciding check: an osrelease.Rule*
	// value when the release was compared with the host, else one of
	// the Rule* constants of this package.
	Rule string
	// Fatal errors abort a merge as they abort systemd-sysext's.
	Fatal error
}

// Rule values of a Verdict not decided by osrelease.Compatible.
const (
	RuleOpen           = "open"         // the image cannot be opened
	RuleImagePolicy    = "image-policy" // the image policy refuses it
	RuleOSRelease      = "os-release"   // a sysext carrying usr/lib/os-release
	RuleNoReleaseData  = osrelease.RuleNoReleaseData
	RuleReleaseInvalid = "release-invalid" // the extension-release cannot be read or parsed
	RuleOtherClass     = "other-class"     // release data only for the other class
	RuleEmpty          = "empty"           // provides none of the hierarchies
)

// Evaluate decides which candidates are merged on host, in systemd's
// order of checks. With force the compatibility checks are skipped.
func Evaluate(cands []Candidate, c imageclass.Class, host osrelease.Host, force bool) []Verdict {
	out := make([]Verdict, len(cands))
	for i, cand := range cands {
		out[i] = evaluateOne(cand, c, host, force)
	}
	return out
}

func evaluateOne(cand Candidate, c imageclass.Class, host osrelease.Host, force bool) Verdict {
	v := Verdict{Name: cand.Image.Name}
	// systemd reads the metadata of every image before merging and
	// gives up on the whole run when that fails; Strata says the same
	// first words and then what exactly is wrong with which file.
	failed := func(rule string, err error) Verdict {
		v.Status, v.Reason, v.Rule = StatusBad, "bad image: "+err.Error(), rule
		v.Fatal = &MetadataError{Name: cand.Image.Name, Entry: cand.Image.Entry, Err: err}
		return v
	}
	raw := cand.Image.Kind != image.KindDirectory
	switch {
	case cand.OpenErr != nil:
		var pe *PolicyError
		if errors.As(cand.OpenErr, &pe) {
			return failed(RuleImagePolicy, cand.OpenErr)
		}
		return failed(RuleOpen, cand.OpenErr)
	case cand.HasOSRelease && c == imageclass.Sysext && !raw:
		return failed(RuleOSRelease, fmt.Errorf("a system extension must not carry usr/lib/os-release (No medium found)"))
	case raw && errors.Is(cand.ReleaseErr, image.ErrNoReleaseData) && !cand.OtherClassRelease && !cand.HasOSRelease:
		return failed(RuleNoReleaseData, cand.ReleaseErr)
	case cand.HasOSRelease && c == imageclass.Sysext && !force:
		v.Status, v.Reason, v.Rule = StatusIncompatible, "incompatible: carries usr/lib/os-release (an OS image, not an extension)", RuleOSRelease
		return v
	case cand.ReleaseErr != nil && !errors.Is(cand.ReleaseErr, image.ErrNoReleaseData):
		return failed(RuleReleaseInvalid, cand.ReleaseErr)
	}
	if !force {
		if cand.ReleaseErr != nil || len(cand.Release.Fields) == 0 {
			v.Status, v.Reason, v.Rule = StatusNoRelease, "no "+c.ReleasePath(cand.Image.Name)+" in the image", RuleNoReleaseData
			if cand.OtherClassRelease {
				v.Reason, v.Rule = "a "+c.Other().String()+" image, not a "+c.String(), RuleOtherClass
			} else if cand.Image.Kind == image.KindDirectory {
				v.Reason += " (an empty directory masks images of this name)"
			}
			return v
		}
		d := osrelease.Compatible(cand.Release.Fields, host, c.LevelKey(), c.ScopeKey())
		v.Rule = d.Rule
		if !d.OK {
			v.Status, v.Reason = StatusIncompatible, d.Reason
			return v
		}
	}
	v.Use, v.Status = true, StatusReady
	return v
}

// MetadataError is an image whose metadata cannot be read, which fails
// the whole merge; its text starts with systemd's words.
type MetadataError struct {
	Name, Entry string
	Err         error
}

func (e *MetadataError) Error() string {
	return fmt.Sprintf("Failed to read metadata for image %s: %s: %v", e.Name, e.Entry, e.Err)
}

func (e *MetadataError) Unwrap() error { return e.Err }

// Check is the verdict for one image as check and test give it:
// Evaluate's verdict, and StatusEmpty when an image that would merge
// provides none of the hierarchies, so merging it would change nothing.
func Check(cand Candidate, c imageclass.Class, host osrelease.Host, force bool, hierarchies []string) Verdict {
	v := evaluateOne(cand, c, host, force)
	if v.Use && len(cand.Provides) == 0 {
		v.Use, v.Status, v.Reason, v.Rule = false, StatusEmpty, "provides none of "+strings.Join(hierarchies, ", "), RuleEmpty
	}
	return v
}

// Explain is the status and reason list shows for an image with verdict
// v: merged (into the hierarchies in merged), or what a merge would do.
func Explain(cand Candidate, v Verdict, merged []string, hierarchies []string) (Status, string) {
	switch {
	case len(merged) > 0:
		return StatusMerged, "merged into " + strings.Join(merged, ", ")
	case v.Use && len(cand.Provides) == 0:
		return v.Status, "provides none of " + strings.Join(hierarchies, ", ")
	case v.Use:
		return v.Status, "would merge into " + strings.Join(cand.Provides, ", ")
	}
	return v.Status, v.Reason
}
