package limitread

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

func TestReadAll(t *testing.T) {
	for _, c := range []struct {
		in    string
		limit int64
		err   error
	}{
		{"", 0, nil},
		{"abc", 3, nil},
		{"abc", 4, nil},
		{"abcd", 3, ErrTooLarge},
		{"a", 0, ErrTooLarge},
		{"a", -1, ErrTooLarge},
	} {
		got, err := ReadAll(strings.NewReader(c.in), c.limit)
		if !errors.Is(err, c.err) {
			t.Errorf("ReadAll(%q, %d) err = %v, want %v", c.in, c.limit, err, c.err)
			continue
		}
		if err == nil && string(got) != c.in {
			t.Errorf("ReadAll(%q, %d) = %q", c.in, c.limit, got)
		}
	}
}

// A reader that never ends is cut off one byte past the limit, not read
// to the end.
func TestReadAllEndless(t *testing.T) {
	r := &endless{}
	if _, err := ReadAll(r, 1000); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if r.n > 1001+512 {
		t.Fatalf("read %d bytes for a 1000-byte limit", r.n)
	}
}

type endless struct{ n int }

func (e *endless) Read(p []byte) (int, error) {
	if len(p) > 256 {
		p = p[:256]
	}
	copy(p, bytes.Repeat([]byte("x"), len(p)))
	e.n += len(p)
	return len(p), nil
}

func TestReadFile(t *testing.T) {
	fsys := fstest.MapFS{"a/b": {Data: []byte("12345")}}
	if got, err := ReadFile(fsys, "a/b", 5); err != nil || string(got) != "12345" {
		t.Fatalf("ReadFile = %q, %v", got, err)
	}
	if _, err := ReadFile(fsys, "a/b", 4); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: err = %v", err)
	}
	if _, err := ReadFile(fsys, "a/c", 4); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing: err = %v", err)
	}
}
