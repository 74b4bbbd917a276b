// Package limitread reads untrusted input into memory with a size bound:
// the one "read at most N bytes, and fail if there is more" helper.
package limitread

import (
	"errors"
	"io"
	"io/fs"
)

// ErrTooLarge is returned when the input holds more than the limit.
// Callers wrap it with the name and the limit.
var ErrTooLarge = errors.New("file too large")

// ReadAll reads r to the end, at most limit bytes. It reads one byte
// past the limit to tell "exactly limit" from "more", and returns
// ErrTooLarge (unwrapped) for the latter.
func ReadAll(r io.Reader, limit int64) ([]byte, error) {
	if limit < 0 {
		limit = 0
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, ErrTooLarge
	}
	return data, nil
}

// ReadFile reads name from fsys, at most limit bytes.
func ReadFile(fsys fs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAll(f, limit)
}
