package sysupdate

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stratalinux/strata/internal/archive"
	"github.com/stratalinux/strata/internal/download"
	"github.com/ulikunitz/xz"
)

// acquire brings one transfer's instance to the pending name: downloaded
// (resumed), verified, fsynced.
func (e *Engine) acquire(ctx context.Context, j job) error {
	if exists(j.final) || exists(j.pending) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(j.final), 0o755); err != nil {
		return fmt.Errorf("transfer %s: create %s: %w", j.t.ID, filepath.Dir(j.final), err)
	}
	var err error
	switch j.t.Source.Type {
	case URLFile:
		err = e.acquireURLFile(ctx, j)
	case RegularFile:
		err = e.acquireLocalFile(j)
	case URLTar, Tar:
		err = e.acquireTar(ctx, j)
	case Directory:
		err = e.acquireDir(j)
	default:
		err = fmt.Errorf("source type %s is not supported", j.t.Source.Type)
	}
	if err != nil {
		return fmt.Errorf("transfer %s: %w", j.t.ID, err)
	}
	if err := e.applyMeta(j); err != nil {
		return fmt.Errorf("transfer %s: %w", j.t.ID, err)
	}
	if err := renameSync(j.partial, j.pending); err != nil {
		return fmt.Errorf("transfer %s: %w", j.t.ID, err)
	}
	e.step("pending")
	return nil
}

// fileMode is the installed file's mode: Mode=, else @m of the source's
// name, else the local source's mode; ReadOnly= (or @r) strips the write
// bits.
func (e *Engine) fileMode(j job) fs.FileMode {
	mode := fs.FileMode(0o644)
	if j.meta.Mode != nil {
		mode = fs.FileMode(*j.meta.Mode)
	}
	if j.meta.ReadOnly != nil && *j.meta.ReadOnly {
		mode &^= 0o222
	}
	return mode
}

// applyMeta gives the acquired instance what systemd applies before it
// becomes pending: the mtime (@t of the source's name, else a local
// source's) and, for directories, the mode; files got theirs when
// written. Then it is made durable.
func (e *Engine) applyMeta(j job) error {
	fi, err := os.Lstat(j.partial)
	if err != nil {
		return err
	}
	if fi.IsDir() && j.meta.Mode != nil {
		if err := os.Chmod(j.partial, e.fileMode(j)); err != nil {
			return err
		}
	}
	if j.meta.Mtime != nil {
		mt := time.UnixMicro(int64(*j.meta.Mtime))
		if err := os.Chtimes(j.partial, mt, mt); err != nil {
			return fmt.Errorf("set mtime of %s: %w", j.partial, err)
		}
	}
	if fi.IsDir() {
		return syncTree(j.partial)
	}
	f, err := os.Open(j.partial)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func (e *Engine) progress(name string) func(done, total int64) {
	if e.Progress == nil {
		return nil
	}
	return e.Progress(name)
}

func (e *Engine) acquireURLFile(ctx context.Context, j job) error {
	if compressedName(j.src.Name) {
		return e.acquireCompressed(ctx, j)
	}
	f, err := os.OpenFile(j.partial, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	e.step("partial-open")
	if err := e.download(ctx, j, f); err != nil {
		return err
	}
	if err := f.Chmod(e.fileMode(j)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return nil
}

// download resumes the job's source into f (open on its partial or download-temp file) and verifies
// it. On failure f is closed and, when nothing is worth resuming (a wrong hash, too large) or the
// disk is full (give the space back), its file is removed.
func (e *Engine) download(ctx context.Context, j job, f *os.File) error {
	_, err := e.client().Resume(ctx, j.src.Path, f, j.src.SHA256, download.Options{MaxSize: e.MaxSize, Size: max(j.src.Size, 0), Progress: e.progress(j.src.Name), Step: e.Step, ChunkSize: e.ChunkSize})
	if err != nil {
		f.Close()
		var mm *download.MismatchError
		var tl *download.TooLargeError
		if errors.As(err, &mm) || errors.As(err, &tl) || errors.Is(err, syscall.ENOSPC) {
			os.Remove(f.Name())
		}
		return err
	}
	e.step("verified")
	return nil
}

// compressedName says a url-file payload is compressed: like
// systemd-pull, Strata stores it decompressed (the manifest hash is over
// the compressed bytes).
func compressedName(name string) bool {
	for _, s := range []string{".gz", ".xz", ".zst", ".bz2"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// acquireCompressed downloads (resumably) to a temporary file, verifies
// it, and decompresses it into the partial file.
func (e *Engine) acquireCompressed(ctx context.Context, j job) error {
	f, err := os.OpenFile(j.dlTemp, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := e.download(ctx, j, f); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	defer f.Close()
	r, err := decompressor(bufio.NewReader(f), j.src.Name)
	if err != nil {
		return fmt.Errorf("%s: %w", j.src.Name, err)
	}
	out, err := os.OpenFile(j.partial, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		os.Remove(j.partial)
		return fmt.Errorf("decompress %s: %w", j.src.Name, err)
	}
	if err := out.Chmod(e.fileMode(j)); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	e.step("decompressed")
	os.Remove(j.dlTemp)
	return nil
}

func decompressor(br *bufio.Reader, name string) (io.Reader, error) {
	switch {
	case strings.HasSuffix(name, ".gz"):
		return gzip.NewReader(br)
	case strings.HasSuffix(name, ".xz"):
		return xz.NewReader(br)
	case strings.HasSuffix(name, ".zst"):
		d, err := zstd.NewReader(br, zstd.WithDecoderMaxMemory(1<<30), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case strings.HasSuffix(name, ".bz2"):
		return bzip2.NewReader(br), nil
	}
	return br, nil
}

func (e *Engine) acquireLocalFile(j job) error {
	os.Remove(j.partial)
	if err := copyFile(j.src.Path, j.partial, 0o600); err != nil {
		return err
	}
	if err := os.Chmod(j.partial, e.fileMode(j)); err != nil {
		return err
	}
	e.step("copied")
	return nil // applyMeta sets the mtime and fsyncs
}

func (e *Engine) acquireTar(ctx context.Context, j job) error {
	src := j.src.Path
	if j.t.Source.Type == URLTar {
		f, err := os.OpenFile(j.dlTemp, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		_, err = e.client().Resume(ctx, j.src.Path, f, j.src.SHA256, download.Options{MaxSize: e.MaxSize, Size: max(j.src.Size, 0), Progress: e.progress(j.src.Name), Step: e.Step, ChunkSize: e.ChunkSize})
		f.Close()
		if err != nil {
			var mm *download.MismatchError
			var tl *download.TooLargeError
			if errors.As(err, &mm) || errors.As(err, &tl) {
				os.Remove(j.dlTemp)
			}
			return err
		}
		src = j.dlTemp
		e.step("verified")
	}
	if err := os.RemoveAll(j.partial); err != nil {
		return err
	}
	if err := os.Mkdir(j.partial, 0o755); err != nil {
		return err
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	typ, err := tarType(br)
	if err != nil {
		return fmt.Errorf("%s: %w", j.src.Name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	lim := archive.DefaultLimits
	if e.MaxUnpackRatio != 0 {
		lim.MaxRatio = e.MaxUnpackRatio
	}
	if err := archive.ExtractTar(ctx, br, typ, j.partial, archive.Options{Limits: lim, InputSize: fi.Size(), Hint: "raise --max-unpack-ratio if the archive is genuine"}); err != nil {
		// A bomb's partial tree may be large: give the space back.
		os.RemoveAll(j.partial)
		if j.t.Source.Type == URLTar {
			os.Remove(j.dlTemp)
		}
		return fmt.Errorf("unpack %s: %w", j.src.Name, err)
	}
	if err := syncTree(j.partial); err != nil {
		return err
	}
	e.step("unpacked")
	if j.t.Source.Type == URLTar {
		os.Remove(j.dlTemp)
	}
	return nil
}

// tarType recognises the compression by its magic bytes.
func tarType(br *bufio.Reader) (string, error) {
	head, _ := br.Peek(6)
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return "tar.gz", nil
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return "tar.xz", nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "tar.zst", nil
	case len(head) == 0:
		return "", io.ErrUnexpectedEOF
	}
	return "tar", nil
}

func (e *Engine) acquireDir(j job) error {
	if err := os.RemoveAll(j.partial); err != nil {
		return err
	}
	if err := copyTree(j.src.Path, j.partial); err != nil {
		return fmt.Errorf("copy %s: %w", j.src.Path, err)
	}
	if err := syncTree(j.partial); err != nil {
		return err
	}
	e.step("copied")
	return nil
}
