package fsread

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/stratalinux/strata/internal/fsmagic"
)

// EROFS on-disk constants (include/erofs_fs.h).
const (
	erofsSuperSize = 128

	erofsIncompatZeroPadding = 0x01
	erofsIncompatBigPcluster = 0x02
	erofsIncompatChunked     = 0x04
	erofsIncompatDeviceTable = 0x08
	erofsIncompatZtailpack   = 0x10
	erofsIncompatFragDedupe  = 0x20 // fragments and dedupe share the bit
	erofsIncompatXattrPrefix = 0x40
	erofsIncompat48bit       = 0x80
	erofsIncompatMetabox     = 0x100
	erofsIncompatKnown       = erofsIncompatZeroPadding | erofsIncompatBigPcluster | erofsIncompatChunked |
		erofsIncompatDeviceTable | erofsIncompatZtailpack | erofsIncompatFragDedupe | erofsIncompatXattrPrefix

	erofsLayoutFlatPlain   = 0
	erofsLayoutCompFull    = 1
	erofsLayoutFlatInline  = 2
	erofsLayoutCompCompact = 3
	erofsLayoutChunk       = 4

	erofsIFormatAll     = 0x1f
	erofsINlink1Bit     = 0x10
	erofsChunkBlkMask   = 0x1f
	erofsChunkIndexes   = 0x20
	erofsChunkFormatAll = 0x3f
	erofsNullAddr       = 0xFFFFFFFF
	erofsDirentSize     = 12
	erofsNidMetaboxBit  = 1 << 63
)

type erofs struct {
	rd         *reader
	blkbits    uint
	blksz      int64
	metaStart  int64 // byte offset of the metadata (inode) area
	xattrStart int64 // byte offset of the shared xattr area
	epoch      int64
	fixedNsec  uint32
	incompat   uint32
	rootNid    uint64
	rootNode   *erNode
	dirs       *dirCache
}

// erNode is a loaded EROFS inode.
type erNode struct {
	st        Stat
	nid       uint64
	iloc      int64
	isize     int64 // on-disk inode size: 32 or 64
	xattrSize int64
	layout    int
	iu        uint32 // raw_blkaddr / rdev / chunk format, by layout and type
}

func (n *erNode) stat() *Stat { return &n.st }
func (n *erNode) key() uint64 { return n.nid }

// tailPos is where inline data (and compression map headers) follow the
// inode and its inline xattrs.
func (n *erNode) tailPos() int64 { return n.iloc + n.isize + n.xattrSize }

func unsupportedErofs(feature string) error {
	return fmt.Errorf("unsupported erofs feature %s", feature)
}

func openErofs(rd *reader) (*erofs, error) {
	sb, err := rd.bytes(fsmagic.ErofsMagicOffset, erofsSuperSize)
	if err != nil {
		return nil, fmt.Errorf("read erofs superblock: %w", err)
	}
	if u32(sb[0:]) != fsmagic.ErofsMagic {
		return nil, errors.New("erofs: bad magic")
	}
	e := &erofs{rd: rd, dirs: newDirCache()}
	e.blkbits = uint(sb[12])
	if e.blkbits < 9 || e.blkbits > 16 {
		return nil, fmt.Errorf("erofs: block size 2^%d is not supported", e.blkbits)
	}
	e.blksz = 1 << e.blkbits
	e.incompat = u32(sb[80:])
	switch {
	case e.incompat&erofsIncompat48bit != 0:
		return nil, unsupportedErofs("48bit")
	case e.incompat&erofsIncompatMetabox != 0:
		return nil, unsupportedErofs("metabox")
	case e.incompat&^erofsIncompatKnown != 0:
		return nil, unsupportedErofs(fmt.Sprintf("incompat %#x", e.incompat&^erofsIncompatKnown))
	}
	if devs := u16(sb[86:]); devs != 0 {
		return nil, unsupportedErofs(fmt.Sprintf("multiple devices (%d extra)", devs))
	}
	if sb[90] != 0 {
		return nil, unsupportedErofs(fmt.Sprintf("dirblkbits %d", sb[90]))
	}
	e.rootNid = uint64(u16(sb[14:]))
	e.epoch = int64(u64(sb[24:]))
	e.fixedNsec = u32(sb[32:])
	e.metaStart = int64(u32(sb[40:])) << e.blkbits
	e.xattrStart = int64(u32(sb[44:])) << e.blkbits
	if e.metaStart >= rd.size {
		return nil, fmt.Errorf("erofs: metadata area at %d outside the %d-byte image", e.metaStart, rd.size)
	}
	// The superblock checksum (crc32c) is deliberately not verified:
	// it is optional, the kernel only checks it when asked, and every
	// structure is bounds-checked anyway.
	root, err := e.inode(e.rootNid)
	if err != nil {
		return nil, fmt.Errorf("erofs: root inode: %w", err)
	}
	e.rootNode = root
	return e, nil
}

func (e *erofs) root() (node, error) { return e.rootNode, nil }

func (e *erofs) inode(nid uint64) (*erNode, error) {
	n, err := e.loadInode(nid)
	if err != nil {
		return nil, fmt.Errorf("read erofs inode %d: %w", nid, err)
	}
	return n, nil
}

func (e *erofs) loadInode(nid uint64) (*erNode, error) {
	if nid&erofsNidMetaboxBit != 0 {
		return nil, unsupportedErofs("metabox")
	}
	if nid > uint64(e.rd.size)/32 {
		return nil, errors.New("inode outside the image")
	}
	if err := e.rd.w.inode(); err != nil {
		return nil, err
	}
	iloc := e.metaStart + int64(nid)*32
	b, err := e.rd.bytes(iloc, 32)
	if err != nil {
		return nil, err
	}
	ifmt := u16(b[0:])
	if ifmt&^erofsIFormatAll != 0 {
		return nil, unsupportedErofs(fmt.Sprintf("inode format %#x", ifmt))
	}
	n := &erNode{nid: nid, iloc: iloc, layout: int((ifmt >> 1) & 7)}
	mode := uint32(u16(b[4:]))
	if !validFileType(mode) {
		return nil, fmt.Errorf("invalid file mode %#o", mode)
	}
	var size uint64
	n.st = Stat{Mode: mode, Ino: nid}
	if ifmt&1 == 0 { // compact inode
		n.isize = 32
		if ifmt&erofsINlink1Bit != 0 && mode&sIFMT != sIFDIR {
			n.st.Nlink = 1
		} else {
			n.st.Nlink = uint32(u16(b[6:]))
		}
		size = uint64(u32(b[8:]))
		n.st.Mtime = time.Unix(e.epoch+int64(u32(b[12:])), int64(e.fixedNsec%1e9)).UTC()
		n.iu = u32(b[16:])
		n.st.Uid = uint32(u16(b[24:]))
		n.st.Gid = uint32(u16(b[26:]))
	} else { // extended inode
		n.isize = 64
		b, err = e.rd.bytes(iloc, 64)
		if err != nil {
			return nil, err
		}
		size = u64(b[8:])
		n.iu = u32(b[16:])
		n.st.Uid = u32(b[24:])
		n.st.Gid = u32(b[28:])
		n.st.Mtime = time.Unix(int64(u64(b[32:])), int64(u32(b[40:])%1e9)).UTC()
		n.st.Nlink = u32(b[44:])
	}
	if size > maxFileSize {
		return nil, fmt.Errorf("file size %d too large", size)
	}
	n.st.Size = int64(size)
	if c := u16(b[2:]); c != 0 {
		n.xattrSize = 12 + 4*(int64(c)-1)
	}
	switch n.layout {
	case erofsLayoutFlatPlain, erofsLayoutFlatInline, erofsLayoutCompFull, erofsLayoutCompCompact, erofsLayoutChunk:
	default:
		return nil, unsupportedErofs(fmt.Sprintf("data layout %d", n.layout))
	}
	switch mode & sIFMT {
	case sIFCHR, sIFBLK:
		n.st.Rdev = decodeLinuxDev(n.iu)
		n.st.Size = 0
	case sIFIFO, sIFSOCK:
		n.st.Size = 0
	case sIFDIR:
		if n.st.Size > maxDirSize {
			return nil, fmt.Errorf("directory size %d too large", n.st.Size)
		}
	case sIFLNK:
		if n.st.Size == 0 || n.st.Size > maxLinkLen {
			return nil, fmt.Errorf("symlink target length %d out of range", n.st.Size)
		}
	}
	return n, nil
}

// data returns a reader for an inode's contents.
func (e *erofs) data(n *erNode) (io.ReaderAt, error) {
	switch n.layout {
	case erofsLayoutFlatPlain, erofsLayoutFlatInline:
		return e.flatReader(n)
	case erofsLayoutChunk:
		return e.chunkReader(n)
	case erofsLayoutCompFull, erofsLayoutCompCompact:
		return e.zReader(n)
	}
	return nil, unsupportedErofs(fmt.Sprintf("data layout %d", n.layout))
}

// extentReader serves reads from a mapping function that returns, for a
// file offset, the image offset and length of the contiguous run holding
// it (or a hole).
type extentReader struct {
	rd   *reader
	size int64
	what string
	// mapAt returns the physical offset (-1 for a hole) of off and how
	// many bytes from off are contiguous (at least 1).
	mapAt func(off int64) (phys int64, n int64, err error)
}

func (r *extentReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= r.size {
		return 0, io.EOF
	}
	done := 0
	for done < len(p) && off < r.size {
		phys, n, err := r.mapAt(off)
		if err != nil {
			return done, fmt.Errorf("read %s at %d: %w", r.what, off, err)
		}
		if n <= 0 {
			return done, fmt.Errorf("read %s at %d: empty extent", r.what, off)
		}
		n = min(n, int64(len(p)-done), r.size-off)
		chunk := p[done : done+int(n)]
		if phys < 0 {
			clear(chunk)
		} else if err := r.rd.readAt(chunk, phys); err != nil {
			return done, fmt.Errorf("read %s at %d: %w", r.what, off, err)
		}
		done += int(n)
		off += n
	}
	if done < len(p) {
		return done, io.EOF
	}
	return done, nil
}

// flatReader reads FLAT_PLAIN (contiguous blocks) and FLAT_INLINE (blocks
// with the last partial block stored right after the inode) layouts.
func (e *erofs) flatReader(n *erNode) (io.ReaderAt, error) {
	size := n.st.Size
	start := int64(n.iu) << e.blkbits
	nblocks := (size + e.blksz - 1) / e.blksz
	full := nblocks // blocks stored at start
	var tail, tailLen int64
	if n.layout == erofsLayoutFlatInline {
		full = nblocks - 1
		if full < 0 {
			full = 0
		}
		tail = n.tailPos()
		tailLen = size - full*e.blksz
		if tailLen > 0 && tail%e.blksz+tailLen > e.blksz {
			return nil, fmt.Errorf("erofs inode %d: inline data crosses a block boundary", n.nid)
		}
	}
	if full > 0 && (start > e.rd.size || full*e.blksz > e.rd.size-start) {
		return nil, fmt.Errorf("erofs inode %d: data blocks outside the image", n.nid)
	}
	fullBytes := full * e.blksz
	return &extentReader{rd: e.rd, size: size, what: fmt.Sprintf("erofs inode %d", n.nid),
		mapAt: func(off int64) (int64, int64, error) {
			if off < fullBytes {
				return start + off, fullBytes - off, nil
			}
			return tail + off - fullBytes, size - off, nil
		}}, nil
}

// chunkReader reads CHUNK_BASED files: an array of block addresses (or
// chunk indexes), one per chunk, after the inode.
func (e *erofs) chunkReader(n *erNode) (io.ReaderAt, error) {
	format := uint16(n.iu)
	if format&^erofsChunkFormatAll != 0 {
		return nil, unsupportedErofs(fmt.Sprintf("chunk format %#x", format))
	}
	bits := e.blkbits + uint(format&erofsChunkBlkMask)
	if bits > 40 {
		return nil, fmt.Errorf("erofs inode %d: chunk size 2^%d too large", n.nid, bits)
	}
	unit := int64(4)
	if format&erofsChunkIndexes != 0 {
		unit = 8
	}
	base := (n.tailPos() + unit - 1) / unit * unit
	chunk := int64(1) << bits
	return &extentReader{rd: e.rd, size: n.st.Size, what: fmt.Sprintf("erofs inode %d", n.nid),
		mapAt: func(off int64) (int64, int64, error) {
			idx := off >> bits
			b, err := e.rd.bytes(base+idx*unit, int(unit))
			if err != nil {
				return 0, 0, fmt.Errorf("chunk index %d: %w", idx, err)
			}
			var blk uint32
			if unit == 4 {
				blk = u32(b)
			} else {
				if u16(b[0:]) != 0 {
					return 0, 0, unsupportedErofs("48bit chunk addresses")
				}
				if u16(b[2:]) != 0 {
					return 0, 0, unsupportedErofs("multiple devices")
				}
				blk = u32(b[4:])
			}
			in := off & (chunk - 1)
			if blk == erofsNullAddr {
				return -1, chunk - in, nil
			}
			return int64(blk)<<e.blkbits + in, chunk - in, nil
		}}, nil
}

func (e *erofs) open(nn node) (io.ReaderAt, error) {
	return e.data(nn.(*erNode))
}

// readAll reads a small inode's whole contents (directories, symlinks).
func (e *erofs) readAll(n *erNode) ([]byte, error) {
	r, err := e.data(n)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n.st.Size)
	if _, err := r.ReadAt(b, 0); err != nil && !(err == io.EOF && len(b) == 0) {
		return nil, err
	}
	return b, nil
}

func (e *erofs) readLink(nn node) (string, error) {
	n := nn.(*erNode)
	b, err := e.readAll(n)
	if err != nil {
		return "", fmt.Errorf("read erofs symlink (inode %d): %w", n.nid, err)
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return "", fmt.Errorf("erofs symlink (inode %d) target contains NUL", n.nid)
	}
	return string(b), nil
}

// eachEntry calls fn for each directory entry other than "." and "..".
// Directory data is read one block at a time, since each block is
// self-contained (entries, then names).
func (e *erofs) eachEntry(d *erNode, fn func(name string, nid uint64) (bool, error)) error {
	r, err := e.data(d)
	if err != nil {
		return err
	}
	size := d.st.Size
	buf := make([]byte, e.blksz)
	count := 0
	for pos := int64(0); pos < size; pos += e.blksz {
		b := buf[:min(e.blksz, size-pos)]
		if err := e.rd.w.block(); err != nil {
			return err
		}
		if _, err := r.ReadAt(b, pos); err != nil && err != io.EOF {
			return err
		}
		blk := pos / e.blksz
		if len(b) < erofsDirentSize {
			return fmt.Errorf("directory block %d truncated", blk)
		}
		first := int(u16(b[8:]))
		if first < erofsDirentSize || first > len(b) {
			return fmt.Errorf("directory block %d: bad name offset %d", blk, first)
		}
		n := first / erofsDirentSize
		for i := range n {
			de := b[i*erofsDirentSize:]
			nid := u64(de[0:])
			off := int(u16(de[8:]))
			end := len(b)
			if i+1 < n {
				end = int(u16(b[(i+1)*erofsDirentSize+8:]))
			}
			if off < first || end < off || end > len(b) {
				return fmt.Errorf("directory block %d: bad name offsets %d..%d", blk, off, end)
			}
			nb := b[off:end]
			if i+1 == n {
				// The last name runs to the end of the block or a NUL.
				if j := bytes.IndexByte(nb, 0); j >= 0 {
					nb = nb[:j]
				}
			}
			name := string(nb)
			if name == "." || name == ".." {
				continue
			}
			if err := checkName(name); err != nil {
				return err
			}
			if count++; count > maxDirEntries {
				return errors.New("too many directory entries")
			}
			if err := e.rd.w.entry(); err != nil {
				return err
			}
			stop, err := fn(name, nid)
			if err != nil || stop {
				return err
			}
		}
	}
	return nil
}

func (e *erofs) readDir(dn node) ([]dirent, error) {
	d := dn.(*erNode)
	out, err := collectDir(func(fn func(string, uint64) (bool, error)) error { return e.eachEntry(d, fn) },
		func(nid uint64) (node, error) { return e.inode(nid) })
	if err != nil {
		return nil, fmt.Errorf("read erofs directory (inode %d): %w", d.nid, err)
	}
	return out, nil
}

func (e *erofs) lookup(dn node, name string) (node, error) {
	d := dn.(*erNode)
	nid, ok, err := e.dirs.lookup(d.nid, name, func(fn func(string, uint64) (bool, error)) error {
		return e.eachEntry(d, fn)
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("read erofs directory (inode %d): %w", d.nid, err)
	}
	if !ok {
		return nil, fmt.Errorf("%q: %w", name, fs.ErrNotExist)
	}
	return e.inode(nid)
}

// erofsXattrPrefix returns the name prefix for an xattr name index.
func erofsXattrPrefix(idx byte) string {
	switch idx {
	case 1:
		return "user."
	case 2:
		return "system.posix_acl_access"
	case 3:
		return "system.posix_acl_default"
	case 4:
		return "trusted."
	case 5:
		return "lustre."
	case 6:
		return "security."
	}
	return ""
}

func (e *erofs) xattrs(nn node) ([]xattr, error) {
	n := nn.(*erNode)
	if n.xattrSize == 0 {
		return nil, nil
	}
	xs, err := e.readXattrs(n)
	if err != nil {
		return nil, fmt.Errorf("read erofs xattrs of inode %d: %w", n.nid, err)
	}
	return xs, nil
}

// parseXattr decodes one entry at b, returning it and its aligned size.
func parseErofsXattr(b []byte) (xattr, int, error) {
	if len(b) < 4 {
		return xattr{}, 0, errors.New("truncated xattr entry")
	}
	nlen, idx, vlen := int(b[0]), b[1], int(u16(b[2:]))
	if idx&0x80 != 0 {
		return xattr{}, 0, unsupportedErofs("long xattr name prefixes")
	}
	prefix := erofsXattrPrefix(idx)
	if prefix == "" {
		return xattr{}, 0, fmt.Errorf("unknown xattr name index %d", idx)
	}
	size := (4 + nlen + vlen + 3) &^ 3
	if 4+nlen+vlen > len(b) {
		return xattr{}, 0, errors.New("xattr entry overruns its area")
	}
	name := prefix + string(b[4:4+nlen])
	if strings.IndexByte(name, 0) >= 0 {
		return xattr{}, 0, errors.New("xattr name contains NUL")
	}
	val := append([]byte(nil), b[4+nlen:4+nlen+vlen]...)
	return xattr{name: name, value: val}, min(size, len(b)), nil
}

func (e *erofs) readXattrs(n *erNode) ([]xattr, error) {
	body, err := e.rd.bytes(n.iloc+n.isize, int(n.xattrSize))
	if err != nil {
		return nil, err
	}
	shared := int(body[4])
	p := 12 + 4*shared
	if p > len(body) {
		return nil, fmt.Errorf("%d shared xattrs overrun the inline xattr area", shared)
	}
	var out []xattr
	total := 0
	add := func(x xattr) error {
		total += len(x.name) + len(x.value)
		if total > maxXattrTotal || len(out) >= maxXattrCount {
			return errors.New("xattrs exceed the size limit")
		}
		out = append(out, x)
		return nil
	}
	for i := range shared {
		id := int64(u32(body[12+4*i:]))
		pos := e.xattrStart + 4*id
		// A shared entry is at most 4+255+65535 bytes; read what the
		// image holds of that and let the parser check the rest.
		hdr, err := e.rd.bytes(pos, 4)
		if err != nil {
			return nil, fmt.Errorf("shared xattr %d: %w", id, err)
		}
		ent, err := e.rd.bytes(pos, 4+int(hdr[0])+int(u16(hdr[2:])))
		if err != nil {
			return nil, fmt.Errorf("shared xattr %d: %w", id, err)
		}
		x, _, err := parseErofsXattr(ent)
		if err != nil {
			return nil, fmt.Errorf("shared xattr %d: %w", id, err)
		}
		if err := add(x); err != nil {
			return nil, err
		}
	}
	for p < len(body) {
		x, size, err := parseErofsXattr(body[p:])
		if err != nil {
			return nil, err
		}
		if err := add(x); err != nil {
			return nil, err
		}
		p += size
	}
	return out, nil
}
