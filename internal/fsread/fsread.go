// Package fsread reads system extension images without root and without
// mounting them. Strata lists, inspects and lints sysext images and reads
// their extension-release file on machines (and in CI) where loop devices
// and mount(2) are unavailable, so this package parses the on-disk formats
// that systemd-sysext accepts – squashfs, erofs, ext4, and GPT disk images
// carrying one of those in a Discoverable Partitions root or usr partition –
// directly from an io.ReaderAt.
//
// Images are untrusted input: every size, count, offset and recursion read
// from an image is bounded and checked, so a corrupt or hostile image yields
// an error rather than a panic, a huge allocation or an endless loop; and
// the total work done on one opened image is bounded (see workLimits), so
// no sequence of calls on it, such as a walk, can run without end.
//
// The file systems are read-only. Path lookups follow symbolic links only
// where documented, and never outside the image: absolute link targets are
// resolved against the image root and ".." stops at the root, the way
// systemd resolves paths inside an image with chase().
//
// Supported:
//   - squashfs 4.0 with gzip, xz (LZMA2 without BCJ filters), lzma, zstd or
//     lz4 compression, fragments and tail-end packing, sparse files,
//     extended inodes, xattrs and directory indexes; lzo is refused.
//   - erofs: flat plain, flat inline and chunk-based files; lz4-compressed
//     files with full (legacy) or compact indexes, big pclusters,
//     ztailpacking and interlaced uncompressed pclusters; compact and
//     extended inodes; inline and shared xattrs. Other compressors (lzma,
//     deflate, zstd), fragments, extent-based compression indexes, long
//     xattr name prefixes, multiple devices, 48-bit layouts and metaboxes
//     are refused with "unsupported erofs feature ...".
//   - ext2/3/4: extents and block maps, inline data, linear and htree
//     directories, fast and slow symlinks, 64bit, flex_bg, in-inode and
//     block xattrs (POSIX ACLs converted to the getxattr format). meta_bg,
//     encrypted inodes, xattr values in inodes (ea_inode) and file systems
//     needing journal recovery are refused.
package fsread

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stratalinux/strata/internal/fsmagic"
)

// Format names an image format; fsmagic.Detect tells it.
type Format = fsmagic.Kind

// The image formats systemd-sysext accepts.
const (
	Squashfs = fsmagic.Squashfs
	Erofs    = fsmagic.Erofs
	Ext4     = fsmagic.Ext4
	GPT      = fsmagic.GPT
)

// Image is an opened extension image.
type Image struct {
	Format Format
	// Partition is the GPT partition the file system was read from, nil
	// unless Format is GPT.
	Partition *Partition
	// FS is the file system: for GPT images, the one in Partition.
	FS XattrFS
	// FSFormat is the format of the file system in FS; for non-GPT images
	// it equals Format.
	FSFormat Format
}

// FS is the one read-only image tree that Strata reads extension images
// through: an image read in user space (this package), a directory on the
// host (image.DirTree, os.DirFS) or an extracted image. It is io/fs with
// Lstat and ReadLink; read whole files with limitread.ReadFile, which
// bounds them. Extended attributes are the optional XattrFS.
//
// Names are slash-separated paths relative to the image root, as io/fs
// requires (fs.ValidPath). Intermediate path components that are symbolic
// links are followed, as every POSIX path lookup does, always inside the
// image. Whether the final component is followed depends on the method:
// Open, ReadDir, Stat and ReadFile follow it; Lstat, ReadLink and Getxattr
// do not. The FSs of this package follow symbolic links inside the image
// root (absolute targets are resolved relative to the image root, ".."
// clamps at the root) with a limit of 40 links.
type FS interface {
	fs.ReadDirFS
	// Lstat describes the named file without following it if it is a
	// symbolic link; ReadLink returns the target of the named symbolic
	// link.
	fs.ReadLinkFS
}

// XattrFS is an FS that reads extended attributes. Every FS this package
// returns is one, and so is image.DirTree.
type XattrFS interface {
	FS
	// Getxattr returns the value of the extended attribute attr ("user.x",
	// "trusted.x", "security.x", "system.posix_acl_access") of the named
	// file without following a final symbolic link. A missing attribute is
	// an error wrapping ErrNoXattr, which wraps fs.ErrNotExist.
	Getxattr(name, attr string) ([]byte, error)
}

// Getxattr returns the extended attribute attr of the named file in fsys;
// in an FS that is no XattrFS every file has none (ErrNoXattr).
func Getxattr(fsys FS, name, attr string) ([]byte, error) {
	if x, ok := fsys.(XattrFS); ok {
		return x.Getxattr(name, attr)
	}
	return nil, &fs.PathError{Op: "getxattr", Path: name, Err: fmt.Errorf("%s: %w", attr, ErrNoXattr)}
}

// XattrLister is implemented by every FS this package returns; it is kept
// out of FS so that other implementations of FS need not provide it.
type XattrLister interface {
	// Listxattr returns the names of the named file's extended attributes,
	// sorted, without following a final symbolic link.
	Listxattr(name string) ([]string, error)
}

// ErrNoXattr is returned (wrapped) by Getxattr when the file has no such
// extended attribute.
var ErrNoXattr = fmt.Errorf("no such extended attribute: %w", fs.ErrNotExist)

// Stat is what fs.FileInfo.Sys returns for files of these file systems.
type Stat struct {
	// Mode is the full st_mode: file type bits (S_IFREG, ...), setuid,
	// setgid and sticky bits, and permissions.
	Mode  uint32
	Uid   uint32
	Gid   uint32
	Nlink uint32
	// Rdev is the device number of block and character devices, encoded
	// like glibc's dev_t (see Major and Minor).
	Rdev  uint64
	Size  int64
	Mtime time.Time
	// Ino is the inode number as the kernel would report it.
	Ino uint64
}

// Major returns the major number of Rdev.
func (s *Stat) Major() uint32 {
	return uint32((s.Rdev>>8)&0xfff) | uint32((s.Rdev>>32)&^0xfff)
}

// Minor returns the minor number of Rdev.
func (s *Stat) Minor() uint32 {
	return uint32(s.Rdev&0xff) | uint32((s.Rdev>>12)&^0xff)
}

// mkdev encodes a device number the way glibc's makedev does.
func mkdev(major, minor uint32) uint64 {
	ma, mi := uint64(major), uint64(minor)
	return (ma&0xfffff000)<<32 | (ma&0xfff)<<8 | (mi&0xffffff00)<<12 | mi&0xff
}

// decodeLinuxDev decodes the kernel's 32-bit "new" dev_t encoding
// (new_encode_dev), which squashfs, erofs and ext4 store on disk.
func decodeLinuxDev(d uint32) uint64 {
	major := (d & 0xfff00) >> 8
	minor := (d & 0xff) | ((d >> 12) & 0xfff00)
	return mkdev(major, minor)
}

// File type bits of st_mode.
const (
	sIFMT   = 0o170000
	sIFSOCK = 0o140000
	sIFLNK  = 0o120000
	sIFREG  = 0o100000
	sIFBLK  = 0o060000
	sIFDIR  = 0o040000
	sIFCHR  = 0o020000
	sIFIFO  = 0o010000
	sISUID  = 0o4000
	sISGID  = 0o2000
	sISVTX  = 0o1000
)

// validFileType reports whether mode carries one of the seven POSIX file
// types; anything else in an image is corruption.
func validFileType(mode uint32) bool {
	switch mode & sIFMT {
	case sIFSOCK, sIFLNK, sIFREG, sIFBLK, sIFDIR, sIFCHR, sIFIFO:
		return true
	}
	return false
}

// fileMode converts st_mode to an fs.FileMode.
func fileMode(mode uint32) fs.FileMode {
	m := fs.FileMode(mode & 0o777)
	switch mode & sIFMT {
	case sIFDIR:
		m |= fs.ModeDir
	case sIFLNK:
		m |= fs.ModeSymlink
	case sIFBLK:
		m |= fs.ModeDevice
	case sIFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case sIFIFO:
		m |= fs.ModeNamedPipe
	case sIFSOCK:
		m |= fs.ModeSocket
	case sIFREG:
	default:
		m |= fs.ModeIrregular
	}
	if mode&sISUID != 0 {
		m |= fs.ModeSetuid
	}
	if mode&sISGID != 0 {
		m |= fs.ModeSetgid
	}
	if mode&sISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// Limits that keep hostile images from costing unbounded time or memory.
const (
	maxSymlinkHops = 40   // as Linux's MAXSYMLINKS
	maxPathLen     = 4096 // as Linux's PATH_MAX: also stops walks of directory cycles
	maxNameLen     = 255
	maxLinkLen     = 4095
	// maxDirSize and maxDirEntries bound one directory's listing; real
	// directories are far smaller, and entries cost memory when listed.
	maxDirSize    = 64 << 20
	maxDirEntries = 1 << 19
	// maxXattrValue and maxXattrTotal bound extended attributes the way
	// Linux's XATTR_SIZE_MAX and XATTR_LIST_MAX do (with room for erofs's
	// and squashfs's per-entry overhead).
	maxXattrValue = 64 << 10
	maxXattrCount = 4096
	maxXattrTotal = 1 << 20
	// maxFileSize keeps offset arithmetic far from int64 overflow.
	maxFileSize = 1 << 60
	// maxReadFile bounds ReadFile, which holds a whole file in memory.
	maxReadFile = 256 << 20
)

// workLimits bound the work done on one opened image, over all calls.
// Per-call limits are not enough: a hostile image can list the same
// directory in several parents, so that a few kilobytes describe a tree
// with exponentially many paths, or make a huge uncacheable directory be
// rescanned for every lookup in it. Walking a valid image (inspect, check)
// costs a few units of each per file: the limits are ten times what a
// 100,000-file image needs, and turn a hostile one into an error after a
// few seconds of CPU at worst.
type workLimits struct {
	inodes  int64 // inodes decoded, counting repeated loads
	entries int64 // directory entries decoded
	blocks  int64 // metadata blocks read or decompressed (cache misses)
}

var defaultWorkLimits = workLimits{inodes: 1 << 24, entries: 1 << 21, blocks: 1 << 18}

// work counts what reading an image has cost so far; it is shared by all
// users of the image, so it is safe for concurrent use.
type work struct {
	format                  Format
	lim                     workLimits
	inodes, entries, blocks atomic.Int64
}

func newWork(f Format, lim workLimits) *work { return &work{format: f, lim: lim} }

func (w *work) charge(c *atomic.Int64, limit int64, what string) error {
	if w == nil {
		return nil
	}
	if c.Add(1) > limit {
		return fmt.Errorf("%s image: more than %d %s read; not a sane extension image", w.format, limit, what)
	}
	return nil
}

func (w *work) inode() error { return w.charge(&w.inodes, w.lim.inodes, "inodes") }
func (w *work) entry() error { return w.charge(&w.entries, w.lim.entries, "directory entries") }
func (w *work) block() error { return w.charge(&w.blocks, w.lim.blocks, "metadata blocks") }

// node is an inode loaded by a backend.
type node interface {
	stat() *Stat
	// key identifies the inode by its on-disk location; it detects
	// directory cycles, which no valid image has.
	key() uint64
}

// dirent is one directory entry with its inode loaded.
type dirent struct {
	name string
	n    node
}

// collectDir reads every entry of a directory through each (a format's
// entry walker) and resolves it with inode.
func collectDir[ID any](each func(func(string, ID) (bool, error)) error, inode func(ID) (node, error)) ([]dirent, error) {
	var out []dirent
	err := each(func(name string, id ID) (bool, error) {
		n, err := inode(id)
		if err != nil {
			return false, fmt.Errorf("entry %q: %w", name, err)
		}
		out = append(out, dirent{name: name, n: n})
		return false, nil
	})
	return out, err
}

// xattr is one extended attribute with its full name ("user.foo").
type xattr struct {
	name  string
	value []byte
}

// backend is one file system format's inode-level reader. Backends are
// safe for concurrent use.
type backend interface {
	root() (node, error)
	// lookup finds name in directory dir; a missing name is an error
	// wrapping fs.ErrNotExist.
	lookup(dir node, name string) (node, error)
	readDir(dir node) ([]dirent, error)
	readLink(n node) (string, error)
	// open returns the contents of a regular file; reads past Stat.Size
	// return io.EOF.
	open(n node) (io.ReaderAt, error)
	xattrs(n node) ([]xattr, error)
}

// checkName rejects directory entry names that could escape or confuse
// path resolution.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty file name in directory")
	case name == "." || name == "..":
		return fmt.Errorf("directory entry named %q", name)
	case len(name) > maxNameLen:
		return fmt.Errorf("file name of %d bytes exceeds %d", len(name), maxNameLen)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("file name %q contains '/' or NUL", name)
	}
	return nil
}

// fsys implements XattrFS on top of a backend.
type fsys struct {
	b      backend
	format Format
	w      *work // the backend's work count, for tests
}

var (
	_ XattrFS        = (*fsys)(nil)
	_ fs.StatFS      = (*fsys)(nil)
	_ fs.ReadFileFS  = (*fsys)(nil)
	_ fs.ReadLinkFS  = (*fsys)(nil)
	_ XattrLister    = (*fsys)(nil)
	_ fs.ReadDirFile = (*dirFile)(nil)
	_ io.ReaderAt    = (*regFile)(nil)
	_ io.Seeker      = (*regFile)(nil)
)

func newFS(b backend, f Format) *fsys { return &fsys{b: b, format: f} }

func isDir(n node) bool  { return n.stat().Mode&sIFMT == sIFDIR }
func isLink(n node) bool { return n.stat().Mode&sIFMT == sIFLNK }

// resolve looks name up, following symbolic links in intermediate
// components always and in the final component if follow is set. It
// returns the node and the last path component's name.
func (f *fsys) resolve(op, name string, follow bool) (node, string, error) {
	if !fs.ValidPath(name) {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	n, err := f.walk(name, follow)
	if err != nil {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: err}
	}
	base := path.Base(name)
	if name == "." {
		base = "."
	}
	return n, base, nil
}

func (f *fsys) walk(name string, follow bool) (node, error) {
	root, err := f.b.root()
	if err != nil {
		return nil, err
	}
	if !isDir(root) {
		return nil, fmt.Errorf("%s root inode is not a directory", f.format)
	}
	// stack holds the directories from the root to the current one, so
	// that ".." in link targets needs no on-disk parent pointers (which a
	// hostile image could point anywhere).
	stack := []node{root}
	var todo []string // remaining components, in reverse order
	push := func(p string) error {
		parts := strings.Split(p, "/")
		for i := len(parts) - 1; i >= 0; i-- {
			if parts[i] != "" && parts[i] != "." {
				todo = append(todo, parts[i])
			}
		}
		if len(todo) > maxPathLen {
			return errors.New("path too long")
		}
		return nil
	}
	if name != "." {
		if err := push(name); err != nil {
			return nil, err
		}
	}
	hops := 0
	depthBytes := 0
	for len(todo) > 0 {
		c := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if c == ".." {
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		cur := stack[len(stack)-1]
		if !isDir(cur) {
			return nil, fmt.Errorf("%q: %w", c, errNotDir)
		}
		child, err := f.b.lookup(cur, c)
		if err != nil {
			return nil, err
		}
		if isLink(child) && (len(todo) > 0 || follow) {
			hops++
			if hops > maxSymlinkHops {
				return nil, errTooManyLinks
			}
			target, err := f.b.readLink(child)
			if err != nil {
				return nil, err
			}
			if strings.HasPrefix(target, "/") {
				stack = stack[:1]
			}
			if err := push(target); err != nil {
				return nil, err
			}
			continue
		}
		if isDir(child) {
			// A directory that is its own ancestor makes every walk
			// endless; no valid image has one.
			k := child.key()
			for _, a := range stack {
				if a.key() == k {
					return nil, errors.New("directory cycle in image")
				}
			}
		}
		depthBytes += len(c) + 1
		if depthBytes > maxPathLen {
			return nil, errors.New("path too long")
		}
		stack = append(stack, child)
	}
	return stack[len(stack)-1], nil
}

var (
	errNotDir       = errors.New("not a directory")
	errTooManyLinks = errors.New("too many levels of symbolic links")
	errNotLink      = errors.New("not a symbolic link")
)

// Open implements fs.FS.
func (f *fsys) Open(name string) (fs.File, error) {
	n, base, err := f.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	info := &fileInfo{name: base, st: *n.stat()}
	switch n.stat().Mode & sIFMT {
	case sIFDIR:
		return &dirFile{fsys: f, path: name, n: n, info: info}, nil
	case sIFREG:
		ra, err := f.b.open(n)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &regFile{path: name, info: info, sr: io.NewSectionReader(ra, 0, info.st.Size)}, nil
	default:
		return &specialFile{path: name, info: info}, nil
	}
}

// Stat implements fs.StatFS; it follows a final symbolic link.
func (f *fsys) Stat(name string) (fs.FileInfo, error) {
	n, base, err := f.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: base, st: *n.stat()}, nil
}

// Lstat implements FS.
func (f *fsys) Lstat(name string) (fs.FileInfo, error) {
	n, base, err := f.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: base, st: *n.stat()}, nil
}

// ReadLink implements FS.
func (f *fsys) ReadLink(name string) (string, error) {
	n, _, err := f.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if !isLink(n) {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: errNotLink}
	}
	t, err := f.b.readLink(n)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return t, nil
}

// ReadDir implements fs.ReadDirFS: entries sorted by name.
func (f *fsys) ReadDir(name string) ([]fs.DirEntry, error) {
	n, _, err := f.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	return f.readDirNode(name, n)
}

func (f *fsys) readDirNode(name string, n node) ([]fs.DirEntry, error) {
	if !isDir(n) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	ents, err := f.b.readDir(n)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, 0, len(ents))
	for _, e := range ents {
		out = append(out, &dirEntry{info: fileInfo{name: e.name, st: *e.n.stat()}})
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	for i := 1; i < len(out); i++ {
		if out[i].Name() == out[i-1].Name() {
			return nil, &fs.PathError{Op: "readdir", Path: name, Err: fmt.Errorf("duplicate directory entry %q", out[i].Name())}
		}
	}
	return out, nil
}

// ReadFile implements fs.ReadFileFS.
func (f *fsys) ReadFile(name string) ([]byte, error) {
	file, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	rf, ok := file.(*regFile)
	if !ok {
		if _, ok := file.(*dirFile); ok {
			return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
		}
		return nil, &fs.PathError{Op: "read", Path: name, Err: errNotRegular}
	}
	// The size comes from the image: refuse to allocate for a file that
	// (hostile or sparse) claims to be huge.
	if rf.sr.Size() > maxReadFile {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("file of %d bytes is too large to read whole (limit %d); use Open", rf.sr.Size(), maxReadFile)}
	}
	buf := make([]byte, rf.sr.Size())
	if _, err := io.ReadFull(rf.sr, buf); err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return buf, nil
}

// Getxattr implements XattrFS.
func (f *fsys) Getxattr(name, attr string) ([]byte, error) {
	n, _, err := f.resolve("getxattr", name, false)
	if err != nil {
		return nil, err
	}
	xs, err := f.b.xattrs(n)
	if err != nil {
		return nil, &fs.PathError{Op: "getxattr", Path: name, Err: err}
	}
	for _, x := range xs {
		if x.name == attr {
			return slices.Clone(x.value), nil
		}
	}
	return nil, &fs.PathError{Op: "getxattr", Path: name, Err: fmt.Errorf("%s: %w", attr, ErrNoXattr)}
}

// Listxattr implements XattrLister.
func (f *fsys) Listxattr(name string) ([]string, error) {
	n, _, err := f.resolve("listxattr", name, false)
	if err != nil {
		return nil, err
	}
	xs, err := f.b.xattrs(n)
	if err != nil {
		return nil, &fs.PathError{Op: "listxattr", Path: name, Err: err}
	}
	names := make([]string, 0, len(xs))
	for _, x := range xs {
		names = append(names, x.name)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// fileInfo implements fs.FileInfo.
type fileInfo struct {
	name string
	st   Stat
}

func (i *fileInfo) Name() string       { return i.name }
func (i *fileInfo) Size() int64        { return i.st.Size }
func (i *fileInfo) Mode() fs.FileMode  { return fileMode(i.st.Mode) }
func (i *fileInfo) ModTime() time.Time { return i.st.Mtime }
func (i *fileInfo) IsDir() bool        { return i.st.Mode&sIFMT == sIFDIR }
func (i *fileInfo) Sys() any           { st := i.st; return &st }
func (i *fileInfo) String() string     { return fs.FormatFileInfo(i) }

// dirEntry implements fs.DirEntry.
type dirEntry struct{ info fileInfo }

func (d *dirEntry) Name() string               { return d.info.name }
func (d *dirEntry) IsDir() bool                { return d.info.IsDir() }
func (d *dirEntry) Type() fs.FileMode          { return d.info.Mode().Type() }
func (d *dirEntry) Info() (fs.FileInfo, error) { i := d.info; return &i, nil }
func (d *dirEntry) String() string             { return fs.FormatDirEntry(d) }

var errNotRegular = errors.New("not a regular file")

// regFile is an open regular file.
type regFile struct {
	path string
	info *fileInfo
	sr   *io.SectionReader
}

func (r *regFile) Stat() (fs.FileInfo, error) { return r.info, nil }
func (r *regFile) Close() error               { return nil }
func (r *regFile) Read(p []byte) (int, error) {
	n, err := r.sr.Read(p)
	return n, r.wrap("read", err)
}
func (r *regFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.sr.ReadAt(p, off)
	return n, r.wrap("read", err)
}
func (r *regFile) Seek(off int64, whence int) (int64, error) {
	n, err := r.sr.Seek(off, whence)
	return n, r.wrap("seek", err)
}
func (r *regFile) wrap(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	return &fs.PathError{Op: op, Path: r.path, Err: err}
}

// specialFile is an open device, fifo or socket: it can be stat'ed but
// has no contents in an image.
type specialFile struct {
	path string
	info *fileInfo
}

func (s *specialFile) Stat() (fs.FileInfo, error) { return s.info, nil }
func (s *specialFile) Close() error               { return nil }
func (s *specialFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: s.path, Err: errNotRegular}
}

// dirFile is an open directory.
type dirFile struct {
	fsys    *fsys
	path    string
	n       node
	info    *fileInfo
	entries []fs.DirEntry
	loaded  bool
	pos     int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: errors.New("is a directory")}
}

// ReadDir implements fs.ReadDirFile.
func (d *dirFile) ReadDir(count int) ([]fs.DirEntry, error) {
	if !d.loaded {
		ents, err := d.fsys.readDirNode(d.path, d.n)
		if err != nil {
			return nil, err
		}
		d.entries, d.loaded = ents, true
	}
	rest := d.entries[d.pos:]
	if count <= 0 {
		d.pos = len(d.entries)
		return slices.Clone(rest), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if count > len(rest) {
		count = len(rest)
	}
	d.pos += count
	return slices.Clone(rest[:count]), nil
}

// dirCache remembers the name → inode reference maps of recently used
// directories, so that resolving many paths through one large directory
// (a walk, say) does not rescan it for every name. Only directories
// whose names fit dirCacheBudget are kept, bounding its memory.
type dirCache struct {
	lru *lru[map[string]uint64]
}

const (
	dirCacheDirs   = 16
	dirCacheBudget = 1 << 20 // bytes of names per cached directory
)

func newDirCache() *dirCache {
	return &dirCache{lru: newLRU[map[string]uint64](dirCacheDirs)}
}

// lookup returns the reference of name in the directory identified by
// key. all iterates over every entry; it is used to fill the cache. For a
// directory too large to cache, find (if not nil) looks the name up
// instead, presumably faster than all.
func (c *dirCache) lookup(key uint64, name string,
	all func(fn func(name string, ref uint64) (bool, error)) error,
	find func(name string) (uint64, bool, error),
) (uint64, bool, error) {
	if m, ok := c.lru.get(int64(key)); ok {
		ref, found := m[name]
		return ref, found, nil
	}
	m := map[string]uint64{}
	budget := 0
	var ref uint64
	found := false
	err := all(func(n string, r uint64) (bool, error) {
		if n == name && !found {
			ref, found = r, true
		}
		if m != nil {
			if _, dup := m[n]; !dup {
				m[n] = r
			}
			budget += len(n) + 16
			if budget > dirCacheBudget {
				m = nil
				if find != nil {
					return true, nil
				}
			}
		}
		return m == nil && found, nil
	})
	if err != nil {
		return 0, false, err
	}
	if m == nil {
		if find != nil {
			return find(name)
		}
		return ref, found, nil
	}
	c.lru.put(int64(key), m)
	return ref, found, nil
}
