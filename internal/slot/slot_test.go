package slot

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stratalinux/strata/internal/gpt"
)

// attrs parses the 16 hex digits of sgdisk's "Attribute flags:" line (node-os.md §1).
func attrs(t *testing.T, s string) uint64 {
	t.Helper()
	var v uint64
	if _, err := fmt.Sscanf(s, "%016x", &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDecodeEncodeFlatcarStrings(t *testing.T) {
	for _, c := range []struct {
		hex  string
		want Attr
	}{
		{"0101000000000000", Attr{Priority: 1, Tries: 0, Successful: true}},
		{"0012000000000000", Attr{Priority: 2, Tries: 1}},
		{"0002000000000000", Attr{Priority: 2}},
		{"0000000000000000", Attr{}},
		{"01ff000000000000", Attr{Priority: 15, Tries: 15, Successful: true}},
	} {
		a := attrs(t, c.hex)
		if got := Decode(a); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.hex, got, c.want)
		}
		if got := fmt.Sprintf("%016x", c.want.Encode(0)); got != c.hex {
			t.Errorf("Encode(%+v) = %s, want %s", c.want, got, c.hex)
		}
	}
	// Other bits survive: required (0), legacy boot (2), read-only (60), no-auto (63), bit 57.
	other := uint64(1) | 1<<2 | 1<<57 | 1<<60 | 1<<63
	got := Attr{Priority: 3, Tries: 2, Successful: true}.Encode(other | attrs(t, "00ff000000000000"))
	if got != other|attrs(t, "0123000000000000") {
		t.Errorf("other bits: %016x", got)
	}
	if Decode(Attr{Priority: 200}.Encode(0)).Priority != 15 {
		t.Error("priority not clamped")
	}
}

func two(a, b Attr) []Slot {
	return []Slot{{Name: "A", Index: 3, UUID: USRA, Attr: a}, {Name: "B", Index: 4, UUID: USRB, Attr: b}}
}

func TestNext(t *testing.T) {
	for _, c := range []struct {
		name      string
		a, b      Attr
		want      string
		decrement bool
		err       error
	}{
		{"fresh disk", Attr{1, 0, true}, Attr{}, "A", false, nil},
		{"armed B", Attr{1, 0, true}, Attr{2, 1, false}, "B", true, nil},
		{"B exhausted", Attr{1, 0, true}, Attr{2, 0, false}, "A", false, nil},
		{"tie goes to lower index", Attr{2, 0, true}, Attr{2, 0, true}, "A", false, nil},
		{"tie with tries", Attr{1, 1, false}, Attr{1, 3, false}, "A", true, nil},
		{"priority 0 never", Attr{0, 5, true}, Attr{1, 0, true}, "B", false, nil},
		{"all exhausted", Attr{1, 0, false}, Attr{2, 0, false}, "", false, ErrNoBootable},
		{"all zero", Attr{}, Attr{}, "", false, ErrNoBootable},
	} {
		got, dec, err := Next(two(c.a, c.b))
		if !errors.Is(err, c.err) || got.Name != c.want || dec != c.decrement {
			t.Errorf("%s: %s %v %v, want %s %v %v", c.name, got.Name, dec, err, c.want, c.decrement, c.err)
		}
	}
	// Order of the slice does not matter, the entry number does.
	s := two(Attr{2, 0, true}, Attr{2, 0, true})
	s[0], s[1] = s[1], s[0]
	if got, _, _ := Next(s); got.Name != "A" {
		t.Errorf("reversed slice: %s", got.Name)
	}
}

func TestCycle(t *testing.T) {
	// The feasibility run of node-os.md §1: A good, install B, B fails, A boots again.
	s := two(Attr{1, 0, true}, Attr{})
	s = Arm(s, "B")
	if s[0].Attr != (Attr{1, 0, true}) || s[1].Attr != (Attr{2, 1, false}) {
		t.Fatalf("Arm: %+v", s)
	}
	if fmt.Sprintf("%016x", s[1].Attr.Encode(0)) != "0012000000000000" {
		t.Fatal("armed B bits")
	}
	got, dec, _ := Next(s)
	if got.Name != "B" || !dec {
		t.Fatalf("after arm: %s %v", got.Name, dec)
	}
	s = Decrement(s, "B")
	if s[1].Attr != (Attr{2, 0, false}) {
		t.Fatalf("Decrement: %+v", s[1].Attr)
	}
	if got, _, _ := Next(s); got.Name != "A" {
		t.Fatalf("after failed B: %s", got.Name)
	}
	// Second path: B boots and is marked good.
	g := MarkGood(Arm(two(Attr{1, 0, true}, Attr{}), "B"), "B")
	if g[1].Attr != (Attr{2, 0, true}) || g[0].Attr != (Attr{1, 0, true}) {
		t.Fatalf("MarkGood: %+v", g)
	}
	// Rollback from B to A: A on top, B stays good below.
	r := Rollback(g, "B")
	if r[0].Attr != (Attr{2, 0, true}) || r[1].Attr != (Attr{1, 0, true}) {
		t.Fatalf("Rollback: %+v", r)
	}
	if got, _, _ := Next(r); got.Name != "A" {
		t.Fatalf("after rollback: %s", got.Name)
	}
	// Rollback to a slot never marked good is refused and changes nothing.
	fresh := two(Attr{1, 0, true}, Attr{})
	if CanRollback(fresh, "A") == nil {
		t.Fatal("rollback to empty B allowed")
	}
	if r := Rollback(fresh, "A"); r[0].Attr != fresh[0].Attr || r[1].Attr != fresh[1].Attr {
		t.Fatalf("refused rollback changed slots: %+v", r)
	}
	// MarkGood on an already-good top slot is stable.
	if m := MarkGood(fresh, "A"); m[0].Attr != (Attr{1, 0, true}) || m[1].Attr != (Attr{}) {
		t.Fatalf("MarkGood fresh: %+v", m)
	}
}

func TestSlotsAndApply(t *testing.T) {
	tb := &gpt.Table{Partitions: []gpt.Partition{
		{Index: 1, Type: gpt.MustParseGUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b"), Name: "EFI-SYSTEM"},
		{Index: 4, Type: USRType, UUID: USRB, Name: "USR-B", Attributes: 1 << 60},
		{Index: 3, Type: USRType, UUID: USRA, Name: "USR-A", Attributes: attrs(t, "0101000000000000") | 1},
	}}
	s := Slots(tb)
	if len(s) != 2 || s[0].Name != "A" || s[0].Index != 3 || s[1].Name != "B" || s[0].Attr != (Attr{1, 0, true}) {
		t.Fatalf("Slots: %+v", s)
	}
	Apply(tb, Arm(s, "B"))
	if a := tb.ByIndex(4).Attributes; a != 1<<60|attrs(t, "0012000000000000") {
		t.Fatalf("B attrs %016x", a)
	}
	if a := tb.ByIndex(3).Attributes; a != 1|attrs(t, "0101000000000000") {
		t.Fatalf("A attrs %016x", a)
	}
}
