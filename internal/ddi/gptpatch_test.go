package ddi

import (
	"encoding/binary"
	"hash/crc32"
	"unicode/utf16"

	"github.com/stratalinux/strata/internal/gpt"
)

// patchGPT rewrites both entry arrays of the GPT in b with tb's partitions
// as they are (no checks) and fixes the CRCs: tables gpt.Write would refuse.
func patchGPT(b []byte, tb *gpt.Table) {
	last := int64(len(b))/gpt.SectorSize - 1
	for _, lba := range []int64{1, last} {
		h := b[lba*gpt.SectorSize : lba*gpt.SectorSize+gpt.SectorSize]
		entLBA := int64(binary.LittleEndian.Uint64(h[72:]))
		n := int(binary.LittleEndian.Uint32(h[80:]))
		sz := int(binary.LittleEndian.Uint32(h[84:]))
		ents := b[entLBA*gpt.SectorSize : entLBA*gpt.SectorSize+int64(n*sz)]
		clear(ents)
		for _, p := range tb.Partitions {
			e := ents[(p.Index-1)*sz : p.Index*sz]
			copy(e[0:], p.Type[:])
			copy(e[16:], p.UUID[:])
			binary.LittleEndian.PutUint64(e[32:], p.FirstLBA)
			binary.LittleEndian.PutUint64(e[40:], p.LastLBA)
			binary.LittleEndian.PutUint64(e[48:], p.Attributes)
			for i, u := range utf16.Encode([]rune(p.Name)) {
				binary.LittleEndian.PutUint16(e[56+2*i:], u)
			}
		}
		binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(ents))
		hs := binary.LittleEndian.Uint32(h[12:])
		binary.LittleEndian.PutUint32(h[16:], 0)
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:hs]))
	}
}
