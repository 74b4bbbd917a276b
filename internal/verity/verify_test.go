package verity

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// memImage is data followed by its tree in one buffer, Flatcar's layout.
type memImage struct {
	b    []byte
	size int64
	root []byte
}

func newMemImage(t *testing.T, blocks int64) memImage {
	t.Helper()
	size := blocks * 4096
	p := Params{Salt: bytes.Repeat([]byte{0x5a}, 32), UUID: testUUID}
	b := make([]byte, size+HashSize(size, p))
	rand.Read(b[:size])
	root, n, err := Format(context.Background(), bytes.NewReader(b[:size]), size, byteWriterAt(b), size, p)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(b))-size {
		t.Fatalf("wrote %d hash bytes, HashSize %d", n, len(b)-int(size))
	}
	return memImage{b: b, size: size, root: root}
}

type byteWriterAt []byte

func (w byteWriterAt) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > int64(len(w)) {
		return 0, errors.New("write past the end")
	}
	return copy(w[off:], p), nil
}

func (m memImage) verify(b []byte) error {
	r := bytes.NewReader(b)
	return Verify(context.Background(), r, r, m.size, m.root)
}

func TestVerifyAcceptsAndNamesTheFirstBadBlock(t *testing.T) {
	for _, blocks := range []int64{1, 128, 129, 5000} {
		m := newMemImage(t, blocks)
		if err := m.verify(m.b); err != nil {
			t.Fatalf("%d blocks: intact image refused: %v", blocks, err)
		}
		// Flip one byte in the last data block, then also in block 17: the
		// lower one is named.
		c := bytes.Clone(m.b)
		c[m.size-1] ^= 1
		want := "data block " + itoa(blocks-1) + " of the data does not match its hash"
		if err := m.verify(c); err == nil || err.Error() != want {
			t.Fatalf("%d blocks, last byte flipped: %v, want %q", blocks, err, want)
		}
		if blocks > 17 {
			c[17*4096+100] ^= 0x80
			if err := m.verify(c); err == nil || err.Error() != "data block 17 of the data does not match its hash" {
				t.Fatalf("blocks 17 and last flipped: %v", err)
			}
		}
		// A flipped hash byte (a leaf of block 0) is a hash-block error, or
		// a root mismatch when the tree is a single block.
		if blocks > 1 {
			c = bytes.Clone(m.b)
			c[m.size+4096] ^= 1 // first digest of the top tree block
			err := m.verify(c)
			if err == nil || !(strings.Contains(err.Error(), "does not match its hash") || strings.Contains(err.Error(), "root hash")) {
				t.Fatalf("%d blocks, hash byte flipped: %v", blocks, err)
			}
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestVerifyWrongRoot(t *testing.T) {
	m := newMemImage(t, 200)
	m.root = bytes.Repeat([]byte{1}, 32)
	if err := m.verify(m.b); err == nil || !strings.Contains(err.Error(), "root hash") {
		t.Fatalf("wrong root: %v", err)
	}
}

func TestVerifyTruncatedHashArea(t *testing.T) {
	m := newMemImage(t, 300)
	for _, cut := range []int64{1, 4096, int64(len(m.b)) - m.size - 100} {
		err := m.verify(m.b[:int64(len(m.b))-cut])
		if err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("hash area cut by %d bytes: %v", cut, err)
		}
	}
	// Data shorter than the superblock says, with the tree elsewhere.
	hash := bytes.NewReader(m.b)
	if err := Verify(context.Background(), bytes.NewReader(m.b[:m.size-4096]), hash, m.size, m.root); err == nil {
		t.Error("short data accepted")
	}
}

func TestVerifyBadSuperblock(t *testing.T) {
	m := newMemImage(t, 10)
	for _, tc := range []struct {
		name string
		edit func(sb []byte)
		want string
	}{
		{"magic", func(sb []byte) { copy(sb, "veritx") }, `signature is "veritx"`},
		{"version", func(sb []byte) { binary.LittleEndian.PutUint32(sb[8:], 2) }, "version 2 is not supported"},
		{"hash type", func(sb []byte) { binary.LittleEndian.PutUint32(sb[12:], 0) }, "hash type 0 is not supported"},
		{"algorithm", func(sb []byte) { copy(sb[32:64], "sha1\x00\x00") }, `algorithm "sha1" is not supported`},
		{"block size", func(sb []byte) { binary.LittleEndian.PutUint32(sb[64:], 4095) }, "data block size 4095"},
		{"salt size", func(sb []byte) { binary.LittleEndian.PutUint16(sb[80:], 300) }, "salt size 300"},
		{"zero blocks", func(sb []byte) { binary.LittleEndian.PutUint64(sb[72:], 0) }, "data block count is 0"},
		{"huge", func(sb []byte) { binary.LittleEndian.PutUint64(sb[72:], 1<<60) }, "overflows"},
	} {
		c := bytes.Clone(m.b)
		tc.edit(c[m.size:])
		err := m.verify(c)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line containing %q", tc.name, err, tc.want)
		}
		if err != nil && !errors.Is(err, ErrSuperblock) {
			t.Errorf("%s: %v is not ErrSuperblock", tc.name, err)
		}
	}
	// A superblock claiming far more data than exists: truncated, not a huge allocation.
	c := bytes.Clone(m.b)
	binary.LittleEndian.PutUint64(c[m.size+72:], 1<<40)
	if err := m.verify(c); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("superblock with 2^40 blocks: %v", err)
	}
}

func TestVerifyNamesFiles(t *testing.T) {
	m := newMemImage(t, 3)
	dir := t.TempDir()
	p := filepath.Join(dir, "usr.img")
	m.b[5000] ^= 1
	if err := os.WriteFile(p, m.b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = Verify(context.Background(), f, f, m.size, m.root)
	if err == nil || err.Error() != "data block 1 of "+p+" does not match its hash" {
		t.Fatalf("got %v", err)
	}
}

func FuzzReadSuperblock(f *testing.F) {
	f.Add(Superblock{Version: 1, HashType: 1, Algorithm: "sha256", DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 7, Salt: []byte{1, 2}}.encode())
	f.Add(make([]byte, 512))
	f.Add([]byte("verity\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := ReadSuperblock(bytes.NewReader(b), 0)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		// What we accept round-trips and is something the tree can be laid out for.
		again, err := ReadSuperblock(bytes.NewReader(sb.encode()), 0)
		if err != nil || !reflect.DeepEqual(again, sb) {
			t.Fatalf("superblock does not round-trip: %+v → %+v, %v", sb, again, err)
		}
		if _, err := layout(sb.DataBlocks, 0, sb.params()); err != nil {
			t.Fatalf("accepted superblock without a layout: %v", err)
		}
	})
}

// TestVerifyTree: the tree alone is checked against the root hash (a root
// hash of another image is refused); one data block has no tree.
func TestVerifyTree(t *testing.T) {
	m := newMemImage(t, 300)
	r := bytes.NewReader(m.b)
	if err := VerifyTree(r, m.size, m.root); err != nil {
		t.Fatalf("own root: %v", err)
	}
	if err := VerifyTree(r, m.size, bytes.Repeat([]byte{7}, 32)); err == nil || !strings.Contains(err.Error(), "root hash") {
		t.Fatalf("another root: %v", err)
	}
	one := newMemImage(t, 1)
	if err := VerifyTree(bytes.NewReader(one.b), one.size, one.root); !errors.Is(err, ErrNoTree) {
		t.Fatalf("one block: %v, want ErrNoTree", err)
	}
}
