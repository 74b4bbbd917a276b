package osimage

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
)

// This file is a stand-in for internal/verity (owned by s4-verity, not yet committed when osimage was
// written): the same format (veritysetup's hash_type 1, SHA-256, 4 KiB blocks, superblock at the hash
// offset, levels top-down after it) behind the contract's signatures, so switching to verity.Format and
// verity.Verify is a rename.

const blockSize = 4096

// verityHashSize is the superblock plus tree bytes verityFormat writes for dataSize bytes.
func verityHashSize(dataSize int64) int64 {
	n := dataSize / blockSize
	total := int64(1) // superblock block
	for n > 1 {
		n = (n + 127) / 128
		total += n
	}
	return total * blockSize
}

// verityFormat writes veritysetup's superblock and hash tree for data to hash at hashOffset.
func verityFormat(ctx context.Context, data io.ReaderAt, dataSize int64, hash io.WriterAt, hashOffset int64, salt []byte, uuid [16]byte) (root []byte, hashSize int64, err error) {
	if dataSize%blockSize != 0 || dataSize == 0 {
		return nil, 0, fmt.Errorf("verity: data size %d is not a positive multiple of %d", dataSize, blockSize)
	}
	levels, root, err := verityTree(ctx, data, dataSize, salt)
	if err != nil {
		return nil, 0, err
	}
	sb := make([]byte, blockSize)
	copy(sb, "verity\x00\x00")
	binary.LittleEndian.PutUint32(sb[8:], 1)
	binary.LittleEndian.PutUint32(sb[12:], 1)
	copy(sb[16:32], uuid[:])
	copy(sb[32:64], "sha256")
	binary.LittleEndian.PutUint32(sb[64:], blockSize)
	binary.LittleEndian.PutUint32(sb[68:], blockSize)
	binary.LittleEndian.PutUint64(sb[72:], uint64(dataSize/blockSize))
	binary.LittleEndian.PutUint16(sb[80:], uint16(len(salt)))
	copy(sb[88:], salt)
	if _, err := hash.WriteAt(sb, hashOffset); err != nil {
		return nil, 0, fmt.Errorf("verity: write superblock: %w", err)
	}
	off := hashOffset + blockSize
	for i := len(levels) - 1; i >= 0; i-- {
		if _, err := hash.WriteAt(levels[i], off); err != nil {
			return nil, 0, fmt.Errorf("verity: write tree: %w", err)
		}
		off += int64(len(levels[i]))
	}
	return root, off - hashOffset, nil
}

// verityTree returns the tree levels bottom-up (each padded to whole blocks) and the root hash.
func verityTree(ctx context.Context, data io.ReaderAt, dataSize int64, salt []byte) ([][]byte, []byte, error) {
	digest := func(b []byte) []byte {
		h := sha256.New()
		h.Write(salt)
		h.Write(b)
		return h.Sum(nil)
	}
	var level []byte
	buf := make([]byte, 1<<20)
	for off := int64(0); off < dataSize; off += int64(len(buf)) {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		n := min(int64(len(buf)), dataSize-off)
		if _, err := data.ReadAt(buf[:n], off); err != nil {
			return nil, nil, fmt.Errorf("verity: read data at %d: %w", off, err)
		}
		for b := int64(0); b < n; b += blockSize {
			level = append(level, digest(buf[b:b+blockSize])...)
		}
	}
	if len(level) == sha256.Size {
		// One data block: no tree, the root is its digest (what veritysetup does).
		return nil, level, nil
	}
	var levels [][]byte
	for {
		if pad := len(level) % blockSize; pad != 0 {
			level = append(level, make([]byte, blockSize-pad)...)
		}
		levels = append(levels, level)
		if len(level) == blockSize {
			return levels, digest(level), nil
		}
		var next []byte
		for b := 0; b < len(level); b += blockSize {
			next = append(next, digest(level[b:b+blockSize])...)
		}
		level = next
	}
}

// verityVerify recomputes the tree over data and compares it with the one at hashOffset and with root.
func verityVerify(ctx context.Context, data io.ReaderAt, dataSize int64, hash io.ReaderAt, hashOffset int64, salt, root []byte) error {
	levels, got, err := verityTree(ctx, data, dataSize, salt)
	if err != nil {
		return err
	}
	if string(got) != string(root) {
		return fmt.Errorf("verity: root hash %x of the data does not match %x", got, root)
	}
	off := hashOffset + blockSize
	for i := len(levels) - 1; i >= 0; i-- {
		onDisk := make([]byte, len(levels[i]))
		if _, err := hash.ReadAt(onDisk, off); err != nil {
			return fmt.Errorf("verity: read tree: %w", err)
		}
		if string(onDisk) != string(levels[i]) {
			return fmt.Errorf("verity: hash tree level %d at byte %d does not match the data", i, off)
		}
		off += int64(len(onDisk))
	}
	return nil
}
