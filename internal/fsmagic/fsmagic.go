// Package fsmagic is the one place that knows the magic numbers and
// superblock sizes of the images Strata handles: squashfs, erofs, ext2/3/4
// and GPT disk images. The readers (fsread), the mounter (merge), the
// external-tool fallback (imagefile) and the flake VM's init all sniff an
// image through it, so they can never disagree on what an image is.
//
// It imports only the standard library: the guest init that runs as PID 1
// in a flake VM links it, and must stay small.
package fsmagic

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Kind names an image format by its magic number.
type Kind string

// The kinds Detect recognises; Unknown is none of them.
const (
	Unknown  Kind = ""
	Squashfs Kind = "squashfs"
	Erofs    Kind = "erofs"
	Ext4     Kind = "ext4" // any of ext2, ext3 and ext4
	GPT      Kind = "gpt"
)

// IsFilesystem tells whether k is a file system (as opposed to a disk
// image or unknown).
func (k Kind) IsFilesystem() bool { return k == Squashfs || k == Erofs || k == Ext4 }

// Magic numbers and where they sit; the readers check them again when
// they parse a superblock.
const (
	SquashfsMagic    = "hsqs" // at offset 0
	ErofsMagic       = 0xE0F5E1E2
	ErofsMagicOffset = 1024 // where the erofs superblock starts
	Ext4Magic        = 0xEF53
	Ext4MagicOffset  = 1024 + 0x38 // s_magic in the superblock at 1024
	GPTSignature     = "EFI PART"  // at the start of LBA 1
)

// UnknownError is Detect's answer for an image of none of the kinds. It
// names the bytes that were found.
type UnknownError struct {
	Size  int64
	Found []byte // up to the first 16 bytes
}

func (e *UnknownError) Error() string {
	return fmt.Sprintf("unknown image format: %d bytes starting with %q (% x); expected squashfs, erofs, ext4 or a GPT disk image", e.Size, e.Found, e.Found)
}

// Detect sniffs the format of the size-byte image r from its magic
// numbers: squashfs "hsqs" at offset 0, a GPT header ("EFI PART") at LBA 1
// for 512- or 4096-byte sectors, the erofs magic at 1024, or the ext2/3/4
// magic at 1024+56, in that order. An image of none of these kinds is
// Unknown with an *UnknownError; other errors are read errors.
func Detect(r io.ReaderAt, size int64) (Kind, error) {
	if size < 0 {
		return Unknown, fmt.Errorf("detect image format: negative size %d", size)
	}
	at := func(n int, off int64) ([]byte, bool, error) {
		if off+int64(n) > size {
			return nil, false, nil
		}
		b := make([]byte, n)
		if err := readFull(r, b, off); err != nil {
			return nil, false, fmt.Errorf("detect image format: %w", err)
		}
		return b, true, nil
	}
	if b, ok, err := at(4, 0); err != nil {
		return Unknown, err
	} else if ok && string(b) == SquashfsMagic {
		return Squashfs, nil
	}
	for _, sector := range []int64{512, 4096} {
		if size < 2*sector {
			continue
		}
		if b, ok, err := at(len(GPTSignature), sector); err != nil {
			return Unknown, err
		} else if ok && string(b) == GPTSignature {
			return GPT, nil
		}
	}
	if b, ok, err := at(4, ErofsMagicOffset); err != nil {
		return Unknown, err
	} else if ok && binary.LittleEndian.Uint32(b) == ErofsMagic {
		return Erofs, nil
	}
	if b, ok, err := at(2, Ext4MagicOffset); err != nil {
		return Unknown, err
	} else if ok && binary.LittleEndian.Uint16(b) == Ext4Magic {
		return Ext4, nil
	}
	found, _, err := at(int(min(size, 16)), 0)
	if err != nil {
		return Unknown, err
	}
	return Unknown, &UnknownError{Size: size, Found: found}
}

// CheckComplete refuses a file system image of kind k shorter than its
// superblock says: the kernel would mount a truncated squashfs and fail
// only later, on reads. Kinds other than file systems pass.
func CheckComplete(r io.ReaderAt, k Kind, size int64) error {
	var need int64
	le := binary.LittleEndian
	switch k {
	case Squashfs:
		var b [8]byte
		if _, err := r.ReadAt(b[:], 40); err != nil {
			return fmt.Errorf("read squashfs superblock: %w", err)
		}
		need = int64(le.Uint64(b[:]))
	case Erofs:
		var b [40]byte
		if _, err := r.ReadAt(b[:], 1024); err != nil {
			return fmt.Errorf("read erofs superblock: %w", err)
		}
		bits := uint(b[12])
		if bits < 9 || bits > 16 {
			return fmt.Errorf("erofs superblock has an invalid block size (2^%d)", bits)
		}
		need = int64(le.Uint32(b[36:40])) << bits
	case Ext4:
		var b [0x158]byte
		if _, err := r.ReadAt(b[:], 1024); err != nil {
			return fmt.Errorf("read ext4 superblock: %w", err)
		}
		logBS := le.Uint32(b[24:28])
		if logBS > 6 {
			return fmt.Errorf("ext4 superblock has an invalid block size")
		}
		blocks := uint64(le.Uint32(b[4:8]))
		if le.Uint32(b[0x60:0x64])&0x80 != 0 {
			blocks |= uint64(le.Uint32(b[0x150:0x154])) << 32
		}
		need = int64(blocks) << (10 + logBS)
	}
	if need > size {
		return fmt.Errorf("image is truncated: its %s superblock needs %d bytes, the file has %d", k, need, size)
	}
	return nil
}

// readFull fills p from off; a short read is io.ErrUnexpectedEOF.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at offset %d: %w", len(p), off, err)
}
