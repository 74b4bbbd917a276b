package verity

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var testUUID = [16]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}

const testUUIDString = "12345678-9abc-def0-1122-334455667788"

func veritysetup(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("veritysetup")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("veritysetup is required when CI=true (apt-get install cryptsetup-bin): %v", err)
		}
		t.Skipf("veritysetup not installed: %v", err)
	}
	return p
}

func randomFile(t *testing.T, dir, name string, size int64) string {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func rootFromOutput(t *testing.T, out string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "Root hash" {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no root hash in veritysetup output:\n%s", out)
	return ""
}

// formatFile runs our Format on the file at path, writing the tree to
// hashPath at off.
func formatFile(t *testing.T, path string, size int64, hashPath string, off int64, p Params) ([]byte, int64) {
	t.Helper()
	df, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer df.Close()
	hf, err := os.OpenFile(hashPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	root, n, err := Format(context.Background(), df, size, hf, off, p)
	if err != nil {
		t.Fatal(err)
	}
	return root, n
}

// TestFormatMatchesVeritysetup compares root hash and hash-device bytes
// with veritysetup format on the same data, salt and uuid, for sizes at
// the level boundaries, and has veritysetup verify what we wrote, with
// the tree in a separate file and after the data in the same file.
func TestFormatMatchesVeritysetup(t *testing.T) {
	vs := veritysetup(t)
	salt, _ := hex.DecodeString("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
	for _, tc := range []struct {
		blocks int64
		salt   []byte
	}{{1, salt}, {2, salt}, {128, salt}, {129, salt}, {1000, nil}, {128*128 + 1, salt}, {128 * 128, []byte{1, 2, 3, 4, 5, 6, 7, 8}}} {
		t.Run(fmt.Sprintf("%d-blocks-salt%d", tc.blocks, len(tc.salt)), func(t *testing.T) {
			dir := t.TempDir()
			size := tc.blocks * 4096
			data := randomFile(t, dir, "data", size)
			p := Params{Salt: tc.salt, UUID: testUUID}
			saltArg := "-"
			if len(tc.salt) > 0 {
				saltArg = hex.EncodeToString(tc.salt)
			}

			// Separate hash file, hash offset 8192 (after some leading bytes).
			const off = 8192
			refHash := filepath.Join(dir, "ref.hash")
			out := run(t, vs, "format", "--salt="+saltArg, "--uuid="+testUUIDString, fmt.Sprintf("--hash-offset=%d", off), data, refHash)
			wantRoot := rootFromOutput(t, out)
			ourHash := filepath.Join(dir, "our.hash")
			root, n := formatFile(t, data, size, ourHash, off, p)
			if got := hex.EncodeToString(root); got != wantRoot {
				t.Fatalf("root hash %s, veritysetup %s", got, wantRoot)
			}
			if n != HashSize(size, p) {
				t.Fatalf("Format wrote %d bytes, HashSize says %d", n, HashSize(size, p))
			}
			ref, _ := os.ReadFile(refHash)
			our, _ := os.ReadFile(ourHash)
			if int64(len(ref)) != off+n {
				t.Fatalf("veritysetup hash file is %d bytes, want offset %d + our %d", len(ref), off, n)
			}
			if !bytes.Equal(ref, our) {
				t.Fatalf("hash device bytes differ from veritysetup's (first difference at %d)", firstDiff(ref, our))
			}
			run(t, vs, "verify", fmt.Sprintf("--hash-offset=%d", off), data, ourHash, wantRoot)
			if err := verifyFiles(data, ourHash, off, root); err != nil {
				t.Fatalf("Verify: %v", err)
			}

			// Same file, tree right after the data (Flatcar's layout).
			same := filepath.Join(dir, "same")
			b, _ := os.ReadFile(data)
			os.WriteFile(same, b, 0o644)
			root2, _ := formatFile(t, same, size, same, size, p)
			if !bytes.Equal(root2, root) {
				t.Fatalf("root in same-file layout %x, want %x", root2, root)
			}
			run(t, vs, "verify", fmt.Sprintf("--hash-offset=%d", size), same, same, wantRoot)
			refSame := filepath.Join(dir, "refsame")
			os.WriteFile(refSame, b, 0o644)
			run(t, vs, "format", "--salt="+saltArg, "--uuid="+testUUIDString, fmt.Sprintf("--hash-offset=%d", size), fmt.Sprintf("--data-blocks=%d", tc.blocks), refSame, refSame)
			rs, _ := os.ReadFile(refSame)
			os2, _ := os.ReadFile(same)
			if !bytes.Equal(rs, os2) {
				t.Fatalf("same-file image differs from veritysetup's (first difference at %d)", firstDiff(rs, os2))
			}
			if err := verifyFiles(same, same, size, root); err != nil {
				t.Fatalf("Verify same file: %v", err)
			}

			sb, err := ReadSuperblock(bytes.NewReader(our), off)
			if err != nil {
				t.Fatal(err)
			}
			if sb.DataBlocks != uint64(tc.blocks) || sb.UUID != testUUID || !bytes.Equal(sb.Salt, tc.salt) || sb.Algorithm != "sha256" {
				t.Fatalf("superblock read back: %+v", sb)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func verifyFiles(data, hash string, off int64, root []byte) error {
	df, err := os.Open(data)
	if err != nil {
		return err
	}
	defer df.Close()
	hf, err := os.Open(hash)
	if err != nil {
		return err
	}
	defer hf.Close()
	return Verify(context.Background(), df, hf, off, root)
}

func TestFormatRejectsOddSizes(t *testing.T) {
	data := bytes.NewReader(make([]byte, 5000))
	var w bytes.Buffer
	_ = w
	for _, size := range []int64{0, 5000, 4095, -4096} {
		_, _, err := Format(context.Background(), data, size, discard{}, 0, Params{})
		if err == nil || !strings.Contains(err.Error(), "not a positive multiple of the 4096-byte data block size") {
			t.Errorf("size %d: err = %v, want a clear size error", size, err)
		}
		if HashSize(size, Params{}) != 0 {
			t.Errorf("HashSize(%d) = %d, want 0", size, HashSize(size, Params{}))
		}
	}
	if _, _, err := Format(context.Background(), bytes.NewReader(make([]byte, 4096)), 4096, discard{}, 100, Params{}); err == nil {
		t.Error("hash offset 100 accepted")
	}
	if _, _, err := Format(context.Background(), bytes.NewReader(make([]byte, 4096)), 4096, discard{}, 0, Params{Salt: make([]byte, 257)}); err == nil {
		t.Error("257-byte salt accepted")
	}
	// Data shorter than dataSize: a read error, not a tree of zeros.
	if _, _, err := Format(context.Background(), bytes.NewReader(make([]byte, 4096)), 8192, discard{}, 0, Params{}); err == nil {
		t.Error("short data accepted")
	}
}

type discard struct{}

func (discard) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }

func TestHashSize(t *testing.T) {
	for _, tc := range []struct{ blocks, want int64 }{
		{1, 1}, {2, 2}, {128, 2}, {129, 1 + 2 + 1}, {128 * 128, 1 + 128 + 1}, {128*128 + 1, 1 + 129 + 2 + 1},
	} {
		if got := HashSize(tc.blocks*4096, Params{}); got != tc.want*4096 {
			t.Errorf("HashSize(%d blocks) = %d blocks, want %d", tc.blocks, got/4096, tc.want)
		}
	}
}

func TestTable(t *testing.T) {
	sb := Superblock{Version: 1, HashType: 1, Algorithm: "sha256", DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 1000, Salt: []byte{0xab, 0xcd}}
	root := bytes.Repeat([]byte{0x11}, 32)
	got := Table("/dev/vda3", "/dev/vda3", sb, 4096000, root, "panic_on_corruption")
	want := "0 8000 verity 1 /dev/vda3 /dev/vda3 4096 4096 1000 1001 sha256 " + strings.Repeat("11", 32) + " abcd 1 panic_on_corruption"
	if got != want {
		t.Fatalf("Table:\n got %s\nwant %s", got, want)
	}
	sb.Salt = nil
	if got := Table("a", "b", sb, 0, root); !strings.HasSuffix(got, " 1 sha256 "+strings.Repeat("11", 32)+" -") {
		t.Fatalf("Table without salt/opts: %s", got)
	}
}
