package bake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/stratalinux/strata/internal/ddi"
	"github.com/stratalinux/strata/internal/fsimage"
	"github.com/stratalinux/strata/internal/lint"
)

// Result describes the image a bake wrote.
type Result struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256,omitempty"`
	Size   int64  `json:"size"`
	// SumPath is the NAME-VERSION-ARCH.raw.sha256 file (none for a
	// directory image).
	SumPath string `json:"sha256_file,omitempty"`
	// Findings are what lint found (nil when it did not run); the
	// command prints them its own way.
	Findings lint.Findings `json:"-"`
}

// ExecOptions are the acting side's knobs.
type ExecOptions struct {
	// Check runs while the image is written (lint); an error cancels the
	// write and fails the bake.
	Check func(ctx context.Context) error
	// Progress receives the tool's progress output (nil: quiet).
	Progress io.Writer
}

// Execute writes the planned image: into a private temporary directory in
// the output directory, with the check running alongside; then it fsyncs
// and hashes the image, writes the .sha256 file and renames both into
// place, and fsyncs the directory. On error or cancellation nothing is
// left behind.
func Execute(ctx context.Context, p Plan, eo ExecOptions) (Result, error) {
	outDir := filepath.Dir(p.Output)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return Result{}, fmt.Errorf("output directory: %w", err)
	}
	tmp, err := os.MkdirTemp(outDir, ".strata-bake-")
	if err != nil {
		return Result{}, fmt.Errorf("output directory: %w", err)
	}
	defer os.RemoveAll(tmp)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var checkErr error
	var wg sync.WaitGroup
	if eo.Check != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := eo.Check(ctx); err != nil && ctx.Err() == nil {
				checkErr = err
				cancel()
			}
		}()
	}
	opt := fsimage.Options{
		Epoch:       p.Req.Epoch,
		Compression: p.Req.Compression,
		Seed:        p.FileName,
		Progress:    eo.Progress,
		StageDir:    tmp,
	}
	// Scratch trees (an erofs/ext4 hard-link farm) are removed while the
	// image is fsynced and hashed, not before.
	var scratch []string
	opt.Scratch = func(dir string) { scratch = append(scratch, dir) }
	var cleanup sync.WaitGroup
	defer cleanup.Wait()
	removeScratch := func() {
		dirs := scratch
		scratch = nil
		if len(dirs) == 0 {
			return
		}
		cleanup.Add(1)
		go func() {
			defer cleanup.Done()
			for _, d := range dirs {
				os.RemoveAll(d)
			}
		}()
	}
	if p.Generate {
		opt.Extra = []fsimage.File{{Path: p.ReleasePath, Data: p.Release.Render(), Mode: 0o644}}
	}
	img := filepath.Join(tmp, p.FileName)
	werr := p.Writer.Write(ctx, p.Req.Dir, img, opt)
	removeScratch()
	wg.Wait()
	if checkErr != nil {
		return Result{}, checkErr
	}
	if werr != nil {
		if errors.Is(werr, context.Canceled) || ctx.Err() != nil {
			return Result{}, fmt.Errorf("bake of %s cancelled: %w", p.FileName, context.Cause(ctx))
		}
		return Result{}, fmt.Errorf("writing %s image of %s: %w", p.Writer.Format(), p.Req.Dir, werr)
	}
	if p.DDI {
		if err := wrapDDI(ctx, p, img); err != nil {
			return Result{}, err
		}
	}
	res := Result{Path: p.Output}
	if p.Writer.IsDir() {
		if err := os.RemoveAll(p.Output); err != nil {
			return Result{}, err
		}
		if err := os.Rename(img, p.Output); err != nil {
			return Result{}, err
		}
		return res, syncDir(outDir)
	}
	sum, size, err := syncAndHash(img)
	if err != nil {
		return Result{}, err
	}
	res.SHA256, res.Size = sum, size
	res.SumPath = p.Output + ".sha256"
	sumTmp := filepath.Join(tmp, p.FileName+".sha256")
	if err := writeSynced(sumTmp, []byte(sum+"  "+p.FileName+"\n")); err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if err := os.Rename(img, p.Output); err != nil {
		return Result{}, err
	}
	if err := os.Rename(sumTmp, res.SumPath); err != nil {
		return Result{}, err
	}
	return res, syncDir(outDir)
}

// wrapDDI replaces the filesystem image at img by a DDI holding it.
func wrapDDI(ctx context.Context, p Plan, img string) error {
	out := img + ".ddi"
	if _, err := ddi.Bake(ctx, ddi.Request{FSImage: img, Out: out, Designator: p.Designator(), Arch: p.Arch,
		Verity: p.Req.Verity, SignKey: p.Req.SignKey, SignCert: p.Req.SignCert, Seed: p.FileName}); err != nil {
		return fmt.Errorf("writing DDI of %s: %w", p.Req.Dir, err)
	}
	return os.Rename(out, img)
}

func syncAndHash(p string) (string, int64, error) {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	// Write-back and hashing (from the page cache) overlap: the bake's
	// wall time pays the longer of the two, not their sum.
	synced := make(chan error, 1)
	go func() { synced <- f.Sync() }()
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62))
	if serr := <-synced; serr != nil {
		return "", 0, serr
	}
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func writeSynced(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
