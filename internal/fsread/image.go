package fsread

import (
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/stratalinux/strata/internal/fsmagic"
)

// Open opens an extension image. A file system image is opened directly.
// For a GPT disk image Open picks the partition that systemd-dissect would
// use for a system extension: the root partition for architecture arch (a
// systemd architecture name such as "x86-64" or "arm64"), else the usr
// partition for arch, else – only if it is the table's single partition –
// a generic Linux data partition. Partitions flagged no-auto are ignored,
// as the Discoverable Partitions Specification requires.
//
// Errors name the image when r has a Name method (as *os.File does).
func Open(r io.ReaderAt, size int64, arch string) (*Image, error) {
	img, err := open(r, size, arch)
	if err != nil {
		if n, ok := r.(interface{ Name() string }); ok {
			return nil, fmt.Errorf("open image %s: %w", n.Name(), err)
		}
		return nil, fmt.Errorf("open image: %w", err)
	}
	return img, nil
}

func open(r io.ReaderAt, size int64, arch string) (*Image, error) {
	f, err := fsmagic.Detect(r, size)
	if err != nil {
		return nil, err
	}
	if f != GPT {
		fsys, err := openFS(f, r, size)
		if err != nil {
			return nil, err
		}
		return &Image{Format: f, FS: fsys, FSFormat: f}, nil
	}
	parts, err := ReadGPT(r, size)
	if err != nil {
		return nil, err
	}
	p, err := pickPartition(parts, arch)
	if err != nil {
		return nil, err
	}
	sr := io.NewSectionReader(r, p.Offset, p.Size)
	pf, err := fsmagic.Detect(sr, p.Size)
	if err != nil {
		return nil, fmt.Errorf("partition %d (%s): %w", p.Index, p.Type, err)
	}
	if pf == GPT {
		return nil, fmt.Errorf("partition %d (%s) holds another partition table", p.Index, p.Type)
	}
	fsys, err := openFS(pf, sr, p.Size)
	if err != nil {
		return nil, fmt.Errorf("partition %d (%s): %w", p.Index, p.Type, err)
	}
	pc := p
	return &Image{Format: GPT, Partition: &pc, FS: fsys, FSFormat: pf}, nil
}

func openFS(f Format, r io.ReaderAt, size int64) (XattrFS, error) {
	return openFSLimits(f, r, size, defaultWorkLimits)
}

func openFSLimits(f Format, r io.ReaderAt, size int64, lim workLimits) (XattrFS, error) {
	rd := &reader{r: r, size: size, w: newWork(f, lim)}
	var (
		b   backend
		err error
	)
	switch f {
	case Squashfs:
		b, err = openSquashfs(rd)
	case Erofs:
		b, err = openErofs(rd)
	case Ext4:
		b, err = openExt4(rd)
	default:
		return nil, fmt.Errorf("format %s is not a file system", f)
	}
	if err != nil {
		return nil, err
	}
	fsys := newFS(b, f)
	fsys.w = rd.w
	// Load the root now so that an image whose root is unreadable fails
	// to open rather than on first use.
	root, err := b.root()
	if err != nil {
		return nil, err
	}
	if !isDir(root) {
		return nil, fmt.Errorf("%s root inode is not a directory", f)
	}
	return fsys, nil
}

// reader reads exact byte ranges from an image of known size, and
// counts the work the backend reading it does (w may be nil).
type reader struct {
	r    io.ReaderAt
	size int64
	w    *work
}

var errTruncated = errors.New("image truncated or offset out of range")

// readAt fills p from off, failing unless all of p lies inside the image.
func (r *reader) readAt(p []byte, off int64) error {
	if off < 0 || off > r.size || int64(len(p)) > r.size-off {
		return fmt.Errorf("read %d bytes at offset %d of %d-byte image: %w", len(p), off, r.size, errTruncated)
	}
	n, err := r.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at offset %d: %w", len(p), off, err)
}

// bytes reads n bytes at off into a new slice.
func (r *reader) bytes(off int64, n int) ([]byte, error) {
	if n < 0 || int64(n) > r.size {
		return nil, fmt.Errorf("read %d bytes at offset %d of %d-byte image: %w", n, off, r.size, errTruncated)
	}
	b := make([]byte, n)
	if err := r.readAt(b, off); err != nil {
		return nil, err
	}
	return b, nil
}

// lru is a small, mutex-protected least-recently-used cache of decoded
// blocks, so that metadata shared by many inodes is decoded once.
type lru[V any] struct {
	mu    sync.Mutex
	max   int
	ll    *list.List
	items map[int64]*list.Element
}

type lruEntry[V any] struct {
	key int64
	val V
}

func newLRU[V any](max int) *lru[V] {
	return &lru[V]{max: max, ll: list.New(), items: make(map[int64]*list.Element)}
}

func (c *lru[V]) get(k int64) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*lruEntry[V]).val, true
	}
	var zero V
	return zero, false
}

func (c *lru[V]) put(k int64, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		e.Value.(*lruEntry[V]).val = v
		c.ll.MoveToFront(e)
		return
	}
	c.items[k] = c.ll.PushFront(&lruEntry[V]{key: k, val: v})
	for c.ll.Len() > c.max {
		e := c.ll.Back()
		c.ll.Remove(e)
		delete(c.items, e.Value.(*lruEntry[V]).key)
	}
}

// Little-endian decoding shorthands; callers check lengths first.
func u16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }
func u32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
func u64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }
