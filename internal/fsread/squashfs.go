package fsread

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/stratalinux/strata/internal/fsmagic"
)

// Squashfs 4.0 on-disk constants.
const (
	sqSuperSize     = 96
	sqMetaSize      = 8192
	sqInvalidFrag   = 0xFFFFFFFF
	sqInvalidXattr  = 0xFFFFFFFF
	sqNoTable       = 0xFFFFFFFFFFFFFFFF
	sqBlockUncomp   = 1 << 24
	sqMetaUncomp    = 0x8000
	sqDirMaxEntries = 256
	sqFragsPerBlock = sqMetaSize / 16
	sqIDsPerBlock   = sqMetaSize / 4
	sqXattrsPerBlk  = sqMetaSize / 16
	sqFlagNoXattrs  = 0x0200
	sqCkptBlocks    = 1024 // data blocks between block-list checkpoints
)

// Squashfs inode types.
const (
	sqDir = 1 + iota
	sqReg
	sqSymlink
	sqBlkdev
	sqChrdev
	sqFifo
	sqSocket
	sqLDir
	sqLReg
	sqLSymlink
	sqLBlkdev
	sqLChrdev
	sqLFifo
	sqLSocket
)

type squashfs struct {
	rd        *reader
	dec       decompressor
	blockSize int64
	inodeTbl  int64 // inode table start
	dirTbl    int64 // directory table start
	fragTbl   []int64
	fragCount uint32
	ids       []uint32
	xattrTbl  int64 // xattr key/value table start; -1 without xattrs
	xattrIdx  []int64
	xattrIDs  uint32
	rootRef   uint64
	rootNode  *sqNode
	meta      *lru[sqMetaBlock]
	frags     *lru[[]byte]
	dirs      *dirCache
}

type sqMetaBlock struct {
	data []byte
	next int64
}

// sqNode is a loaded squashfs inode.
type sqNode struct {
	st    Stat
	ref   uint64
	typ   int
	xattr uint32
	// directories
	dirBlock  uint32
	dirOffset uint16
	dirSize   uint32
	idxCount  uint16
	idxPos    sqCursor
	// regular files
	blocksStart int64
	fragIdx     uint32
	fragOff     uint32
	nblocks     int64
	sizesPos    sqCursor
	// symbolic links
	target string
}

func (n *sqNode) stat() *Stat { return &n.st }
func (n *sqNode) key() uint64 { return n.ref }

func openSquashfs(rd *reader) (*squashfs, error) {
	sb, err := rd.bytes(0, sqSuperSize)
	if err != nil {
		return nil, fmt.Errorf("read squashfs superblock: %w", err)
	}
	if string(sb[:4]) != fsmagic.SquashfsMagic {
		return nil, errors.New("squashfs: bad magic")
	}
	if major, minor := u16(sb[28:]), u16(sb[30:]); major != 4 || minor != 0 {
		return nil, fmt.Errorf("squashfs version %d.%d is not supported (only 4.0)", major, minor)
	}
	s := &squashfs{rd: rd, meta: newLRU[sqMetaBlock](512), frags: newLRU[[]byte](8), dirs: newDirCache()}
	s.blockSize = int64(u32(sb[12:]))
	blockLog := u16(sb[22:])
	if blockLog < 12 || blockLog > 20 || s.blockSize != 1<<blockLog {
		return nil, fmt.Errorf("squashfs: bad block size %d (log %d)", s.blockSize, blockLog)
	}
	comp := int(u16(sb[20:]))
	switch comp {
	case 1:
		s.dec = &zlibDecompressor{}
	case 2:
		s.dec = lzmaDecompressor{}
	case 3:
		return nil, errors.New("lzo-compressed squashfs is not supported")
	case 4:
		s.dec = xzDecompressor{}
	case 5:
		s.dec = lz4BlockDecompressor{}
	case 6:
		if s.dec, err = newZstd(int(s.blockSize)); err != nil {
			return nil, fmt.Errorf("squashfs: zstd: %w", err)
		}
	default:
		return nil, fmt.Errorf("squashfs: unknown compressor id %d", comp)
	}
	flags := u16(sb[24:])
	bytesUsed := u64(sb[40:])
	if bytesUsed > uint64(rd.size) {
		return nil, fmt.Errorf("squashfs: superblock claims %d bytes, image has %d (truncated?)", bytesUsed, rd.size)
	}
	end := int64(bytesUsed)
	tbl := func(what string, off uint64) (int64, error) {
		if off < sqSuperSize || off >= bytesUsed {
			return 0, fmt.Errorf("squashfs: %s at offset %d outside the image (%d bytes)", what, off, bytesUsed)
		}
		return int64(off), nil
	}
	if s.inodeTbl, err = tbl("inode table", u64(sb[64:])); err != nil {
		return nil, err
	}
	if s.dirTbl, err = tbl("directory table", u64(sb[72:])); err != nil {
		return nil, err
	}
	if s.dirTbl <= s.inodeTbl {
		return nil, fmt.Errorf("squashfs: directory table (%d) does not follow inode table (%d)", s.dirTbl, s.inodeTbl)
	}
	s.rootRef = u64(sb[32:])

	// ID table: uid/gid values referenced by index from inodes.
	idCount := int(u16(sb[26:]))
	if idCount == 0 {
		return nil, errors.New("squashfs: empty id table")
	}
	idTbl, err := tbl("id table", u64(sb[48:]))
	if err != nil {
		return nil, err
	}
	idPtrs, err := s.readTablePointers(idTbl, (idCount+sqIDsPerBlock-1)/sqIDsPerBlock, end)
	if err != nil {
		return nil, fmt.Errorf("squashfs: id table: %w", err)
	}
	raw, err := s.readTable(idPtrs, idCount*4)
	if err != nil {
		return nil, fmt.Errorf("squashfs: id table: %w", err)
	}
	s.ids = make([]uint32, idCount)
	for i := range s.ids {
		s.ids[i] = u32(raw[4*i:])
	}

	// Fragment table: locations of the blocks holding file tails.
	s.fragCount = u32(sb[16:])
	if s.fragCount > 0 {
		fragTbl, err := tbl("fragment table", u64(sb[80:]))
		if err != nil {
			return nil, err
		}
		n := (int64(s.fragCount) + sqFragsPerBlock - 1) / sqFragsPerBlock
		if s.fragTbl, err = s.readTablePointers(fragTbl, int(n), end); err != nil {
			return nil, fmt.Errorf("squashfs: fragment table: %w", err)
		}
	}

	// Xattr id table.
	s.xattrTbl = -1
	if xt := u64(sb[56:]); xt != sqNoTable && flags&sqFlagNoXattrs == 0 {
		xoff, err := tbl("xattr id table", xt)
		if err != nil {
			return nil, err
		}
		hdr, err := rd.bytes(xoff, 16)
		if err != nil {
			return nil, fmt.Errorf("squashfs: xattr id table: %w", err)
		}
		if s.xattrTbl, err = tbl("xattr table", u64(hdr)); err != nil {
			return nil, err
		}
		s.xattrIDs = u32(hdr[8:])
		n := (int64(s.xattrIDs) + sqXattrsPerBlk - 1) / sqXattrsPerBlk
		if s.xattrIdx, err = s.readTablePointers(xoff+16, int(n), end); err != nil {
			return nil, fmt.Errorf("squashfs: xattr id table: %w", err)
		}
	}

	root, err := s.inode(s.rootRef)
	if err != nil {
		return nil, fmt.Errorf("squashfs: root inode: %w", err)
	}
	s.rootNode = root
	return s, nil
}

// readTablePointers reads n little-endian 64-bit metadata block locations
// at off, checking each lies inside the image.
func (s *squashfs) readTablePointers(off int64, n int, end int64) ([]int64, error) {
	if int64(n)*8 > end {
		return nil, fmt.Errorf("%d table blocks cannot fit in the image", n)
	}
	raw, err := s.rd.bytes(off, n*8)
	if err != nil {
		return nil, err
	}
	ptrs := make([]int64, n)
	for i := range ptrs {
		p := u64(raw[8*i:])
		if p < sqSuperSize || p >= uint64(end) {
			return nil, fmt.Errorf("table block %d at offset %d outside the image", i, p)
		}
		ptrs[i] = int64(p)
	}
	return ptrs, nil
}

// readTable reads size bytes of a table stored in the metadata blocks
// listed by ptrs.
func (s *squashfs) readTable(ptrs []int64, size int) ([]byte, error) {
	out := make([]byte, 0, size)
	for _, p := range ptrs {
		b, err := s.metaBlock(p)
		if err != nil {
			return nil, err
		}
		need := min(size-len(out), sqMetaSize)
		if len(b.data) < need {
			return nil, fmt.Errorf("metadata block at %d has %d bytes, need %d", p, len(b.data), need)
		}
		out = append(out, b.data[:need]...)
	}
	if len(out) != size {
		return nil, fmt.Errorf("table has %d bytes, need %d", len(out), size)
	}
	return out, nil
}

// metaBlock reads and decompresses the metadata block at pos.
func (s *squashfs) metaBlock(pos int64) (sqMetaBlock, error) {
	if b, ok := s.meta.get(pos); ok {
		return b, nil
	}
	if err := s.rd.w.block(); err != nil {
		return sqMetaBlock{}, err
	}
	var h [2]byte
	if err := s.rd.readAt(h[:], pos); err != nil {
		return sqMetaBlock{}, fmt.Errorf("read squashfs metadata block at %d: %w", pos, err)
	}
	hdr := u16(h[:])
	size := int(hdr &^ sqMetaUncomp)
	if size == 0 || size > sqMetaSize {
		return sqMetaBlock{}, fmt.Errorf("squashfs metadata block at %d: bad size %d", pos, size)
	}
	raw, err := s.rd.bytes(pos+2, size)
	if err != nil {
		return sqMetaBlock{}, fmt.Errorf("read squashfs metadata block at %d: %w", pos, err)
	}
	data := raw
	if hdr&sqMetaUncomp == 0 {
		data = make([]byte, sqMetaSize)
		n, err := s.dec.decompress(data, raw)
		if err != nil {
			return sqMetaBlock{}, fmt.Errorf("squashfs metadata block at %d: %w", pos, err)
		}
		data = data[:n]
	}
	if len(data) == 0 {
		return sqMetaBlock{}, fmt.Errorf("squashfs metadata block at %d is empty", pos)
	}
	b := sqMetaBlock{data: data, next: pos + 2 + int64(size)}
	s.meta.put(pos, b)
	return b, nil
}

// sqCursor is a position in a stream of metadata blocks.
type sqCursor struct {
	blk int64 // disk offset of the metadata block
	off int   // offset in its decompressed data
}

// read fills p from the metadata stream at c, advancing c.
func (s *squashfs) read(c *sqCursor, p []byte) error {
	for len(p) > 0 {
		b, err := s.metaBlock(c.blk)
		if err != nil {
			return err
		}
		if c.off > len(b.data) {
			return fmt.Errorf("squashfs metadata offset %d beyond block at %d (%d bytes)", c.off, c.blk, len(b.data))
		}
		if c.off == len(b.data) {
			c.blk, c.off = b.next, 0
			continue
		}
		n := copy(p, b.data[c.off:])
		p = p[n:]
		c.off += n
	}
	return nil
}

func (s *squashfs) readBytes(c *sqCursor, n int) ([]byte, error) {
	b := make([]byte, n)
	return b, s.read(c, b)
}

func (s *squashfs) id(idx uint16) (uint32, error) {
	if int(idx) >= len(s.ids) {
		return 0, fmt.Errorf("id index %d out of range (%d ids)", idx, len(s.ids))
	}
	return s.ids[idx], nil
}

// inode loads the inode at an inode reference (block offset << 16 | offset).
func (s *squashfs) inode(ref uint64) (*sqNode, error) {
	n, err := s.loadInode(ref)
	if err != nil {
		return nil, fmt.Errorf("read squashfs inode %#x: %w", ref, err)
	}
	return n, nil
}

func (s *squashfs) loadInode(ref uint64) (*sqNode, error) {
	blk, off := int64(ref>>16), int(ref&0xffff)
	if off >= sqMetaSize || blk >= s.dirTbl-s.inodeTbl {
		return nil, errors.New("inode reference outside the inode table")
	}
	if err := s.rd.w.inode(); err != nil {
		return nil, err
	}
	c := sqCursor{blk: s.inodeTbl + blk, off: off}
	var h [16]byte
	if err := s.read(&c, h[:]); err != nil {
		return nil, err
	}
	n := &sqNode{ref: ref, typ: int(u16(h[0:])), xattr: sqInvalidXattr}
	uid, err := s.id(u16(h[4:]))
	if err != nil {
		return nil, err
	}
	gid, err := s.id(u16(h[6:]))
	if err != nil {
		return nil, err
	}
	n.st = Stat{
		Mode:  uint32(u16(h[2:])) & 0o7777,
		Uid:   uid,
		Gid:   gid,
		Nlink: 1,
		Mtime: time.Unix(int64(u32(h[8:])), 0).UTC(),
		Ino:   uint64(u32(h[12:])),
	}
	switch n.typ {
	case sqDir:
		var b [16]byte
		if err := s.read(&c, b[:]); err != nil {
			return nil, err
		}
		n.st.Mode |= sIFDIR
		n.dirBlock = u32(b[0:])
		n.st.Nlink = u32(b[4:])
		n.dirSize = uint32(u16(b[8:]))
		n.dirOffset = u16(b[10:])
	case sqLDir:
		var b [24]byte
		if err := s.read(&c, b[:]); err != nil {
			return nil, err
		}
		n.st.Mode |= sIFDIR
		n.st.Nlink = u32(b[0:])
		n.dirSize = u32(b[4:])
		n.dirBlock = u32(b[8:])
		n.idxCount = u16(b[16:])
		n.dirOffset = u16(b[18:])
		n.xattr = u32(b[20:])
		n.idxPos = c
	case sqReg, sqLReg:
		var size uint64
		if n.typ == sqReg {
			var b [16]byte
			if err := s.read(&c, b[:]); err != nil {
				return nil, err
			}
			n.blocksStart = int64(u32(b[0:]))
			if n.blocksStart >= s.rd.size {
				return nil, fmt.Errorf("file data start %d outside the image", n.blocksStart)
			}
			n.fragIdx = u32(b[4:])
			n.fragOff = u32(b[8:])
			size = uint64(u32(b[12:]))
		} else {
			var b [40]byte
			if err := s.read(&c, b[:]); err != nil {
				return nil, err
			}
			bs := u64(b[0:])
			if bs >= uint64(s.rd.size) {
				return nil, fmt.Errorf("file data start %d outside the image", bs)
			}
			n.blocksStart = int64(bs)
			size = u64(b[8:])
			n.st.Nlink = u32(b[24:])
			n.fragIdx = u32(b[28:])
			n.fragOff = u32(b[32:])
			n.xattr = u32(b[36:])
		}
		if size > maxFileSize {
			return nil, fmt.Errorf("file size %d too large", size)
		}
		n.st.Mode |= sIFREG
		n.st.Size = int64(size)
		if n.fragIdx == sqInvalidFrag {
			n.nblocks = (n.st.Size + s.blockSize - 1) / s.blockSize
		} else {
			if n.fragIdx >= s.fragCount {
				return nil, fmt.Errorf("fragment %d out of range (%d fragments)", n.fragIdx, s.fragCount)
			}
			if int64(n.fragOff) >= s.blockSize {
				return nil, fmt.Errorf("fragment offset %d beyond block size", n.fragOff)
			}
			n.nblocks = n.st.Size / s.blockSize
		}
		n.sizesPos = c
	case sqSymlink, sqLSymlink:
		var b [8]byte
		if err := s.read(&c, b[:]); err != nil {
			return nil, err
		}
		n.st.Mode |= sIFLNK
		n.st.Nlink = u32(b[0:])
		tlen := u32(b[4:])
		if tlen == 0 || tlen > maxLinkLen {
			return nil, fmt.Errorf("symlink target length %d out of range", tlen)
		}
		t, err := s.readBytes(&c, int(tlen))
		if err != nil {
			return nil, err
		}
		if strings.IndexByte(string(t), 0) >= 0 {
			return nil, errors.New("symlink target contains NUL")
		}
		n.target = string(t)
		n.st.Size = int64(tlen)
		if n.typ == sqLSymlink {
			var x [4]byte
			if err := s.read(&c, x[:]); err != nil {
				return nil, err
			}
			n.xattr = u32(x[:])
		}
	case sqBlkdev, sqChrdev, sqLBlkdev, sqLChrdev:
		var b [8]byte
		if err := s.read(&c, b[:]); err != nil {
			return nil, err
		}
		if n.typ == sqBlkdev || n.typ == sqLBlkdev {
			n.st.Mode |= sIFBLK
		} else {
			n.st.Mode |= sIFCHR
		}
		n.st.Nlink = u32(b[0:])
		n.st.Rdev = decodeLinuxDev(u32(b[4:]))
		if n.typ >= sqLDir {
			var x [4]byte
			if err := s.read(&c, x[:]); err != nil {
				return nil, err
			}
			n.xattr = u32(x[:])
		}
	case sqFifo, sqSocket, sqLFifo, sqLSocket:
		var b [4]byte
		if err := s.read(&c, b[:]); err != nil {
			return nil, err
		}
		if n.typ == sqFifo || n.typ == sqLFifo {
			n.st.Mode |= sIFIFO
		} else {
			n.st.Mode |= sIFSOCK
		}
		n.st.Nlink = u32(b[0:])
		if n.typ >= sqLDir {
			var x [4]byte
			if err := s.read(&c, x[:]); err != nil {
				return nil, err
			}
			n.xattr = u32(x[:])
		}
	default:
		return nil, fmt.Errorf("unknown inode type %d", n.typ)
	}
	if n.st.Mode&sIFMT == sIFDIR {
		if n.dirSize < 3 {
			return nil, fmt.Errorf("directory size %d too small", n.dirSize)
		}
		if n.dirSize-3 > maxDirSize {
			return nil, fmt.Errorf("directory size %d too large", n.dirSize)
		}
		if n.dirOffset >= sqMetaSize || int64(n.dirBlock) >= s.rd.size-s.dirTbl {
			return nil, errors.New("directory listing outside the directory table")
		}
		n.st.Size = int64(n.dirSize)
	}
	return n, nil
}

func (s *squashfs) root() (node, error) { return s.rootNode, nil }

// eachEntry calls fn for the entries of a directory listing that starts
// at c and is size bytes long.
func (s *squashfs) eachEntry(c sqCursor, size int64, fn func(name string, ref uint64) (bool, error)) error {
	total := 0
	for size > 0 {
		var h [12]byte
		if size < 12 {
			return errors.New("truncated directory header")
		}
		if err := s.read(&c, h[:]); err != nil {
			return err
		}
		size -= 12
		count := int64(u32(h[0:])) + 1
		start := u32(h[4:])
		if count > sqDirMaxEntries {
			return fmt.Errorf("directory header with %d entries", count)
		}
		for range count {
			var e [8]byte
			if size < 8 {
				return errors.New("truncated directory entry")
			}
			if err := s.read(&c, e[:]); err != nil {
				return err
			}
			off := u16(e[0:])
			nlen := int64(u16(e[6:])) + 1
			size -= 8
			if nlen > size || nlen > maxNameLen+1 {
				return errors.New("directory entry name overruns the directory")
			}
			nb, err := s.readBytes(&c, int(nlen))
			if err != nil {
				return err
			}
			size -= nlen
			name := string(nb)
			if err := checkName(name); err != nil {
				return err
			}
			if off >= sqMetaSize {
				return fmt.Errorf("entry %q: inode offset %d out of range", name, off)
			}
			if total++; total > maxDirEntries {
				return errors.New("too many directory entries")
			}
			if err := s.rd.w.entry(); err != nil {
				return err
			}
			stop, err := fn(name, uint64(start)<<16|uint64(off))
			if err != nil || stop {
				return err
			}
		}
	}
	return nil
}

func (s *squashfs) listing(d *sqNode) (sqCursor, int64) {
	return sqCursor{blk: s.dirTbl + int64(d.dirBlock), off: int(d.dirOffset)}, int64(d.dirSize) - 3
}

func (s *squashfs) readDir(dn node) ([]dirent, error) {
	d := dn.(*sqNode)
	c, size := s.listing(d)
	var out []dirent
	err := s.eachEntry(c, size, func(name string, ref uint64) (bool, error) {
		n, err := s.inode(ref)
		if err != nil {
			return false, fmt.Errorf("entry %q: %w", name, err)
		}
		out = append(out, dirent{name: name, n: n})
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read squashfs directory (inode %d): %w", d.st.Ino, err)
	}
	return out, nil
}

func (s *squashfs) lookup(dn node, name string) (node, error) {
	d := dn.(*sqNode)
	all := func(fn func(string, uint64) (bool, error)) error {
		c, size := s.listing(d)
		return s.eachEntry(c, size, fn)
	}
	var find func(string) (uint64, bool, error)
	if d.idxCount > 0 {
		find = func(name string) (uint64, bool, error) { return s.findIndexed(d, name) }
	}
	ref, ok, err := s.dirs.lookup(d.ref, name, all, find)
	if err != nil {
		return nil, fmt.Errorf("read squashfs directory (inode %d): %w", d.st.Ino, err)
	}
	if !ok {
		return nil, fmt.Errorf("%q: %w", name, fs.ErrNotExist)
	}
	return s.inode(ref)
}

// findIndexed looks name up in a directory too large for the cache,
// starting at the metadata block its index points to.
func (s *squashfs) findIndexed(d *sqNode, name string) (uint64, bool, error) {
	c, size := s.listing(d)
	c, size, err := s.seekIndex(d, name, c, size)
	if err != nil {
		return 0, false, fmt.Errorf("directory index: %w", err)
	}
	var found uint64
	ok := false
	err = s.eachEntry(c, size, func(n string, ref uint64) (bool, error) {
		if n == name {
			found, ok = ref, true
			return true, nil
		}
		return false, nil
	})
	return found, ok, err
}

// seekIndex uses an extended directory's index, which records the first
// name of each metadata block of the listing, to skip to the block that
// may hold name (entries are sorted by strcmp).
func (s *squashfs) seekIndex(d *sqNode, name string, c sqCursor, size int64) (sqCursor, int64, error) {
	ic := d.idxPos
	best, bestStart := int64(-1), uint32(0)
	for range int(d.idxCount) {
		var h [12]byte
		if err := s.read(&ic, h[:]); err != nil {
			return c, size, err
		}
		index, start, nlen := int64(u32(h[0:])), u32(h[4:]), int(u32(h[8:]))+1
		if nlen > maxNameLen+1 {
			return c, size, fmt.Errorf("index name of %d bytes", nlen)
		}
		nb, err := s.readBytes(&ic, nlen)
		if err != nil {
			return c, size, err
		}
		if string(nb) > name {
			break
		}
		if index > size || index < best {
			return c, size, fmt.Errorf("index offset %d out of range", index)
		}
		best, bestStart = index, start
	}
	if best < 0 {
		return c, size, nil
	}
	if int64(bestStart) >= s.rd.size-s.dirTbl {
		return c, size, errors.New("index block outside the directory table")
	}
	return sqCursor{blk: s.dirTbl + int64(bestStart), off: int((best + int64(d.dirOffset)) % sqMetaSize)}, size - best, nil
}

func (s *squashfs) readLink(n node) (string, error) {
	return n.(*sqNode).target, nil
}

func (s *squashfs) xattrs(nn node) ([]xattr, error) {
	n := nn.(*sqNode)
	if n.xattr == sqInvalidXattr {
		return nil, nil
	}
	xs, err := s.readXattrs(n.xattr)
	if err != nil {
		return nil, fmt.Errorf("read squashfs xattrs of inode %d: %w", n.st.Ino, err)
	}
	return xs, nil
}

func (s *squashfs) readXattrs(id uint32) ([]xattr, error) {
	if s.xattrTbl < 0 {
		return nil, errors.New("inode has xattrs but the image has no xattr table")
	}
	if id >= s.xattrIDs {
		return nil, fmt.Errorf("xattr id %d out of range (%d ids)", id, s.xattrIDs)
	}
	c := sqCursor{blk: s.xattrIdx[id/sqXattrsPerBlk], off: int(id%sqXattrsPerBlk) * 16}
	var e [16]byte
	if err := s.read(&c, e[:]); err != nil {
		return nil, err
	}
	ref, count, total := u64(e[0:]), u32(e[8:]), u32(e[12:])
	if count > maxXattrCount || total > maxXattrTotal {
		return nil, fmt.Errorf("%d xattrs of %d bytes exceed the limit", count, total)
	}
	kv := func(ref uint64) (sqCursor, error) {
		blk, off := int64(ref>>16), int(ref&0xffff)
		if off >= sqMetaSize || blk >= s.rd.size-s.xattrTbl {
			return sqCursor{}, fmt.Errorf("xattr reference %#x out of range", ref)
		}
		return sqCursor{blk: s.xattrTbl + blk, off: off}, nil
	}
	c, err := kv(ref)
	if err != nil {
		return nil, err
	}
	var out []xattr
	sum := 0
	for range count {
		var k [4]byte
		if err := s.read(&c, k[:]); err != nil {
			return nil, err
		}
		typ, nlen := u16(k[0:]), int(u16(k[2:]))
		if nlen == 0 || nlen > maxNameLen {
			return nil, fmt.Errorf("xattr name length %d out of range", nlen)
		}
		nb, err := s.readBytes(&c, nlen)
		if err != nil {
			return nil, err
		}
		var prefix string
		switch typ & 0xff {
		case 0:
			prefix = "user."
		case 1:
			prefix = "trusted."
		case 2:
			prefix = "security."
		default:
			return nil, fmt.Errorf("unknown xattr type %d", typ)
		}
		var vs [4]byte
		if err := s.read(&c, vs[:]); err != nil {
			return nil, err
		}
		vlen := u32(vs[:])
		var val []byte
		if typ&0x100 != 0 {
			// Out-of-line value: a reference to a shared value.
			if vlen != 8 {
				return nil, fmt.Errorf("out-of-line xattr reference of %d bytes", vlen)
			}
			var r [8]byte
			if err := s.read(&c, r[:]); err != nil {
				return nil, err
			}
			vc, err := kv(u64(r[:]))
			if err != nil {
				return nil, err
			}
			if err := s.read(&vc, vs[:]); err != nil {
				return nil, err
			}
			vlen = u32(vs[:])
			if vlen > maxXattrValue {
				return nil, fmt.Errorf("xattr value of %d bytes exceeds the limit", vlen)
			}
			if val, err = s.readBytes(&vc, int(vlen)); err != nil {
				return nil, err
			}
		} else {
			if vlen > maxXattrValue {
				return nil, fmt.Errorf("xattr value of %d bytes exceeds the limit", vlen)
			}
			if val, err = s.readBytes(&c, int(vlen)); err != nil {
				return nil, err
			}
		}
		sum += nlen + len(val)
		if sum > maxXattrTotal {
			return nil, errors.New("xattrs exceed the size limit")
		}
		out = append(out, xattr{name: prefix + string(nb), value: val})
	}
	return out, nil
}

func (s *squashfs) open(nn node) (io.ReaderAt, error) {
	n := nn.(*sqNode)
	return &sqFile{s: s, n: n, ckpt: []sqCkpt{{c: n.sizesPos, disk: n.blocksStart}}, last: -1}, nil
}

// sqFile reads a regular file's data. A file's block list has one size
// word per block; to find block i it is summed from a checkpoint kept
// every sqCkptBlocks blocks, so no whole list (which a hostile sparse file
// could make gigabytes long) is ever held in memory.
type sqFile struct {
	s *squashfs
	n *sqNode

	mu       sync.Mutex
	ckpt     []sqCkpt
	next     sqCkpt // where block nextIdx's size word is, for sequential reads
	nextIdx  int64
	last     int64 // index of the block cached in lastData
	lastData []byte
}

type sqCkpt struct {
	c    sqCursor
	disk int64
}

// locate returns the disk offset and size word of data block i.
func (f *sqFile) locate(i int64) (int64, uint32, error) {
	s := f.s
	if i == f.nextIdx && i > 0 {
		var w [4]byte
		cp := f.next
		if err := s.read(&cp.c, w[:]); err != nil {
			return 0, 0, err
		}
		word := u32(w[:])
		disk := cp.disk
		cp.disk += int64(word &^ sqBlockUncomp)
		f.next, f.nextIdx = cp, i+1
		return disk, word, nil
	}
	j := i / sqCkptBlocks
	buf := make([]byte, 4*sqCkptBlocks)
	for int64(len(f.ckpt)) <= j {
		cp := f.ckpt[len(f.ckpt)-1]
		if err := s.read(&cp.c, buf); err != nil {
			return 0, 0, err
		}
		for k := 0; k < sqCkptBlocks; k++ {
			cp.disk += int64(u32(buf[4*k:]) &^ sqBlockUncomp)
		}
		f.ckpt = append(f.ckpt, cp)
	}
	cp := f.ckpt[j]
	k := int(i - j*sqCkptBlocks)
	b := buf[:4*(k+1)]
	if err := s.read(&cp.c, b); err != nil {
		return 0, 0, err
	}
	for m := 0; m < k; m++ {
		cp.disk += int64(u32(b[4*m:]) &^ sqBlockUncomp)
	}
	word := u32(b[4*k:])
	f.next = sqCkpt{c: cp.c, disk: cp.disk + int64(word&^sqBlockUncomp)}
	f.nextIdx = i + 1
	return cp.disk, word, nil
}

// block returns the decompressed data block i (which the caller must not
// modify).
func (f *sqFile) block(i int64) ([]byte, error) {
	s, n := f.s, f.n
	if i == f.last {
		return f.lastData, nil
	}
	want := min(s.blockSize, n.st.Size-i*s.blockSize)
	var data []byte
	if i < n.nblocks {
		off, word, err := f.locate(i)
		if err != nil {
			return nil, fmt.Errorf("block list: %w", err)
		}
		size := int64(word &^ sqBlockUncomp)
		switch {
		case size == 0:
			data = make([]byte, want) // sparse block
		case size > s.blockSize:
			return nil, fmt.Errorf("block %d: size %d exceeds block size", i, size)
		default:
			raw, err := s.rd.bytes(off, int(size))
			if err != nil {
				return nil, fmt.Errorf("block %d: %w", i, err)
			}
			if word&sqBlockUncomp != 0 {
				data = raw
			} else {
				data = make([]byte, s.blockSize)
				m, err := s.dec.decompress(data, raw)
				if err != nil {
					return nil, fmt.Errorf("block %d: %w", i, err)
				}
				data = data[:m]
			}
			if int64(len(data)) != want {
				return nil, fmt.Errorf("block %d holds %d bytes, want %d", i, len(data), want)
			}
		}
	} else {
		if n.fragIdx == sqInvalidFrag {
			return nil, fmt.Errorf("block %d beyond the block list", i)
		}
		frag, err := s.fragment(n.fragIdx)
		if err != nil {
			return nil, err
		}
		end := int64(n.fragOff) + want
		if end > int64(len(frag)) {
			return nil, fmt.Errorf("file tail [%d,%d) beyond fragment %d (%d bytes)", n.fragOff, end, n.fragIdx, len(frag))
		}
		data = frag[n.fragOff:end]
	}
	f.last, f.lastData = i, data
	return data, nil
}

// fragment returns the decompressed fragment block idx.
func (s *squashfs) fragment(idx uint32) ([]byte, error) {
	c := sqCursor{blk: s.fragTbl[idx/sqFragsPerBlock], off: int(idx%sqFragsPerBlock) * 16}
	var e [16]byte
	if err := s.read(&c, e[:]); err != nil {
		return nil, fmt.Errorf("fragment table entry %d: %w", idx, err)
	}
	start, word := u64(e[0:]), u32(e[8:])
	if start >= uint64(s.rd.size) {
		return nil, fmt.Errorf("fragment %d at %d outside the image", idx, start)
	}
	if b, ok := s.frags.get(int64(start)); ok {
		return b, nil
	}
	if err := s.rd.w.block(); err != nil {
		return nil, err
	}
	size := int64(word &^ sqBlockUncomp)
	if size == 0 || size > s.blockSize {
		return nil, fmt.Errorf("fragment %d: bad size %d", idx, size)
	}
	raw, err := s.rd.bytes(int64(start), int(size))
	if err != nil {
		return nil, fmt.Errorf("fragment %d: %w", idx, err)
	}
	data := raw
	if word&sqBlockUncomp == 0 {
		data = make([]byte, s.blockSize)
		m, err := s.dec.decompress(data, raw)
		if err != nil {
			return nil, fmt.Errorf("fragment %d: %w", idx, err)
		}
		data = data[:m]
	}
	s.frags.put(int64(start), data)
	return data, nil
}

// ReadAt implements io.ReaderAt.
func (f *sqFile) ReadAt(p []byte, off int64) (int, error) {
	size := f.n.st.Size
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= size {
		return 0, io.EOF
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	bs := f.s.blockSize
	done := 0
	for done < len(p) && off < size {
		i := off / bs
		b, err := f.block(i)
		if err != nil {
			return done, fmt.Errorf("read squashfs file (inode %d): %w", f.n.st.Ino, err)
		}
		in := off - i*bs
		if in >= int64(len(b)) {
			return done, fmt.Errorf("read squashfs file (inode %d): short block %d", f.n.st.Ino, i)
		}
		m := copy(p[done:], b[in:])
		done += m
		off += int64(m)
	}
	if done < len(p) {
		return done, io.EOF
	}
	return done, nil
}
