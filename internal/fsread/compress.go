package fsread

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz/lzma"
)

// decompressor inflates one self-contained compressed block into dst,
// returning how many bytes it wrote. Output beyond len(dst) is an error:
// the on-disk formats say how large every block may be, and trusting the
// stream instead would let a hostile image allocate without bound.
type decompressor interface {
	decompress(dst, src []byte) (int, error)
}

var errTooBig = errors.New("decompressed data larger than the format allows")

// readLimited reads r into dst and fails if r has more data.
func readLimited(dst []byte, r io.Reader) (int, error) {
	n, err := io.ReadFull(r, dst)
	switch err {
	case nil:
		// dst is full: the stream must end here (and reading on lets
		// zlib verify its checksum).
		var one [1]byte
		m, err := r.Read(one[:])
		if m > 0 {
			return n, errTooBig
		}
		if err != nil && err != io.EOF {
			return n, err
		}
		return n, nil
	case io.ErrUnexpectedEOF, io.EOF:
		return n, nil
	default:
		return n, err
	}
}

// zlibDecompressor handles squashfs "gzip", which is a zlib stream.
type zlibDecompressor struct {
	pool sync.Pool // of io.ReadCloser implementing zlib.Resetter
}

func (z *zlibDecompressor) decompress(dst, src []byte) (int, error) {
	br := bytes.NewReader(src)
	var zr io.ReadCloser
	if v := z.pool.Get(); v != nil {
		zr = v.(io.ReadCloser)
		if err := zr.(zlib.Resetter).Reset(br, nil); err != nil {
			return 0, fmt.Errorf("zlib: %w", err)
		}
	} else {
		var err error
		if zr, err = zlib.NewReader(br); err != nil {
			return 0, fmt.Errorf("zlib: %w", err)
		}
	}
	n, err := readLimited(dst, zr)
	z.pool.Put(zr)
	if err != nil {
		return n, fmt.Errorf("zlib: %w", err)
	}
	return n, nil
}

// zstdDecompressor uses one decoder per image; DecodeAll is safe for
// concurrent use and starts no goroutines.
type zstdDecompressor struct {
	d *zstd.Decoder
}

func newZstd(maxOut int) (*zstdDecompressor, error) {
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(uint64(maxOut)),
		zstd.WithDecoderMaxWindow(max(uint64(maxOut), 1<<20)),
		zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		return nil, err
	}
	return &zstdDecompressor{d: d}, nil
}

func (z *zstdDecompressor) decompress(dst, src []byte) (int, error) {
	if len(dst) == 0 {
		return 0, fmt.Errorf("zstd: %w", errTooBig)
	}
	out, err := z.d.DecodeAll(src, dst[:0:len(dst)])
	if err != nil {
		return 0, fmt.Errorf("zstd: %w", err)
	}
	if len(out) > len(dst) {
		return 0, fmt.Errorf("zstd: %w", errTooBig)
	}
	if len(out) > 0 && &out[0] != &dst[0] {
		copy(dst, out) // DecodeAll had to reallocate
	}
	return len(out), nil
}

// lz4BlockDecompressor handles squashfs lz4, which stores raw LZ4 blocks.
type lz4BlockDecompressor struct{}

func (lz4BlockDecompressor) decompress(dst, src []byte) (int, error) {
	n, err := lz4.UncompressBlock(src, dst)
	if err != nil {
		return 0, fmt.Errorf("lz4: %w", err)
	}
	return n, nil
}

// lzmaDecompressor handles squashfs "lzma": the legacy .lzma format with
// a 13-byte header.
type lzmaDecompressor struct{}

func (lzmaDecompressor) decompress(dst, src []byte) (int, error) {
	// The header's dictionary size decides the reader's allocation;
	// a block never needs more than its own output size.
	cfg := lzma.ReaderConfig{DictCap: max(len(dst), lzma.MinDictCap)}
	r, err := cfg.NewReader(bytes.NewReader(src))
	if err != nil {
		return 0, fmt.Errorf("lzma: %w", err)
	}
	n, err := readLimited(dst, r)
	if err != nil {
		return n, fmt.Errorf("lzma: %w", err)
	}
	return n, nil
}

// xzDecompressor handles squashfs xz blocks: single-block .xz streams with
// just the LZMA2 filter, as mksquashfs writes them by default. The
// container is parsed here so that the LZMA2 dictionary is sized by the
// block's output limit, not by the header (which may claim gigabytes).
type xzDecompressor struct{}

func (xzDecompressor) decompress(dst, src []byte) (int, error) {
	payload, err := xzLZMA2Payload(src)
	if err != nil {
		return 0, fmt.Errorf("xz: %w", err)
	}
	cfg := lzma.Reader2Config{DictCap: max(len(dst), lzma.MinDictCap)}
	r, err := cfg.NewReader2(bytes.NewReader(payload))
	if err != nil {
		return 0, fmt.Errorf("xz: %w", err)
	}
	n, err := readLimited(dst, r)
	if err != nil {
		return n, fmt.Errorf("xz: %w", err)
	}
	return n, nil
}

// xzLZMA2Payload checks an .xz stream header and its first block header
// and returns the bytes from the start of the LZMA2 data.
func xzLZMA2Payload(src []byte) ([]byte, error) {
	const streamHdr = 12
	if len(src) < streamHdr+8 || string(src[:6]) != "\xfd7zXZ\x00" {
		return nil, errors.New("no xz stream header")
	}
	if crc32.ChecksumIEEE(src[6:8]) != u32(src[8:]) {
		return nil, errors.New("xz stream header CRC mismatch")
	}
	b := src[streamHdr:]
	if b[0] == 0 {
		return nil, errors.New("xz stream has no blocks")
	}
	hlen := (int(b[0]) + 1) * 4
	if hlen > len(b) {
		return nil, errors.New("xz block header truncated")
	}
	hdr := b[:hlen]
	if crc32.ChecksumIEEE(hdr[:hlen-4]) != u32(hdr[hlen-4:]) {
		return nil, errors.New("xz block header CRC mismatch")
	}
	flags := hdr[1]
	if flags&0x3c != 0 {
		return nil, fmt.Errorf("xz block flags %#x use reserved bits", flags)
	}
	p := 2
	varint := func() (uint64, error) {
		var v uint64
		for i := 0; i < 9; i++ {
			if p >= hlen-4 {
				return 0, errors.New("xz block header truncated")
			}
			c := hdr[p]
			p++
			v |= uint64(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				return v, nil
			}
		}
		return 0, errors.New("xz varint too long")
	}
	if flags&0x40 != 0 { // compressed size
		if _, err := varint(); err != nil {
			return nil, err
		}
	}
	if flags&0x80 != 0 { // uncompressed size
		if _, err := varint(); err != nil {
			return nil, err
		}
	}
	if nf := int(flags&3) + 1; nf != 1 {
		return nil, fmt.Errorf("xz block uses %d filters; only plain LZMA2 is supported (no BCJ filters)", nf)
	}
	id, err := varint()
	if err != nil {
		return nil, err
	}
	if id != 0x21 {
		return nil, fmt.Errorf("xz filter %#x is not supported (only LZMA2)", id)
	}
	psize, err := varint()
	if err != nil {
		return nil, err
	}
	if psize != 1 || p >= hlen-4 {
		return nil, errors.New("bad LZMA2 filter properties")
	}
	if hdr[p] > 40 {
		return nil, fmt.Errorf("bad LZMA2 dictionary size code %d", hdr[p])
	}
	return b[hlen:], nil
}

// lz4DecodePartial decodes a raw LZ4 block into dst and stops once dst is
// full, like LZ4_decompress_safe_partial. EROFS needs this: a pcluster's
// compressed stream may produce more than the extent that references it
// (and images without 0PADDING have trailing garbage after the stream).
// It returns the number of bytes written.
func lz4DecodePartial(dst, src []byte) (int, error) {
	var si, di int
	for si < len(src) {
		tok := src[si]
		si++
		// Literals.
		lit := int(tok >> 4)
		if lit == 15 {
			for {
				if si >= len(src) {
					return di, errors.New("lz4: truncated literal length")
				}
				c := src[si]
				si++
				lit += int(c)
				if lit > len(src) {
					return di, errors.New("lz4: literal length exceeds input")
				}
				if c != 255 {
					break
				}
			}
		}
		if lit > len(src)-si {
			return di, errors.New("lz4: literals exceed input")
		}
		if lit >= len(dst)-di {
			copy(dst[di:], src[si:si+len(dst)-di])
			return len(dst), nil
		}
		copy(dst[di:], src[si:si+lit])
		di += lit
		si += lit
		if si == len(src) {
			// The last sequence has only literals.
			return di, nil
		}
		// Match.
		if len(src)-si < 2 {
			return di, errors.New("lz4: truncated match offset")
		}
		off := int(src[si]) | int(src[si+1])<<8
		si += 2
		if off == 0 || off > di {
			return di, fmt.Errorf("lz4: match offset %d out of range at output %d", off, di)
		}
		ml := int(tok & 15)
		if ml == 15 {
			for {
				if si >= len(src) {
					return di, errors.New("lz4: truncated match length")
				}
				c := src[si]
				si++
				ml += int(c)
				if ml > 1<<30 {
					return di, errors.New("lz4: match length overflow")
				}
				if c != 255 {
					break
				}
			}
		}
		ml += 4
		if ml > len(dst)-di {
			ml = len(dst) - di
		}
		from := di - off
		if off >= ml {
			copy(dst[di:di+ml], dst[from:from+ml])
		} else {
			for i := 0; i < ml; i++ {
				dst[di+i] = dst[from+i]
			}
		}
		di += ml
		if di == len(dst) {
			return di, nil
		}
	}
	return di, nil
}
