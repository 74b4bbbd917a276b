package register

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/stratalinux/strata/internal/atomicfile"
	"github.com/stratalinux/strata/internal/flake"
)

// PullPodman pulls a registry reference, or loads an archive when ref is
// an existing file, into the caller's podman storage; podman's output
// goes to out.
func PullPodman(ctx context.Context, ref string, out io.Writer) error {
	bin, err := exec.LookPath("podman")
	if err != nil {
		return errors.New("podman is not installed (apt-get install podman)")
	}
	argv := []string{"pull", ref}
	if _, err := os.Stat(ref); err == nil {
		argv = []string{"load", "-i", ref}
	}
	c := exec.CommandContext(ctx, bin, argv...)
	c.Stdout, c.Stderr = out, out
	if err := c.Run(); err != nil {
		return fmt.Errorf("pull %s: podman %s failed: %w", ref, argv[0], err)
	}
	return nil
}

// Download fetches an http(s) URL to dst atomically.
type Download func(ctx context.Context, url, dst string) error

// PullVM puts a VM's kernel, rootfs and optional initrd (each a URL or a
// file) under imagesDir/name, each written atomically, and returns the
// directory.
func PullVM(ctx context.Context, imagesDir, name, kernel, rootfs, initrd string, download Download) (string, error) {
	if err := flake.ValidateName(name); err != nil {
		return "", fmt.Errorf("--name: %w", err)
	}
	if kernel == "" || rootfs == "" {
		return "", errors.New("pull vm: --kernel and --rootfs are required")
	}
	dir := filepath.Join(imagesDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, p := range []struct{ dst, src string }{{"kernel", kernel}, {"rootfs", rootfs}, {"initrd", initrd}} {
		if p.src == "" {
			continue
		}
		dst := filepath.Join(dir, p.dst)
		var err error
		if strings.HasPrefix(p.src, "http://") || strings.HasPrefix(p.src, "https://") {
			err = download(ctx, p.src, dst)
		} else {
			err = copyFile(p.src, dst)
		}
		if err != nil {
			return "", err
		}
	}
	return dir, nil
}

// copyFile copies src to dst atomically.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	defer in.Close()
	if err := atomicfile.WriteFrom(dst, in, 0o600); err != nil {
		return fmt.Errorf("pull %s: %w", src, err)
	}
	return nil
}
