package osimage

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/slot"
)

// Disk is what Install writes: an image file or a block device.
type Disk interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}

// Install steps, in order; InstallOptions.AfterStep sees each name once it is done.
const (
	StepCheck  = "check"       // payload record, sizes, arch, --sha256 checked; nothing written yet
	StepZero   = "zero-record" // the target's record zeroed (slot now reads as empty)
	StepWrite  = "write"       // payload body written
	StepSync   = "sync"        // body fsynced
	StepVerify = "verify"      // body read back: sha256 and verity tree match the record
	StepRecord = "record"      // record written and fsynced
	StepArm    = "arm"         // GPT rewritten with the target armed
)

// InstallOptions are the knobs of Install.
type InstallOptions struct {
	Booted string // "A" or "B"; empty → the slot Next would pick
	Arch   string // the running system's architecture; empty → not checked
	SHA256 string // expected hex SHA-256 of the whole payload file; empty → not checked
	// Trusted are the certificates a payload's root hash signature is checked against (verity.d).
	Trusted []*x509.Certificate
	// RequireSigned refuses a payload whose root hash is not signed by a trusted certificate. Install
	// also requires it when the booted slot's own record is signed: a signed system stays signed.
	RequireSigned bool
	// AfterStep, if set, runs after each step; an error stops Install there (fault injection).
	AfterStep func(step string) error
}

// InstallResult says what Install did.
type InstallResult struct {
	Booted, Target string
	Record         Record
	// Signer is the subject of the trusted certificate that signed the payload's root hash; "" when
	// it was not checked.
	Signer string
}

// CheckSignature is the pure signature rule of Install: a payload signed by a certificate in trusted
// passes; a signed one that does not verify is refused when there are trusted certificates; an unsigned
// one is refused when require is set (or the booted slot is signed). It returns the signer's subject.
func CheckSignature(rec Record, trusted []*x509.Certificate, require, bootedSigned bool) (string, error) {
	require = require || bootedSigned
	if rec.Signature == "" && !require {
		return "", nil
	}
	if rec.Signature != "" && len(trusted) == 0 && !require {
		return "", nil // nothing to check it against; the initrd decides at boot
	}
	c, err := VerifyRecord(rec, trusted)
	if err != nil {
		why := "this system requires a signed /usr"
		if bootedSigned {
			why = "the booted slot is signed, so its successor must be"
		}
		if errors.Is(err, ErrUnsigned) {
			return "", fmt.Errorf("payload %s: %w; %s (os payload --sign-key KEY --sign-cert CERT)", rec.Version, err, why)
		}
		return "", fmt.Errorf("payload %s: %w", rec.Version, err)
	}
	return c.Subject.String(), nil
}

// Plan is the pure part of Install: which slot to write, given the table and the booted slot.
func Plan(t *gpt.Table, booted string) (bootedSlot, target slot.Slot, err error) {
	slots := slot.Slots(t)
	if len(slots) != 2 {
		return slot.Slot{}, slot.Slot{}, fmt.Errorf("the disk has %d /usr slots, want 2 (USR-A and USR-B)", len(slots))
	}
	if booted == "" {
		b, _, err := slot.Next(slots)
		if err != nil {
			return slot.Slot{}, slot.Slot{}, err
		}
		booted = b.Name
	}
	bootedSlot, err = slot.ByName(slots, booted)
	if err != nil {
		return slot.Slot{}, slot.Slot{}, err
	}
	target, err = slot.Other(slots, booted)
	return bootedSlot, target, err
}

// CheckPayload is the pure check of a payload record against the target partition and the system.
func CheckPayload(rec Record, payloadSize, partSize int64, arch string) error {
	if rec.PayloadSize() != payloadSize {
		return fmt.Errorf("payload is %d bytes, its record describes %d (truncated or padded)", payloadSize, rec.PayloadSize())
	}
	if rec.BodySize()+RecordSize > partSize {
		return fmt.Errorf("payload of %d MiB does not fit the %d MiB slot", payloadSize>>20, partSize>>20)
	}
	if arch != "" && rec.Arch != arch {
		return fmt.Errorf("payload is for %s, this system is %s", rec.Arch, arch)
	}
	return nil
}

// Install writes a payload into the slot that is not booted and arms it: zero the target's record →
// write the body → fsync → read it back and check its SHA-256 and verity tree against the record →
// write the record → fsync → Arm in the GPT. The booted slot is never written; a failure at any step
// leaves the target unarmed (and, once zeroed, without a record).
func Install(ctx context.Context, disk Disk, diskSize int64, payload io.ReaderAt, payloadSize int64, opt InstallOptions) (InstallResult, error) {
	var res InstallResult
	step := func(name string) error {
		if opt.AfterStep != nil {
			if err := opt.AfterStep(name); err != nil {
				return fmt.Errorf("install stopped after %s: %w", name, err)
			}
		}
		return ctx.Err()
	}
	table, err := gpt.Read(disk, diskSize)
	if err != nil {
		return res, err
	}
	booted, target, err := Plan(table, opt.Booted)
	if err != nil {
		return res, err
	}
	res.Booted, res.Target = booted.Name, target.Name
	start, size, err := SlotRange(table, target)
	if err != nil {
		return res, err
	}
	if payloadSize < RecordSize {
		return res, fmt.Errorf("payload of %d bytes is truncated (no record)", payloadSize)
	}
	rec, err := ReadPayloadRecord(payload, payloadSize)
	if err != nil {
		return res, err
	}
	if err := CheckPayload(rec, payloadSize, size, opt.Arch); err != nil {
		return res, err
	}
	bootedSigned := false
	if bs, bsize, err := SlotRange(table, booted); err == nil {
		if brec, err := ReadRecord(disk, bs, bsize); err == nil {
			bootedSigned = brec.Signature != ""
		}
	}
	if res.Signer, err = CheckSignature(rec, opt.Trusted, opt.RequireSigned, bootedSigned); err != nil {
		return res, err
	}
	if opt.SHA256 != "" {
		sum, err := sha256Hex(payload, 0, payloadSize)
		if err != nil {
			return res, fmt.Errorf("hash payload: %w", err)
		}
		if !strings.EqualFold(sum, opt.SHA256) {
			return res, fmt.Errorf("payload SHA-256 is %s, expected %s", sum, opt.SHA256)
		}
	}
	res.Record = rec
	if err := step(StepCheck); err != nil {
		return res, err
	}
	if err := ZeroRecord(disk, start, size); err != nil {
		return res, err
	}
	if err := disk.Sync(); err != nil {
		return res, fmt.Errorf("sync: %w", err)
	}
	if err := step(StepZero); err != nil {
		return res, err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(io.NewOffsetWriter(disk, start), h), io.NewSectionReader(payload, 0, rec.BodySize())); err != nil {
		return res, fmt.Errorf("write slot %s: %w", target.Name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != rec.SHA256 {
		return res, fmt.Errorf("payload body SHA-256 is %s, its record says %s (corrupt payload)", got, rec.SHA256)
	}
	if err := step(StepWrite); err != nil {
		return res, err
	}
	if err := disk.Sync(); err != nil {
		return res, fmt.Errorf("sync: %w", err)
	}
	if err := step(StepSync); err != nil {
		return res, err
	}
	if err := VerifySlot(ctx, disk, start, rec); err != nil {
		return res, fmt.Errorf("slot %s after writing: %w", target.Name, err)
	}
	if err := step(StepVerify); err != nil {
		return res, err
	}
	if err := WriteRecord(disk, start, size, rec); err != nil {
		return res, err
	}
	if err := disk.Sync(); err != nil {
		return res, fmt.Errorf("sync: %w", err)
	}
	if err := step(StepRecord); err != nil {
		return res, err
	}
	slot.Apply(table, slot.Arm(slot.Slots(table), target.Name))
	if err := table.Write(disk, diskSize); err != nil {
		return res, err
	}
	if err := disk.Sync(); err != nil {
		return res, fmt.Errorf("sync: %w", err)
	}
	return res, step(StepArm)
}

// VerifySlot reads a slot's body back and checks it against the record's
// verity root hash: every data block against the tree, every tree block
// up to the root. That covers every byte dm-verity will read, so a second
// pass for the body's SHA-256 (checked while the payload was copied in)
// would only re-read the same bytes.
func VerifySlot(ctx context.Context, r io.ReaderAt, start int64, rec Record) error {
	root, _ := hex.DecodeString(rec.RootHash)
	salt, _ := hex.DecodeString(rec.Salt)
	sec := io.NewSectionReader(r, start, rec.BodySize())
	return verityVerify(ctx, sec, rec.DataSize, sec, rec.HashOffset, salt, root)
}

// SlotInfo is one slot as inspect and status show it.
type SlotInfo struct {
	Name       string  `json:"name"`
	Index      int     `json:"partition"`
	PartUUID   string  `json:"partuuid"`
	Priority   uint8   `json:"priority"`
	Tries      uint8   `json:"tries"`
	Successful bool    `json:"successful"`
	Record     *Record `json:"record,omitempty"`
	RecordErr  string  `json:"record_error,omitempty"`
	// Signer is the subject of the certificate embedded in the record's root hash signature (who
	// signed it, not whether anyone trusts them).
	Signer string `json:"signer,omitempty"`
}

// Slots reads each slot's attributes and record.
func Slots(r io.ReaderAt, t *gpt.Table) []SlotInfo {
	var out []SlotInfo
	for _, s := range slot.Slots(t) {
		si := SlotInfo{Name: s.Name, Index: s.Index, PartUUID: s.UUID.String(), Priority: s.Attr.Priority, Tries: s.Attr.Tries, Successful: s.Attr.Successful}
		if start, size, err := SlotRange(t, s); err == nil {
			rec, err := ReadRecord(r, start, size)
			switch {
			case err == nil:
				si.Record, si.Signer = &rec, SignerName(rec)
			case errors.Is(err, ErrNoRecord):
			default:
				si.RecordErr = err.Error()
			}
		}
		out = append(out, si)
	}
	return out
}
