// Package slot is the A/B /usr slot policy on a GPT: the gptprio attribute bits Flatcar's GRUB and
// update_engine use (priority bits 48-51, tries left 52-55, successful 56) and the operations on them —
// which slot boots next (GRUB's gptprio.next), arming a freshly written slot (flatcar-postinst), marking
// the booted slot good (flatcar-setgoodroot) and rolling back. Everything here is pure: it takes slots
// and returns slots; the caller writes the table with internal/gpt.
package slot

import (
	"errors"
	"fmt"
	"sort"

	"github.com/stratalinux/strata/internal/gpt"
)

// Flatcar's /usr partition type and the partition UUIDs of USR-A and USR-B.
var (
	USRType = gpt.MustParseGUID("5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6")
	USRA    = gpt.MustParseGUID("7130c94a-213a-4e5a-8e26-6cce9662f132")
	USRB    = gpt.MustParseGUID("e03dd35c-7c2d-4a47-b3fe-27f15780a57c")
)

const (
	priorityShift = 48
	triesShift    = 52
	successfulBit = 56
	fieldMask     = 0xf
	// MaxPriority is the largest value the 4-bit priority field holds.
	MaxPriority = 15
)

// Attr is the gptprio state of one slot.
type Attr struct {
	Priority, Tries uint8 // 0..15 each
	Successful      bool
}

// Decode takes the gptprio fields out of a GPT entry's attribute word.
func Decode(attrs uint64) Attr {
	return Attr{
		Priority:   uint8(attrs >> priorityShift & fieldMask),
		Tries:      uint8(attrs >> triesShift & fieldMask),
		Successful: attrs>>successfulBit&1 == 1,
	}
}

// Encode puts a into attrs, keeping every other bit (required, legacy-boot, read-only, ...). Values
// above 15 are clamped to 15.
func (a Attr) Encode(attrs uint64) uint64 {
	attrs &^= fieldMask<<priorityShift | fieldMask<<triesShift | 1<<successfulBit
	attrs |= uint64(min(a.Priority, MaxPriority)) << priorityShift
	attrs |= uint64(min(a.Tries, MaxPriority)) << triesShift
	if a.Successful {
		attrs |= 1 << successfulBit
	}
	return attrs
}

// String is the form cgpt/sgdisk users read: "priority=1 tries=0 successful=1".
func (a Attr) String() string {
	s := 0
	if a.Successful {
		s = 1
	}
	return fmt.Sprintf("priority=%d tries=%d successful=%d", a.Priority, a.Tries, s)
}

// Bootable reports whether gptprio would consider the slot at all.
func (a Attr) Bootable() bool { return a.Priority > 0 && (a.Tries > 0 || a.Successful) }

// Slot is one /usr partition of the table.
type Slot struct {
	Name  string // "A", "B" (by Flatcar's partition UUIDs or the USR-A/USR-B labels), else the label
	Index int    // GPT entry number
	UUID  gpt.GUID
	Attr  Attr
}

// Slots lists the partitions of Flatcar's /usr type, in entry order.
func Slots(t *gpt.Table) []Slot {
	var out []Slot
	for _, p := range t.Partitions {
		if p.Type != USRType {
			continue
		}
		name := p.Name
		switch {
		case p.UUID == USRA || p.Name == "USR-A":
			name = "A"
		case p.UUID == USRB || p.Name == "USR-B":
			name = "B"
		}
		out = append(out, Slot{Name: name, Index: p.Index, UUID: p.UUID, Attr: Decode(p.Attributes)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}

// ErrNoBootable is returned by Next when no slot has priority and either tries left or success.
var ErrNoBootable = errors.New("no bootable /usr slot: every slot has priority 0 or no tries left and not successful")

// Next is GRUB's gptprio.next: the slot with the highest priority among those with tries left or marked
// successful (ties go to the lower entry number). decrement says the boot uses up one try.
func Next(s []Slot) (chosen Slot, decrement bool, err error) {
	var best *Slot
	for _, x := range sorted(s) {
		if x.Attr.Bootable() && (best == nil || x.Attr.Priority > best.Attr.Priority) {
			best = &x
		}
	}
	if best == nil {
		return Slot{}, false, ErrNoBootable
	}
	return *best, best.Attr.Tries > 0, nil
}

// Decrement returns s with one try taken from the named slot (what the boot loader writes back before
// booting it). Successful slots with no tries are unchanged.
func Decrement(s []Slot, name string) []Slot {
	out := clone(s)
	for i := range out {
		if out[i].Name == name && out[i].Attr.Tries > 0 {
			out[i].Attr.Tries--
		}
	}
	return out
}

// Arm is flatcar-postinst's `cgpt add -S0 -T1; cgpt prioritize`: the freshly written target gets the
// highest priority, one try, not successful; the others keep their order below it.
func Arm(s []Slot, target string) []Slot {
	out := prioritize(s, target)
	for i := range out {
		if out[i].Name == target {
			out[i].Attr.Tries, out[i].Attr.Successful = 1, false
		}
	}
	return out
}

// MarkGood is flatcar-setgoodroot's `cgpt add -S1 -T0; cgpt prioritize` on the booted slot.
func MarkGood(s []Slot, booted string) []Slot {
	out := prioritize(s, booted)
	for i := range out {
		if out[i].Name == booted {
			out[i].Attr.Tries, out[i].Attr.Successful = 0, true
		}
	}
	return out
}

// Other is the slot that is not the named one (for two slots), or an error.
func Other(s []Slot, name string) (Slot, error) {
	var found *Slot
	seen := false
	for i := range s {
		if s[i].Name == name {
			seen = true
			continue
		}
		if found != nil {
			return Slot{}, fmt.Errorf("more than one other slot than %s", name)
		}
		found = &s[i]
	}
	if !seen {
		return Slot{}, fmt.Errorf("no slot %s in the table", name)
	}
	if found == nil {
		return Slot{}, fmt.Errorf("no slot other than %s in the table", name)
	}
	return *found, nil
}

// CanRollback says why Rollback would not make the other slot boot: it must have been marked good.
func CanRollback(s []Slot, booted string) error {
	o, err := Other(s, booted)
	if err != nil {
		return err
	}
	if !o.Attr.Successful {
		return fmt.Errorf("slot %s was never marked good (%s); nothing known-good to roll back to", o.Name, o.Attr)
	}
	return nil
}

// Rollback makes the slot other than booted the next one to boot (cgpt prioritize on it); with
// CanRollback false the result is s unchanged.
func Rollback(s []Slot, booted string) []Slot {
	if CanRollback(s, booted) != nil {
		return clone(s)
	}
	o, _ := Other(s, booted)
	return prioritize(s, o.Name)
}

// Apply writes each slot's Attr into its partition's attribute word, keeping the other bits.
func Apply(t *gpt.Table, s []Slot) {
	for _, x := range s {
		if p := t.ByIndex(x.Index); p != nil {
			p.Attributes = x.Attr.Encode(p.Attributes)
		}
	}
}

// ByName returns the named slot.
func ByName(s []Slot, name string) (Slot, error) {
	for _, x := range s {
		if x.Name == name {
			return x, nil
		}
	}
	return Slot{}, fmt.Errorf("no slot %s in the table", name)
}

// prioritize is cgpt prioritize: target on top, the others with a nonzero priority renumbered below it
// in their current order (priority, then entry number); priority-0 slots stay 0.
func prioritize(s []Slot, target string) []Slot {
	out := clone(s)
	var others []*Slot
	for i := range out {
		if out[i].Name != target && out[i].Attr.Priority > 0 {
			others = append(others, &out[i])
		}
	}
	sort.SliceStable(others, func(i, j int) bool {
		if others[i].Attr.Priority != others[j].Attr.Priority {
			return others[i].Attr.Priority > others[j].Attr.Priority
		}
		return others[i].Index < others[j].Index
	})
	top := min(len(others)+1, MaxPriority)
	for i, o := range others {
		o.Attr.Priority = uint8(max(top-1-i, 1))
	}
	for i := range out {
		if out[i].Name == target {
			out[i].Attr.Priority = uint8(top)
		}
	}
	return out
}

func clone(s []Slot) []Slot { return append([]Slot(nil), s...) }

func sorted(s []Slot) []Slot {
	out := clone(s)
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}
