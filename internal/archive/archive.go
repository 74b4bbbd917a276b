// Package archive unpacks release artifacts (tar.gz, tar.xz, tar.zst,
// tar, zip) into a directory safely: entries with "..", absolute paths,
// device nodes, fifos, or links pointing outside the tree are refused, all
// writes go through an os.Root confined to the destination, and sizes and
// entry counts are bounded.
package archive

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Limits bound what an archive may unpack to. The budget of one
// extraction is the smallest of MaxBytes, MaxRatio times the compressed
// input (when its size is known) and the destination file system's free
// space less a reserve, so a small bomb cannot fill the disk.
type Limits struct {
	MaxBytes   int64 // total size of regular files
	MaxEntries int
	// MaxRatio bounds the unpacked size as a multiple of the input's
	// size (0: DefaultRatio; negative: no ratio limit). Inputs smaller
	// than MinBudget/MaxRatio still get MinBudget.
	MaxRatio int64
	// Reserve is kept free on the destination file system (0: 5% of it,
	// at most 1 GiB; negative: none).
	Reserve int64
}

// DefaultLimits allow 16 GiB in one million entries, at most 50 times the
// compressed input. Real releases expand 2-5 times (a docker static
// tarball: 70 MB to 230 MB; kubernetes-server: 350 MB to 1.2 GB).
var DefaultLimits = Limits{MaxBytes: 16 << 30, MaxEntries: 1 << 20, MaxRatio: DefaultRatio}

// DefaultRatio is the default expansion limit (unpacked / compressed).
const DefaultRatio = 50

// MinBudget is the least budget the ratio limit grants, so small
// archives of very compressible text still unpack.
const MinBudget = 256 << 20

// Options control extraction.
type Options struct {
	// Strip drops this many leading path components (tar --strip-components).
	Strip  int
	Limits Limits
	// InputSize is the size of the (compressed) archive, for the ratio
	// limit; 0 means unknown (ExtractFile fills it in).
	InputSize int64
	// Hint is appended to a limit error: how the caller raises the limit
	// (e.g. "raise --max-unpack").
	Hint string
}

// LimitError is an archive that unpacks to more than its budget.
type LimitError struct {
	What  string // "bytes" or "entries"
	Limit int64
	Why   string // which limit set the budget
	Hint  string
}

func (e *LimitError) Error() string {
	s := fmt.Sprintf("archive unpacks to more than %d %s (%s)", e.Limit, e.What, e.Why)
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

// UnsafeError is an entry refused for safety.
type UnsafeError struct {
	Entry, Reason string
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("refusing archive entry %q: %s", e.Entry, e.Reason)
}

// ExtractFile unpacks the archive at src of type typ into dst (an existing
// directory).
func ExtractFile(ctx context.Context, src, typ, dst string, opt Options) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if opt.InputSize == 0 {
		opt.InputSize = fi.Size()
	}
	if typ == "zip" {
		return ExtractZip(ctx, f, fi.Size(), dst, opt)
	}
	return ExtractTar(ctx, f, typ, dst, opt)
}

// ExtractTar unpacks a possibly compressed tar stream.
func ExtractTar(ctx context.Context, r io.Reader, typ, dst string, opt Options) error {
	var rd io.Reader
	switch typ {
	case "tar":
		rd = r
	case "tar.gz":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		rd = zr
	case "tar.xz":
		xr, err := xz.NewReader(r)
		if err != nil {
			return fmt.Errorf("xz: %w", err)
		}
		rd = xr
	case "tar.zst":
		zr, err := zstd.NewReader(r, zstd.WithDecoderMaxMemory(1<<30), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		rd = zr
	default:
		return fmt.Errorf("unknown archive type %q", typ)
	}
	x, err := newExtractor(dst, opt)
	if err != nil {
		return err
	}
	defer x.root.Close()
	tr := tar.NewReader(rd)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		var kind entryKind
		switch h.Typeflag {
		case tar.TypeDir:
			kind = kindDir
		case tar.TypeReg:
			kind = kindFile
		case tar.TypeSymlink:
			kind = kindSymlink
		case tar.TypeLink:
			kind = kindHardlink
		case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
			continue
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return &UnsafeError{h.Name, "device nodes and fifos are not allowed"}
		default:
			return &UnsafeError{h.Name, fmt.Sprintf("unsupported entry type %q", h.Typeflag)}
		}
		if err := x.add(h.Name, kind, fs.FileMode(h.Mode), h.Linkname, h.Size, tr); err != nil {
			return err
		}
	}
}

// ExtractZip unpacks a zip archive.
func ExtractZip(ctx context.Context, r io.ReaderAt, size int64, dst string, opt Options) error {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return fmt.Errorf("zip: %w", err)
	}
	if opt.InputSize == 0 {
		opt.InputSize = size
	}
	x, err := newExtractor(dst, opt)
	if err != nil {
		return err
	}
	defer x.root.Close()
	for _, zf := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		mode := zf.Mode()
		var kind entryKind
		switch {
		case mode.IsDir() || strings.HasSuffix(zf.Name, "/"):
			kind = kindDir
		case mode&fs.ModeSymlink != 0:
			kind = kindSymlink
		case mode.IsRegular():
			kind = kindFile
		default:
			return &UnsafeError{zf.Name, "device nodes, fifos and sockets are not allowed"}
		}
		var link string
		var body io.Reader
		if kind == kindFile || kind == kindSymlink {
			rc, err := zf.Open()
			if err != nil {
				return fmt.Errorf("zip %s: %w", zf.Name, err)
			}
			if kind == kindSymlink {
				b, err := io.ReadAll(io.LimitReader(rc, 4097))
				rc.Close()
				if err != nil || len(b) > 4096 {
					return &UnsafeError{zf.Name, "unreadable or oversized symlink target"}
				}
				link = string(b)
			} else {
				body = rc
				defer rc.Close()
			}
		}
		if err := x.add(zf.Name, kind, mode.Perm(), link, int64(zf.UncompressedSize64), body); err != nil {
			return err
		}
	}
	return nil
}

type entryKind int

const (
	kindDir entryKind = iota
	kindFile
	kindSymlink
	kindHardlink
)

type extractor struct {
	root    *os.Root
	opt     Options
	bytes   int64
	entries int
	budget  int64  // bytes of regular files this extraction may write
	why     string // which limit set the budget
}

func newExtractor(dst string, opt Options) (*extractor, error) {
	if opt.Limits == (Limits{}) {
		opt.Limits = DefaultLimits
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dst, &st); err != nil {
		return nil, fmt.Errorf("free space of %s: %w", dst, err)
	}
	budget, why := Budget(opt.Limits, opt.InputSize, FreeSpace{Avail: int64(st.Bavail) * st.Bsize, Total: int64(st.Blocks) * st.Bsize, Dir: dst})
	root, err := os.OpenRoot(dst)
	if err != nil {
		return nil, err
	}
	return &extractor{root: root, opt: opt, budget: budget, why: why}, nil
}

// FreeSpace is what the destination file system has left.
type FreeSpace struct {
	Avail, Total int64
	Dir          string
}

// Budget decides how many bytes of regular files one extraction may
// write and names the limit that decided it.
func Budget(l Limits, inputSize int64, fs FreeSpace) (int64, string) {
	budget, why := l.MaxBytes, "the configured maximum"
	if budget <= 0 {
		budget, why = DefaultLimits.MaxBytes, "the default maximum"
	}
	ratio := l.MaxRatio
	if ratio == 0 {
		ratio = DefaultRatio
	}
	if ratio > 0 && inputSize > 0 {
		b := int64(1 << 62) // no overflow below
		if inputSize <= b/ratio {
			b = max(inputSize*ratio, MinBudget)
		}
		if b < budget {
			budget, why = b, fmt.Sprintf("%d times the %d-byte archive", ratio, inputSize)
			if b == MinBudget {
				why += fmt.Sprintf(", but at least %d", b)
			}
		}
	}
	reserve := l.Reserve
	if reserve == 0 {
		reserve = min(fs.Total/20, 1<<30)
	}
	if fs.Total > 0 {
		free := max(fs.Avail-max(reserve, 0), 0)
		if free < budget {
			budget, why = free, fmt.Sprintf("the free space on %s less a %d-byte reserve", fs.Dir, max(reserve, 0))
		}
	}
	return budget, why
}

// cleanName validates an entry name and applies Strip; "" means skip.
func (x *extractor) cleanName(name string) (string, error) {
	if len(name) > 4096 || strings.ContainsRune(name, 0) {
		return "", &UnsafeError{name, "invalid name"}
	}
	if strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return "", &UnsafeError{name, "absolute path"}
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", &UnsafeError{name, "path contains '..'"}
		}
	}
	clean := path.Clean(strings.TrimPrefix(name, "./"))
	if clean == "." {
		return "", nil
	}
	parts := strings.Split(clean, "/")
	if len(parts) <= x.opt.Strip {
		return "", nil
	}
	return strings.Join(parts[x.opt.Strip:], "/"), nil
}

// LinkEscapes tells whether a symlink at link (a slash path relative to
// the tree's root, e.g. "usr/bin/x") pointing to target leaves the tree.
// An empty or absolute target counts as escaping: on disk it would resolve
// outside the tree, so callers that resolve absolute targets inside the tree
// (an image's own root) check those separately.
//
// It is the one symlink-escape rule: archive refuses such links when
// unpacking and lint reports them in a baked tree.
func LinkEscapes(link, target string) bool {
	if target == "" || strings.HasPrefix(target, "/") {
		return true
	}
	// The link's own directory sets the starting depth: "usr/bin/x" may
	// climb two levels.
	depth := strings.Count(path.Clean(link), "/")
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

func (x *extractor) add(name string, kind entryKind, mode fs.FileMode, link string, size int64, body io.Reader) error {
	x.entries++
	maxEntries := x.opt.Limits.MaxEntries
	if maxEntries <= 0 {
		maxEntries = DefaultLimits.MaxEntries
	}
	if x.entries > maxEntries {
		return &LimitError{What: "entries", Limit: int64(maxEntries), Why: "the configured maximum", Hint: x.opt.Hint}
	}
	p, err := x.cleanName(name)
	if err != nil || p == "" {
		return err
	}
	if d := path.Dir(p); d != "." {
		if err := x.root.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("extracting %s: %w", name, err)
		}
	}
	switch kind {
	case kindDir:
		if err := x.root.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("extracting %s: %w", name, err)
		}
		return nil
	case kindSymlink:
		if LinkEscapes(p, link) {
			return &UnsafeError{name, fmt.Sprintf("symlink to %q points outside the tree", link)}
		}
		if err := x.root.Symlink(link, p); err != nil {
			return fmt.Errorf("extracting %s: %w", name, err)
		}
		return nil
	case kindHardlink:
		target, err := x.cleanName(link)
		if err != nil {
			return err
		}
		if target == "" {
			return &UnsafeError{name, fmt.Sprintf("hard link to %q outside the extracted tree", link)}
		}
		fi, err := x.root.Lstat(target)
		if err != nil || !fi.Mode().IsRegular() {
			return &UnsafeError{name, fmt.Sprintf("hard link to %q, which is not an extracted regular file", link)}
		}
		if err := x.root.Link(target, p); err != nil {
			return fmt.Errorf("extracting %s: %w", name, err)
		}
		return nil
	}
	if size < 0 {
		return &UnsafeError{name, "negative size"}
	}
	// Checked before anything is written: a sparse or lying header
	// declaring terabytes is refused, not filled with zeros.
	if size > x.budget-x.bytes {
		return &LimitError{What: "bytes", Limit: x.budget, Why: x.why, Hint: x.opt.Hint}
	}
	f, err := x.root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return &UnsafeError{name, "entry appears twice"}
		}
		return fmt.Errorf("extracting %s: %w", name, err)
	}
	n, err := io.Copy(f, io.LimitReader(body, size+1))
	if err == nil && n != size {
		err = fmt.Errorf("size %d, header says %d", n, size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("extracting %s: %w", name, err)
	}
	x.bytes += n
	perm := mode.Perm() &^ 0o022
	if perm&0o400 == 0 {
		perm |= 0o400
	}
	return x.root.Chmod(p, perm)
}
