package fsimage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// Superblock and inode field offsets (Documentation/filesystems/ext4).
const (
	sbOffset         = 1024
	sbInodesCount    = 0x00
	sbBlocksCountLo  = 0x04
	sbFirstDataBlock = 0x14
	sbLogBlockSize   = 0x18
	sbBlocksPerGroup = 0x20
	sbInodesPerGroup = 0x28
	sbMtime          = 0x2C
	sbWtime          = 0x30
	sbMagic          = 0x38
	sbLastcheck      = 0x40
	sbRevLevel       = 0x4C
	sbInodeSize      = 0x58
	sbBlockGroupNr   = 0x5A
	sbFeatureCompat  = 0x5C
	sbFeatureIncompt = 0x60
	sbFeatureROCompt = 0x64
	sbDescSize       = 0xFE
	sbMkfsTime       = 0x108
	sbBlocksCountHi  = 0x150
	sbKbytesWritten  = 0x178
	sbWtimeHi        = 0x274
	sbMtimeHi        = 0x275
	sbMkfsTimeHi     = 0x276
	sbLastcheckHi    = 0x277
	sbChecksum       = 0x3FC

	featROSparseSuper = 0x1
	featROMetaCsum    = 0x400
	featIncompat64bit = 0x80
	featIncompatMeta  = 0x10
)

// normalizeExt4 sets every timestamp in the image's superblocks and inodes
// to epoch and every owner to root.
func normalizeExt4(path string, epoch int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, sbOffset); err != nil {
		return err
	}
	le := binary.LittleEndian
	if le.Uint16(sb[sbMagic:]) != 0xEF53 {
		return errors.New("not an ext4 image")
	}
	if le.Uint32(sb[sbFeatureROCompt:])&featROMetaCsum != 0 {
		return errors.New("metadata_csum is on; refusing to patch")
	}
	if le.Uint32(sb[sbFeatureIncompt:])&featIncompatMeta != 0 {
		return errors.New("meta_bg is not supported")
	}
	bsize := int64(1024) << le.Uint32(sb[sbLogBlockSize:])
	blocks := int64(le.Uint32(sb[sbBlocksCountLo:]))
	descSize := int64(32)
	if le.Uint32(sb[sbFeatureIncompt:])&featIncompat64bit != 0 {
		blocks |= int64(le.Uint32(sb[sbBlocksCountHi:])) << 32
		if ds := int64(le.Uint16(sb[sbDescSize:])); ds >= 64 {
			descSize = ds
		}
	}
	firstData := int64(le.Uint32(sb[sbFirstDataBlock:]))
	perGroup := int64(le.Uint32(sb[sbBlocksPerGroup:]))
	inodesPerGroup := int64(le.Uint32(sb[sbInodesPerGroup:]))
	inodeSize := int64(128)
	if le.Uint32(sb[sbRevLevel:]) >= 1 {
		inodeSize = int64(le.Uint16(sb[sbInodeSize:]))
	}
	if perGroup == 0 || inodesPerGroup == 0 || inodeSize < 128 || bsize > 65536 {
		return errors.New("implausible superblock")
	}
	groups := (blocks - firstData + perGroup - 1) / perGroup
	firstIno := int64(11)
	if le.Uint32(sb[sbRevLevel:]) >= 1 {
		firstIno = int64(le.Uint32(sb[0x54:]))
	}
	sparse := le.Uint32(sb[sbFeatureROCompt:])&featROSparseSuper != 0

	lo, hi := uint32(epoch), byte(epoch>>32)
	fixSB := func(b []byte) {
		for _, o := range []int{sbMtime, sbWtime, sbLastcheck, sbMkfsTime} {
			le.PutUint32(b[o:], lo)
		}
		for _, o := range []int{sbWtimeHi, sbMtimeHi, sbMkfsTimeHi, sbLastcheckHi} {
			b[o] = hi
		}
		le.PutUint64(b[sbKbytesWritten:], 0)
	}
	// Group descriptors, read from the primary copy.
	gdtOff := (firstData + 1) * bsize
	gdt := make([]byte, groups*descSize)
	if _, err := f.ReadAt(gdt, gdtOff); err != nil {
		return fmt.Errorf("reading group descriptors: %w", err)
	}
	for g := int64(0); g < groups; g++ {
		if g == 0 || !sparse || isSparseGroup(g) {
			off := sbOffset + 0
			if g > 0 {
				off = int((firstData + g*perGroup) * bsize)
				if firstData == 0 {
					off = int(g * perGroup * bsize)
				}
			}
			b := make([]byte, 1024)
			if _, err := f.ReadAt(b, int64(off)); err != nil {
				return err
			}
			if le.Uint16(b[sbMagic:]) == 0xEF53 {
				fixSB(b)
				if _, err := f.WriteAt(b, int64(off)); err != nil {
					return err
				}
			}
		}
		d := gdt[g*descSize : (g+1)*descSize]
		table := int64(le.Uint32(d[0x08:]))
		if descSize >= 64 {
			table |= int64(le.Uint32(d[0x28:])) << 32
		}
		flags := le.Uint16(d[0x12:])
		if flags&0x1 != 0 { // INODE_UNINIT
			continue
		}
		it := make([]byte, inodesPerGroup*inodeSize)
		if _, err := f.ReadAt(it, table*bsize); err != nil {
			return fmt.Errorf("reading inode table of group %d: %w", g, err)
		}
		changed := false
		for i := int64(0); i < inodesPerGroup; i++ {
			in := it[i*inodeSize : (i+1)*inodeSize]
			// Reserved inodes (bad blocks, journal, …) carry mkfs's
			// time even when unused; other unused inodes stay zero.
			ino := g*inodesPerGroup + i + 1
			if ino >= firstIno && le.Uint16(in[0x00:]) == 0 && le.Uint16(in[0x1A:]) == 0 {
				continue
			}
			fixInode(in, lo, inodeSize)
			changed = true
		}
		if changed {
			if _, err := f.WriteAt(it, table*bsize); err != nil {
				return err
			}
		}
	}
	return f.Sync()
}

func fixInode(in []byte, t uint32, inodeSize int64) {
	le := binary.LittleEndian
	le.PutUint16(in[0x02:], 0)                  // uid
	le.PutUint16(in[0x18:], 0)                  // gid
	le.PutUint16(in[0x78:], 0)                  // uid high
	le.PutUint16(in[0x7A:], 0)                  // gid high
	for _, o := range []int{0x08, 0x0C, 0x10} { // atime, ctime, mtime
		le.PutUint32(in[o:], t)
	}
	if inodeSize > 128 {
		extra := int64(le.Uint16(in[0x80:]))
		for _, o := range []int64{0x84, 0x88, 0x8C, 0x94} { // c/m/a extra, crtime extra
			if o+4 <= 128+extra {
				le.PutUint32(in[o:], 0)
			}
		}
		if 0x94 <= 128+extra {
			le.PutUint32(in[0x90:], t) // crtime
		}
	}
}

func isSparseGroup(g int64) bool {
	if g <= 1 {
		return true
	}
	for _, base := range []int64{3, 5, 7} {
		n := base
		for n < g {
			n *= base
		}
		if n == g {
			return true
		}
	}
	return false
}
