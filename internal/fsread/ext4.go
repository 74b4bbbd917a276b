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

// ext2/3/4 on-disk constants.
const (
	e4SuperOffset = 1024
	e4SuperSize   = 1024

	e4IncompatCompression = 0x1
	e4IncompatFiletype    = 0x2
	e4IncompatRecover     = 0x4
	e4IncompatJournalDev  = 0x8
	e4IncompatMetaBG      = 0x10
	e4IncompatExtents     = 0x40
	e4Incompat64bit       = 0x80
	e4IncompatMMP         = 0x100
	e4IncompatFlexBG      = 0x200
	e4IncompatEAInode     = 0x400
	e4IncompatDirdata     = 0x1000
	e4IncompatCsumSeed    = 0x2000
	e4IncompatLargedir    = 0x4000
	e4IncompatInlineData  = 0x8000
	e4IncompatEncrypt     = 0x10000
	e4IncompatCasefold    = 0x20000
	e4IncompatSupported   = e4IncompatFiletype | e4IncompatExtents | e4Incompat64bit | e4IncompatMMP |
		e4IncompatFlexBG | e4IncompatEAInode | e4IncompatCsumSeed | e4IncompatLargedir |
		e4IncompatInlineData | e4IncompatEncrypt | e4IncompatCasefold

	e4FlagEncrypt    = 0x800
	e4FlagExtents    = 0x80000
	e4FlagInlineData = 0x10000000

	e4ExtentMagic   = 0xF30A
	e4MaxDepth      = 5
	e4XattrMagic    = 0xEA020000
	e4RootIno       = 2
	e4NDirBlocks    = 12
	e4IBlockLen     = 60
	e4GoodOldInodes = 128
)

func unsupportedExt4(feature string) error {
	return fmt.Errorf("unsupported ext4 feature %s", feature)
}

type ext4 struct {
	rd         *reader
	bs         int64
	blocks     uint64
	inodes     uint32
	ipg        uint32 // inodes per group
	inodeSize  int64
	descSize   int64
	gdt        int64 // byte offset of the group descriptor table
	groups     int64
	is64       bool
	filetype   bool
	rootNode   *e4Node
	blockCache *lru[[]byte]
	dirs       *dirCache
}

type e4Node struct {
	st      Stat
	ino     uint32
	flags   uint32
	iblock  []byte // the 60-byte i_block area
	raw     []byte // the whole on-disk inode
	fileACL uint64
	blocks  uint64
}

func (n *e4Node) stat() *Stat { return &n.st }
func (n *e4Node) key() uint64 { return uint64(n.ino) }

func openExt4(rd *reader) (*ext4, error) {
	sb, err := rd.bytes(e4SuperOffset, e4SuperSize)
	if err != nil {
		return nil, fmt.Errorf("read ext4 superblock: %w", err)
	}
	if u16(sb[0x38:]) != fsmagic.Ext4Magic {
		return nil, errors.New("ext4: bad magic")
	}
	incompat := u32(sb[0x60:])
	switch {
	case incompat&e4IncompatRecover != 0:
		return nil, errors.New("ext4 image needs journal recovery (it was not cleanly unmounted)")
	case incompat&e4IncompatMetaBG != 0:
		return nil, unsupportedExt4("meta_bg")
	case incompat&e4IncompatCompression != 0:
		return nil, unsupportedExt4("compression")
	case incompat&e4IncompatJournalDev != 0:
		return nil, errors.New("ext4: image is an external journal device, not a file system")
	case incompat&e4IncompatDirdata != 0:
		return nil, unsupportedExt4("dirdata")
	case incompat&^e4IncompatSupported != 0:
		return nil, unsupportedExt4(fmt.Sprintf("incompat %#x", incompat&^e4IncompatSupported))
	}
	e := &ext4{rd: rd, blockCache: newLRU[[]byte](64), dirs: newDirCache()}
	logBS := u32(sb[0x18:])
	if logBS > 6 {
		return nil, fmt.Errorf("ext4: block size 1024<<%d too large", logBS)
	}
	e.bs = 1024 << logBS
	e.is64 = incompat&e4Incompat64bit != 0
	e.filetype = incompat&e4IncompatFiletype != 0
	e.blocks = uint64(u32(sb[0x4:]))
	if e.is64 {
		e.blocks |= uint64(u32(sb[0x150:])) << 32
	}
	e.inodes = u32(sb[0x0:])
	e.ipg = u32(sb[0x28:])
	bpg := uint64(u32(sb[0x20:]))
	first := uint64(u32(sb[0x14:]))
	if e.ipg == 0 || bpg == 0 || e.inodes == 0 {
		return nil, errors.New("ext4: zero inodes or blocks per group")
	}
	if first >= e.blocks {
		return nil, fmt.Errorf("ext4: first data block %d beyond %d blocks", first, e.blocks)
	}
	e.groups = int64((e.blocks - first + bpg - 1) / bpg)
	if uint64(e.inodes) > uint64(e.groups)*uint64(e.ipg) {
		return nil, fmt.Errorf("ext4: %d inodes do not fit %d groups of %d", e.inodes, e.groups, e.ipg)
	}
	if u32(sb[0x4C:]) == 0 {
		e.inodeSize = e4GoodOldInodes
	} else {
		e.inodeSize = int64(u16(sb[0x58:]))
		if e.inodeSize < e4GoodOldInodes || e.inodeSize > e.bs || e.inodeSize&(e.inodeSize-1) != 0 {
			return nil, fmt.Errorf("ext4: bad inode size %d", e.inodeSize)
		}
	}
	e.descSize = 32
	if e.is64 {
		e.descSize = int64(u16(sb[0xFE:]))
		if e.descSize < 64 || e.descSize > 1024 || e.descSize&(e.descSize-1) != 0 {
			return nil, fmt.Errorf("ext4: bad group descriptor size %d", e.descSize)
		}
	}
	e.gdt = int64(first+1) * e.bs
	if e.groups > rd.size/e.descSize || e.gdt > rd.size-e.groups*e.descSize {
		return nil, fmt.Errorf("ext4: %d group descriptors do not fit in the image", e.groups)
	}
	root, err := e.inode(e4RootIno)
	if err != nil {
		return nil, fmt.Errorf("ext4: root inode: %w", err)
	}
	e.rootNode = root
	return e, nil
}

func (e *ext4) root() (node, error) { return e.rootNode, nil }

// block returns file system block b, cached.
func (e *ext4) block(b uint64) ([]byte, error) {
	if b >= e.blocks || b == 0 {
		return nil, fmt.Errorf("block %d out of range (%d blocks)", b, e.blocks)
	}
	if d, ok := e.blockCache.get(int64(b)); ok {
		return d, nil
	}
	if err := e.rd.w.block(); err != nil {
		return nil, err
	}
	d, err := e.rd.bytes(int64(b)*e.bs, int(e.bs))
	if err != nil {
		return nil, err
	}
	e.blockCache.put(int64(b), d)
	return d, nil
}

func (e *ext4) inode(ino uint32) (*e4Node, error) {
	n, err := e.loadInode(ino)
	if err != nil {
		return nil, fmt.Errorf("read ext4 inode %d: %w", ino, err)
	}
	return n, nil
}

func (e *ext4) loadInode(ino uint32) (*e4Node, error) {
	if ino == 0 || ino > e.inodes {
		return nil, fmt.Errorf("inode number out of range (%d inodes)", e.inodes)
	}
	if err := e.rd.w.inode(); err != nil {
		return nil, err
	}
	g := int64((ino - 1) / e.ipg)
	idx := int64((ino - 1) % e.ipg)
	desc, err := e.rd.bytes(e.gdt+g*e.descSize, int(e.descSize))
	if err != nil {
		return nil, fmt.Errorf("group descriptor %d: %w", g, err)
	}
	itable := uint64(u32(desc[0x8:]))
	if e.is64 {
		itable |= uint64(u32(desc[0x28:])) << 32
	}
	if itable == 0 || itable >= e.blocks {
		return nil, fmt.Errorf("group %d inode table at block %d out of range", g, itable)
	}
	raw, err := e.rd.bytes(int64(itable)*e.bs+idx*e.inodeSize, int(e.inodeSize))
	if err != nil {
		return nil, err
	}
	n := &e4Node{ino: ino, raw: raw, iblock: raw[0x28 : 0x28+e4IBlockLen]}
	mode := uint32(u16(raw[0x0:]))
	if !validFileType(mode) {
		return nil, fmt.Errorf("invalid file mode %#o", mode)
	}
	n.flags = u32(raw[0x20:])
	n.fileACL = uint64(u32(raw[0x68:])) | uint64(u16(raw[0x76:]))<<32
	n.blocks = uint64(u32(raw[0x1C:])) | uint64(u16(raw[0x74:]))<<32
	size := uint64(u32(raw[0x4:])) | uint64(u32(raw[0x6C:]))<<32
	if size > maxFileSize {
		return nil, fmt.Errorf("file size %d too large", size)
	}
	mtime := time.Unix(int64(int32(u32(raw[0x10:]))), 0)
	if e.extraSize(raw) >= 0x8C-0x80 {
		extra := u32(raw[0x88:])
		mtime = time.Unix(int64(int32(u32(raw[0x10:])))+int64(extra&3)<<32, int64((extra>>2)%1e9))
	}
	n.st = Stat{
		Mode:  mode,
		Uid:   uint32(u16(raw[0x2:])) | uint32(u16(raw[0x78:]))<<16,
		Gid:   uint32(u16(raw[0x18:])) | uint32(u16(raw[0x7A:]))<<16,
		Nlink: uint32(u16(raw[0x1A:])),
		Size:  int64(size),
		Mtime: mtime.UTC(),
		Ino:   uint64(ino),
	}
	switch mode & sIFMT {
	case sIFCHR, sIFBLK:
		if d := u32(n.iblock[0:]); d != 0 {
			n.st.Rdev = mkdev((d>>8)&0xff, d&0xff)
		} else {
			n.st.Rdev = decodeLinuxDev(u32(n.iblock[4:]))
		}
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

// extraSize returns i_extra_isize, or -1 when the inode has no valid
// extra area.
func (e *ext4) extraSize(raw []byte) int64 {
	if e.inodeSize <= e4GoodOldInodes {
		return -1
	}
	x := int64(u16(raw[0x80:]))
	if x%4 != 0 || e4GoodOldInodes+x > e.inodeSize {
		return -1
	}
	return x
}

// mapBlock maps logical block lblk of n to a physical block; it returns
// the physical block (0 for a hole or unwritten extent) and how many
// following logical blocks map contiguously (at least 1).
func (e *ext4) mapBlock(n *e4Node, lblk uint64) (uint64, uint64, error) {
	if n.flags&e4FlagExtents != 0 {
		return e.mapExtent(n, lblk)
	}
	return e.mapIndirect(n, lblk)
}

func (e *ext4) mapExtent(n *e4Node, lblk uint64) (uint64, uint64, error) {
	if lblk >= 1<<32 {
		return 0, 1 << 62, nil
	}
	nodeBuf := n.iblock
	depth := -1
	// bound is where the subtree being searched ends: a hole found in
	// a leaf may extend no further than the next index entry above it.
	bound := uint64(1) << 32
	for level := 0; ; level++ {
		if len(nodeBuf) < 12 || u16(nodeBuf[0:]) != e4ExtentMagic {
			return 0, 0, errors.New("bad extent header")
		}
		entries, maxEnt, d := int(u16(nodeBuf[2:])), int(u16(nodeBuf[4:])), int(u16(nodeBuf[6:]))
		if entries > maxEnt || 12+12*maxEnt > len(nodeBuf) {
			return 0, 0, errors.New("extent node entry count out of range")
		}
		if d > e4MaxDepth || (depth >= 0 && d != depth-1) || level > e4MaxDepth {
			return 0, 0, fmt.Errorf("bad extent tree depth %d", d)
		}
		depth = d
		// Find the last entry starting at or before lblk.
		lo, hi := 0, entries
		for lo < hi {
			mid := (lo + hi) / 2
			if uint64(u32(nodeBuf[12+12*mid:])) <= lblk {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		i := lo - 1
		nextStart := bound
		if lo < entries {
			nextStart = min(bound, uint64(u32(nodeBuf[12+12*lo:])))
		}
		if nextStart <= lblk {
			return 0, 0, errors.New("extent tree entries out of order")
		}
		bound = nextStart
		if i < 0 {
			return 0, nextStart - lblk, nil
		}
		ent := nodeBuf[12+12*i:]
		if d == 0 {
			start := uint64(u32(ent[0:]))
			l := uint64(u16(ent[4:]))
			unwritten := false
			if l > 32768 {
				l -= 32768
				unwritten = true
			}
			if lblk >= start+l {
				return 0, nextStart - lblk, nil
			}
			run := start + l - lblk
			if unwritten {
				return 0, run, nil
			}
			pblk := uint64(u32(ent[8:])) | uint64(u16(ent[6:]))<<32
			p := pblk + (lblk - start)
			if p == 0 || p >= e.blocks || run > e.blocks-p {
				return 0, 0, fmt.Errorf("extent maps to blocks %d+%d beyond %d", p, run, e.blocks)
			}
			return p, run, nil
		}
		child := uint64(u32(ent[4:])) | uint64(u16(ent[8:]))<<32
		b, err := e.block(child)
		if err != nil {
			return 0, 0, fmt.Errorf("extent tree node: %w", err)
		}
		nodeBuf = b
	}
}

func (e *ext4) mapIndirect(n *e4Node, lblk uint64) (uint64, uint64, error) {
	per := uint64(e.bs / 4)
	ptr := func(b []byte, i uint64) uint64 { return uint64(u32(b[4*i:])) }
	if lblk < e4NDirBlocks {
		return e.checkPhys(ptr(n.iblock, lblk))
	}
	lblk -= e4NDirBlocks
	// Indirection levels 1..3 hang off i_block[12..14].
	span := per
	for level := 1; level <= 3; level++ {
		if lblk < span {
			p := ptr(n.iblock, uint64(e4NDirBlocks+level-1))
			for l := level; l > 0; l-- {
				if p == 0 {
					return 0, 1, nil
				}
				b, err := e.block(p)
				if err != nil {
					return 0, 0, fmt.Errorf("indirect block: %w", err)
				}
				span /= per
				p = ptr(b, (lblk/span)%per)
			}
			return e.checkPhys(p)
		}
		lblk -= span
		span *= per
	}
	return 0, 1 << 62, nil
}

func (e *ext4) checkPhys(p uint64) (uint64, uint64, error) {
	if p >= e.blocks {
		return 0, 0, fmt.Errorf("block %d out of range", p)
	}
	return p, 1, nil
}

func (e *ext4) checkInode(n *e4Node) error {
	if n.flags&e4FlagEncrypt != 0 {
		return unsupportedExt4("encryption")
	}
	return nil
}

// data returns a reader for n's contents.
func (e *ext4) data(n *e4Node) (io.ReaderAt, error) {
	if err := e.checkInode(n); err != nil {
		return nil, err
	}
	if n.flags&e4FlagInlineData != 0 {
		b, err := e.inlineData(n)
		if err != nil {
			return nil, err
		}
		return bytes.NewReader(b), nil
	}
	if n.st.Mode&sIFMT == sIFLNK && e.fastSymlink(n) {
		return bytes.NewReader(n.iblock[:n.st.Size]), nil
	}
	bs := e.bs
	return &extentReader{rd: e.rd, size: n.st.Size, what: fmt.Sprintf("ext4 inode %d", n.ino),
		mapAt: func(off int64) (int64, int64, error) {
			lblk := uint64(off / bs)
			p, run, err := e.mapBlock(n, lblk)
			if err != nil {
				return 0, 0, err
			}
			in := off % bs
			run = min(run, uint64(maxFileSize/bs))
			if p == 0 {
				return -1, int64(run)*bs - in, nil
			}
			return int64(p)*bs + in, int64(run)*bs - in, nil
		}}, nil
}

// fastSymlink reports whether a symlink's target is stored in i_block.
func (e *ext4) fastSymlink(n *e4Node) bool {
	if n.flags&(e4FlagExtents|e4FlagInlineData) != 0 || n.st.Size >= e4IBlockLen {
		return false
	}
	blocks := n.blocks
	if n.fileACL != 0 {
		ea := uint64(e.bs / 512)
		if blocks >= ea {
			blocks -= ea
		}
	}
	return blocks == 0
}

// inlineData returns the contents of an inline-data inode: i_block
// followed by the value of the in-inode "system.data" xattr.
func (e *ext4) inlineData(n *e4Node) ([]byte, error) {
	size := n.st.Size
	out := make([]byte, 0, min(size, e.inodeSize+e4IBlockLen))
	out = append(out, n.iblock[:min(size, e4IBlockLen)]...)
	if size > e4IBlockLen {
		xs, err := e.inodeXattrs(n, true)
		if err != nil {
			return nil, err
		}
		var more []byte
		found := false
		for _, x := range xs {
			if x.name == "system.data" {
				more, found = x.value, true
			}
		}
		if !found || int64(len(more)) < size-e4IBlockLen {
			return nil, errors.New("inline data shorter than the file")
		}
		out = append(out, more[:size-e4IBlockLen]...)
	}
	return out, nil
}

func (e *ext4) open(nn node) (io.ReaderAt, error) {
	return e.data(nn.(*e4Node))
}

func (e *ext4) readLink(nn node) (string, error) {
	n := nn.(*e4Node)
	r, err := e.data(n)
	if err != nil {
		return "", fmt.Errorf("read ext4 symlink (inode %d): %w", n.ino, err)
	}
	b := make([]byte, n.st.Size)
	if _, err := r.ReadAt(b, 0); err != nil {
		return "", fmt.Errorf("read ext4 symlink (inode %d): %w", n.ino, err)
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return "", fmt.Errorf("ext4 symlink (inode %d) target contains NUL", n.ino)
	}
	return string(b), nil
}

// parseDirBlock calls fn for each entry of a linear directory block.
func (e *ext4) parseDirBlock(b []byte, count *int, fn func(name string, ino uint32) (bool, error)) (bool, error) {
	off := 0
	for off+8 <= len(b) {
		ino := u32(b[off:])
		rec := int(u16(b[off+4:]))
		if e.bs == 65536 && (rec == 0 || rec == 65535) {
			rec = 65536
		}
		nlen := int(b[off+6])
		if !e.filetype {
			nlen = int(u16(b[off+6:]))
		}
		if rec < 8 || rec%4 != 0 || off+rec > len(b) || 8+nlen > rec {
			return false, fmt.Errorf("bad directory entry at offset %d (rec_len %d, name_len %d)", off, rec, nlen)
		}
		if ino != 0 && nlen > 0 {
			name := string(b[off+8 : off+8+nlen])
			if name != "." && name != ".." {
				if err := checkName(name); err != nil {
					return false, err
				}
				if *count++; *count > maxDirEntries {
					return false, errors.New("too many directory entries")
				}
				if err := e.rd.w.entry(); err != nil {
					return false, err
				}
				stop, err := fn(name, ino)
				if err != nil || stop {
					return stop, err
				}
			}
		}
		off += rec
	}
	return false, nil
}

func (e *ext4) eachEntry(d *e4Node, fn func(name string, ino uint32) (bool, error)) error {
	if err := e.checkInode(d); err != nil {
		return err
	}
	count := 0
	if d.flags&e4FlagInlineData != 0 {
		// i_block holds the parent's inode number, then entries; the
		// system.data xattr continues them.
		data, err := e.inlineData(d)
		if err != nil {
			return err
		}
		if len(data) < 4 {
			return errors.New("inline directory too short")
		}
		first := data[4:min(len(data), e4IBlockLen)]
		if stop, err := e.parseDirBlock(first, &count, fn); err != nil || stop {
			return err
		}
		if len(data) > e4IBlockLen {
			_, err := e.parseDirBlock(data[e4IBlockLen:], &count, fn)
			return err
		}
		return nil
	}
	// Linear scan; in htree directories the index blocks look like
	// blocks holding one deleted entry, and the root's index hides in
	// the ".." entry's record, so this sees every leaf entry.
	nblocks := (d.st.Size + e.bs - 1) / e.bs
	for lb := int64(0); lb < nblocks; {
		p, run, err := e.mapBlock(d, uint64(lb))
		if err != nil {
			return err
		}
		if p == 0 {
			lb += int64(min(run, uint64(nblocks-lb)))
			continue
		}
		b, err := e.block(p)
		if err != nil {
			return err
		}
		if stop, err := e.parseDirBlock(b, &count, fn); err != nil || stop {
			return err
		}
		lb++
	}
	return nil
}

func (e *ext4) readDir(dn node) ([]dirent, error) {
	d := dn.(*e4Node)
	out, err := collectDir(func(fn func(string, uint32) (bool, error)) error { return e.eachEntry(d, fn) },
		func(ino uint32) (node, error) { return e.inode(ino) })
	if err != nil {
		return nil, fmt.Errorf("read ext4 directory (inode %d): %w", d.ino, err)
	}
	return out, nil
}

func (e *ext4) lookup(dn node, name string) (node, error) {
	d := dn.(*e4Node)
	ino, ok, err := e.dirs.lookup(uint64(d.ino), name, func(fn func(string, uint64) (bool, error)) error {
		return e.eachEntry(d, func(n string, ino uint32) (bool, error) { return fn(n, uint64(ino)) })
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("read ext4 directory (inode %d): %w", d.ino, err)
	}
	if !ok {
		return nil, fmt.Errorf("%q: %w", name, fs.ErrNotExist)
	}
	return e.inode(uint32(ino))
}

func ext4XattrPrefix(idx byte) string {
	switch idx {
	case 1:
		return "user."
	case 2:
		return "system.posix_acl_access"
	case 3:
		return "system.posix_acl_default"
	case 4:
		return "trusted."
	case 6:
		return "security."
	case 7:
		return "system."
	case 8:
		return "system.richacl"
	}
	return ""
}

// parseExt4Xattrs decodes the entry list at ents; values are located
// relative to valBase.
func parseExt4Xattrs(ents, valBase []byte, out []xattr) ([]xattr, error) {
	p := 0
	for p+4 <= len(ents) && u32(ents[p:]) != 0 {
		if p+16 > len(ents) {
			return nil, errors.New("truncated xattr entry")
		}
		nlen, idx := int(ents[p]), ents[p+1]
		voff, vinum, vsize := int(u16(ents[p+2:])), u32(ents[p+4:]), u32(ents[p+8:])
		if p+16+nlen > len(ents) {
			return nil, errors.New("xattr name overruns its area")
		}
		name := string(ents[p+16 : p+16+nlen])
		p += (16 + nlen + 3) &^ 3
		if vinum != 0 {
			return nil, unsupportedExt4("ea_inode (xattr value in an inode)")
		}
		if vsize > maxXattrValue || voff+int(vsize) > len(valBase) {
			return nil, fmt.Errorf("xattr value [%d,+%d) out of range", voff, vsize)
		}
		prefix := ext4XattrPrefix(idx)
		if prefix == "" {
			return nil, fmt.Errorf("unknown xattr name index %d", idx)
		}
		if strings.IndexByte(name, 0) >= 0 {
			return nil, errors.New("xattr name contains NUL")
		}
		val := append([]byte(nil), valBase[voff:voff+int(vsize)]...)
		if idx == 2 || idx == 3 {
			var err error
			if val, err = ext4ACLToXattr(val); err != nil {
				return nil, fmt.Errorf("%s%s: %w", prefix, name, err)
			}
		}
		if len(out) >= maxXattrCount {
			return nil, errors.New("too many xattrs")
		}
		out = append(out, xattr{name: prefix + name, value: val})
	}
	return out, nil
}

// ext4ACLToXattr converts ext4's compact on-disk POSIX ACL to the
// posix_acl_xattr form that getxattr(2) returns.
func ext4ACLToXattr(b []byte) ([]byte, error) {
	const (
		aclUser  = 0x02
		aclGroup = 0x08
	)
	if len(b) < 4 || u32(b) != 1 {
		return nil, errors.New("bad ACL header")
	}
	out := []byte{2, 0, 0, 0}
	for p := 4; p < len(b); {
		if p+4 > len(b) {
			return nil, errors.New("truncated ACL entry")
		}
		tag, perm := u16(b[p:]), u16(b[p+2:])
		id := uint32(0xFFFFFFFF)
		p += 4
		if tag == aclUser || tag == aclGroup {
			if p+4 > len(b) {
				return nil, errors.New("truncated ACL entry")
			}
			id = u32(b[p:])
			p += 4
		}
		out = append(out, byte(tag), byte(tag>>8), byte(perm), byte(perm>>8),
			byte(id), byte(id>>8), byte(id>>16), byte(id>>24))
	}
	return out, nil
}

// inodeXattrs returns the in-inode xattrs and, unless inodeOnly, those of
// the external xattr block.
func (e *ext4) inodeXattrs(n *e4Node, inodeOnly bool) ([]xattr, error) {
	var out []xattr
	if x := e.extraSize(n.raw); x >= 0 {
		area := n.raw[e4GoodOldInodes+x:]
		if len(area) >= 4 && u32(area) == e4XattrMagic {
			var err error
			if out, err = parseExt4Xattrs(area[4:], area[4:], out); err != nil {
				return nil, fmt.Errorf("in-inode xattrs: %w", err)
			}
		}
	}
	if inodeOnly || n.fileACL == 0 {
		return out, nil
	}
	b, err := e.block(n.fileACL)
	if err != nil {
		return nil, fmt.Errorf("xattr block: %w", err)
	}
	if u32(b) != e4XattrMagic || u32(b[8:]) != 1 {
		return nil, errors.New("bad xattr block header")
	}
	if out, err = parseExt4Xattrs(b[32:], b, out); err != nil {
		return nil, fmt.Errorf("xattr block %d: %w", n.fileACL, err)
	}
	return out, nil
}

func (e *ext4) xattrs(nn node) ([]xattr, error) {
	n := nn.(*e4Node)
	xs, err := e.inodeXattrs(n, false)
	if err != nil {
		return nil, fmt.Errorf("read ext4 xattrs of inode %d: %w", n.ino, err)
	}
	// system.data holds inline file data, not an attribute anyone set.
	out := xs[:0]
	for _, x := range xs {
		if x.name != "system.data" {
			out = append(out, x)
		}
	}
	return out, nil
}
