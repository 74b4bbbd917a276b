package osimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/stratalinux/strata/internal/fsimage"
	"github.com/stratalinux/strata/internal/fsmagic"
)

// usrFS names the file system of a /usr image as mount.usrfstype= and the
// slot record take it: "erofs" or "squashfs". fsmagic sniffs it, as it does
// for every other image.
func usrFS(r io.ReaderAt, size int64) (string, error) {
	k, err := fsmagic.Detect(r, size)
	var unknown *fsmagic.UnknownError
	if err != nil && !errors.As(err, &unknown) {
		return "", err
	}
	if k != fsmagic.Erofs && k != fsmagic.Squashfs {
		return "", fmt.Errorf("not an erofs or squashfs image (build /usr with mkfs.erofs or mksquashfs, or pass a directory)")
	}
	return string(k), nil
}

// PayloadInfo is what the payload's record says beyond what is computed, and who signs its root hash.
type PayloadInfo struct {
	Version, Arch string
	Sign          *Signer // nil: unsigned
}

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
	fsName, err := usrFS(f, st.Size())
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
	uuid := [16]byte(DeriveGUID(hex.EncodeToString(imgSum), "verity"))
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
	if info.Sign != nil {
		if err := SignRecord(&rec, *info.Sign); err != nil {
			return Record{}, err
		}
	}
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
		if errors.Is(err, ErrNoRecord) {
			return rec, fmt.Errorf("payload of %d bytes has no slot record in its last 4 KiB (truncated, or not written by strata os payload)", size)
		}
		return rec, fmt.Errorf("payload of %d bytes: %w (truncated, or not written by strata os payload)", size, err)
	}
	if rec.PayloadSize() != size {
		return rec, fmt.Errorf("payload is %d bytes, its record describes %d (truncated or padded)", size, rec.PayloadSize())
	}
	return rec, nil
}

// BuildPayload writes the payload of req.Usr (a tree, built as erofs, or an image) to out (temp + rename).
func BuildPayload(ctx context.Context, req Request, out string) (Record, error) {
	if req.Arch == "" {
		req.Arch = "x86-64"
	}
	dir, err := os.MkdirTemp(filepath.Dir(out), ".strata-os-payload-")
	if err != nil {
		return Record{}, fmt.Errorf("payload %s: %w", out, err)
	}
	defer os.RemoveAll(dir)
	img, err := usrImage(ctx, dir, req)
	if err != nil {
		return Record{}, err
	}
	tmp := filepath.Join(dir, "payload")
	f, err := os.Create(tmp)
	if err != nil {
		return Record{}, err
	}
	defer f.Close()
	rec, err := WritePayload(ctx, img, PayloadInfo{Version: req.Version, Arch: req.Arch, Sign: req.Sign}, f)
	if err != nil {
		return Record{}, fmt.Errorf("payload: %w", err)
	}
	if err := f.Sync(); err != nil {
		return Record{}, err
	}
	if err := os.Rename(tmp, out); err != nil {
		return Record{}, fmt.Errorf("payload: %w", err)
	}
	return rec, syncDir(filepath.Dir(out))
}

// usrImage is req.Usr as a filesystem image: the image itself, or an erofs built from the tree in dir.
func usrImage(ctx context.Context, dir string, req Request) (string, error) {
	st, err := os.Stat(req.Usr)
	if err != nil {
		return "", fmt.Errorf("--usr %s: %w", req.Usr, err)
	}
	if !st.IsDir() {
		return req.Usr, nil
	}
	img := filepath.Join(dir, "usr.erofs")
	w, _ := fsimage.New("erofs")
	if err := w.Write(ctx, req.Usr, img, fsimage.Options{Epoch: req.Epoch, Seed: "usr", StageDir: dir}); err != nil {
		return "", fmt.Errorf("build /usr erofs from %s: %w", req.Usr, err)
	}
	return img, nil
}
