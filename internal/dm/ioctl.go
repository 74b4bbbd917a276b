// Package dm drives the kernel's device-mapper through its ioctls on
// /dev/mapper/control, enough to open a dm-verity device in an initrd that
// has no udev, no libdevmapper and no veritysetup. The struct layouts are
// encoded and decoded by pure functions; dm_linux.go only issues ioctls.
package dm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// Sizes and offsets of struct dm_ioctl and struct dm_target_spec in
// <linux/dm-ioctl.h>, version 4.
const (
	headerSize     = 312
	targetSpecSize = 40
	nameLen        = 128
	uuidLen        = 129
	typeNameLen    = 16

	offVersion     = 0
	offDataSize    = 12
	offDataStart   = 16
	offTargetCount = 20
	offOpenCount   = 24
	offFlags       = 28
	offEventNr     = 32
	offDev         = 40
	offName        = 48
	offUUID        = 176
)

// Flags of dm_ioctl.flags used here.
const (
	flagReadOnly   = 1 << 0
	flagSuspend    = 1 << 1
	flagStatusTbl  = 1 << 4
	flagBufferFull = 1 << 8
)

// Version is the interface version we speak: 4.0.0, the kernel answers with its own.
var ioctlVersion = [3]uint32{4, 0, 0}

// header is the part of struct dm_ioctl Strata reads and writes.
type header struct {
	Version     [3]uint32
	DataSize    uint32
	DataStart   uint32
	TargetCount uint32
	OpenCount   int32
	Flags       uint32
	EventNr     uint32
	Dev         uint64
	Name, UUID  string
}

// Target is one line of a device-mapper table.
type Target struct {
	Start, Length uint64 // in 512-byte sectors
	Type          string
	Params        string
}

// ParseTable reads table lines "<start> <length> <type> <params…>".
func ParseTable(table string) ([]Target, error) {
	var ts []Target
	for _, line := range strings.Split(strings.TrimSpace(table), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("device-mapper table line %q: want \"<start> <length> <type> [params]\"", line)
		}
		start, err1 := strconv.ParseUint(f[0], 10, 64)
		length, err2 := strconv.ParseUint(f[1], 10, 64)
		if err1 != nil || err2 != nil || length == 0 {
			return nil, fmt.Errorf("device-mapper table line %q: start and length must be sector counts, length > 0", line)
		}
		if len(f[2]) >= typeNameLen {
			return nil, fmt.Errorf("device-mapper table line %q: target type %q is longer than %d bytes", line, f[2], typeNameLen-1)
		}
		ts = append(ts, Target{Start: start, Length: length, Type: f[2], Params: strings.Join(f[3:], " ")})
	}
	return ts, nil
}

func checkName(name, uuid string) error {
	switch {
	case name == "" || len(name) >= nameLen || strings.ContainsAny(name, "/\x00") || name == "." || name == "..":
		return fmt.Errorf("device-mapper name %q must be 1 to %d bytes without '/' or NUL", name, nameLen-1)
	case len(uuid) >= uuidLen || strings.ContainsRune(uuid, 0):
		return fmt.Errorf("device-mapper uuid %q must be at most %d bytes without NUL", uuid, uuidLen-1)
	}
	return nil
}

// encode renders h, followed by payload, as the ioctl buffer of size
// total (at least the header and payload; the kernel writes replies into
// the rest).
func encode(h header, payload []byte, total int) []byte {
	total = max(total, headerSize+len(payload))
	b := make([]byte, total)
	le := binary.LittleEndian
	for i, v := range h.Version {
		le.PutUint32(b[offVersion+4*i:], v)
	}
	le.PutUint32(b[offDataSize:], uint32(total))
	le.PutUint32(b[offDataStart:], headerSize)
	le.PutUint32(b[offTargetCount:], h.TargetCount)
	le.PutUint32(b[offOpenCount:], uint32(h.OpenCount))
	le.PutUint32(b[offFlags:], h.Flags)
	le.PutUint32(b[offEventNr:], h.EventNr)
	le.PutUint64(b[offDev:], h.Dev)
	copy(b[offName:offName+nameLen-1], h.Name)
	copy(b[offUUID:offUUID+uuidLen-1], h.UUID)
	copy(b[headerSize:], payload)
	return b
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// decode reads the header of an ioctl buffer the kernel filled in.
func decode(b []byte) (header, error) {
	if len(b) < headerSize {
		return header{}, fmt.Errorf("device-mapper reply of %d bytes is shorter than its %d-byte header", len(b), headerSize)
	}
	le := binary.LittleEndian
	var h header
	for i := range h.Version {
		h.Version[i] = le.Uint32(b[offVersion+4*i:])
	}
	h.DataSize = le.Uint32(b[offDataSize:])
	h.DataStart = le.Uint32(b[offDataStart:])
	h.TargetCount = le.Uint32(b[offTargetCount:])
	h.OpenCount = int32(le.Uint32(b[offOpenCount:]))
	h.Flags = le.Uint32(b[offFlags:])
	h.EventNr = le.Uint32(b[offEventNr:])
	h.Dev = le.Uint64(b[offDev:])
	h.Name = cstring(b[offName : offName+nameLen])
	h.UUID = cstring(b[offUUID : offUUID+uuidLen])
	return h, nil
}

// encodeTargets renders the dm_target_spec list for DM_TABLE_LOAD: each
// spec followed by its NUL-terminated params, padded to 8 bytes, with next
// the offset from this spec to the following one.
func encodeTargets(ts []Target) []byte {
	var out []byte
	for _, t := range ts {
		n := targetSpecSize + len(t.Params) + 1
		n = (n + 7) &^ 7
		spec := make([]byte, n)
		le := binary.LittleEndian
		le.PutUint64(spec[0:], t.Start)
		le.PutUint64(spec[8:], t.Length)
		le.PutUint32(spec[20:], uint32(n))
		copy(spec[24:24+typeNameLen-1], t.Type)
		copy(spec[targetSpecSize:], t.Params)
		out = append(out, spec...)
	}
	return out
}

// decodeTargets reads count target specs with their strings (status or
// table) from the data area of a reply. In replies the kernel sets next to
// the offset of the following spec from the start of the data area.
func decodeTargets(b []byte, h header) ([]Target, error) {
	if int(h.DataStart) > len(b) || h.DataSize > uint32(len(b)) || h.DataStart > h.DataSize {
		return nil, fmt.Errorf("device-mapper reply: data start %d and size %d outside the %d-byte buffer", h.DataStart, h.DataSize, len(b))
	}
	data := b[h.DataStart:h.DataSize]
	var ts []Target
	off := 0
	le := binary.LittleEndian
	for i := uint32(0); i < h.TargetCount; i++ {
		if off < 0 || off+targetSpecSize > len(data) {
			return nil, fmt.Errorf("device-mapper reply: target %d at offset %d outside the %d-byte data area", i, off, len(data))
		}
		s := data[off:]
		t := Target{Start: le.Uint64(s[0:]), Length: le.Uint64(s[8:]), Type: cstring(s[24 : 24+typeNameLen])}
		next := int(le.Uint32(s[20:]))
		end := len(data)
		if i+1 < h.TargetCount {
			if next <= off {
				return nil, fmt.Errorf("device-mapper reply: target %d points back to offset %d", i, next)
			}
			end = min(next, len(data))
		}
		t.Params = cstring(data[off+targetSpecSize : max(end, off+targetSpecSize)])
		ts = append(ts, t)
		off = next
	}
	return ts, nil
}
