package imagefile

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestDetect(t *testing.T) {
	img := func(off int, b []byte) *bytes.Reader {
		buf := make([]byte, 4096)
		copy(buf[off:], b)
		return bytes.NewReader(buf)
	}
	le := func(n int, v uint32) []byte {
		b := make([]byte, n)
		if n == 2 {
			binary.LittleEndian.PutUint16(b, uint16(v))
		} else {
			binary.LittleEndian.PutUint32(b, v)
		}
		return b
	}
	for want, r := range map[string]*bytes.Reader{
		"squashfs": img(0, []byte("hsqs")),
		"erofs":    img(1024, le(4, 0xE0F5E1E2)),
		"ext4":     img(1024+0x38, le(2, 0xEF53)),
		"gpt":      img(512, []byte("EFI PART")),
	} {
		if got, err := Detect(r); err != nil || got != want {
			t.Errorf("want %s, got %s %v", want, got, err)
		}
	}
	if _, err := Detect(bytes.NewReader(make([]byte, 4096))); err == nil {
		t.Error("zeros detected as an image")
	}
	if _, err := Detect(bytes.NewReader([]byte("x"))); err == nil {
		t.Error("1 byte detected as an image")
	}
}
