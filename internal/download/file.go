package download

import (
	"context"
	"os"
	"path/filepath"
)

// Result describes a finished File download.
type Result struct {
	Path   string
	SHA256 string
	Size   int64
}

// File downloads rawURL to dst: into a temporary file in dst's directory,
// hashed as it arrives, checked for truncation, against maxSize (0: no
// limit) and against wantSHA256 (hex; empty skips the check, only for
// sources a recipe marks unverifiable), then fsynced and renamed into
// place. A failed download leaves nothing behind.
func (c *Client) File(ctx context.Context, rawURL, dst, wantSHA256 string, maxSize int64) (Result, error) {
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".part-")
	if err != nil {
		return Result{}, err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	opt := Options{MaxSize: maxSize}
	if c.Progress != nil {
		opt.Progress = c.Progress(rawURL)
	}
	got, err := c.Resume(ctx, rawURL, tmp, wantSHA256, opt)
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		return Result{}, err
	}
	fi, err := tmp.Stat()
	if err != nil {
		return Result{}, err
	}
	if err := tmp.Close(); err != nil {
		return Result{}, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return Result{}, err
	}
	ok = true
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		d.Sync()
		d.Close()
	}
	return Result{Path: dst, SHA256: got, Size: fi.Size()}, nil
}
