package osimage

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// The /usr file system is named by fsmagic, the one sniffer; only erofs
// and squashfs are accepted, with a line that says how to build one.
func TestUsrFS(t *testing.T) {
	img := func(off int, magic []byte) []byte {
		b := make([]byte, 8192)
		copy(b[off:], magic)
		return b
	}
	erofs := binary.LittleEndian.AppendUint32(nil, 0xE0F5E1E2)
	ext4 := binary.LittleEndian.AppendUint16(nil, 0xEF53)
	for _, c := range []struct {
		name, want, err string
		b               []byte
	}{
		{name: "erofs", b: img(1024, erofs), want: "erofs"},
		{name: "squashfs", b: img(0, []byte("hsqs")), want: "squashfs"},
		{name: "ext4", b: img(1024+0x38, ext4), err: "not an erofs or squashfs image"},
		{name: "gpt disk", b: img(512, []byte("EFI PART")), err: "not an erofs or squashfs image"},
		{name: "zeros", b: make([]byte, 8192), err: "not an erofs or squashfs image"},
		{name: "empty", b: nil, err: "not an erofs or squashfs image"},
	} {
		got, err := usrFS(bytes.NewReader(c.b), int64(len(c.b)))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: usrFS = %q, %v; want error %q", c.name, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: usrFS = %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}
