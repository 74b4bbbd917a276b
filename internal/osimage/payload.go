package osimage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// DetectFS names the filesystem of a /usr image by its magic: erofs (0xE0F5E1E2 at 1024) or squashfs
// ("hsqs" at 0).
func DetectFS(r io.ReaderAt) (string, error) {
	b := make([]byte, 1028)
	if _, err := r.ReadAt(b, 0); err != nil {
		return "", fmt.Errorf("read filesystem magic: %w", err)
	}
	switch {
	case bytes.Equal(b[1024:1028], []byte{0xe2, 0xe1, 0xf5, 0xe0}):
		return "erofs", nil
	case string(b[0:4]) == "hsqs":
		return "squashfs", nil
	}
	return "", fmt.Errorf("not an erofs or squashfs image (build /usr with mkfs.erofs or mksquashfs, or pass a directory)")
}

// PayloadInfo is what the payload's record says beyond what is computed.
type PayloadInfo struct{ Version, Arch string }

// WritePayload writes the payload of a /usr filesystem image to w at offset 0: the image padded to
// 4 KiB, the verity superblock and tree right after it, and the record in the 4 KiB after that. The salt
// and verity UUID derive from the image's SHA-256, so the same image gives the same payload.
func WritePayload(ctx context.Context, fsImage string, info PayloadInfo, w io.WriterAt) (Record, error) {
	f, err := os.Open(fsImage)
	if err != nil {
		return Record{}, fmt.Errorf("open /usr image: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Record{}, err
	}
	fsName, err := DetectFS(f)
	if err != nil {
		return Record{}, fmt.Errorf("%s: %w", fsImage, err)
	}
	dataSize := alignUp(st.Size(), blockSize)
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(h, io.NewOffsetWriter(w, 0)), f); err != nil {
		return Record{}, fmt.Errorf("copy %s: %w", fsImage, err)
	}
	if pad := dataSize - st.Size(); pad > 0 {
		if err := writeAt(w, make([]byte, pad), st.Size(), "padding"); err != nil {
			return Record{}, err
		}
	}
	imgSum := h.Sum(nil)
	salt := sha256.Sum256(append([]byte("strata-osimage-salt\x00"), imgSum...))
	var uuid [16]byte
	uuid = [16]byte(DeriveGUID(hex.EncodeToString(imgSum), "verity"))
	// The tree is computed from what was written, so the payload verifies against itself.
	ra, ok := w.(io.ReaderAt)
	if !ok {
		return Record{}, fmt.Errorf("payload output must be readable")
	}
	root, hashSize, err := verityFormat(ctx, ra, dataSize, w, dataSize, salt[:], uuid)
	if err != nil {
		return Record{}, err
	}
	rec := Record{Magic: 1, Version: info.Version, Arch: info.Arch, FS: fsName, DataSize: dataSize,
		HashOffset: dataSize, HashSize: hashSize, RootHash: hex.EncodeToString(root), Salt: hex.EncodeToString(salt[:])}
	if pad := rec.BodySize() - dataSize - hashSize; pad > 0 {
		if err := writeAt(w, make([]byte, pad), dataSize+hashSize, "padding"); err != nil {
			return Record{}, err
		}
	}
	body := sha256.New()
	if _, err := io.Copy(body, io.NewSectionReader(ra, 0, rec.BodySize())); err != nil {
		return Record{}, err
	}
	rec.SHA256 = hex.EncodeToString(body.Sum(nil))
	if err := WriteRecord(w, 0, rec.PayloadSize(), rec); err != nil {
		return Record{}, err
	}
	return rec, nil
}

// ReadPayloadRecord reads and checks the record at the end of a payload of size bytes.
func ReadPayloadRecord(r io.ReaderAt, size int64) (Record, error) {
	rec, err := ReadRecord(r, 0, size)
	if err != nil {
		return rec, err
	}
	if rec.PayloadSize() != size {
		return rec, fmt.Errorf("payload is %d bytes, its record describes %d (truncated or padded)", size, rec.PayloadSize())
	}
	return rec, nil
}
