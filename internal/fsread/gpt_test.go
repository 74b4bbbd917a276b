package fsread

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/stratalinux/strata/internal/fsmagic"
)

const (
	espType  = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
	rootX64  = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
	usrArm64 = "b0e01050-ee5f-4390-949a-9101b17104e9"
)

type gptPart struct {
	typ, uuid, label string
	flags            uint64
	data             []byte
}

// guidBytes encodes a dashed UUID in GPT's mixed-endian layout.
func guidBytes(s string) []byte {
	h, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(h) != 16 {
		panic("bad test GUID " + s)
	}
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b[0:], binary.BigEndian.Uint32(h[0:]))
	binary.LittleEndian.PutUint16(b[4:], binary.BigEndian.Uint16(h[4:]))
	binary.LittleEndian.PutUint16(b[6:], binary.BigEndian.Uint16(h[6:]))
	copy(b[8:], h[8:])
	return b
}

// writeGPT lays out a GPT disk image with the given partitions, each
// starting on an align-sector boundary, and both header copies.
func writeGPT(sector int64, align int64, parts []gptPart) []byte {
	const nent, esize = 128, 128
	entSectors := int64(nent*esize) / sector
	lba := align
	type span struct{ first, last int64 }
	spans := make([]span, len(parts))
	for i, p := range parts {
		n := (int64(len(p.data)) + sector - 1) / sector
		n = max(n, 1)
		spans[i] = span{lba, lba + n - 1}
		lba = (lba + n + align - 1) / align * align
	}
	total := lba + entSectors + 1
	disk := make([]byte, total*sector)
	ents := make([]byte, nent*esize)
	for i, p := range parts {
		e := ents[i*esize:]
		copy(e[0:], guidBytes(p.typ))
		copy(e[16:], guidBytes(p.uuid))
		binary.LittleEndian.PutUint64(e[32:], uint64(spans[i].first))
		binary.LittleEndian.PutUint64(e[40:], uint64(spans[i].last))
		binary.LittleEndian.PutUint64(e[48:], p.flags)
		for j, c := range utf16.Encode([]rune(p.label)) {
			binary.LittleEndian.PutUint16(e[56+2*j:], c)
		}
		copy(disk[spans[i].first*sector:], p.data)
	}
	header := func(my, alt, entLBA int64) []byte {
		h := make([]byte, 92)
		copy(h, "EFI PART")
		binary.LittleEndian.PutUint32(h[8:], 0x00010000)
		binary.LittleEndian.PutUint32(h[12:], 92)
		binary.LittleEndian.PutUint64(h[24:], uint64(my))
		binary.LittleEndian.PutUint64(h[32:], uint64(alt))
		binary.LittleEndian.PutUint64(h[40:], uint64(2+entSectors))
		binary.LittleEndian.PutUint64(h[48:], uint64(total-2-entSectors))
		copy(h[56:], guidBytes("01234567-89ab-cdef-0123-456789abcdef"))
		binary.LittleEndian.PutUint64(h[72:], uint64(entLBA))
		binary.LittleEndian.PutUint32(h[80:], nent)
		binary.LittleEndian.PutUint32(h[84:], esize)
		binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(ents))
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h))
		return h
	}
	// Protective MBR.
	disk[510], disk[511] = 0x55, 0xAA
	disk[446+4] = 0xEE
	copy(disk[sector:], header(1, total-1, 2))
	copy(disk[2*sector:], ents)
	copy(disk[(total-1-entSectors)*sector:], ents)
	copy(disk[(total-1)*sector:], header(total-1, 1, total-1-entSectors))
	return disk
}

func smallSquashfs(t testing.TB) (src string, img []byte) {
	t.Helper()
	needTools(t, "mksquashfs")
	src = filepath.Join(t.TempDir(), "src")
	buildTree(t, src, treeOpts{small: true})
	path := filepath.Join(t.TempDir(), "sq")
	mkSquashfs(t, src, path, "-comp", "zstd")
	img, err := os.ReadFile(path)
	must(t, err)
	return src, img
}

func openBytes(data []byte, arch string) (*Image, error) {
	return Open(bytes.NewReader(data), int64(len(data)), arch)
}

func TestGPT(t *testing.T) {
	src, sq := smallSquashfs(t)
	esp := gptPart{typ: espType, uuid: "11111111-2222-3333-4444-555555555555", label: "ESP", data: []byte("not a file system")}
	root := gptPart{typ: rootX64, uuid: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", label: "root-x86-64 ✓", flags: GPTFlagReadOnly, data: sq}
	for _, sector := range []int64{512, 4096} {
		t.Run(fmt.Sprint(sector), func(t *testing.T) {
			disk := writeGPT(sector, 1<<20/sector, []gptPart{esp, root})
			if f, err := fsmagic.Detect(bytes.NewReader(disk), int64(len(disk))); err != nil || f != GPT {
				t.Fatalf("Detect = %v, %v", f, err)
			}
			parts, err := ReadGPT(bytes.NewReader(disk), int64(len(disk)))
			must(t, err)
			if len(parts) != 2 {
				t.Fatalf("ReadGPT: %d partitions", len(parts))
			}
			p := parts[1]
			want := Partition{Index: 2, Type: rootX64, UUID: root.uuid, Label: root.label, Flags: GPTFlagReadOnly,
				Offset: 2 << 20, Size: (int64(len(sq)) + sector - 1) / sector * sector}
			if p != want {
				t.Errorf("partition 2 = %+v\nwant %+v", p, want)
			}
			img, err := openBytes(disk, "x86-64")
			must(t, err)
			if img.Format != GPT || img.FSFormat != Squashfs || img.Partition == nil || *img.Partition != want {
				t.Fatalf("Open: %s/%s %+v", img.Format, img.FSFormat, img.Partition)
			}
			compareTree(t, src, img.FS, compareOpts{})

			// A damaged primary header falls back to the backup.
			bad := bytes.Clone(disk)
			bad[sector+100-8] ^= 0xff // inside the 92-byte header
			bad[sector+20] ^= 0xff
			if parts, err := ReadGPT(bytes.NewReader(bad), int64(len(bad))); err != nil || len(parts) != 2 {
				t.Errorf("ReadGPT with damaged primary: %d, %v", len(parts), err)
			}
			// Both damaged: an error naming the CRC.
			bad[int64(len(bad))-sector+20] ^= 0xff
			if _, err := ReadGPT(bytes.NewReader(bad), int64(len(bad))); err == nil || !strings.Contains(err.Error(), "CRC") {
				t.Errorf("ReadGPT with both headers damaged = %v", err)
			}
			// Damaged entries.
			bad = bytes.Clone(disk)
			bad[2*sector+5] ^= 1
			bad[int64(len(bad))-sector-int64(128*128)+5] ^= 1
			if _, err := ReadGPT(bytes.NewReader(bad), int64(len(bad))); err == nil || !strings.Contains(err.Error(), "entry array CRC") {
				t.Errorf("ReadGPT with damaged entries = %v", err)
			}
		})
	}
}

func TestGPTPartitionChoice(t *testing.T) {
	_, sq := smallSquashfs(t)
	part := func(typ string, flags uint64) gptPart {
		return gptPart{typ: typ, uuid: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", data: sq, flags: flags}
	}
	usrX64, _ := UsrPartitionType("x86-64")
	for _, c := range []struct {
		name    string
		parts   []gptPart
		arch    string
		index   int
		errText string
	}{
		{"root", []gptPart{part(usrX64, 0), part(rootX64, 0)}, "x86-64", 2, ""},
		{"usr", []gptPart{part(espType, 0), part(usrArm64, 0)}, "arm64", 2, ""},
		{"wrong arch", []gptPart{part(rootX64, 0)}, "arm64", 0, "no root"},
		{"unknown arch", []gptPart{part(rootX64, 0)}, "vax", 0, `unknown architecture "vax"`},
		{"no-auto root", []gptPart{part(rootX64, GPTFlagNoAuto), part(usrX64, 0)}, "x86-64", 2, ""},
		{"two roots", []gptPart{part(rootX64, 0), part(rootX64, 0)}, "x86-64", 0, "both have type"},
		{"generic single", []gptPart{part(LinuxGenericType, 0)}, "x86-64", 1, ""},
		{"generic not single", []gptPart{part(LinuxGenericType, 0), part(espType, 0)}, "x86-64", 0, "no root"},
	} {
		t.Run(c.name, func(t *testing.T) {
			disk := writeGPT(512, 2048, c.parts)
			img, err := openBytes(disk, c.arch)
			if c.errText != "" {
				if err == nil || !strings.Contains(err.Error(), c.errText) {
					t.Fatalf("Open = %v, want error containing %q", err, c.errText)
				}
				return
			}
			must(t, err)
			if img.Partition.Index != c.index {
				t.Errorf("picked partition %d, want %d", img.Partition.Index, c.index)
			}
			if _, err := img.FS.Lstat("usr/lib/extension-release.d/extension-release.test"); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestGPTSfdisk checks the reader against a table written by sfdisk.
func TestGPTSfdisk(t *testing.T) {
	needTools(t, "sfdisk")
	src, sq := smallSquashfs(t)
	path := filepath.Join(t.TempDir(), "disk.raw")
	size := int64(4 << 20)
	must(t, os.WriteFile(path, make([]byte, size), 0o644))
	script := fmt.Sprintf("label: gpt\nstart=2048, size=%d, type=%s, name=\"root-x86-64\"\n", (len(sq)+511)/512, strings.ToUpper(rootX64))
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", path)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	_, err = f.WriteAt(sq, 2048*512)
	must(t, err)
	parts, err := ReadGPT(f, size)
	must(t, err)
	if len(parts) != 1 || parts[0].Type != rootX64 || parts[0].Offset != 1<<20 || parts[0].Label != "root-x86-64" {
		t.Fatalf("ReadGPT = %+v", parts)
	}
	img, err := Open(f, size, "x86-64")
	must(t, err)
	compareTree(t, src, img.FS, compareOpts{})
}

func TestGPTBounds(t *testing.T) {
	disk := writeGPT(512, 64, []gptPart{{typ: rootX64, uuid: rootX64, data: []byte("x")}})
	hdr := disk[512 : 512+92]
	// A header claiming a million entries, with a valid CRC.
	binary.LittleEndian.PutUint32(hdr[80:], 1000000)
	binary.LittleEndian.PutUint32(hdr[16:], 0)
	binary.LittleEndian.PutUint32(hdr[16:], crc32.ChecksumIEEE(hdr))
	disk = disk[:len(disk)-512] // and no usable backup
	if _, err := ReadGPT(bytes.NewReader(disk), int64(len(disk))); err == nil || !strings.Contains(err.Error(), "exceed the limit") {
		t.Errorf("ReadGPT(huge entry count) = %v", err)
	}
}
