// Package verity builds and checks dm-verity hash trees in veritysetup's
// on-disk format (superblock version 1, hash_type 1), so that images Strata
// bakes open with the kernel's dm-verity target and pass `veritysetup
// verify`. It computes; it does not activate (that is internal/dm).
package verity

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Params choose the tree's shape. The zero value means veritysetup's
// defaults (4 KiB blocks) without a salt and with an all-zero uuid.
type Params struct {
	DataBlockSize, HashBlockSize uint32 // 0 → 4096
	Salt                         []byte // nil → none; callers pass a deterministic salt for reproducibility
	UUID                         [16]byte
}

// Superblock is the 512-byte header veritysetup writes at the hash offset.
type Superblock struct {
	Version, HashType            uint32
	UUID                         [16]byte
	Algorithm                    string
	DataBlockSize, HashBlockSize uint32
	DataBlocks                   uint64
	Salt                         []byte
}

const (
	superblockSize = 512
	maxSaltSize    = 256
	digestSize     = 32 // sha256
	// maxLevels is veritysetup's VERITY_MAX_LEVELS.
	maxLevels = 63
)

var signature = [8]byte{'v', 'e', 'r', 'i', 't', 'y', 0, 0}

func (p Params) withDefaults() Params {
	if p.DataBlockSize == 0 {
		p.DataBlockSize = 4096
	}
	if p.HashBlockSize == 0 {
		p.HashBlockSize = 4096
	}
	return p
}

func validBlockSize(n uint32) bool {
	// The kernel accepts powers of two from 512 bytes to the page size;
	// veritysetup up to 512 KiB. Larger blocks than 64 KiB are not worth
	// the memory they would let a hostile superblock ask for.
	return n >= 512 && n <= 64<<10 && n&(n-1) == 0
}

func (p Params) check() error {
	if !validBlockSize(p.DataBlockSize) {
		return fmt.Errorf("data block size %d is not a power of two between 512 and 65536", p.DataBlockSize)
	}
	if !validBlockSize(p.HashBlockSize) {
		return fmt.Errorf("hash block size %d is not a power of two between 512 and 65536", p.HashBlockSize)
	}
	if len(p.Salt) > maxSaltSize {
		return fmt.Errorf("salt of %d bytes is longer than %d", len(p.Salt), maxSaltSize)
	}
	return nil
}

// geometry is where each level of the tree lives, in hash blocks from the
// start of the hash device, top level first as veritysetup lays it out.
type geometry struct {
	dataBlocks uint64
	hashBlock  int64    // hash block size
	start      int64    // first tree block (past the superblock), in hash blocks
	levelStart []int64  // per level (0 = leaves), in hash blocks
	levelSize  []uint64 // per level, in hash blocks
	end        int64    // one past the last tree block, in hash blocks
}

// layout follows veritysetup's hash_levels(): levels until one block holds
// everything, each level sized by rounding up.
func layout(dataBlocks uint64, hashOffset int64, p Params) (geometry, error) {
	if hashOffset < 0 || hashOffset%512 != 0 {
		return geometry{}, fmt.Errorf("hash offset %d is not a non-negative multiple of 512", hashOffset)
	}
	hb := int64(p.HashBlockSize)
	g := geometry{dataBlocks: dataBlocks, hashBlock: hb}
	g.start = (hashOffset + superblockSize + hb - 1) / hb
	bits := uint(0)
	for per := p.HashBlockSize / digestSize; per > 1; per >>= 1 {
		bits++
	}
	levels := 0
	for bits*uint(levels) < 64 && (dataBlocks-1)>>(bits*uint(levels)) != 0 {
		levels++
	}
	if levels > maxLevels {
		return geometry{}, fmt.Errorf("%d data blocks need %d tree levels, more than %d", dataBlocks, levels, maxLevels)
	}
	g.levelStart = make([]int64, levels)
	g.levelSize = make([]uint64, levels)
	pos := g.start
	for i := levels - 1; i >= 0; i-- {
		g.levelStart[i] = pos
		shift := uint(i+1) * bits
		var s uint64
		if shift >= 64 {
			s = 1
		} else {
			s = (dataBlocks + (uint64(1) << shift) - 1) >> shift
		}
		g.levelSize[i] = s
		pos += int64(s)
	}
	g.end = pos
	return g, nil
}

// HashSize is the number of bytes Format writes from the hash offset: the
// superblock block (with any alignment gap) and the whole tree. It is zero
// when dataSize or p is invalid (Format reports why).
func HashSize(dataSize int64, p Params) int64 {
	return hashSizeAt(dataSize, 0, p)
}

func hashSizeAt(dataSize, hashOffset int64, p Params) int64 {
	p = p.withDefaults()
	if p.check() != nil || dataSize <= 0 || dataSize%int64(p.DataBlockSize) != 0 {
		return 0
	}
	g, err := layout(uint64(dataSize/int64(p.DataBlockSize)), hashOffset, p)
	if err != nil {
		return 0
	}
	return g.end*g.hashBlock - hashOffset
}

// encode renders the superblock as its 512 on-disk bytes.
func (sb Superblock) encode() []byte {
	b := make([]byte, superblockSize)
	copy(b[0:8], signature[:])
	binary.LittleEndian.PutUint32(b[8:], sb.Version)
	binary.LittleEndian.PutUint32(b[12:], sb.HashType)
	copy(b[16:32], sb.UUID[:])
	copy(b[32:64], sb.Algorithm)
	binary.LittleEndian.PutUint32(b[64:], sb.DataBlockSize)
	binary.LittleEndian.PutUint32(b[68:], sb.HashBlockSize)
	binary.LittleEndian.PutUint64(b[72:], sb.DataBlocks)
	binary.LittleEndian.PutUint16(b[80:], uint16(len(sb.Salt)))
	copy(b[88:88+maxSaltSize], sb.Salt)
	return b
}

// ErrSuperblock marks a superblock Strata cannot use; the message says which field.
var ErrSuperblock = errors.New("not a usable dm-verity superblock")

// ReadSuperblock reads and checks the superblock at off. Only what Strata
// writes and the kernel table can express is accepted: version 1,
// hash_type 1, sha256, power-of-two block sizes.
func ReadSuperblock(r io.ReaderAt, off int64) (Superblock, error) {
	b := make([]byte, superblockSize)
	if n, err := r.ReadAt(b, off); n < len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Superblock{}, fmt.Errorf("read verity superblock at offset %d (hash area truncated, or wrong offset?): %w", off, err)
	}
	return parseSuperblock(b, off)
}

func parseSuperblock(b []byte, off int64) (Superblock, error) {
	bad := func(format string, args ...any) (Superblock, error) {
		return Superblock{}, fmt.Errorf("%w at offset %d: %s", ErrSuperblock, off, fmt.Sprintf(format, args...))
	}
	if !bytes.Equal(b[0:8], signature[:]) {
		return bad("signature is %q, not \"verity\" (wrong hash offset, or no superblock was written)", strings.TrimRight(string(b[0:8]), "\x00"))
	}
	var sb Superblock
	sb.Version = binary.LittleEndian.Uint32(b[8:])
	sb.HashType = binary.LittleEndian.Uint32(b[12:])
	copy(sb.UUID[:], b[16:32])
	alg := b[32:64]
	if i := bytes.IndexByte(alg, 0); i >= 0 {
		alg = alg[:i]
	}
	sb.Algorithm = string(alg)
	sb.DataBlockSize = binary.LittleEndian.Uint32(b[64:])
	sb.HashBlockSize = binary.LittleEndian.Uint32(b[68:])
	sb.DataBlocks = binary.LittleEndian.Uint64(b[72:])
	saltSize := int(binary.LittleEndian.Uint16(b[80:]))
	switch {
	case sb.Version != 1:
		return bad("version %d is not supported (only 1)", sb.Version)
	case sb.HashType != 1:
		return bad("hash type %d is not supported (only 1, the normal format; 0 is ChromeOS's)", sb.HashType)
	case sb.Algorithm != "sha256":
		return bad("algorithm %q is not supported (only sha256)", sb.Algorithm)
	case !validBlockSize(sb.DataBlockSize):
		return bad("data block size %d is not a power of two between 512 and 65536", sb.DataBlockSize)
	case !validBlockSize(sb.HashBlockSize):
		return bad("hash block size %d is not a power of two between 512 and 65536", sb.HashBlockSize)
	case sb.DataBlocks == 0:
		return bad("data block count is 0")
	case sb.DataBlocks > (1<<63-1)/uint64(sb.DataBlockSize):
		return bad("data block count %d overflows", sb.DataBlocks)
	case saltSize > maxSaltSize:
		return bad("salt size %d is larger than %d", saltSize, maxSaltSize)
	}
	if saltSize > 0 {
		sb.Salt = append([]byte(nil), b[88:88+saltSize]...)
	}
	return sb, nil
}

func (sb Superblock) params() Params {
	return Params{DataBlockSize: sb.DataBlockSize, HashBlockSize: sb.HashBlockSize, Salt: sb.Salt, UUID: sb.UUID}
}

// Table is the dm-verity target line for the kernel:
// "<start> <len> verity 1 <dev> <hashdev> <dbs> <hbs> <blocks> <hashstart> sha256 <root> <salt|->[ <n> opts]".
// opts are optional arguments such as "panic_on_corruption".
func Table(dataDev, hashDev string, sb Superblock, hashOffset int64, root []byte, opts ...string) string {
	p := sb.params().withDefaults()
	sectors := sb.DataBlocks * uint64(p.DataBlockSize) / 512
	hb := int64(p.HashBlockSize)
	hashStart := (hashOffset + superblockSize + hb - 1) / hb
	salt := "-"
	if len(sb.Salt) > 0 {
		salt = hex.EncodeToString(sb.Salt)
	}
	alg := sb.Algorithm
	if alg == "" {
		alg = "sha256"
	}
	line := fmt.Sprintf("0 %d verity 1 %s %s %d %d %d %d %s %s %s",
		sectors, dataDev, hashDev, p.DataBlockSize, p.HashBlockSize, sb.DataBlocks, hashStart, alg, hex.EncodeToString(root), salt)
	if len(opts) > 0 {
		line += fmt.Sprintf(" %d %s", len(opts), strings.Join(opts, " "))
	}
	return line
}

// nameOf names a reader in messages: its file name when it has one.
func nameOf(r any, fallback string) string {
	if n, ok := r.(interface{ Name() string }); ok && n.Name() != "" {
		return n.Name()
	}
	return fallback
}

func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return nil
}
