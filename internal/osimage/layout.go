// Package osimage makes and updates Strata OS disk images: Flatcar's GPT layout (EFI-SYSTEM, USR-A,
// USR-B, OEM, ROOT with Flatcar's type GUIDs, partition numbers 1, 3, 4, 6, 9 and USR-A/USR-B UUIDs),
// the slot record at the end of each USR partition, OS payloads (fs image + dm-verity tree + record),
// Bake (a whole disk from a /usr tree or image, a kernel and extensions) and Install (a payload into the
// inactive slot, verified before it is armed). Decisions are pure functions; Bake and Install are the
// thin layers that write.
package osimage

import (
	"crypto/sha256"
	"fmt"

	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/slot"
)

// MiB is the alignment of every partition.
const MiB = 1 << 20

// Partition type GUIDs of Flatcar's layout (node-os.md §2).
var (
	TypeESP  = gpt.MustParseGUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
	TypeOEM  = gpt.MustParseGUID("0fc63daf-8483-4772-8e79-3d69d8477de4")
	TypeRoot = gpt.MustParseGUID("3884dd41-8582-4404-b9a8-e9b84f2df50e") // flatcar-resize
)

// Partition numbers; update_engine assumes USR-A=3, USR-B=4.
const (
	IndexESP  = 1
	IndexUSRA = 3
	IndexUSRB = 4
	IndexOEM  = 6
	IndexRoot = 9
)

// Sizes are the partition sizes in bytes; zero takes the default, others are rounded up to 1 MiB.
type Sizes struct{ ESP, USR, OEM, Root int64 }

// Defaults are small enough for test disks: a 64 MiB ESP, 256 MiB slots, 16 MiB OEM, 128 MiB ROOT.
var defaultSizes = Sizes{ESP: 64 * MiB, USR: 256 * MiB, OEM: 16 * MiB, Root: 128 * MiB}

func (s Sizes) withDefaults() Sizes {
	pick := func(v, d int64) int64 {
		if v <= 0 {
			return d
		}
		return alignUp(v, MiB)
	}
	return Sizes{pick(s.ESP, defaultSizes.ESP), pick(s.USR, defaultSizes.USR), pick(s.OEM, defaultSizes.OEM), pick(s.Root, defaultSizes.Root)}
}

// DeriveGUID is a version-4-shaped GUID from a seed and a purpose, so the same inputs give the same disk.
func DeriveGUID(seed, purpose string) gpt.GUID {
	sum := sha256.Sum256([]byte("strata-osimage\x00" + seed + "\x00" + purpose))
	var g gpt.GUID
	copy(g[:], sum[:16])
	g[7] = g[7]&0x0f | 0x40 // on-disk byte 7 is the high byte of the third field
	g[8] = g[8]&0x3f | 0x80
	return g
}

// Layout is the table of a new disk and the disk's size: partitions in Flatcar's order, 1 MiB aligned,
// starting at 1 MiB. USR-A starts as the good, only bootable slot (priority 1, tries 0, successful).
func Layout(sizes Sizes, seed string) (*gpt.Table, int64) {
	sz := sizes.withDefaults()
	t := &gpt.Table{DiskGUID: DeriveGUID(seed, "disk")}
	next := int64(MiB)
	add := func(idx int, typ, uuid gpt.GUID, name string, size int64, attrs uint64) {
		t.Partitions = append(t.Partitions, gpt.Partition{Index: idx, Type: typ, UUID: uuid, Name: name,
			FirstLBA: uint64(next / gpt.SectorSize), LastLBA: uint64((next+size)/gpt.SectorSize - 1), Attributes: attrs})
		next += size
	}
	add(IndexESP, TypeESP, DeriveGUID(seed, "EFI-SYSTEM"), "EFI-SYSTEM", sz.ESP, 0)
	add(IndexUSRA, slot.USRType, slot.USRA, "USR-A", sz.USR, slot.Attr{Priority: 1, Successful: true}.Encode(0))
	add(IndexUSRB, slot.USRType, slot.USRB, "USR-B", sz.USR, 0)
	add(IndexOEM, TypeOEM, DeriveGUID(seed, "OEM"), "OEM", sz.OEM, 0)
	add(IndexRoot, TypeRoot, DeriveGUID(seed, "ROOT"), "ROOT", sz.Root, 0)
	return t, next + MiB // room for the backup table
}

// SlotRange is the byte range of a slot's partition.
func SlotRange(t *gpt.Table, s slot.Slot) (start, size int64, err error) {
	p := t.ByIndex(s.Index)
	if p == nil {
		return 0, 0, fmt.Errorf("slot %s: no partition %d", s.Name, s.Index)
	}
	return p.Start(), p.Size(), nil
}
