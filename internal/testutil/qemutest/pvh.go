package qemutest

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/stratalinux/strata/internal/repo"
)

// xenElfnotePhys32Entry is the ELF note (owner "Xen") that marks a
// kernel QEMU can start in 32-bit protected mode by the PVH boot
// protocol, skipping the firmware's real-mode loader and the bzImage's
// self-decompression, both slow under emulation.
const xenElfnotePhys32Entry = 18

// maxVmlinux bounds the unpacked kernel.
const maxVmlinux = 512 << 20

// PVHKernel returns an uncompressed ELF vmlinux of the bzImage kernel
// that QEMU boots by PVH, unpacked once into a cache under the temp dir
// (keyed by the kernel's SHA-256). It fails when the kernel has no PVH
// entry or its payload is neither xz (unpacked by xz(1)) nor gzip.
func PVHKernel(kernel string) (string, error) {
	img, err := os.ReadFile(kernel)
	if err != nil {
		return "", fmt.Errorf("read kernel: %w", err)
	}
	sum := sha256.Sum256(img)
	dir := filepath.Join(os.TempDir(), "strata-qemutest")
	out := filepath.Join(dir, hex.EncodeToString(sum[:12])+".vmlinux")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	vmlinux, err := unpackBzImage(img)
	if err != nil {
		return "", fmt.Errorf("unpack %s: %w", kernel, err)
	}
	if err := checkPVH(vmlinux); err != nil {
		return "", fmt.Errorf("%s: %w", kernel, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := repo.WriteAtomic(out, vmlinux, 0o644); err != nil {
		return "", err
	}
	return out, nil
}

// unpackBzImage finds the compressed payload behind the setup code and
// unpacks it. The payload is followed by other data, so decompressors
// see trailing bytes: gzip stops at the end of its stream; for xz the
// output is taken when it is a whole ELF file.
func unpackBzImage(img []byte) ([]byte, error) {
	if i := bytes.Index(img, []byte{0xfd, '7', 'z', 'X', 'Z', 0}); i >= 0 {
		cmd := exec.Command("xz", "-dc", "--single-stream")
		cmd.Stdin = bytes.NewReader(img[i:])
		var stdout limitedBuffer
		stdout.max = maxVmlinux
		cmd.Stdout = &stdout
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		return stdout.Bytes(), nil
	}
	if i := bytes.Index(img, []byte{0x1f, 0x8b, 0x08}); i >= 0 {
		zr, err := gzip.NewReader(bytes.NewReader(img[i:]))
		if err != nil {
			return nil, err
		}
		zr.Multistream(false)
		b, err := io.ReadAll(io.LimitReader(zr, maxVmlinux+1))
		if err != nil {
			return nil, err
		}
		if len(b) > maxVmlinux {
			return nil, fmt.Errorf("unpacked kernel is larger than %d bytes", maxVmlinux)
		}
		return b, nil
	}
	return nil, errors.New("no xz or gzip payload found (only those are unpacked)")
}

type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if l.Len()+len(p) > l.max {
		return 0, fmt.Errorf("unpacked kernel is larger than %d bytes", l.max)
	}
	return l.Buffer.Write(p)
}

// checkPVH checks that b is a whole ELF kernel with the PVH entry note.
func checkPVH(b []byte) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("unpacked kernel is not ELF: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Off+p.Filesz > uint64(len(b)) {
			return errors.New("unpacked kernel is truncated")
		}
		if p.Type != elf.PT_NOTE {
			continue
		}
		note := b[p.Off : p.Off+p.Filesz]
		for len(note) >= 12 {
			namesz := binary.LittleEndian.Uint32(note[0:])
			descsz := binary.LittleEndian.Uint32(note[4:])
			typ := binary.LittleEndian.Uint32(note[8:])
			n := 12 + align4(uint64(namesz)) + align4(uint64(descsz))
			if n > uint64(len(note)) {
				break
			}
			if string(bytes.TrimRight(note[12:12+namesz], "\x00")) == "Xen" && typ == xenElfnotePhys32Entry {
				return nil
			}
			note = note[n:]
		}
	}
	return errors.New("kernel has no PVH entry note (CONFIG_PVH off)")
}

func align4(n uint64) uint64 { return (n + 3) &^ 3 }
