package elftest

import (
	"bytes"
	"debug/elf"
	"testing"
)

// debug/elf reads it, with the one program header of the asked type.
func TestWithProg(t *testing.T) {
	for _, typ := range []elf.ProgType{elf.PT_LOAD, elf.PT_INTERP} {
		f, err := elf.NewFile(bytes.NewReader(WithProg(uint32(typ))))
		if err != nil {
			t.Fatalf("%v: %v", typ, err)
		}
		if f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC || len(f.Progs) != 1 || f.Progs[0].Type != typ {
			t.Fatalf("%v: machine %v type %v progs %d", typ, f.Machine, f.Type, len(f.Progs))
		}
	}
}
