package merge

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/stratalinux/strata/internal/fsmagic"
	"github.com/stratalinux/strata/internal/fsread"
	"github.com/stratalinux/strata/internal/image"
	"github.com/stratalinux/strata/internal/loop"
	"golang.org/x/sys/unix"
)

// Discoverable Partitions Specification type UUIDs of root and /usr
// partitions, by systemd architecture name.
var (
	rootPartitionTypes = map[string]string{
		"x86-64":      "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
		"x86":         "44479540-f297-41b2-9af7-d131d5f0458a",
		"arm64":       "b921b045-1df0-41c3-af44-4c6f280d3fae",
		"arm":         "69dad710-2ce4-4e3c-b16c-21a1d49abed3",
		"riscv64":     "72ec70a6-cf74-40e6-bd49-4bda08e8f224",
		"ppc64-le":    "c31c45e6-3f39-412e-80fb-4809c4980599",
		"s390x":       "5eead9a9-fe09-4a1e-a1d7-520d00531306",
		"loongarch64": "77055800-792c-4f94-b39a-98c91b762bb6",
	}
	usrPartitionTypes = map[string]string{
		"x86-64":      "8484680c-9521-48c6-9c11-b0720656f69e",
		"x86":         "75250d76-8cc6-458e-bd66-bd47cc81a812",
		"arm64":       "b0e01050-ee5f-4390-949a-9101b17104e9",
		"arm":         "7d0359a3-02b3-4f0a-865c-654403e70625",
		"riscv64":     "beaec34b-8442-439b-a40b-984381ed097d",
		"ppc64-le":    "ee2b9983-21e8-4153-86d9-b6901a54d1ce",
		"s390x":       "8a4f5770-50aa-4ed3-874a-99b710db6fea",
		"loongarch64": "e611c702-575c-4cbe-9a46-434fa0bf7e3f",
	}
)

// sidecarSuffixes are the verity files systemd picks up beside a raw image.
var sidecarSuffixes = []string{".roothash", ".roothash.p7s", ".usrhash", ".usrhash.p7s", ".verity"}

// imageSource says what to mount for a raw image or block device.
type imageSource struct {
	fstype         string
	offset, length int64
	partition      string // "root" or "usr" for GPT images
}

// probeRaw decides how to mount a raw image or block device without
// mounting it: by filesystem magic, or by GPT partition type.
func probeRaw(img image.Image, arch string) (imageSource, error) {
	base := strings.TrimSuffix(img.Path, ".raw")
	for _, s := range sidecarSuffixes {
		if _, err := os.Lstat(base + s); err == nil {
			return imageSource{}, fmt.Errorf("verity sidecar file %s%s is not supported yet (remove it, or use an image without verity)", filepath.Base(base), s)
		}
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
		return imageSource{fstype: string(format), length: size}, nil
	}
	parts, err := fsread.ReadGPT(f, size)
	if err != nil {
		return imageSource{}, fmt.Errorf("read partition table: %w", err)
	}
	var pick *fsread.Partition
	kind := ""
	for _, want := range []struct{ kind, typ string }{{"root", rootPartitionTypes[arch]}, {"usr", usrPartitionTypes[arch]}} {
		for i := range parts {
			if want.typ != "" && strings.EqualFold(parts[i].Type, want.typ) {
				pick, kind = &parts[i], want.kind
				break
			}
		}
		if pick != nil {
			break
		}
	}
	if pick == nil {
		return imageSource{}, fmt.Errorf("GPT image has no root or usr partition for architecture %s", arch)
	}
	inner, err := fsmagic.Detect(io.NewSectionReader(f, pick.Offset, pick.Size), pick.Size)
	if err != nil || inner == fsmagic.GPT {
		return imageSource{}, fmt.Errorf("%s partition %d holds no filesystem Strata can mount: %v", kind, pick.Index, err)
	}
	if err := fsmagic.CheckComplete(io.NewSectionReader(f, pick.Offset, pick.Size), inner, pick.Size); err != nil {
		return imageSource{}, fmt.Errorf("%s partition %d: %w", kind, pick.Index, err)
	}
	return imageSource{fstype: string(inner), offset: pick.Offset, length: pick.Size, partition: kind}, nil
}

// attachImage mounts img read-only at dir. Loop devices are attached with
// auto-clear, so unmounting (or the namespace going away) releases them.
func attachImage(img image.Image, dir, arch string, policy Policy) error {
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
		src, err := probeRaw(img, arch)
		if err != nil {
			return err
		}
		designator := src.partition
		if designator == "" {
			designator = "root" // a bare filesystem counts as the root partition
		}
		if err := policy.AllowsUnprotected(designator); err != nil {
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
