package fsread

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// EROFS compressed-file ("z_erofs") constants.
const (
	zAdviseCompacted2B  = 0x0001 // compact layout: 2-byte packs are used
	zAdviseExtents      = 0x0001 // full layout: extent records (erofs-utils 1.9+)
	zAdviseBigPcluster1 = 0x0002
	zAdviseBigPcluster2 = 0x0004
	zAdviseInline       = 0x0008 // ztailpacking
	zAdviseInterlaced   = 0x0010
	zAdviseFragment     = 0x0020

	zTypePlain   = 0
	zTypeHead1   = 1
	zTypeNonhead = 2
	zTypeHead2   = 3

	zD0CblkCnt    = 1 << 11
	zPartialRef   = 1 << 15
	zMaxPcluster  = 1 << 20  // Z_EROFS_PCLUSTER_MAX_SIZE
	zMaxExtent    = 12 << 20 // Z_EROFS_PCLUSTER_MAX_DSIZE
	zMaxLookSteps = 4096     // lookback/lookahead hops; valid images need very few

	zAlgLZ4         = 0
	zAlgShifted     = -1 // stored uncompressed
	zAlgInterlaced  = -2 // stored uncompressed, rotated within its block
	zLegacyIdxBytes = 8
)

func erofsAlgName(a int) string {
	switch a {
	case 0:
		return "lz4"
	case 1:
		return "lzma"
	case 2:
		return "deflate"
	case 3:
		return "zstd"
	}
	return fmt.Sprintf("algorithm %d", a)
}

// zFile reads one compressed file. Its logical clusters (lclusters) are
// described by an index array after the inode; HEAD lclusters start the
// extents, each of which decompresses from one physical cluster
// (pcluster). Mapping follows the kernel's z_erofs_map_blocks_fo.
type zFile struct {
	e        *erofs
	n        *erNode
	advise   uint16
	lbits    uint
	algs     [2]int
	idata    int64 // ztailpacking: size of the inline tail pcluster
	idataOff int64
	tailHead int64 // lcn of the tail extent's HEAD, -1 if none
	totalidx int64
	ebase    int64 // start of compact indexes

	mu   sync.Mutex
	last *zExtent
	data []byte // decompressed data of last
}

type zRec struct {
	lcn         int64
	typ         int
	clusterofs  int64
	delta       [2]int64
	pblk        int64
	cblks       int64
	nextpackoff int64
	partial     bool
}

type zExtent struct {
	la, llen int64
	pa, plen int64
	alg      int
	partial  bool
	inline   bool
}

func (e *erofs) zReader(n *erNode) (io.ReaderAt, error) {
	z, err := e.newZFile(n)
	if err != nil {
		return nil, fmt.Errorf("erofs inode %d: %w", n.nid, err)
	}
	return z, nil
}

func (e *erofs) newZFile(n *erNode) (*zFile, error) {
	z := &zFile{e: e, n: n, tailHead: -1}
	if n.st.Size == 0 {
		return z, nil
	}
	pos := (n.tailPos() + 7) &^ 7
	h, err := e.rd.bytes(pos, 8)
	if err != nil {
		return nil, fmt.Errorf("compression map header: %w", err)
	}
	if h[7]&0x80 != 0 {
		return nil, unsupportedErofs("fragments (file in packed inode)")
	}
	z.advise = u16(h[4:])
	if n.layout == erofsLayoutCompFull && z.advise&zAdviseExtents != 0 {
		return nil, unsupportedErofs("extent-based compression indexes")
	}
	if z.advise&zAdviseFragment != 0 {
		return nil, unsupportedErofs("fragments")
	}
	z.algs = [2]int{int(h[6] & 15), int(h[6] >> 4)}
	z.lbits = e.blkbits + uint(h[7]&15)
	if z.lbits > 20 || (n.layout == erofsLayoutCompCompact && z.lbits > 14) {
		return nil, fmt.Errorf("logical cluster size 2^%d not supported", z.lbits)
	}
	if n.layout == erofsLayoutCompCompact &&
		(z.advise&zAdviseBigPcluster1 == 0) != (z.advise&zAdviseBigPcluster2 == 0) {
		return nil, errors.New("big pcluster head1/2 of compact indexes are inconsistent")
	}
	z.totalidx = (n.st.Size + e.blksz - 1) >> e.blkbits
	z.ebase = pos + 8
	if z.advise&zAdviseInline != 0 {
		z.idata = int64(u16(h[2:]))
	}
	if z.idata > 0 {
		if err := z.findTail(); err != nil {
			return nil, fmt.Errorf("find tail extent: %w", err)
		}
	}
	return z, nil
}

// load decodes the index of lcluster lcn.
func (z *zFile) load(lcn int64, lookahead bool) (zRec, error) {
	if lcn < 0 || lcn > (z.n.st.Size>>z.lbits)+1 {
		return zRec{}, fmt.Errorf("lcluster %d out of range", lcn)
	}
	var r zRec
	var err error
	if z.n.layout == erofsLayoutCompCompact {
		r, err = z.loadCompact(lcn, lookahead)
	} else {
		r, err = z.loadFull(lcn)
	}
	if err != nil {
		return r, fmt.Errorf("lcluster %d: %w", lcn, err)
	}
	if r.typ != zTypeNonhead && r.clusterofs >= 1<<z.lbits {
		return r, fmt.Errorf("lcluster %d: cluster offset %d out of range", lcn, r.clusterofs)
	}
	return r, nil
}

func (z *zFile) loadFull(lcn int64) (zRec, error) {
	pos := z.ebase + zLegacyIdxBytes + lcn*8
	b, err := z.e.rd.bytes(pos, 8)
	if err != nil {
		return zRec{}, err
	}
	r := zRec{lcn: lcn, nextpackoff: pos + 8}
	advise := u16(b[0:])
	r.typ = int(advise & 3)
	if r.typ == zTypeNonhead {
		r.clusterofs = 1 << z.lbits
		r.delta[0] = int64(u16(b[4:]))
		if r.delta[0]&zD0CblkCnt != 0 {
			if z.advise&(zAdviseBigPcluster1|zAdviseBigPcluster2) == 0 {
				return r, errors.New("compressed block count without big pclusters")
			}
			r.cblks = r.delta[0] &^ zD0CblkCnt
			r.delta[0] = 1
		}
		r.delta[1] = int64(u16(b[6:]))
	} else {
		r.partial = advise&zPartialRef != 0
		r.clusterofs = int64(u16(b[2:]))
		r.pblk = int64(u32(b[4:]))
	}
	return r, nil
}

func decodeCompactedBits(lobits uint, in []byte, pos uint) (lo uint32, typ int) {
	v := u32(in[pos/8:]) >> (pos & 7)
	return v & (1<<lobits - 1), int((v >> lobits) & 3)
}

func (z *zFile) loadCompact(lcn int64, lookahead bool) (zRec, error) {
	if lcn >= z.totalidx {
		return zRec{}, errors.New("beyond the index array")
	}
	r := zRec{lcn: lcn}
	ebase := z.ebase
	initial4b := ((32 - ebase%32) / 4) & 7
	var compacted2b int64
	if z.advise&zAdviseCompacted2B != 0 && initial4b < z.totalidx {
		compacted2b = (z.totalidx - initial4b) / 16 * 16
	}
	pos := ebase
	shift := uint(2)
	if lcn >= initial4b {
		pos += initial4b * 4
		lcn -= initial4b
		if lcn < compacted2b {
			shift = 1
		} else {
			pos += compacted2b * 2
			lcn -= compacted2b
		}
	}
	pos += lcn << shift
	var vcnt int64
	switch {
	case shift == 2 && z.lbits <= 14:
		vcnt = 2
	case shift == 1 && z.lbits <= 12:
		vcnt = 16
	default:
		return r, unsupportedErofs("compact index layout for this cluster size")
	}
	packSize := vcnt << shift
	base := pos / packSize * packSize
	in, err := z.e.rd.bytes(base, int(packSize))
	if err != nil {
		return r, err
	}
	r.nextpackoff = base + packSize
	lobits := max(z.lbits, 12)
	encodebits := uint((packSize - 4) * 8 / vcnt)
	i := int((pos - base) >> shift)
	big := z.advise&zAdviseBigPcluster1 != 0

	lo, typ := decodeCompactedBits(lobits, in, encodebits*uint(i))
	r.typ = typ
	if typ == zTypeNonhead {
		r.clusterofs = 1 << z.lbits
		if lookahead {
			r.delta[1] = compactedLookahead(lobits, encodebits, int(vcnt), in, i)
		}
		if lo&zD0CblkCnt != 0 {
			if !big {
				return r, errors.New("compressed block count without big pclusters")
			}
			r.cblks = int64(lo &^ zD0CblkCnt)
			r.delta[0] = 1
			return r, nil
		}
		if i+1 != int(vcnt) {
			r.delta[0] = int64(lo)
			return r, nil
		}
		// The last lcluster of a pack stores delta[1], so delta[0]
		// comes from the previous one.
		lo, typ = decodeCompactedBits(lobits, in, encodebits*uint(i-1))
		if typ != zTypeNonhead {
			lo = 0
		} else if lo&zD0CblkCnt != 0 {
			lo = 1
		}
		r.delta[0] = int64(lo) + 1
		return r, nil
	}
	r.clusterofs = int64(lo)
	// A pack stores one block address; count the pclusters before
	// lcluster i within the pack to find this one's.
	var nblk int64
	if !big {
		nblk = 1
		for i > 0 {
			i--
			lo, typ = decodeCompactedBits(lobits, in, encodebits*uint(i))
			if typ == zTypeNonhead {
				i -= int(lo)
			}
			if i >= 0 {
				nblk++
			}
		}
	} else {
		for i > 0 {
			i--
			lo, typ = decodeCompactedBits(lobits, in, encodebits*uint(i))
			if typ == zTypeNonhead {
				if lo&zD0CblkCnt != 0 {
					i--
					nblk += int64(lo &^ zD0CblkCnt)
					continue
				}
				if lo <= 1 {
					return r, errors.New("bad big pcluster delta")
				}
				i -= int(lo) - 2
				continue
			}
			nblk++
		}
	}
	r.pblk = int64(u32(in[packSize-4:])) + nblk
	return r, nil
}

func compactedLookahead(lobits, encodebits uint, vcnt int, in []byte, i int) int64 {
	var d1 int64
	var lo uint32
	for ; i < vcnt; i++ {
		var typ int
		lo, typ = decodeCompactedBits(lobits, in, encodebits*uint(i))
		if typ != zTypeNonhead {
			return d1
		}
		d1++
	}
	if lo&zD0CblkCnt == 0 {
		d1 += int64(lo) - 1
	}
	return d1
}

// lookback walks from a NONHEAD lcluster back to its HEAD.
func (z *zFile) lookback(m zRec, dist int64) (zRec, error) {
	for range zMaxLookSteps {
		if dist <= 0 || m.lcn < dist {
			return m, fmt.Errorf("bogus lookback distance %d at lcluster %d", dist, m.lcn)
		}
		next, err := z.load(m.lcn-dist, false)
		if err != nil {
			return m, err
		}
		m = next
		if m.typ != zTypeNonhead {
			return m, nil
		}
		dist = m.delta[0]
	}
	return m, errors.New("lookback does not terminate")
}

// findTail locates the tail extent that ztailpacking stores inline.
func (z *zFile) findTail() error {
	ofs := z.n.st.Size - 1
	m, err := z.load(ofs>>z.lbits, false)
	if err != nil {
		return err
	}
	z.idataOff = m.nextpackoff
	endoff := ofs & (1<<z.lbits - 1)
	switch {
	case m.typ == zTypeNonhead:
		m, err = z.lookback(m, m.delta[0])
	case endoff < m.clusterofs:
		m, err = z.lookback(m, 1)
	}
	if err != nil {
		return err
	}
	z.tailHead = m.lcn
	if z.idataOff%z.e.blksz+z.idata > z.e.blksz {
		return errors.New("inline tail pcluster crosses a block boundary")
	}
	return nil
}

// mapExtent returns the extent containing logical offset la.
func (z *zFile) mapExtent(la int64) (zExtent, error) {
	lsize := int64(1) << z.lbits
	m, err := z.load(la>>z.lbits, false)
	if err != nil {
		return zExtent{}, err
	}
	var ext zExtent
	end := (m.lcn + 1) << z.lbits
	full := false
	endoff := la & (lsize - 1)
	if m.typ != zTypeNonhead && endoff >= m.clusterofs {
		ext.la = m.lcn<<z.lbits | m.clusterofs
	} else {
		dist := m.delta[0]
		if m.typ != zTypeNonhead {
			if m.lcn == 0 {
				return ext, errors.New("invalid logical cluster 0")
			}
			end = m.lcn<<z.lbits | m.clusterofs
			full = true
			dist = 1
		}
		if m, err = z.lookback(m, dist); err != nil {
			return ext, err
		}
		ext.la = m.lcn<<z.lbits | m.clusterofs
	}
	head := m
	ext.partial = head.partial
	if !full {
		if end, err = z.extentEnd(head.lcn); err != nil {
			return ext, err
		}
	}
	end = min(end, z.n.st.Size)
	ext.llen = end - ext.la
	if ext.llen <= 0 || la < ext.la || la >= end {
		return ext, fmt.Errorf("extent [%d,%d) does not cover offset %d", ext.la, end, la)
	}

	if z.idata > 0 && head.lcn == z.tailHead {
		ext.inline = true
		ext.pa, ext.plen = z.idataOff, z.idata
	} else {
		ext.pa = head.pblk << z.e.blkbits
		cblks, err := z.compressedBlocks(head)
		if err != nil {
			return ext, err
		}
		ext.plen = cblks << z.e.blkbits
	}
	switch head.typ {
	case zTypePlain:
		if z.advise&zAdviseInterlaced != 0 {
			ext.alg = zAlgInterlaced
		} else {
			ext.alg = zAlgShifted
		}
	case zTypeHead1:
		ext.alg = z.algs[0]
	case zTypeHead2:
		ext.alg = z.algs[1]
	}
	if ext.plen <= 0 || ext.plen > zMaxPcluster || ext.llen > zMaxExtent {
		return ext, fmt.Errorf("extent sizes %d/%d out of range", ext.plen, ext.llen)
	}
	return ext, nil
}

// extentEnd finds where the extent whose HEAD is headLcn ends: at the
// next HEAD lcluster's cluster offset, or at the end of the file.
func (z *zFile) extentEnd(headLcn int64) (int64, error) {
	lcn := headLcn + 1
	for range zMaxLookSteps {
		if lcn<<z.lbits >= z.n.st.Size {
			return z.n.st.Size, nil
		}
		m, err := z.load(lcn, true)
		if err != nil {
			return 0, err
		}
		if m.typ != zTypeNonhead {
			return lcn<<z.lbits | m.clusterofs, nil
		}
		lcn += max(m.delta[1], 1)
	}
	return 0, errors.New("lookahead does not terminate")
}

// compressedBlocks returns the pcluster size, in blocks, of an extent.
func (z *zFile) compressedBlocks(head zRec) (int64, error) {
	big1 := z.advise&zAdviseBigPcluster1 != 0
	big2 := z.advise&zAdviseBigPcluster2 != 0
	lcn := head.lcn + 1
	if (head.typ == zTypeHead1 && !big1) || ((head.typ == zTypePlain || head.typ == zTypeHead2) && !big2) ||
		lcn<<z.lbits >= z.n.st.Size {
		return 1, nil
	}
	m, err := z.load(lcn, false)
	if err != nil {
		return 0, err
	}
	if m.typ != zTypeNonhead {
		return 1, nil
	}
	if m.delta[0] != 1 || m.cblks == 0 {
		return 0, fmt.Errorf("bogus compressed block count at lcluster %d", lcn)
	}
	return m.cblks, nil
}

// decompress returns the extent's data.
func (z *zFile) decompress(ext zExtent) ([]byte, error) {
	switch ext.alg {
	case zAlgShifted, zAlgInterlaced, zAlgLZ4:
	default:
		return nil, unsupportedErofs(erofsAlgName(ext.alg) + " compression")
	}
	raw, err := z.e.rd.bytes(ext.pa, int(ext.plen))
	if err != nil {
		return nil, fmt.Errorf("read pcluster: %w", err)
	}
	out := make([]byte, ext.llen)
	switch ext.alg {
	case zAlgShifted:
		if ext.llen > ext.plen {
			return nil, errors.New("uncompressed extent larger than its pcluster")
		}
		copy(out, raw)
	case zAlgInterlaced:
		if ext.llen > ext.plen || ext.plen > z.e.blksz {
			return nil, errors.New("bad interlaced extent")
		}
		skip := ext.la & (z.e.blksz - 1)
		right := min(z.e.blksz-skip, ext.llen)
		copy(out, raw[skip:skip+right])
		copy(out[right:], raw[:ext.llen-right])
	case zAlgLZ4:
		// With 0PADDING the stream is aligned to the pcluster's end
		// behind zero bytes, which no LZ4 stream starts with.
		margin := 0
		for margin < len(raw) && raw[margin] == 0 {
			margin++
		}
		if margin >= len(raw) {
			return nil, errors.New("empty lz4 pcluster")
		}
		n, err := lz4DecodePartial(out, raw[margin:])
		if err != nil {
			return nil, err
		}
		if n != len(out) {
			return nil, fmt.Errorf("lz4 pcluster decoded to %d bytes, want %d", n, len(out))
		}
	}
	return out, nil
}

// ReadAt implements io.ReaderAt.
func (z *zFile) ReadAt(p []byte, off int64) (int, error) {
	size := z.n.st.Size
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= size {
		return 0, io.EOF
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	done := 0
	for done < len(p) && off < size {
		if z.last == nil || off < z.last.la || off >= z.last.la+z.last.llen {
			ext, err := z.mapExtent(off)
			if err != nil {
				return done, fmt.Errorf("read erofs inode %d at %d: %w", z.n.nid, off, err)
			}
			data, err := z.decompress(ext)
			if err != nil {
				return done, fmt.Errorf("read erofs inode %d extent at %d: %w", z.n.nid, ext.la, err)
			}
			z.last, z.data = &ext, data
		}
		m := copy(p[done:], z.data[off-z.last.la:])
		done += m
		off += int64(m)
	}
	if done < len(p) {
		return done, io.EOF
	}
	return done, nil
}
