// Package elftest makes the smallest ELF files tests need: an x86-64
// header with one program header, enough for debug/elf to tell a static
// binary (no PT_INTERP) from a dynamic one.
package elftest

import (
	"bytes"
	"encoding/binary"
)

// WithProg is an x86-64 ELF executable header with one program header of
// type typ (for example uint32(elf.PT_LOAD), or uint32(elf.PT_INTERP) for a
// dynamically linked binary).
func WithProg(typ uint32) []byte {
	var b bytes.Buffer
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	w := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	w(uint16(2))      // ET_EXEC
	w(uint16(62))     // EM_X86_64
	w(uint32(1))      // version
	w(uint64(0x1000)) // entry
	w(uint64(64))     // phoff
	w(uint64(0))      // shoff
	w(uint32(0))      // flags
	w(uint16(64))     // ehsize
	w(uint16(56))     // phentsize
	w(uint16(1))      // phnum
	w(uint16(64))     // shentsize
	w(uint16(0))      // shnum
	w(uint16(0))      // shstrndx
	w(typ)
	w(uint32(5))
	for i := 0; i < 6; i++ {
		w(uint64(0))
	}
	return b.Bytes()
}
