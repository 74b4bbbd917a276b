package osboot

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/osimage"
	"github.com/stratalinux/strata/internal/slot"
)

const hashA = "7f655c3631cccc0f6117cf6a088da54a82f1ecd1298c17738b7128aae4f6ac30"
const hashB = "2fcb63f63c63140f7e8caab521b1788ffbd0c7bbfaee60d4fb6d65596963ef17"

func TestParseCmdline(t *testing.T) {
	o, err := ParseCmdline(`BOOT_IMAGE=/vmlinuz console=ttyS0 ro root=PARTUUID=AB init="/usr/lib/my init" ` +
		`verity.usr=PARTUUID=7130c94a-213a-4e5a-8e26-6cce9662f132 verity.usrhash=` + strings.ToUpper(hashA) +
		` mount.usr=/dev/mapper/usr mount.usrfstype=squashfs strata.debug strata.disktimeout=5 rw -- ro` + "\n")
	if err != nil {
		t.Fatal(err)
	}
	want := Options{UsrDevice: "PARTUUID=7130c94a-213a-4e5a-8e26-6cce9662f132", UsrHash: hashA, UsrFSType: "squashfs",
		Root: "PARTUUID=AB", RootFSType: "ext4", ReadOnly: false, Init: "/usr/lib/my init", Debug: true, DiskTimeout: 5 * time.Second}
	if o != want {
		t.Fatalf("got  %+v\nwant %+v", o, want)
	}
	if !o.Pinned() {
		t.Fatal("verity.usr= and verity.usrhash= should pin the slot")
	}

	d, err := ParseCmdline("console=ttyS0 panic=1 ro")
	if err != nil {
		t.Fatal(err)
	}
	if d.Root != DefaultRoot || d.Init != DefaultInit || !d.ReadOnly || d.Pinned() || d.DiskTimeout != DefaultDiskTimeout {
		t.Fatalf("defaults: %+v", d)
	}
	// mount.usr= naming a partition counts as the /usr device (systemd without verity.usr=).
	if m, _ := ParseCmdline("mount.usr=PARTLABEL=USR-B usrhash=" + hashB); m.UsrDevice != "PARTLABEL=USR-B" || !m.Pinned() {
		t.Fatalf("mount.usr=: %+v", m)
	}
}

func TestParseCmdlineRefusesBadValues(t *testing.T) {
	for line, want := range map[string]string{
		"verity.usrhash=abc verity.usr=PARTUUID=x": "64 hex digits",
		"usrhash=" + hashA:                         "without verity.usr=",
		"init=sbin/init":                           "not an absolute path",
		"root=":                                    "root= is empty",
		"mount.usrfstype=ext4":                     "erofs or squashfs",
		"strata.disktimeout=0":                     "strata.disktimeout",
		strings.Repeat("x", MaxCmdline+1):          "longer than",
	} {
		_, err := ParseCmdline(line)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.40q: got %v, want an error containing %q", line, err, want)
		}
	}
}

func FuzzParseCmdline(f *testing.F) {
	f.Add(`root=LABEL=ROOT init="/a b" verity.usr=PARTUUID=7130c94a-213a-4e5a-8e26-6cce9662f132 usrhash=` + hashA)
	f.Add(`"unterminated quote root=x`)
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseCmdline(s)
		if err != nil {
			return
		}
		if o.UsrHash != "" && (len(o.UsrHash) != 64 || o.UsrDevice == "") {
			t.Fatalf("accepted usrhash %q with usr device %q", o.UsrHash, o.UsrDevice)
		}
		if !strings.HasPrefix(o.Init, "/") {
			t.Fatalf("accepted init %q", o.Init)
		}
	})
}

// table is a Flatcar-layout GPT with the given slot attributes.
func table(a, b slot.Attr) *gpt.Table {
	t, _ := osimage.Layout(osimage.Sizes{}, "test")
	for i := range t.Partitions {
		switch t.Partitions[i].Index {
		case osimage.IndexUSRA:
			t.Partitions[i].Attributes = a.Encode(0)
		case osimage.IndexUSRB:
			t.Partitions[i].Attributes = b.Encode(0)
		}
	}
	return t
}

func record(version, hash string) SlotRecord {
	return SlotRecord{Record: osimage.Record{Magic: 1, Version: version, Arch: "x86-64", FS: "erofs", DataSize: 8192,
		HashOffset: 8192, HashSize: osimageHashSize(8192), RootHash: hash, Salt: "00", SHA256: hash}}
}

func osimageHashSize(n int64) int64 {
	// One data block level of 2 hashes fits one hash block: superblock (4 KiB) + 1 block.
	return 4096 + 4096*((n/4096*32+4095)/4096)
}

func TestPlanPicksAndDecrements(t *testing.T) {
	good := slot.Attr{Priority: 1, Successful: true}
	armed := slot.Attr{Priority: 2, Tries: 1}
	recs := map[string]SlotRecord{"A": record("1.0.0", hashA), "B": record("2.0.0", hashB)}
	opt, _ := ParseCmdline("console=ttyS0")

	// A freshly installed B: chosen, its one try used up, hash from its record.
	p, err := Plan(opt, table(good, armed), recs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Slot.Name != "B" || !p.Decrement || p.Trust != TrustRecord || p.Record.Version != "2.0.0" {
		t.Fatalf("plan %+v", p)
	}
	for _, s := range p.Slots {
		if s.Name == "B" && s.Attr.Tries != 0 {
			t.Fatalf("B's tries after the plan: %d, want 0", s.Attr.Tries)
		}
	}
	if got := p.Mounts; len(got) != 2 || got[0].Target != "/sysroot" || got[0].Source != "LABEL=ROOT" || got[0].ReadOnly ||
		got[1].Source != "/dev/mapper/usr" || got[1].Target != "/sysroot/usr" || got[1].FSType != "erofs" || !got[1].ReadOnly {
		t.Fatalf("mounts %+v", got)
	}
	if hexOf(p.RootHash) != hashB {
		t.Fatalf("root hash %x", p.RootHash)
	}

	// B used its try and was not marked good: A boots, nothing to decrement.
	p, err = Plan(opt, table(good, slot.Attr{Priority: 2}), recs, nil)
	if err != nil || p.Slot.Name != "A" || p.Decrement || hexOf(p.RootHash) != hashA {
		t.Fatalf("rollback plan %+v, %v", p, err)
	}

	// Nothing bootable.
	if _, err := Plan(opt, table(slot.Attr{Priority: 1}, slot.Attr{}), recs, nil); !errors.Is(err, slot.ErrNoBootable) {
		t.Fatalf("no bootable slot: %v", err)
	}
}

func TestPlanSlotWithoutRecordStillUsesItsTry(t *testing.T) {
	opt, _ := ParseCmdline("")
	recs := map[string]SlotRecord{"A": record("1.0.0", hashA), "B": {Err: osimage.ErrNoRecord}}
	_, err := Plan(opt, table(slot.Attr{Priority: 1, Successful: true}, slot.Attr{Priority: 2, Tries: 1}), recs, nil)
	var se *SlotError
	if !errors.As(err, &se) {
		t.Fatalf("want a SlotError, got %v", err)
	}
	if se.Plan.Slot.Name != "B" || !se.Plan.Decrement || !strings.Contains(err.Error(), "no slot record") {
		t.Fatalf("slot error %v, plan %+v", err, se.Plan)
	}
}

func TestPlanPinnedByCmdline(t *testing.T) {
	recs := map[string]SlotRecord{"A": record("1.0.0", hashA), "B": record("2.0.0", hashB)}
	opt, err := ParseCmdline("verity.usr=PARTUUID=" + slot.USRA.String() + " verity.usrhash=" + hashB + " mount.usrfstype=squashfs ro")
	if err != nil {
		t.Fatal(err)
	}
	// The GPT would pick B; the command line says A with B's hash, and the command line wins.
	p, err := Plan(opt, table(slot.Attr{Priority: 1, Successful: true}, slot.Attr{Priority: 2, Tries: 1}), recs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Slot.Name != "A" || p.Decrement || p.Trust != TrustCmdline || hexOf(p.RootHash) != hashB {
		t.Fatalf("pinned plan %+v", p)
	}
	if !strings.Contains(p.Warning, "record names root hash "+hashA) {
		t.Fatalf("warning %q", p.Warning)
	}
	if p.Mounts[1].FSType != "squashfs" || !p.Mounts[0].ReadOnly {
		t.Fatalf("mounts %+v", p.Mounts)
	}
	bad, _ := ParseCmdline("verity.usr=PARTLABEL=ROOT verity.usrhash=" + hashA)
	if _, err := Plan(bad, table(slot.Attr{Priority: 1, Successful: true}, slot.Attr{}), recs, nil); err == nil || !strings.Contains(err.Error(), "not a /usr slot") {
		t.Fatalf("pinned to ROOT: %v", err)
	}
}

func TestResolveSpecAndLabels(t *testing.T) {
	tb := table(slot.Attr{}, slot.Attr{})
	labels := map[int]string{osimage.IndexRoot: "ROOT", osimage.IndexOEM: "OEM"}
	for spec, want := range map[string]int{
		"LABEL=ROOT":                     osimage.IndexRoot,
		"PARTLABEL=USR-B":                osimage.IndexUSRB,
		"PARTUUID=" + slot.USRA.String(): osimage.IndexUSRA,
		"PARTUUID=" + strings.ToUpper(slot.USRA.String()): osimage.IndexUSRA,
		"/dev/vda6":      osimage.IndexOEM,
		"/dev/nvme0n1p9": osimage.IndexRoot,
	} {
		got, err := ResolveSpec(spec, tb, labels)
		if err != nil || got != want {
			t.Errorf("%s: got %d, %v; want %d", spec, got, err, want)
		}
	}
	for _, spec := range []string{"LABEL=NOPE", "PARTUUID=zz", "/dev/vda7", "UUID=1234"} {
		if _, err := ResolveSpec(spec, tb, labels); err == nil {
			t.Errorf("%s resolved", spec)
		}
	}

	ext4 := make([]byte, 4096)
	ext4[1024+0x38], ext4[1024+0x39] = 0x53, 0xef
	copy(ext4[1024+0x78:], "ROOT")
	if l, ok := FSLabel(ext4); !ok || l != "ROOT" {
		t.Fatalf("ext4 label %q %v", l, ok)
	}
	if _, ok := FSLabel(make([]byte, 4096)); ok {
		t.Fatal("zeros have a label")
	}
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }
