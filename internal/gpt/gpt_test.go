package gpt

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needTool fails loudly under CI=true and skips otherwise when a reference tool is missing.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (scripts/deps installs it): %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

func sgdisk(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(needTool(t, "sgdisk"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk %v: %v\n%s", args, err, out)
	}
	return string(out)
}

const diskSize = 64 << 20

func sample() *Table {
	return &Table{
		DiskGUID: MustParseGUID("00112233-4455-6677-8899-aabbccddeeff"),
		Partitions: []Partition{
			{Index: 1, Type: MustParseGUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b"), UUID: MustParseGUID("11111111-2222-3333-4444-555555555555"), Name: "EFI-SYSTEM", FirstLBA: 2048, LastLBA: 4095},
			{Index: 3, Type: MustParseGUID("5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6"), UUID: MustParseGUID("7130c94a-213a-4e5a-8e26-6cce9662f132"), Name: "USR-A", FirstLBA: 4096, LastLBA: 20479, Attributes: 0x0101000000000000},
			{Index: 4, Type: MustParseGUID("5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6"), UUID: MustParseGUID("e03dd35c-7c2d-4a47-b3fe-27f15780a57c"), Name: "USR-B", FirstLBA: 20480, LastLBA: 36863, Attributes: 0x0012000000000004},
			{Index: 9, Type: MustParseGUID("3884dd41-8582-4404-b9a8-e9b84f2df50e"), UUID: MustParseGUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"), Name: "ROOT-é", FirstLBA: 36864, LastLBA: 131038},
		},
	}
}

func writeImage(t *testing.T, tb *Table) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(diskSize); err != nil {
		t.Fatal(err)
	}
	if err := tb.Write(f, diskSize); err != nil {
		t.Fatal(err)
	}
	return p
}

func readImage(t *testing.T, p string) *Table {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tb, err := Read(f, diskSize)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestGUIDRoundTrip(t *testing.T) {
	s := "5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6"
	g := MustParseGUID(s)
	// mixed-endian: first field little-endian on disk
	if g[0] != 0xf4 || g[3] != 0x5d || g[4] != 0x48 || g[6] != 0xac || g[8] != 0xaa {
		t.Fatalf("on-disk bytes %x", g[:])
	}
	if g.String() != s {
		t.Fatalf("String %s", g)
	}
	if _, err := ParseGUID("5dfbf5f4-2848-4bac-aa5e-0d9a20b745aZ"); err == nil {
		t.Fatal("bad hex accepted")
	}
}

func TestWriteAgreesWithSgdisk(t *testing.T) {
	p := writeImage(t, sample())
	if out := sgdisk(t, "-v", p); !strings.Contains(out, "No problems found") {
		t.Fatalf("sgdisk -v:\n%s", out)
	}
	pr := sgdisk(t, "-p", p)
	if !strings.Contains(pr, "Disk identifier (GUID): 00112233-4455-6677-8899-AABBCCDDEEFF") {
		t.Fatalf("disk GUID:\n%s", pr)
	}
	for _, part := range sample().Partitions {
		out := sgdisk(t, "-i", itoa(part.Index), p)
		for _, want := range []string{
			"Partition GUID code: " + strings.ToUpper(part.Type.String()),
			"Partition unique GUID: " + strings.ToUpper(part.UUID.String()),
			"First sector: " + itoa(int(part.FirstLBA)) + " ",
			"Last sector: " + itoa(int(part.LastLBA)) + " ",
			"Attribute flags: " + hex16(part.Attributes),
			"Partition name: '" + part.Name + "'",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("sgdisk -i %d: missing %q in\n%s", part.Index, want, out)
			}
		}
	}
	if out := sgdisk(t, "-A", "3:show", p); !strings.Contains(out, "3:48:1") || !strings.Contains(out, "3:56:1") {
		t.Errorf("sgdisk -A 3:show:\n%s", out)
	}
	if out := sgdisk(t, "-A", "4:show", p); !strings.Contains(out, "4:2:1") || !strings.Contains(out, "4:49:1") || !strings.Contains(out, "4:52:1") {
		t.Errorf("sgdisk -A 4:show:\n%s", out)
	}
	if got := readImage(t, p); !got.Equal(sample()) || got.FromBackup {
		t.Fatalf("read back %+v", got)
	}
}

func TestReadSgdiskTable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, diskSize); err != nil {
		t.Fatal(err)
	}
	sgdisk(t, "-U", "00112233-4455-6677-8899-aabbccddeeff",
		"-n", "3:2048:+8M", "-t", "3:5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6", "-u", "3:7130c94a-213a-4e5a-8e26-6cce9662f132", "-c", "3:USR-A", "-A", "3:=:0102000000000000",
		"-n", "9:0:0", "-t", "9:8300", "-c", "9:ROOT", p)
	tb := readImage(t, p)
	if tb.DiskGUID.String() != "00112233-4455-6677-8899-aabbccddeeff" || len(tb.Partitions) != 2 {
		t.Fatalf("%+v", tb)
	}
	a := tb.ByUUID(MustParseGUID("7130c94a-213a-4e5a-8e26-6cce9662f132"))
	if a == nil || a.Index != 3 || a.Name != "USR-A" || a.FirstLBA != 2048 || a.LastLBA != 2048+16384-1 || a.Attributes != 0x0102000000000000 {
		t.Fatalf("USR-A %+v", a)
	}
	r := tb.ByIndex(9)
	if r == nil || r.Name != "ROOT" || r.Type.String() != "0fc63daf-8483-4772-8e79-3d69d8477de4" {
		t.Fatalf("ROOT %+v", r)
	}
}

func TestBackupAndRepair(t *testing.T) {
	for _, damage := range []struct {
		name string
		off  int64
	}{{"header", SectorSize + 40}, {"entries", 2*SectorSize + 200}} {
		t.Run(damage.name, func(t *testing.T) {
			p := writeImage(t, sample())
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte{0xde, 0xad}, damage.off); err != nil {
				t.Fatal(err)
			}
			tb, err := Read(f, diskSize)
			if err != nil {
				t.Fatal(err)
			}
			if !tb.FromBackup || !tb.Equal(sample()) {
				t.Fatalf("from backup %v, %+v", tb.FromBackup, tb)
			}
			tb.Partitions[1].Attributes = 0x0003000000000000
			if err := tb.Write(f, diskSize); err != nil {
				t.Fatal(err)
			}
			again, err := Read(f, diskSize)
			if err != nil || again.FromBackup || again.Partitions[1].Attributes != 0x0003000000000000 {
				t.Fatalf("after repair: %v %+v", err, again)
			}
			if out := sgdisk(t, "-v", p); !strings.Contains(out, "No problems found") {
				t.Fatalf("sgdisk -v after repair:\n%s", out)
			}
		})
	}
}

func TestReadBothDamaged(t *testing.T) {
	p := writeImage(t, sample())
	b, _ := os.ReadFile(p)
	b[SectorSize] = 'X'
	b[len(b)-SectorSize] = 'X'
	if _, err := Read(bytes.NewReader(b), int64(len(b))); err == nil || !strings.Contains(err.Error(), "no valid GPT") {
		t.Fatalf("err %v", err)
	}
}

func TestCheckRejects(t *testing.T) {
	for name, mod := range map[string]func(*Table){
		"overlap":   func(t *Table) { t.Partitions[1].LastLBA = 20480 },
		"index":     func(t *Table) { t.Partitions[0].Index = 129 },
		"dup index": func(t *Table) { t.Partitions[1].Index = 4 },
		"past end":  func(t *Table) { t.Partitions[3].LastLBA = 131039 },
		"long name": func(t *Table) { t.Partitions[0].Name = strings.Repeat("x", 37) },
		"zero type": func(t *Table) { t.Partitions[0].Type = GUID{} },
	} {
		tb := sample()
		mod(tb)
		if err := tb.Write(&writerAt{}, diskSize); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzRead(f *testing.F) {
	var buf writerAt
	buf.b = make([]byte, 80*SectorSize)
	tb := &Table{Partitions: []Partition{{Index: 1, Type: MustParseGUID("5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6"), Name: "A", FirstLBA: 34, LastLBA: 40}}}
	if err := tb.Write(&buf, int64(len(buf.b))); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.b)
	f.Add(buf.b[:3*SectorSize])
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		for _, p := range tb.Partitions {
			if p.FirstLBA > p.LastLBA || int64(p.LastLBA) >= int64(len(b))/SectorSize {
				t.Fatalf("partition outside the disk: %+v", p)
			}
		}
	})
}

type writerAt struct{ b []byte }

func (w *writerAt) WriteAt(p []byte, off int64) (int, error) {
	return copy(w.b[off:], p), nil
}

func itoa(i int) string { return strconvItoa(i) }
