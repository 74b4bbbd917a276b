package osimage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/slot"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// usrTree is a small /usr with an os-release.
func usrTree(t *testing.T, version string) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "usr")
	for p, c := range map[string]string{
		"lib/os-release": "ID=strata\nVERSION_ID=" + version + "\n",
		"bin/hello":      strings.Repeat("hello strata\n", 5000),
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(d, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func bake(t *testing.T, dir, version string, sysext ...string) string {
	t.Helper()
	return bakeSigned(t, dir, version, nil, sysext...)
}

// bakeSigned bakes a disk whose slot A's root hash is signed by sign (nil: unsigned).
func bakeSigned(t *testing.T, dir, version string, sign *Signer, sysext ...string) string {
	t.Helper()
	privtest.RequireTools(t, "mkfs.erofs", "mkfs.ext4", "mkfs.fat", "mcopy")
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("not really a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "disk-"+version+".img")
	err := Bake(context.Background(), Request{Usr: usrTree(t, version), Kernel: kernel, Version: version, Sysext: sysext,
		Sizes: Sizes{ESP: 34 * MiB, USR: 32 * MiB, OEM: 8 * MiB, Root: 32 * MiB}, Output: out, Sign: sign})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readTable(t *testing.T, f *os.File) (*gpt.Table, int64) {
	t.Helper()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	tb, err := gpt.Read(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return tb, st.Size()
}

// copyOut copies size bytes at off of the disk to path, for an external
// tool that reads a partition as a file (veritysetup, debugfs), and
// returns them.
func copyOut(t *testing.T, disk io.ReaderAt, off, size int64, path string) []byte {
	t.Helper()
	b := make([]byte, size)
	if _, err := disk.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBakeSgdiskAndVeritysetup(t *testing.T) {
	privtest.RequireTools(t, "sgdisk", "veritysetup", "debugfs")
	dir := t.TempDir()
	ext := filepath.Join(dir, "tools.raw")
	if err := os.WriteFile(ext, bytes.Repeat([]byte("x"), 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	disk := bake(t, dir, "1.0.0", ext)
	if out := run(t, "sgdisk", "-v", disk); !strings.Contains(out, "No problems found") {
		t.Fatalf("sgdisk -v: %s", out)
	}
	p := run(t, "sgdisk", "-p", disk)
	for _, n := range []string{"EFI-SYSTEM", "USR-A", "USR-B", "OEM", "ROOT"} {
		if !strings.Contains(p, n) {
			t.Errorf("sgdisk -p lacks %s:\n%s", n, p)
		}
	}
	if out := run(t, "sgdisk", "-i", "3", disk); !strings.Contains(out, "7130C94A-213A-4E5A-8E26-6CCE9662F132") || !strings.Contains(out, "Attribute flags: 0101000000000000") {
		t.Fatalf("USR-A: %s", out)
	}
	if out := run(t, "sgdisk", "-i", "4", disk); !strings.Contains(out, "E03DD35C-7C2D-4A47-B3FE-27F15780A57C") {
		t.Fatalf("USR-B: %s", out)
	}

	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tb, _ := readTable(t, f)
	infos := Slots(f, tb)
	if len(infos) != 2 || infos[0].Record == nil || infos[0].Record.Version != "1.0.0" || infos[1].Record != nil {
		t.Fatalf("slots %+v", infos)
	}
	rec := *infos[0].Record
	a := tb.ByIndex(IndexUSRA)
	// veritysetup checks slot A's tree: the body copied out of the partition.
	body := filepath.Join(dir, "usr-a.body")
	b := copyOut(t, f, a.Start(), rec.BodySize(), body)
	run(t, "veritysetup", "verify", body, body, rec.RootHash, "--hash-offset="+strconv.FormatInt(rec.HashOffset, 10))
	// ... and refuses it with one flipped data byte.
	b[100] ^= 1
	if err := os.WriteFile(body, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("veritysetup", "verify", body, body, rec.RootHash, "--hash-offset="+strconv.FormatInt(rec.HashOffset, 10)).CombinedOutput(); err == nil {
		t.Fatalf("veritysetup accepted a flipped byte: %s", out)
	}
	// ROOT holds the extension where the first boot merges it, labelled ROOT.
	r := tb.ByIndex(IndexRoot)
	rootImg := filepath.Join(dir, "root.ext4")
	copyOut(t, f, r.Start(), r.Size(), rootImg)
	if out := run(t, "debugfs", "-R", "stat /var/lib/extensions/tools.raw", rootImg); !strings.Contains(out, "Size: 10000") {
		t.Fatalf("extension on ROOT: %s", out)
	}
	if out := run(t, "dumpe2fs", "-h", rootImg); !strings.Contains(out, "Filesystem volume name:   ROOT") {
		t.Fatalf("ROOT label: %s", out)
	}
}

func TestBakeReproducible(t *testing.T) {
	d1, d2 := t.TempDir(), t.TempDir()
	a, err := os.ReadFile(bake(t, d1, "1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bake(t, d2, "1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("two bakes differ first at byte %d", i)
			}
		}
	}
}

// payload writes the payload of a /usr erofs for version to a file, signed by sign if given.
func payload(t *testing.T, dir, version string, sign ...*Signer) (string, Record) {
	t.Helper()
	privtest.RequireTools(t, "mkfs.erofs")
	img := filepath.Join(dir, "usr-"+version+".erofs")
	run(t, "mkfs.erofs", "--quiet", "-T0", "-U00000000-0000-0000-0000-000000000000", img, usrTree(t, version))
	info := PayloadInfo{Version: version, Arch: "x86-64"}
	name := "usr-" + version
	if len(sign) > 0 {
		info.Sign = sign[0]
		name += "-signed-" + strings.ReplaceAll(sign[0].Cert.Subject.CommonName, " ", "_")
	}
	p := filepath.Join(dir, name+".payload")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec, err := WritePayload(context.Background(), img, info, f)
	if err != nil {
		t.Fatal(err)
	}
	return p, rec
}

func install(t *testing.T, disk, payloadPath string, opt InstallOptions) (InstallResult, error) {
	t.Helper()
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := os.Open(payloadPath)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	st, _ := f.Stat()
	pst, _ := p.Stat()
	return Install(context.Background(), f, st.Size(), p, pst.Size(), opt)
}

func partSum(t *testing.T, disk string, idx int) string {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tb, _ := readTable(t, f)
	p := tb.ByIndex(idx)
	s, err := sha256Hex(f, p.Start(), p.Size())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func next(t *testing.T, disk string) (slot.Slot, []SlotInfo) {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tb, _ := readTable(t, f)
	s, _, err := slot.Next(slot.Slots(tb))
	if err != nil {
		t.Fatal(err)
	}
	return s, Slots(f, tb)
}

func TestInstallArmsB(t *testing.T) {
	dir := t.TempDir()
	disk := bake(t, dir, "1.0.0")
	pay, rec := payload(t, dir, "2.0.0")
	sumA := partSum(t, disk, IndexUSRA)
	whole, _ := os.ReadFile(pay)
	sum := sha256.Sum256(whole)
	res, err := install(t, disk, pay, InstallOptions{Arch: "x86-64", SHA256: hex.EncodeToString(sum[:])})
	if err != nil {
		t.Fatal(err)
	}
	if res.Booted != "A" || res.Target != "B" {
		t.Fatalf("%+v", res)
	}
	if partSum(t, disk, IndexUSRA) != sumA {
		t.Fatal("booted slot A changed")
	}
	s, infos := next(t, disk)
	if s.Name != "B" || s.Attr != (slot.Attr{Priority: 2, Tries: 1}) {
		t.Fatalf("after install Next = %+v", s)
	}
	if infos[1].Record == nil || infos[1].Record.RootHash != rec.RootHash || infos[1].Record.Version != "2.0.0" {
		t.Fatalf("B record %+v", infos[1])
	}
	if out := run(t, "sgdisk", "-i", "4", disk); !strings.Contains(out, "Attribute flags: 0012000000000000") {
		t.Fatalf("sgdisk: %s", out)
	}
}

func TestInstallFaultAtEveryStep(t *testing.T) {
	dir := t.TempDir()
	base := bake(t, dir, "1.0.0")
	pay, _ := payload(t, dir, "2.0.0")
	kill := errors.New("killed")
	for _, step := range []string{StepCheck, StepZero, StepWrite, StepSync, StepVerify, StepRecord} {
		t.Run(step, func(t *testing.T) {
			disk := filepath.Join(t.TempDir(), "disk.img")
			run(t, "cp", "--sparse=always", base, disk)
			sumA := partSum(t, disk, IndexUSRA)
			_, err := install(t, disk, pay, InstallOptions{AfterStep: func(s string) error {
				if s == step {
					return kill
				}
				return nil
			}})
			if !errors.Is(err, kill) {
				t.Fatalf("err %v", err)
			}
			if partSum(t, disk, IndexUSRA) != sumA {
				t.Fatal("booted slot A changed")
			}
			if s, _ := next(t, disk); s.Name != "A" {
				t.Fatalf("Next picks %s after a kill at %s", s.Name, step)
			}
			// A retry after the kill completes.
			if _, err := install(t, disk, pay, InstallOptions{}); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if s, _ := next(t, disk); s.Name != "B" {
				t.Fatalf("retry: Next picks %s", s.Name)
			}
		})
	}
}

func TestInstallBadPayloads(t *testing.T) {
	dir := t.TempDir()
	base := bake(t, dir, "1.0.0")
	pay, rec := payload(t, dir, "2.0.0")
	good, _ := os.ReadFile(pay)
	flip := append([]byte(nil), good...)
	flip[5000] ^= 1
	wrongRec := rec
	wrongRec.Arch = "arm64"
	wrongArch := append([]byte(nil), good...)
	enc, _ := EncodeRecord(wrongRec)
	copy(wrongArch[len(wrongArch)-RecordSize:], enc)
	for _, c := range []struct {
		name, want string
		data       []byte
		opt        InstallOptions
	}{
		{"sha256 mismatch", "expected " + strings.Repeat("0", 64), good, InstallOptions{SHA256: strings.Repeat("0", 64)}},
		{"truncated", "slot record", good[:len(good)-10000], InstallOptions{}},
		{"flipped byte", "corrupt payload", flip, InstallOptions{}},
		{"wrong arch", "payload is for arm64, this system is x86-64", wrongArch, InstallOptions{Arch: "x86-64"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			disk := filepath.Join(t.TempDir(), "disk.img")
			run(t, "cp", "--sparse=always", base, disk)
			sumA := partSum(t, disk, IndexUSRA)
			p := filepath.Join(t.TempDir(), "bad.payload")
			if err := os.WriteFile(p, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := install(t, disk, p, c.opt)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err %v, want one line with %q", err, c.want)
			}
			if partSum(t, disk, IndexUSRA) != sumA {
				t.Fatal("booted slot A changed")
			}
			if s, _ := next(t, disk); s.Name != "A" {
				t.Fatalf("Next picks %s", s.Name)
			}
		})
	}
}

func TestRecordCodec(t *testing.T) {
	rec := Record{Version: "1.2.3", Arch: "x86-64", FS: "erofs", DataSize: 8192, HashOffset: 8192, HashSize: verityHashSize(8192),
		RootHash: strings.Repeat("ab", 32), Salt: "0011", SHA256: strings.Repeat("cd", 32)}
	b, err := EncodeRecord(rec)
	if err != nil || len(b) != RecordSize || !bytes.HasPrefix(b, []byte(`{"strata_slot":1,`)) {
		t.Fatalf("%v %q", err, b[:40])
	}
	got, err := DecodeRecord(b)
	rec.Magic = 1
	if err != nil || got != rec {
		t.Fatalf("%v %+v", err, got)
	}
	if _, err := DecodeRecord(make([]byte, RecordSize)); !errors.Is(err, ErrNoRecord) {
		t.Fatalf("zero record: %v", err)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	b, _ := EncodeRecord(Record{Version: "1", Arch: "x86-64", FS: "erofs", DataSize: 4096, HashOffset: 4096, HashSize: verityHashSize(4096),
		RootHash: strings.Repeat("ab", 32), SHA256: strings.Repeat("cd", 32)})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := DecodeRecord(b)
		if err == nil && (rec.BodySize() < rec.DataSize || rec.PayloadSize() <= RecordSize) {
			t.Fatalf("accepted inconsistent record %+v", rec)
		}
	})
}

// TestAddExtensions: adding an extension to a baked disk gives the bytes of baking it in.
func TestAddExtensions(t *testing.T) {
	d1, d2 := t.TempDir(), t.TempDir()
	ext := filepath.Join(t.TempDir(), "tools.raw")
	if err := os.WriteFile(ext, bytes.Repeat([]byte("y"), 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	with := bake(t, d1, "1.0.0", ext)
	later := bake(t, d2, "1.0.0")
	if err := AddExtensions(context.Background(), later, []string{ext}, 0); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(with)
	b, _ := os.ReadFile(later)
	if !bytes.Equal(a, b) {
		t.Fatal("bake --sysext and AddExtensions differ")
	}
	if err := AddExtensions(context.Background(), later, []string{ext}, 0); err == nil || !strings.Contains(err.Error(), "already holds /var/lib/extensions/tools.raw") {
		t.Fatalf("second add: %v", err)
	}
}

func TestBakeCmdlineOnESP(t *testing.T) {
	privtest.RequireTools(t, "mtype")
	dir := t.TempDir()
	disk := bake(t, dir, "1.0.0")
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tb, _ := readTable(t, f)
	rec, err := ReadRecord(f, tb.ByIndex(IndexUSRA).Start(), tb.ByIndex(IndexUSRA).Size())
	if err != nil {
		t.Fatal(err)
	}
	esp := tb.ByIndex(IndexESP)
	b := make([]byte, esp.Size())
	if _, err := f.ReadAt(b, esp.Start()); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "esp.img")
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := run(t, "mtype", "-i", img, "::/strata/cmdline")
	want := "verity.usr=PARTUUID=7130c94a-213a-4e5a-8e26-6cce9662f132 verity.usrhash=" + rec.RootHash
	if !strings.Contains(out, want) {
		t.Fatalf("cmdline %q lacks %q", out, want)
	}
	if k := run(t, "mtype", "-i", img, "::/strata/vmlinuz"); k != "not really a kernel" {
		t.Fatalf("kernel on ESP: %q", k)
	}
}

// TestBakeRootFillsPartition: ROOT is the node's writable state (journal,
// downloads, /etc), so its ext4 spans the whole partition, and e2fsck finds
// it clean.
func TestBakeRootFillsPartition(t *testing.T) {
	privtest.RequireTools(t, "e2fsck")
	disk := bake(t, t.TempDir(), "1.0.0")
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tb, _ := readTable(t, f)
	for _, idx := range []int{IndexRoot, IndexOEM} {
		p := tb.ByIndex(idx)
		sb := make([]byte, 1024)
		if _, err := f.ReadAt(sb, p.Start()+1024); err != nil {
			t.Fatal(err)
		}
		blocks := int64(binary.LittleEndian.Uint32(sb[4:8]))
		bsize := int64(1024) << binary.LittleEndian.Uint32(sb[0x18:0x1c])
		if blocks*bsize != p.Size() {
			t.Errorf("partition %d: ext4 of %d bytes in a %d-byte partition", idx, blocks*bsize, p.Size())
		}
		part := filepath.Join(t.TempDir(), "part")
		b := make([]byte, p.Size())
		if _, err := f.ReadAt(b, p.Start()); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(part, b, 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, "e2fsck", "-fn", part)
	}
}
