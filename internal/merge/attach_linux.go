package merge

import (
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/stratalinux/strata/internal/ddi"
	"github.com/stratalinux/strata/internal/dm"
	"github.com/stratalinux/strata/internal/fsmagic"
	"github.com/stratalinux/strata/internal/image"
	"github.com/stratalinux/strata/internal/imagepolicy"
	"github.com/stratalinux/strata/internal/loop"
	"github.com/stratalinux/strata/internal/verity"
	"golang.org/x/sys/unix"
)

// imageSource says what to mount for a raw image or block device.
type imageSource struct {
	fstype         string
	offset, length int64
	partition      string // "root" or "usr" for GPT images
	designator     imagepolicy.Designator
	// protection is how the data partition is protected (unprotected,
	// verity, signed); verity is set for the last two.
	protection imagepolicy.Protection
	verity     *ddi.Verity
	signer     string // the signing certificate's subject, when signed
	// report is what list, check and inspect say about its protection
	// (nil for a bare filesystem without verity data).
	report *ddi.Report
}

// probeRaw decides how to mount a raw image or block device without
// mounting it: a bare filesystem (by magic) or a GPT disk image's root or
// usr partition for arch, with its verity data (partitions or the
// NAME.roothash/.verity/.p7s sidecars) and signature checked against the
// trusted certificates. With a policy, the image is refused here when the
// policy does not accept it, as systemd-dissect refuses it, or when it
// accepts it only verified and this kernel has no device-mapper; the
// refusal is a *PolicyError and src still carries the report.
func probeRaw(img image.Image, arch string, policy *imagepolicy.Policy, trusted []*x509.Certificate) (imageSource, error) {
	side, err := ddi.LoadSidecars(img.Path)
	if err != nil {
		return imageSource{}, err
	}
	f, err := os.Open(img.Path)
	if err != nil {
		return imageSource{}, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return imageSource{}, err
	}
	format, err := fsmagic.Detect(f, size)
	if err != nil {
		return imageSource{}, fmt.Errorf("not a filesystem or disk image Strata can use: %w", err)
	}
	if format != fsmagic.GPT {
		if err := fsmagic.CheckComplete(f, format, size); err != nil {
			return imageSource{}, err
		}
	}
	im, err := ddi.Open(f, size, ddi.Options{Arch: arch, Sidecars: side})
	if err != nil {
		return imageSource{}, err
	}
	var pick *ddi.Partition
	for _, d := range []imagepolicy.Designator{imagepolicy.Root, imagepolicy.Usr} {
		if p, ok := im.Parts[d]; ok {
			pick = &p
			break
		}
	}
	if pick == nil {
		return imageSource{}, fmt.Errorf("GPT image has no root or usr partition for architecture %s", arch)
	}
	kind := pick.Designator.String()
	src := imageSource{fstype: string(format), offset: pick.Offset, length: pick.Size, designator: pick.Designator, protection: imagepolicy.ProtUnprotected}
	if format == fsmagic.GPT {
		src.partition = kind
		sec := io.NewSectionReader(f, pick.Offset, pick.Size)
		inner, err := fsmagic.Detect(sec, pick.Size)
		if err != nil || inner == fsmagic.GPT {
			return imageSource{}, fmt.Errorf("%s partition %d holds no filesystem Strata can mount: %v", kind, pick.Index, err)
		}
		if err := fsmagic.CheckComplete(sec, inner, pick.Size); err != nil {
			return imageSource{}, fmt.Errorf("%s partition %d: %w", kind, pick.Index, err)
		}
		src.fstype = string(inner)
	}
	pol := imagepolicy.MustParse("*")
	if policy != nil {
		pol = *policy
	}
	a, err := ddi.Assess(im, f, trusted, pol)
	if err != nil {
		return imageSource{}, err
	}
	if fd, ok := a.Finding(pick.Designator); ok {
		src.protection, src.verity = fd.Protection, fd.Verity
		if fd.Signer != nil {
			src.signer = fd.Signer.Subject.String()
		}
	}
	src.report = ddi.NewReport(im, a, pol)
	if policy == nil {
		return src, nil
	}
	if a.Refused != "" {
		return src, &PolicyError{Report: src.report, Err: fmt.Errorf("refused by the image policy %s: %s; pass --image-policy= to change it", pol, a.Refused)}
	}
	if src.verity != nil && imagepolicy.RequiresVerity(pol, src.designator) {
		if err := dm.Available(); err != nil {
			err = unverifiable(img, pol, err)
			if src.report != nil {
				src.report.RefusedBy, src.report.Refused = ddi.Rule(pol, src.designator), err.Error()
			}
			return src, &PolicyError{Report: src.report, Err: err}
		}
	}
	return src, nil
}

// PolicyError is an image the image policy refuses (or accepts only
// verified where dm-verity is missing); Report says what was found.
type PolicyError struct {
	Report *ddi.Report
	Err    error
}

func (e *PolicyError) Error() string { return e.Err.Error() }
func (e *PolicyError) Unwrap() error { return e.Err }

// unverifiable is the refusal of an image the policy accepts only
// verified, on a kernel without device-mapper.
func unverifiable(img image.Image, policy imagepolicy.Policy, why error) error {
	return fmt.Errorf("%s is protected by dm-verity and the image policy %s accepts it only verified, but %v; refusing to mount it unverified", img.Path, policy, why)
}

// attachImage mounts img read-only at dir. Loop devices are attached with
// auto-clear, so unmounting (or the namespace going away) releases them;
// a dm-verity device is removed deferred, so it goes with the unmount.
func attachImage(img image.Image, dir, arch string, policy imagepolicy.Policy, trusted []*x509.Certificate) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	switch img.Kind {
	case image.KindDirectory:
		if err := unix.Mount(img.Path, dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind mount %s: %w", img.Path, err)
		}
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(unix.AT_FDCWD, dir, unix.AT_RECURSIVE, &attr); err != nil {
			return fmt.Errorf("make %s read-only: %w", img.Path, err)
		}
		return nil
	case image.KindRaw, image.KindBlock:
		src, err := probeRaw(img, arch, &policy, trusted)
		if err != nil {
			return err
		}
		dev := img.Path
		var ld *loop.Device
		if img.Kind == image.KindRaw || src.offset != 0 {
			ld, err = loop.Attach(img.Path, loop.Options{Offset: uint64(src.offset), SizeLimit: uint64(src.length)})
			if err != nil {
				return err
			}
			defer ld.Close()
			dev = ld.Path
		}
		if src.verity != nil {
			vdev, cleanup, err := openVerity(img, src, dev, policy)
			if err != nil {
				return err
			}
			defer cleanup()
			dev = vdev
		}
		data := ""
		if src.fstype == "ext4" {
			data = "noload"
		}
		if err := unix.Mount(dev, dir, src.fstype, unix.MS_RDONLY|unix.MS_NODEV, data); err != nil {
			return fmt.Errorf("mount %s (%s) from %s: %w", img.Path, src.fstype, dev, err)
		}
		return nil
	}
	return errors.New("unknown image kind " + string(img.Kind))
}

// openVerity puts the data partition (attached at dataDev) behind
// dm-verity. Without device-mapper an image the policy also accepts
// unprotected is mounted as such (dev is returned unchanged); one whose
// policy requires verity is refused, never mounted unverified. cleanup
// removes the device deferred: it stays while mounted and goes with the
// unmount.
func openVerity(img image.Image, src imageSource, dataDev string, policy imagepolicy.Policy) (string, func(), error) {
	none := func() {}
	if err := dm.Available(); err != nil {
		if imagepolicy.RequiresVerity(policy, src.designator) {
			return "", none, unverifiable(img, policy, err)
		}
		return dataDev, none, nil
	}
	v := src.verity
	hashPath, hashOff, hashLen := img.Path, int64(0), int64(0)
	if v.HashPart != nil {
		hashOff, hashLen = v.HashPart.Offset, v.HashPart.Size
	} else {
		hashPath = v.HashSidecar
	}
	hl, err := loop.Attach(hashPath, loop.Options{Offset: uint64(hashOff), SizeLimit: uint64(hashLen)})
	if err != nil {
		return "", none, fmt.Errorf("attach the verity hash tree of %s: %w", img.Path, err)
	}
	defer hl.Close()
	sb, err := verity.ReadSuperblock(hl.File(), 0)
	if err != nil {
		return "", none, fmt.Errorf("verity superblock of %s: %w", img.Path, err)
	}
	name := "strata-" + hex.EncodeToString(v.RootHash[:min(len(v.RootHash), 16)])
	table := verity.Table(dataDev, hl.Path, sb, 0, v.RootHash)
	path, err := dm.CreateVerity(name, "", table)
	if err != nil {
		return "", none, fmt.Errorf("open dm-verity for %s: %w", img.Path, err)
	}
	if st, err := dm.Status(name); err != nil || !strings.HasPrefix(st, "V") {
		_ = dm.Remove(name)
		return "", none, fmt.Errorf("dm-verity for %s reports %q (%v), not verified", img.Path, st, err)
	}
	return path, func() { _ = dm.RemoveDeferred(name) }, nil
}
