package dm

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The layout of <linux/dm-ioctl.h> (version 4): these are the kernel's
// numbers, not ours, so a slip in an offset fails here.
func TestLayoutMatchesKernelHeader(t *testing.T) {
	if headerSize != 312 || targetSpecSize != 40 {
		t.Fatalf("sizeof(dm_ioctl)=%d, sizeof(dm_target_spec)=%d; kernel: 312, 40", headerSize, targetSpecSize)
	}
	// _IOWR(0xfd, nr, struct dm_ioctl): the size field of the ioctl number is 312.
	for name, c := range map[string]uint{"DM_VERSION": unix.DM_VERSION, "DM_DEV_CREATE": unix.DM_DEV_CREATE, "DM_DEV_REMOVE": unix.DM_DEV_REMOVE,
		"DM_DEV_SUSPEND": unix.DM_DEV_SUSPEND, "DM_TABLE_LOAD": unix.DM_TABLE_LOAD, "DM_TABLE_STATUS": unix.DM_TABLE_STATUS} {
		if c>>16&0x3fff != headerSize || c>>8&0xff != 0xfd || c>>30 != 3 {
			t.Errorf("%s = %#x is not _IOWR(0xfd, n, 312 bytes)", name, c)
		}
	}
	want := map[string]uint{"DM_VERSION": 0, "DM_DEV_CREATE": 3, "DM_DEV_REMOVE": 4, "DM_DEV_SUSPEND": 6, "DM_TABLE_LOAD": 9, "DM_TABLE_STATUS": 12}
	got := map[string]uint{"DM_VERSION": unix.DM_VERSION, "DM_DEV_CREATE": unix.DM_DEV_CREATE, "DM_DEV_REMOVE": unix.DM_DEV_REMOVE,
		"DM_DEV_SUSPEND": unix.DM_DEV_SUSPEND, "DM_TABLE_LOAD": unix.DM_TABLE_LOAD, "DM_TABLE_STATUS": unix.DM_TABLE_STATUS}
	for n, nr := range want {
		if got[n]&0xff != nr {
			t.Errorf("%s number %d, kernel %d", n, got[n]&0xff, nr)
		}
	}
	if unix.DM_READONLY_FLAG != flagReadOnly || unix.DM_SUSPEND_FLAG != flagSuspend || unix.DM_STATUS_TABLE_FLAG != flagStatusTbl || unix.DM_BUFFER_FULL_FLAG != flagBufferFull {
		t.Error("flag values differ from the kernel's")
	}
	if unix.DM_NAME_LEN != nameLen || unix.DM_UUID_LEN != uuidLen || unix.DM_MAX_TYPE_NAME != typeNameLen {
		t.Error("name/uuid/type lengths differ from the kernel's")
	}

	b := encode(header{Version: [3]uint32{4, 0, 0}, TargetCount: 1, Flags: flagReadOnly, EventNr: 7, Dev: 0xfd01, Name: "usr", UUID: "STRATA-usr"}, []byte("xy"), 400)
	le := binary.LittleEndian
	for _, c := range []struct {
		what      string
		got, want uint64
	}{
		{"version[0] @0", uint64(le.Uint32(b[0:])), 4},
		{"data_size @12", uint64(le.Uint32(b[12:])), 400},
		{"data_start @16", uint64(le.Uint32(b[16:])), 312},
		{"target_count @20", uint64(le.Uint32(b[20:])), 1},
		{"flags @28", uint64(le.Uint32(b[28:])), 1},
		{"event_nr @32", uint64(le.Uint32(b[32:])), 7},
		{"dev @40", le.Uint64(b[40:]), 0xfd01},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.what, c.got, c.want)
		}
	}
	if string(b[48:51]) != "usr" || b[51] != 0 || string(b[176:186]) != "STRATA-usr" || string(b[312:314]) != "xy" {
		t.Error("name @48, uuid @176 or data @312 misplaced")
	}
	h, err := decode(b)
	if err != nil || h.Name != "usr" || h.UUID != "STRATA-usr" || h.Dev != 0xfd01 || h.DataSize != 400 || h.Flags != 1 {
		t.Fatalf("decode: %+v, %v", h, err)
	}
	if _, err := decode(b[:311]); err == nil {
		t.Error("short reply decoded")
	}
}

func TestEncodeTargets(t *testing.T) {
	ts := []Target{{0, 8000, "verity", "1 /dev/vda3 /dev/vda3 4096 4096 1000 1001 sha256 ab -"}, {8000, 8, "zero", ""}}
	b := encodeTargets(ts)
	le := binary.LittleEndian
	n0 := int(le.Uint32(b[20:]))
	if n0%8 != 0 || n0 != (40+len(ts[0].Params)+1+7)&^7 {
		t.Fatalf("next of first spec = %d", n0)
	}
	if le.Uint64(b[0:]) != 0 || le.Uint64(b[8:]) != 8000 || cstring(b[24:40]) != "verity" || cstring(b[40:]) != ts[0].Params {
		t.Fatal("first spec fields misplaced")
	}
	s := b[n0:]
	if le.Uint64(s[0:]) != 8000 || le.Uint64(s[8:]) != 8 || cstring(s[24:40]) != "zero" || len(s) != 48 {
		t.Fatalf("second spec: % x", s)
	}
}

// A DM_TABLE_STATUS reply as the kernel lays it out: specs in the data
// area, next = offset of the following spec from the data area's start.
func TestDecodeStatusReply(t *testing.T) {
	spec := func(start, length uint64, typ, s string, next uint32) []byte {
		n := (40 + len(s) + 1 + 7) &^ 7
		b := make([]byte, n)
		binary.LittleEndian.PutUint64(b[0:], start)
		binary.LittleEndian.PutUint64(b[8:], length)
		binary.LittleEndian.PutUint32(b[20:], next)
		copy(b[24:], typ)
		copy(b[40:], s)
		return b
	}
	first := spec(0, 8000, "verity", "V", 48)
	data := append(first, spec(8000, 8, "zero", "", 96)...)
	b := encode(header{TargetCount: 2}, data, 4096)
	binary.LittleEndian.PutUint32(b[offDataSize:], uint32(headerSize+len(data)))
	h, _ := decode(b)
	ts, err := decodeTargets(b, h)
	if err != nil || len(ts) != 2 || ts[0] != (Target{0, 8000, "verity", "V"}) || ts[1] != (Target{8000, 8, "zero", ""}) {
		t.Fatalf("decodeTargets: %+v, %v", ts, err)
	}
	// Hostile replies: counts and offsets outside the buffer are errors, not panics.
	for _, edit := range []func([]byte){
		func(b []byte) { binary.LittleEndian.PutUint32(b[offTargetCount:], 1000) },
		func(b []byte) { binary.LittleEndian.PutUint32(b[headerSize+20:], 0) },
		func(b []byte) { binary.LittleEndian.PutUint32(b[offDataStart:], 1<<30) },
		func(b []byte) { binary.LittleEndian.PutUint32(b[offDataSize:], 1<<30) },
	} {
		c := append([]byte(nil), b...)
		edit(c)
		h, _ := decode(c)
		if _, err := decodeTargets(c, h); err == nil {
			t.Error("hostile reply accepted")
		}
	}
}

func FuzzDecodeTargets(f *testing.F) {
	f.Add(encode(header{TargetCount: 1}, encodeTargets([]Target{{0, 8, "verity", "V"}}), 1024))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decode(b)
		if err != nil {
			return
		}
		_, _ = decodeTargets(b, h)
	})
}

func TestParseTable(t *testing.T) {
	ts, err := ParseTable("0 8000 verity 1 /dev/vda3 /dev/vda3 4096 4096 1000 1001 sha256 ab - 1 panic_on_corruption\n")
	if err != nil || len(ts) != 1 || ts[0].Length != 8000 || ts[0].Type != "verity" || ts[0].Params != "1 /dev/vda3 /dev/vda3 4096 4096 1000 1001 sha256 ab - 1 panic_on_corruption" {
		t.Fatalf("%+v %v", ts, err)
	}
	for _, bad := range []string{"", "0 8000", "x 8000 verity", "0 0 verity", "0 8 averyveryverylongtype"} {
		if _, err := ParseTable(bad); err == nil {
			t.Errorf("ParseTable(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"", "a/b", "..", strings.Repeat("n", 128)} {
		if err := checkName(bad, ""); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
}

func TestMiscMinor(t *testing.T) {
	p := filepath.Join(t.TempDir(), "misc")
	os.WriteFile(p, []byte("183 hw_random\n236 device-mapper\n 60 loop-control\n"), 0o644)
	if m, ok := miscMinor(p, "device-mapper"); !ok || m != 236 {
		t.Fatalf("miscMinor = %d, %v", m, ok)
	}
	if _, ok := miscMinor(p, "btrfs-control"); ok {
		t.Fatal("found a device that is not listed")
	}
}

// Without device-mapper (as on this host) every call is one clear line.
func TestNoDeviceMapper(t *testing.T) {
	ctl := filepath.Join(t.TempDir(), "mapper", "control")
	if _, ok := miscMinor("/proc/misc", "device-mapper"); ok {
		t.Skip("this kernel has device-mapper; the missing-control case is tested with a scratch path only")
	}
	_, err := create(ctl, "usr", "", "0 8 zero", true)
	want := "device-mapper is not available in this kernel (no " + ctl + "): "
	if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("create: %v, want a line starting %q", err, want)
	}
	if _, err := status(ctl, "usr", false); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("status: %v", err)
	}
	if err := remove(ctl, "usr", 0); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("remove: %v", err)
	}
	if _, err := os.Stat(ctl); !os.IsNotExist(err) {
		t.Fatalf("a control node was made although the kernel has no device-mapper: %v", err)
	}
}

// On the host itself: the real path, the real kernel.
func TestHostCreateVerityFailsClearly(t *testing.T) {
	if _, ok := miscMinor("/proc/misc", "device-mapper"); ok {
		t.Skip("this kernel has device-mapper: activation is tested in the QEMU guest")
	}
	if _, err := os.Stat(ControlPath); err == nil {
		t.Skip(ControlPath + " exists")
	}
	_, err := CreateVerity("strata-test-usr", "", "0 8 zero")
	if err == nil || !strings.HasPrefix(err.Error(), "device-mapper is not available in this kernel (no /dev/mapper/control): ") {
		t.Fatalf("CreateVerity: %v", err)
	}
	if _, err := Status("strata-test-usr"); err == nil {
		t.Fatal("Status without device-mapper succeeded")
	}
}
