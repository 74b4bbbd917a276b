package merge

import (
	"crypto/x509"
	"fmt"
	"io"
	"os"

	"github.com/stratalinux/strata/internal/ddi"
	"github.com/stratalinux/strata/internal/fsread"
	"github.com/stratalinux/strata/internal/image"
	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/imagepolicy"
)

// ReadCandidate reads what Evaluate needs from an image without mounting
// it: directories directly, raw images and block devices through Strata's
// user-space filesystem readers. It needs no privileges.
// Signatures are not trusted and no image policy applies (Engine.ReadCandidate
// applies the engine's).
func ReadCandidate(img image.Image, c imageclass.Class, hierarchies []string, arch string) Candidate {
	return readCandidate(img, c, hierarchies, arch, nil, nil)
}

// ReadCandidate reads img as list, check and merge judge it: under the
// engine's image policy, with the root's verity.d certificates trusted. An
// image the policy refuses is a candidate with OpenErr (a *PolicyError)
// and its Protection report.
func (e *Engine) ReadCandidate(img image.Image) Candidate {
	return readCandidate(img, e.Class, e.Hierarchies, e.arch(), &e.Policy, e.trusted())
}

func readCandidate(img image.Image, c imageclass.Class, hierarchies []string, arch string, policy *imagepolicy.Policy, trusted []*x509.Certificate) Candidate {
	cand := Candidate{Image: img}
	cand.Protection, cand.OpenErr = withTree(img, arch, policy, trusted, func(t fsread.FS) { fillFromTree(&cand, t, c, hierarchies) })
	return cand
}

// Protection assesses a raw image or block device without mounting it:
// its report (nil for a bare filesystem without verity data) and, with a
// policy, a *PolicyError when the policy refuses it.
func Protection(img image.Image, arch string, policy *imagepolicy.Policy, trusted []*x509.Certificate) (*ddi.Report, error) {
	if img.Kind == image.KindDirectory {
		return nil, nil
	}
	src, err := probeRaw(img, arch, policy, trusted)
	return src.report, err
}

// CandidateFromTree is ReadCandidate for an image whose tree the caller
// has open already (strata inspect), so that it is judged by the same
// reads as check, list and merge.
func CandidateFromTree(img image.Image, t fsread.FS, c imageclass.Class, hierarchies []string) Candidate {
	cand := Candidate{Image: img}
	fillFromTree(&cand, t, c, hierarchies)
	return cand
}

// BakedName renames an image given explicitly whose file is named as
// strata bake names it (hello-1.0-x86-64.raw) and that has no
// extension-release for that name, after its one extension-release.hello
// (image.BakedName). Merging from the search directories never does
// this: systemd-sysext wants the file named after its release.
func BakedName(img image.Image, c imageclass.Class, arch string) (image.Image, bool) {
	var name string
	var ok bool
	if _, err := withTree(img, arch, nil, nil, func(t fsread.FS) { name, ok = image.BakedReleaseName(t, c, img.Name) }); err != nil || !ok {
		return img, false
	}
	img.Name = name
	return img, true
}

// withTree opens an image for reading without mounting it: directories
// directly, raw images and block devices through Strata's user-space
// filesystem readers. A raw image is first assessed under policy (nil:
// none) with trusted certificates; its protection report is returned.
func withTree(img image.Image, arch string, policy *imagepolicy.Policy, trusted []*x509.Certificate, fn func(fsread.FS)) (*ddi.Report, error) {
	if img.Kind == image.KindDirectory {
		fn(image.DirTree{Root: img.Path})
		return nil, nil
	}
	src, err := probeRaw(img, arch, policy, trusted)
	if err != nil {
		return src.report, err
	}
	f, err := os.Open(img.Path)
	if err != nil {
		return src.report, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return src.report, err
	}
	im, err := fsread.Open(f, size, arch)
	if err != nil {
		return src.report, fmt.Errorf("read image: %w", err)
	}
	fn(im.FS)
	return src.report, nil
}
