package osboot

import (
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/osimage"
	"github.com/stratalinux/strata/internal/slot"
)

// Trust modes: where the root hash of /usr comes from.
const (
	// TrustCmdline: verity.usr= and verity.usrhash= on the command line pin slot and hash (Flatcar,
	// systemd's usrhash=); a kernel command line per slot, protected with the kernel.
	TrustCmdline = "cmdline"
	// TrustRecord: one shared kernel and command line; the slot is picked on the GPT and the hash read
	// from its slot record. Protects against corruption and torn writes, not against a disk writer.
	TrustRecord = "record"
	// TrustSigned: as TrustRecord, but the record's root hash carries a PKCS#7 signature by a
	// certificate the initrd holds in /etc/verity.d; an unsigned or untrusted slot is refused. Guards
	// against a disk writer too, as long as the kernel and initrd are not on that disk (or are signed).
	TrustSigned = "signed"
)

// SlotRecord is what reading a slot's record gave.
type SlotRecord struct {
	Record osimage.Record
	Err    error
}

// Mount is one mount /init makes.
type Mount struct {
	Source   string // a device path, or a spec (LABEL=, PARTUUID=) resolved on the disk
	Target   string
	FSType   string
	ReadOnly bool
}

// BootPlan is what to boot.
type BootPlan struct {
	Trust string
	Slot  slot.Slot // the chosen slot (Attr as before this boot)
	// Partition is the slot's partition on the disk.
	Partition gpt.Partition
	// Decrement: this boot uses up one try; Slots (with the decremented try) are written to the GPT
	// before anything is mounted.
	Decrement bool
	Slots     []slot.Slot
	Record    osimage.Record
	RootHash  []byte
	// Signer is, with TrustSigned, the subject of the certificate that signed the root hash.
	Signer string
	// Warning is a note for the console (e.g. the record's root hash differs from the pinned one).
	Warning string
	Mounts  []Mount // in order: ROOT at /sysroot, then /usr
	Init    string
}

// SlotLabel names a slot for messages: "B (2.0.0)".
func (p BootPlan) SlotLabel() string {
	if p.Record.Version != "" {
		return p.Slot.Name + " (" + p.Record.Version + ")"
	}
	return p.Slot.Name
}

// SlotError is a failure after a slot was chosen: /init writes the decremented tries (if any), says
// Err on the console and reboots, so the next boot takes the other slot.
type SlotError struct {
	Plan BootPlan
	Err  error
}

func (e *SlotError) Error() string {
	return fmt.Sprintf("slot %s: %v", e.Plan.SlotLabel(), e.Err)
}

func (e *SlotError) Unwrap() error { return e.Err }

// UsrMapper is the device-mapper name of the verity device; osimage.RunningDisk looks for it.
const UsrMapper = "usr"

// Plan decides what to boot from the command line, the disk's GPT and the slots' records (keyed by
// slot name). With trusted certificates (the initrd's verity.d) a slot picked on the GPT must carry a
// root hash signature by one of them. An error that is a *SlotError came after the slot was chosen (its
// plan says what to write back before rebooting); any other error means no slot could be chosen.
func Plan(o Options, t *gpt.Table, records map[string]SlotRecord, trusted []*x509.Certificate) (BootPlan, error) {
	slots := slot.Slots(t)
	p := BootPlan{Init: o.Init, Slots: slots}
	if o.Pinned() {
		idx, err := ResolveSpec(o.UsrDevice, t, nil)
		if err != nil {
			return p, fmt.Errorf("verity.usr=%s: %w", o.UsrDevice, err)
		}
		var found bool
		for _, s := range slots {
			if s.Index == idx {
				p.Slot, found = s, true
			}
		}
		if !found {
			return p, fmt.Errorf("verity.usr=%s names partition %d, which is not a /usr slot (USR-A or USR-B)", o.UsrDevice, idx)
		}
		// The boot loader that wrote this command line picked the slot and counted the try.
		p.Trust = TrustCmdline
		p.RootHash, _ = hex.DecodeString(o.UsrHash)
	} else {
		chosen, dec, err := slot.Next(slots)
		if err != nil {
			return p, err
		}
		p.Slot, p.Decrement, p.Trust = chosen, dec, TrustRecord
		if dec {
			p.Slots = slot.Decrement(slots, chosen.Name)
		}
	}
	part := t.ByIndex(p.Slot.Index)
	if part == nil {
		return p, fmt.Errorf("slot %s: no partition %d in the GPT", p.Slot.Name, p.Slot.Index)
	}
	p.Partition = *part
	r, ok := records[p.Slot.Name]
	switch {
	case !ok:
		return p, &SlotError{p, errors.New("its slot record was not read")}
	case r.Err != nil:
		return p, &SlotError{p, fmt.Errorf("slot record: %w", r.Err)}
	}
	p.Record = r.Record
	if err := p.Record.Check(); err != nil {
		return p, &SlotError{p, err}
	}
	if p.Record.PayloadSize() > part.Size() {
		return p, &SlotError{p, fmt.Errorf("slot record describes %d bytes, the partition has %d", p.Record.PayloadSize(), part.Size())}
	}
	if p.Trust == TrustRecord {
		if len(trusted) > 0 {
			c, err := osimage.VerifyRecord(p.Record, trusted)
			if err != nil {
				return p, &SlotError{p, fmt.Errorf("%w (this initrd trusts %d certificate(s) in /etc/verity.d)", err, len(trusted))}
			}
			p.Trust, p.Signer = TrustSigned, c.Subject.String()
		}
		p.RootHash, _ = hex.DecodeString(p.Record.RootHash)
	} else if !strings.EqualFold(p.Record.RootHash, o.UsrHash) {
		p.Warning = fmt.Sprintf("slot %s's record names root hash %s, the command line %s: verity checks against the command line's", p.Slot.Name, p.Record.RootHash, o.UsrHash)
	}
	fs := p.Record.FS
	if o.UsrFSType != "" {
		fs = o.UsrFSType
	}
	p.Mounts = []Mount{
		{Source: o.Root, Target: "/sysroot", FSType: o.RootFSType, ReadOnly: o.ReadOnly},
		{Source: "/dev/mapper/" + UsrMapper, Target: "/sysroot/usr", FSType: fs, ReadOnly: true},
	}
	return p, nil
}

// ResolveSpec finds the partition a device spec names on the disk: PARTUUID=, PARTLABEL= (the GPT
// name), LABEL= (the filesystem label; labels maps partition number to it) or /dev/NAMEn. It returns the
// 1-based partition number.
func ResolveSpec(spec string, t *gpt.Table, labels map[int]string) (int, error) {
	key, val, _ := strings.Cut(spec, "=")
	switch key {
	case "PARTUUID":
		g, err := gpt.ParseGUID(strings.ToLower(val))
		if err != nil {
			return 0, fmt.Errorf("PARTUUID %q: %w", val, err)
		}
		if p := t.ByUUID(g); p != nil {
			return p.Index, nil
		}
		return 0, fmt.Errorf("no partition with PARTUUID %s on the disk", val)
	case "PARTLABEL":
		for _, p := range t.Partitions {
			if p.Name == val {
				return p.Index, nil
			}
		}
		return 0, fmt.Errorf("no partition named %q on the disk", val)
	case "LABEL":
		for _, p := range t.Partitions {
			if l, ok := labels[p.Index]; ok && l == val {
				return p.Index, nil
			}
		}
		return 0, fmt.Errorf("no filesystem labelled %q on the disk", val)
	}
	if strings.HasPrefix(spec, "/dev/") {
		// The trailing number of /dev/vda9 or /dev/nvme0n1p9.
		i := len(spec)
		for i > 0 && spec[i-1] >= '0' && spec[i-1] <= '9' {
			i--
		}
		if n, err := strconv.Atoi(spec[i:]); err == nil && t.ByIndex(n) != nil {
			return n, nil
		}
		return 0, fmt.Errorf("%s is not a partition of the disk", spec)
	}
	return 0, fmt.Errorf("%q: want PARTUUID=, PARTLABEL=, LABEL= or /dev/…", spec)
}

// FSLabel reads the filesystem label from the first 4 KiB of a partition: ext2/3/4 (s_volume_name) or
// erofs (volume_name); ok is false for anything else.
func FSLabel(head []byte) (label string, ok bool) {
	cstr := func(b []byte) string {
		if i := strings.IndexByte(string(b), 0); i >= 0 {
			b = b[:i]
		}
		return string(b)
	}
	if len(head) >= 1024+0x88 && head[1024+0x38] == 0x53 && head[1024+0x39] == 0xef {
		return cstr(head[1024+0x78 : 1024+0x88]), true
	}
	if len(head) >= 1024+0x40+16 && string(head[1024:1028]) == "\xe2\xe1\xf5\xe0" {
		return cstr(head[1024+0x40 : 1024+0x40+16]), true
	}
	return "", false
}
