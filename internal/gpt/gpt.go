// Package gpt reads and writes GUID partition tables (UEFI spec §5.3) on disk images: a protective MBR,
// the primary header at LBA 1 with its entries at LBA 2, and the backup entries and header at the end of
// the disk, each with its CRC32. Sectors are 512 bytes.
//
// It is Strata's own code rather than go-diskfs: a GPT is ~300 lines, and owning them keeps every size
// and count read from an untrusted image bounded in one place, which is what FuzzRead exercises.
// Read falls back to the backup copy when the primary header or its entries fail their CRC; Write always
// writes both copies, so one Read+Write repairs a damaged table. The slot attributes (gptprio) are
// interpreted by internal/slot, not here.
package gpt

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"strings"
	"unicode/utf16"
)

// SectorSize is the logical sector size Strata's disk images use.
const SectorSize = 512

const (
	headerSize     = 92
	entrySize      = 128
	numEntries     = 128
	entriesSectors = numEntries * entrySize / SectorSize // 32
	// maxEntryBytes bounds what Read allocates for an entry array from an untrusted header.
	maxEntryBytes = 1 << 20
	nameUnits     = 36
	signature     = "EFI PART"
	revision      = 0x00010000
)

// GUID is a GUID in its on-disk byte order: the first three fields little-endian, the rest as is.
type GUID [16]byte

// String is the canonical lowercase form, e.g. 5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6.
func (g GUID) String() string {
	var b [16]byte
	b[0], b[1], b[2], b[3] = g[3], g[2], g[1], g[0]
	b[4], b[5] = g[5], g[4]
	b[6], b[7] = g[7], g[6]
	copy(b[8:], g[8:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// IsZero reports whether g is all zero (an unused entry's type).
func (g GUID) IsZero() bool { return g == GUID{} }

// ParseGUID parses the canonical form (case-insensitive) into on-disk byte order.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("parse GUID %q: want the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	raw, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(raw) != 16 {
		return g, fmt.Errorf("parse GUID %q: not hexadecimal", s)
	}
	g[0], g[1], g[2], g[3] = raw[3], raw[2], raw[1], raw[0]
	g[4], g[5] = raw[5], raw[4]
	g[6], g[7] = raw[7], raw[6]
	copy(g[8:], raw[8:])
	return g, nil
}

// MustParseGUID is ParseGUID for constants in source code; it panics on a malformed literal, never on input.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// Partition is one used entry of the table.
type Partition struct {
	Index             int // 1-based entry number (sgdisk's partition number)
	Type, UUID        GUID
	Name              string
	FirstLBA, LastLBA uint64 // inclusive
	Attributes        uint64
}

// Start is the partition's byte offset on the disk.
func (p Partition) Start() int64 { return int64(p.FirstLBA) * SectorSize }

// Size is the partition's length in bytes.
func (p Partition) Size() int64 { return int64(p.LastLBA-p.FirstLBA+1) * SectorSize }

// Table is a GPT: the disk GUID, the used entries sorted by Index, and what Read found.
type Table struct {
	DiskGUID       GUID
	Partitions     []Partition
	FirstUsableLBA uint64 // as read; Write recomputes both from the disk size
	LastUsableLBA  uint64
	// FromBackup is true when Read had to use the backup header because the primary was damaged.
	FromBackup bool
}

// ByUUID returns the partition with that unique GUID, or nil.
func (t *Table) ByUUID(u GUID) *Partition {
	for i := range t.Partitions {
		if t.Partitions[i].UUID == u {
			return &t.Partitions[i]
		}
	}
	return nil
}

// ByIndex returns the partition with that 1-based entry number, or nil.
func (t *Table) ByIndex(idx int) *Partition {
	for i := range t.Partitions {
		if t.Partitions[i].Index == idx {
			return &t.Partitions[i]
		}
	}
	return nil
}

// UsableRange is the first and last LBA a partition may use on a disk of size bytes when Write lays
// out 128 entries of 128 bytes.
func UsableRange(size int64) (first, last uint64, err error) {
	sectors := uint64(size / SectorSize)
	first = 2 + entriesSectors
	if sectors < 2*first+1 {
		return 0, 0, fmt.Errorf("disk of %d bytes is too small for a GPT (need at least %d sectors)", size, 2*first+1)
	}
	return first, sectors - 1 - entriesSectors - 1, nil
}

// ErrNoTable is returned by Read when neither header is a valid GPT.
var ErrNoTable = errors.New("no valid GPT (primary and backup header both damaged or absent)")

// Read reads the table of a disk image of size bytes. It uses the primary header and entries when both
// CRCs are good, otherwise the backup at the last sector.
func Read(r io.ReaderAt, size int64) (*Table, error) {
	sectors := uint64(size / SectorSize)
	if sectors < 3 {
		return nil, fmt.Errorf("read GPT: disk of %d bytes is too small", size)
	}
	t, perr := ReadCopy(r, size, SectorSize, 1)
	if perr == nil {
		return t, nil
	}
	t, berr := ReadCopy(r, size, SectorSize, sectors-1)
	if berr == nil {
		t.FromBackup = true
		return t, nil
	}
	return nil, fmt.Errorf("read GPT: %w: primary: %v; backup: %v", ErrNoTable, perr, berr)
}

// ReadCopy reads one copy of the table of a disk image of size bytes with sector-byte sectors (512 or
// 4096): the header at lba and its entries, each checked against its CRC32 and every size and count
// bounded. Read uses it for the primary and then the backup copy; fsread, which also reads 4096-byte
// sector images, picks the copies itself. A Table's Start and Size assume 512-byte sectors: with 4096,
// use FirstLBA and LastLBA times the sector size.
func ReadCopy(r io.ReaderAt, size, sector int64, lba uint64) (*Table, error) {
	if sector != 512 && sector != 4096 {
		return nil, fmt.Errorf("header at LBA %d: sector size %d, want 512 or 4096", lba, sector)
	}
	sectors := uint64(size / sector)
	if lba >= sectors {
		return nil, fmt.Errorf("header at LBA %d: outside the %d-sector disk", lba, sectors)
	}
	sec := make([]byte, sector)
	if _, err := r.ReadAt(sec, int64(lba)*sector); err != nil {
		return nil, fmt.Errorf("header at LBA %d: %w", lba, err)
	}
	if string(sec[0:8]) != signature {
		return nil, fmt.Errorf("header at LBA %d: no %q signature", lba, signature)
	}
	hsize := binary.LittleEndian.Uint32(sec[12:])
	if hsize < headerSize || int64(hsize) > sector {
		return nil, fmt.Errorf("header at LBA %d: header size %d out of range", lba, hsize)
	}
	want := binary.LittleEndian.Uint32(sec[16:])
	h := make([]byte, hsize)
	copy(h, sec[:hsize])
	binary.LittleEndian.PutUint32(h[16:], 0)
	if got := crc32.ChecksumIEEE(h); got != want {
		return nil, fmt.Errorf("header at LBA %d: CRC32 %08x, header says %08x", lba, got, want)
	}
	if my := binary.LittleEndian.Uint64(sec[24:]); my != lba {
		return nil, fmt.Errorf("header at LBA %d: says it is at LBA %d", lba, my)
	}
	first := binary.LittleEndian.Uint64(sec[40:])
	last := binary.LittleEndian.Uint64(sec[48:])
	if first > last || last >= sectors {
		return nil, fmt.Errorf("header at LBA %d: usable LBAs %d-%d do not fit a disk of %d sectors", lba, first, last, sectors)
	}
	entLBA := binary.LittleEndian.Uint64(sec[72:])
	n := binary.LittleEndian.Uint32(sec[80:])
	esz := binary.LittleEndian.Uint32(sec[84:])
	if esz < entrySize || esz%8 != 0 || esz > 4096 {
		return nil, fmt.Errorf("header at LBA %d: entry size %d out of range", lba, esz)
	}
	total := uint64(n) * uint64(esz)
	if total > maxEntryBytes {
		return nil, fmt.Errorf("header at LBA %d: %d entries of %d bytes exceed the limit of %d bytes", lba, n, esz, maxEntryBytes)
	}
	if entLBA < 1 || entLBA >= sectors || (total+uint64(sector)-1)/uint64(sector) > sectors-entLBA {
		return nil, fmt.Errorf("header at LBA %d: entry array at LBA %d runs past the disk", lba, entLBA)
	}
	ents := make([]byte, total)
	if _, err := r.ReadAt(ents, int64(entLBA)*sector); err != nil {
		return nil, fmt.Errorf("entries at LBA %d: %w", entLBA, err)
	}
	if got, want := crc32.ChecksumIEEE(ents), binary.LittleEndian.Uint32(sec[88:]); got != want {
		return nil, fmt.Errorf("entries at LBA %d: entry array CRC32 %08x, header says %08x", entLBA, got, want)
	}
	t := &Table{FirstUsableLBA: first, LastUsableLBA: last}
	copy(t.DiskGUID[:], sec[56:72])
	for i := uint32(0); i < n; i++ {
		e := ents[uint64(i)*uint64(esz):]
		var p Partition
		copy(p.Type[:], e[0:16])
		if p.Type.IsZero() {
			continue
		}
		copy(p.UUID[:], e[16:32])
		p.Index = int(i) + 1
		p.FirstLBA = binary.LittleEndian.Uint64(e[32:])
		p.LastLBA = binary.LittleEndian.Uint64(e[40:])
		p.Attributes = binary.LittleEndian.Uint64(e[48:])
		p.Name = decodeName(e[56:128])
		if p.FirstLBA > p.LastLBA || p.LastLBA >= sectors {
			return nil, fmt.Errorf("entry %d: LBAs %d-%d do not fit a disk of %d sectors", p.Index, p.FirstLBA, p.LastLBA, sectors)
		}
		t.Partitions = append(t.Partitions, p)
	}
	return t, nil
}

func decodeName(b []byte) string {
	u := make([]uint16, 0, nameUnits)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

func encodeName(dst []byte, s string) error {
	u := utf16.Encode([]rune(s))
	if len(u) > nameUnits {
		return fmt.Errorf("partition name %q is longer than %d UTF-16 units", s, nameUnits)
	}
	for i, c := range u {
		binary.LittleEndian.PutUint16(dst[2*i:], c)
	}
	return nil
}

// Check reports the first reason the partitions cannot be written to a disk of size bytes: index out of
// 1..128 or repeated, zero type, outside the usable range, overlapping, name too long.
func (t *Table) Check(size int64) error {
	first, last, err := UsableRange(size)
	if err != nil {
		return err
	}
	ps := append([]Partition(nil), t.Partitions...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].FirstLBA < ps[j].FirstLBA })
	seen := map[int]bool{}
	for i, p := range ps {
		if p.Index < 1 || p.Index > numEntries {
			return fmt.Errorf("partition %q: index %d outside 1..%d", p.Name, p.Index, numEntries)
		}
		if seen[p.Index] {
			return fmt.Errorf("partition %q: index %d used twice", p.Name, p.Index)
		}
		seen[p.Index] = true
		if p.Type.IsZero() {
			return fmt.Errorf("partition %d (%q): zero type GUID", p.Index, p.Name)
		}
		if p.FirstLBA < first || p.LastLBA > last || p.FirstLBA > p.LastLBA {
			return fmt.Errorf("partition %d (%q): LBAs %d-%d outside the usable %d-%d", p.Index, p.Name, p.FirstLBA, p.LastLBA, first, last)
		}
		if i > 0 && p.FirstLBA <= ps[i-1].LastLBA {
			return fmt.Errorf("partition %d (%q) overlaps partition %d (%q)", p.Index, p.Name, ps[i-1].Index, ps[i-1].Name)
		}
		if len(utf16.Encode([]rune(p.Name))) > nameUnits {
			return fmt.Errorf("partition %d: name %q is longer than %d UTF-16 units", p.Index, p.Name, nameUnits)
		}
	}
	return nil
}

// Write writes the protective MBR and both copies of the table for a disk of size bytes, with the CRCs
// computed. The backup entries and header are written before the primary, so an interrupted Write leaves
// at least one consistent copy for Read.
func (t *Table) Write(w io.WriterAt, size int64) error {
	if err := t.Check(size); err != nil {
		return fmt.Errorf("write GPT: %w", err)
	}
	first, last, _ := UsableRange(size)
	sectors := uint64(size / SectorSize)
	ents := make([]byte, numEntries*entrySize)
	for _, p := range t.Partitions {
		e := ents[(p.Index-1)*entrySize:]
		copy(e[0:16], p.Type[:])
		copy(e[16:32], p.UUID[:])
		binary.LittleEndian.PutUint64(e[32:], p.FirstLBA)
		binary.LittleEndian.PutUint64(e[40:], p.LastLBA)
		binary.LittleEndian.PutUint64(e[48:], p.Attributes)
		if err := encodeName(e[56:128], p.Name); err != nil {
			return fmt.Errorf("write GPT: %w", err)
		}
	}
	entCRC := crc32.ChecksumIEEE(ents)
	header := func(my, alt, entLBA uint64) []byte {
		h := make([]byte, SectorSize)
		copy(h, signature)
		binary.LittleEndian.PutUint32(h[8:], revision)
		binary.LittleEndian.PutUint32(h[12:], headerSize)
		binary.LittleEndian.PutUint64(h[24:], my)
		binary.LittleEndian.PutUint64(h[32:], alt)
		binary.LittleEndian.PutUint64(h[40:], first)
		binary.LittleEndian.PutUint64(h[48:], last)
		copy(h[56:72], t.DiskGUID[:])
		binary.LittleEndian.PutUint64(h[72:], entLBA)
		binary.LittleEndian.PutUint32(h[80:], numEntries)
		binary.LittleEndian.PutUint32(h[84:], entrySize)
		binary.LittleEndian.PutUint32(h[88:], entCRC)
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:headerSize]))
		return h
	}
	backupEnt := sectors - 1 - entriesSectors
	writes := []struct {
		off int64
		b   []byte
	}{
		{int64(backupEnt) * SectorSize, ents},
		{int64(sectors-1) * SectorSize, header(sectors-1, 1, backupEnt)},
		{0, protectiveMBR(sectors)},
		{2 * SectorSize, ents},
		{SectorSize, header(1, sectors-1, 2)},
	}
	for _, wr := range writes {
		if _, err := w.WriteAt(wr.b, wr.off); err != nil {
			return fmt.Errorf("write GPT at byte %d: %w", wr.off, err)
		}
	}
	t.FirstUsableLBA, t.LastUsableLBA, t.FromBackup = first, last, false
	return nil
}

func protectiveMBR(sectors uint64) []byte {
	m := make([]byte, SectorSize)
	p := m[446:]
	p[1], p[2], p[3] = 0x00, 0x02, 0x00 // CHS of LBA 1
	p[4] = 0xEE
	p[5], p[6], p[7] = 0xFF, 0xFF, 0xFF
	binary.LittleEndian.PutUint32(p[8:], 1)
	n := sectors - 1
	if n > 0xFFFFFFFF {
		n = 0xFFFFFFFF
	}
	binary.LittleEndian.PutUint32(p[12:], uint32(n))
	m[510], m[511] = 0x55, 0xAA
	return m
}

// Equal reports whether two tables describe the same disk GUID and partitions (read-side fields ignored).
func (t *Table) Equal(o *Table) bool {
	if t.DiskGUID != o.DiskGUID || len(t.Partitions) != len(o.Partitions) {
		return false
	}
	for i := range t.Partitions {
		if t.Partitions[i] != o.Partitions[i] {
			return false
		}
	}
	return bytes.Equal(t.DiskGUID[:], o.DiskGUID[:])
}
