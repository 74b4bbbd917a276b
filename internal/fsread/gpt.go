package fsread

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/stratalinux/strata/internal/fsmagic"
	"github.com/stratalinux/strata/internal/gpt"
)

// Partition is a GPT partition table entry.
type Partition struct {
	// Index is the 1-based partition number (as in /dev/sda1).
	Index int
	// Type and UUID are lowercase dashed UUIDs.
	Type  string
	UUID  string
	Label string
	// Flags are the entry's attribute bits (bit 60 read-only, 62 hidden,
	// 63 no-auto in the Discoverable Partitions Specification).
	Flags uint64
	// Offset and Size locate the partition in the image, in bytes.
	Offset, Size int64
}

// GPT attribute flags from the Discoverable Partitions Specification.
const (
	GPTFlagReadOnly = 1 << 60
	GPTFlagNoAuto   = 1 << 63
)

// LinuxGenericType is the GPT type UUID for generic Linux data.
const LinuxGenericType = "0fc63daf-8483-4772-8e79-3d69d8477de4"

// dpsTypes returns the Discoverable Partitions Specification type UUIDs
// of the root and usr partitions for a systemd architecture name. It is a
// switch rather than a map so that the table cannot be modified.
func dpsTypes(arch string) (root, usr string, ok bool) {
	switch arch {
	case "alpha":
		return "6523f8ae-3eb1-4e2a-a05a-18b695ae656f", "e18cf08c-33ec-4c0d-8246-c6c6fb3da024", true
	case "arc":
		return "d27f46ed-2919-4cb8-bd25-9531f3c16534", "7978a683-6316-4922-bbee-38bff5a2fecc", true
	case "arm":
		return "69dad710-2ce4-4e3c-b16c-21a1d49abed3", "7d0359a3-02b3-4f0a-865c-654403e70625", true
	case "arm64":
		return "b921b045-1df0-41c3-af44-4c6f280d3fae", "b0e01050-ee5f-4390-949a-9101b17104e9", true
	case "ia64":
		return "993d8d3d-f80e-4225-855a-9daf8ed7ea97", "4301d2a6-4e3b-4b2a-bb94-9e0b2c4225ea", true
	case "loongarch64":
		return "77055800-792c-4f94-b39a-98c91b762bb6", "e611c702-575c-4cbe-9a46-434fa0bf7e3f", true
	case "mips-le":
		return "37c58c8a-d913-4156-a25f-48b1b64e07f0", "0f4868e9-9952-4706-979f-3ed3a473e947", true
	case "mips64-le":
		return "700bda43-7a34-4507-b179-eeb93d7a7ca3", "c97c1f32-ba06-40b4-9f22-236061b08aa8", true
	case "parisc":
		return "1aacdb3b-5444-4138-bd9e-e5c2239b2346", "dc4a4480-6917-4262-a4ec-db9384949f25", true
	case "ppc":
		return "1de3f1ef-fa98-47b5-8dcd-4a860a654d78", "7d14fec5-cc71-415d-9d6c-06bf0b3c3eaf", true
	case "ppc64":
		return "912ade1d-a839-4913-8964-a10eee08fbd2", "2c9739e2-f068-46b3-9fd0-01c5a9afbcca", true
	case "ppc64-le":
		return "c31c45e6-3f39-412e-80fb-4809c4980599", "15bb03af-77e7-4d4a-b12b-c0d084f7491c", true
	case "riscv32":
		return "60d5a7fe-8e7d-435c-b714-3dd8162144e1", "b933fb22-5c3f-4f91-af90-e2bb0fa50702", true
	case "riscv64":
		return "72ec70a6-cf74-40e6-bd49-4bda08e8f224", "beaec34b-8442-439b-a40b-984381ed097d", true
	case "s390":
		return "08a7acea-624c-4a20-91e8-6e0fa67d23f9", "cd0f869b-d0fb-4ca0-b141-9ea87cc78d66", true
	case "s390x":
		return "5eead9a9-fe09-4a1e-a1d7-520d00531306", "8a4f5770-50aa-4ed3-874a-99b710db6fea", true
	case "tilegx":
		return "c50cdd70-3862-4cc3-90e1-809a8c93ee2c", "55497029-c7c1-44cc-aa39-815ed1558630", true
	case "x86":
		return "44479540-f297-41b2-9af7-d131d5f0458a", "75250d76-8cc6-458e-bd66-bd47cc81a812", true
	case "x86-64":
		return "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", "8484680c-9521-48c6-9c11-b0720656f69e", true
	}
	return "", "", false
}

// RootPartitionType returns the Discoverable Partitions Specification type
// UUID of the root partition for a systemd architecture name.
func RootPartitionType(arch string) (string, bool) {
	root, _, ok := dpsTypes(arch)
	return root, ok
}

// UsrPartitionType returns the Discoverable Partitions Specification type
// UUID of the usr partition for a systemd architecture name.
func UsrPartitionType(arch string) (string, bool) {
	_, usr, ok := dpsTypes(arch)
	return usr, ok
}

// ReadGPT reads the GUID partition table of a disk image with 512- or
// 4096-byte sectors. It verifies the header and entry array CRCs, falling
// back to the backup header at the end of the disk when the primary one is
// damaged, and returns the used entries in table order.
func ReadGPT(r io.ReaderAt, size int64) ([]Partition, error) {
	rd := &reader{r: r, size: size}
	var errs []error
	for _, sector := range []int64{512, 4096} {
		if size < 2*sector {
			continue
		}
		sig := make([]byte, 8)
		if err := rd.readAt(sig, sector); err != nil {
			return nil, fmt.Errorf("read GPT header: %w", err)
		}
		if string(sig) != fsmagic.GPTSignature {
			continue
		}
		parts, err := readGPTAt(rd, sector, 1)
		if err == nil {
			return parts, nil
		}
		errs = append(errs, fmt.Errorf("primary GPT header (%d-byte sectors): %w", sector, err))
		last := size/sector - 1
		if last > 1 {
			parts, berr := readGPTAt(rd, sector, last)
			if berr == nil {
				return parts, nil
			}
			errs = append(errs, fmt.Errorf("backup GPT header at LBA %d: %w", last, berr))
		}
	}
	if len(errs) == 0 {
		return nil, errors.New("no GPT header (\"EFI PART\") at LBA 1 for 512- or 4096-byte sectors")
	}
	return nil, fmt.Errorf("read GPT: %w", errors.Join(errs...))
}

// readGPTAt reads the copy of the table at lba through gpt.ReadCopy, the
// one GPT parser (CRCs, and every size and count from the header bounded),
// and turns its entries into Partitions.
func readGPTAt(rd *reader, sector, lba int64) ([]Partition, error) {
	t, err := gpt.ReadCopy(readerAt{rd}, rd.size, sector, uint64(lba))
	if err != nil {
		return nil, err
	}
	parts := make([]Partition, 0, len(t.Partitions))
	for _, p := range t.Partitions {
		// LBA 0 is the protective MBR: no partition may start there.
		if p.FirstLBA == 0 {
			return nil, fmt.Errorf("partition %d spans LBA %d..%d, over the protective MBR", p.Index, p.FirstLBA, p.LastLBA)
		}
		parts = append(parts, Partition{
			Index:  p.Index,
			Type:   p.Type.String(),
			UUID:   p.UUID.String(),
			Label:  p.Name,
			Flags:  p.Attributes,
			Offset: int64(p.FirstLBA) * sector,
			Size:   int64(p.LastLBA-p.FirstLBA+1) * sector,
		})
	}
	return parts, nil
}

// readerAt reads through the image's bounds-checked reader.
type readerAt struct{ rd *reader }

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	if err := r.rd.readAt(p, off); err != nil {
		return 0, err
	}
	return len(p), nil
}

// pickPartition chooses the partition holding a system extension's file
// system, as systemd-dissect does for sysext images.
func pickPartition(parts []Partition, arch string) (Partition, error) {
	root, usr, ok := dpsTypes(arch)
	if !ok {
		return Partition{}, fmt.Errorf("unknown architecture %q (want a systemd architecture name such as x86-64 or arm64)", arch)
	}
	find := func(typ string) (*Partition, error) {
		var found *Partition
		for i := range parts {
			p := &parts[i]
			if p.Type != typ || p.Flags&GPTFlagNoAuto != 0 {
				continue
			}
			if found != nil {
				return nil, fmt.Errorf("partitions %d and %d both have type %s", found.Index, p.Index, typ)
			}
			found = p
		}
		return found, nil
	}
	for _, typ := range []string{root, usr} {
		p, err := find(typ)
		if err != nil {
			return Partition{}, err
		}
		if p != nil {
			return *p, nil
		}
	}
	if len(parts) == 1 && parts[0].Type == LinuxGenericType && parts[0].Flags&GPTFlagNoAuto == 0 {
		return parts[0], nil
	}
	desc := make([]string, 0, len(parts))
	for _, p := range parts {
		desc = append(desc, fmt.Sprintf("%d:%s", p.Index, p.Type))
	}
	return Partition{}, fmt.Errorf("no root (%s) or usr (%s) partition for %s among [%s]", root, usr, arch, strings.Join(desc, " "))
}
