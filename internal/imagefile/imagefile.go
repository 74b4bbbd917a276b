// Package imagefile opens an extension image file as a file system: with
// the pure-Go readers (fsread), or, for what they refuse, by extracting it
// with the filesystem's own user-space tools (no root, no mount).
package imagefile

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/stratalinux/strata/internal/fsimage"
)

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
