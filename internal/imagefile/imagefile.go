// Package imagefile recognises an extension image file's format from its
// magic numbers and, until the pure-Go readers are used, extracts it with
// the filesystem's own user-space tools (no root, no mount).
package imagefile

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/stratalinux/strata/internal/fsimage"
)

// Detect returns "squashfs", "erofs", "ext4" or "gpt" from the first
// bytes of an image.
func Detect(r io.ReaderAt) (string, error) {
	head := make([]byte, 2048)
	n, err := r.ReadAt(head, 0)
	if n < 4 {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return "", fmt.Errorf("reading image header: %w", err)
	}
	head = head[:n]
	le := binary.LittleEndian
	switch {
	case string(head[:4]) == "hsqs":
		return "squashfs", nil
	case n >= 1028 && le.Uint32(head[1024:]) == 0xE0F5E1E2:
		return "erofs", nil
	case n >= 1082 && le.Uint16(head[1024+0x38:]) == 0xEF53:
		return "ext4", nil
	case n >= 520 && string(head[512:520]) == "EFI PART":
		return "gpt", nil
	}
	return "", errors.New("not a squashfs, erofs, ext4 or GPT image")
}

// Extract unpacks the image into dir (which must not exist) with the
// format's own tools.
func Extract(ctx context.Context, img, format, dir string) error {
	var name string
	var args []string
	switch format {
	case "squashfs":
		name, args = "unsquashfs", []string{"-no-progress", "-quiet", "-d", dir, img}
	case "erofs":
		name, args = "fsck.erofs", []string{"--extract=" + dir, img}
	case "ext4":
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		name, args = "debugfs", []string{"-R", "rdump / " + dir, img}
	default:
		return fmt.Errorf("cannot read %s images yet", format)
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		pkg := map[string]string{"unsquashfs": "squashfs-tools", "fsck.erofs": "erofs-utils", "debugfs": "e2fsprogs"}[name]
		return &fsimage.ToolMissingError{Tool: name, Package: pkg}
	}
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, img, err, strings.TrimSpace(string(out)))
	}
	return nil
}
