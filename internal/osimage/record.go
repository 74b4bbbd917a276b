package osimage

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// RecordSize is the size of the slot record at the end of a USR partition or payload.
const RecordSize = 4096

// Record describes what a USR slot holds. It is the last 4 KiB of the partition (and of a payload):
// JSON, NUL-padded. It is written last when installing and zeroed first, so a slot with a record is a
// slot whose data and tree were written and verified.
type Record struct {
	Magic      int    `json:"strata_slot"` // 1
	Version    string `json:"version"`
	Arch       string `json:"arch"` // systemd's names: x86-64, arm64
	FS         string `json:"fs"`   // erofs or squashfs
	DataSize   int64  `json:"data_size"`
	HashOffset int64  `json:"hash_offset"`
	HashSize   int64  `json:"hash_size"`
	RootHash   string `json:"root_hash"`
	Salt       string `json:"salt"`
	// SHA256 is the hex digest of the payload body: the bytes before the record (fs image + tree).
	SHA256 string `json:"sha256"`
	// Signature, if set, is base64 of a detached PKCS#7 signature over RootHash (its hex string), as
	// systemd's usr-verity-sig partition holds; an initrd with trusted certificates requires it.
	Signature string `json:"signature,omitempty"`
}

// ErrNoRecord means the slot's last 4 KiB are zero: empty, or an install that did not finish.
var ErrNoRecord = errors.New("no slot record (empty slot or unfinished install)")

// BodySize is the length of the payload bytes before the record: fs image and verity tree, 4 KiB aligned.
func (r Record) BodySize() int64 { return alignUp(r.HashOffset+r.HashSize, blockSize) }

// PayloadSize is BodySize plus the record.
func (r Record) PayloadSize() int64 { return r.BodySize() + RecordSize }

// Check reports the first inconsistency of a record read from untrusted bytes.
func (r Record) Check() error {
	switch {
	case r.Magic != 1:
		return fmt.Errorf("slot record: strata_slot is %d, want 1", r.Magic)
	case r.DataSize <= 0 || r.DataSize%blockSize != 0:
		return fmt.Errorf("slot record: data_size %d is not a positive multiple of 4096", r.DataSize)
	case r.HashOffset < r.DataSize || r.HashOffset%blockSize != 0:
		return fmt.Errorf("slot record: hash_offset %d is inside the data or not 4 KiB aligned", r.HashOffset)
	case r.HashSize != verityHashSize(r.DataSize):
		return fmt.Errorf("slot record: hash_size %d, a %d byte image needs %d", r.HashSize, r.DataSize, verityHashSize(r.DataSize))
	case r.FS != "erofs" && r.FS != "squashfs":
		return fmt.Errorf("slot record: fs %q, want erofs or squashfs", r.FS)
	}
	for name, h := range map[string]string{"root_hash": r.RootHash, "sha256": r.SHA256} {
		if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
			return fmt.Errorf("slot record: %s %q is not 64 hex digits", name, h)
		}
	}
	if b, err := hex.DecodeString(r.Salt); err != nil || len(b) > 256 {
		return fmt.Errorf("slot record: salt %q is not hex of at most 256 bytes", r.Salt)
	}
	if r.Signature != "" {
		if _, err := decodeSignature(r.Signature); err != nil {
			return err
		}
	}
	return nil
}

// EncodeRecord is the record's 4096 bytes.
func EncodeRecord(rec Record) ([]byte, error) {
	rec.Magic = 1
	j, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	if len(j) >= RecordSize {
		return nil, fmt.Errorf("slot record of %d bytes does not fit in %d", len(j), RecordSize)
	}
	out := make([]byte, RecordSize)
	copy(out, j)
	return out, nil
}

// DecodeRecord parses a record's 4096 bytes; all zero is ErrNoRecord.
func DecodeRecord(b []byte) (Record, error) {
	var rec Record
	j := bytes.TrimRight(b, "\x00")
	if len(j) == 0 {
		return rec, ErrNoRecord
	}
	if err := json.Unmarshal(j, &rec); err != nil {
		return rec, fmt.Errorf("slot record: %w", err)
	}
	return rec, rec.Check()
}

// ReadRecord reads the record in the last 4 KiB of the partition at partStart of partSize bytes.
func ReadRecord(r io.ReaderAt, partStart, partSize int64) (Record, error) {
	if partSize < RecordSize {
		return Record{}, fmt.Errorf("slot of %d bytes has no room for a record", partSize)
	}
	b := make([]byte, RecordSize)
	if _, err := r.ReadAt(b, partStart+partSize-RecordSize); err != nil {
		return Record{}, fmt.Errorf("read slot record: %w", err)
	}
	return DecodeRecord(b)
}

// WriteRecord writes rec into the last 4 KiB of the partition.
func WriteRecord(w io.WriterAt, partStart, partSize int64, rec Record) error {
	b, err := EncodeRecord(rec)
	if err != nil {
		return err
	}
	return writeAt(w, b, partStart+partSize-RecordSize, "slot record")
}

// ZeroRecord clears the record, marking the slot empty before anything else of it is overwritten.
func ZeroRecord(w io.WriterAt, partStart, partSize int64) error {
	return writeAt(w, make([]byte, RecordSize), partStart+partSize-RecordSize, "slot record")
}

func writeAt(w io.WriterAt, b []byte, off int64, what string) error {
	if _, err := w.WriteAt(b, off); err != nil {
		return fmt.Errorf("write %s at byte %d: %w", what, off, err)
	}
	return nil
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }
