package fleet

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
)

// Payload is what an Omaha manifest says of a package's file: its size,
// SHA-1 (base64, update_engine's hash attribute) and SHA-256 (hex).
type Payload struct {
	Size   int64
	SHA1   string
	SHA256 string
}

// ReadPayload reads the file name of fsys once for its size and both
// hashes. A repository is read through its *os.Root (root.FS()), so a
// link in it cannot point outside.
func ReadPayload(fsys fs.FS, name string) (Payload, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return Payload{}, err
	}
	defer f.Close()
	h1, h256 := sha1.New(), sha256.New()
	n, err := io.Copy(io.MultiWriter(h1, h256), f)
	if err != nil {
		return Payload{}, fmt.Errorf("reading %s: %w", name, err)
	}
	return Payload{Size: n, SHA1: base64.StdEncoding.EncodeToString(h1.Sum(nil)), SHA256: hex.EncodeToString(h256.Sum(nil))}, nil
}
