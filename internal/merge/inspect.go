package merge

import (
	"fmt"
	"io"
	"os"

	"github.com/stratalinux/strata/internal/fsread"
	"github.com/stratalinux/strata/internal/image"
	"github.com/stratalinux/strata/internal/imageclass"
)

// ReadCandidate reads what Evaluate needs from an image without mounting
// it: directories directly, raw images and block devices through Strata's
// user-space filesystem readers. It needs no privileges.
func ReadCandidate(img image.Image, c imageclass.Class, hierarchies []string, arch string) Candidate {
	cand := Candidate{Image: img}
	cand.OpenErr = withTree(img, arch, func(t fsread.FS) { fillFromTree(&cand, t, c, hierarchies) })
	return cand
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
	if withTree(img, arch, func(t fsread.FS) { name, ok = image.BakedReleaseName(t, c, img.Name) }) != nil || !ok {
		return img, false
	}
	img.Name = name
	return img, true
}

// withTree opens an image for reading without mounting it: directories
// directly, raw images and block devices through Strata's user-space
// filesystem readers.
func withTree(img image.Image, arch string, fn func(fsread.FS)) error {
	if img.Kind == image.KindDirectory {
		fn(image.DirTree{Root: img.Path})
		return nil
	}
	if _, err := probeRaw(img, arch, nil, nil); err != nil {
		return err
	}
	f, err := os.Open(img.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	im, err := fsread.Open(f, size, arch)
	if err != nil {
		return fmt.Errorf("read image: %w", err)
	}
	fn(im.FS)
	return nil
}
