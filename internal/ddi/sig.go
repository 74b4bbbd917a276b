package ddi

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// SigPartitionSize is the size systemd-repart gives every verity-signature
// partition (VERITY_SIG_SIZE, 16 KiB): the JSON object, NUL-padded.
const SigPartitionSize = 16 << 10

// MaxSigPartition is the largest signature partition systemd-dissect reads (4 MiB).
const MaxSigPartition = 4 << 20

// SigInfo is the verity-signature JSON object systemd reads.
type SigInfo struct {
	RootHash []byte // the dm-verity root hash
	// CertFingerprint is the SHA-256 of the signing certificate's DER, if given.
	CertFingerprint []byte
	Signature       []byte // detached PKCS#7 (DER) over the root hash in lowercase hex
}

type sigJSON struct {
	RootHash               string `json:"rootHash"`
	CertificateFingerprint string `json:"certificateFingerprint,omitempty"`
	Signature              string `json:"signature"`
}

// EncodeSig renders the object as systemd-repart writes it (compact JSON:
// rootHash, certificateFingerprint, signature), NUL-padded to size bytes.
func EncodeSig(s SigInfo, size int) ([]byte, error) {
	b, err := json.Marshal(sigJSON{
		RootHash:               hex.EncodeToString(s.RootHash),
		CertificateFingerprint: hex.EncodeToString(s.CertFingerprint),
		Signature:              base64.StdEncoding.EncodeToString(s.Signature),
	})
	if err != nil {
		return nil, err
	}
	if len(b)+1 > size {
		return nil, fmt.Errorf("verity signature of %d bytes does not fit a %d-byte partition", len(b), size)
	}
	out := make([]byte, size)
	copy(out, b)
	return out, nil
}

// CertFingerprint is the SHA-256 of a certificate's DER, as systemd-repart records it.
func CertFingerprint(c *x509.Certificate) []byte {
	s := sha256.Sum256(c.Raw)
	return s[:]
}

// DecodeSig parses a signature partition's bytes as systemd-dissect does:
// at most 4 MiB; after the first NUL only NULs; a JSON object with a hex
// "rootHash" and a base64 "signature" ("certificateFingerprint" optional).
func DecodeSig(b []byte) (SigInfo, error) {
	if len(b) > MaxSigPartition {
		return SigInfo{}, fmt.Errorf("verity signature partition of %d bytes is larger than 4 MiB", len(b))
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		if len(bytes.Trim(b[i:], "\x00")) != 0 {
			return SigInfo{}, errors.New("verity signature data contains an embedded NUL byte")
		}
		b = b[:i]
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return SigInfo{}, errors.New("verity signature partition is empty")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return SigInfo{}, fmt.Errorf("verity signature is not a JSON object: %w", err)
	}
	str := func(k string) (string, bool, error) {
		v, ok := raw[k]
		if !ok {
			return "", false, nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", true, fmt.Errorf("verity signature field %q is not a string", k)
		}
		return s, true, nil
	}
	var out SigInfo
	rh, ok, err := str("rootHash")
	if err != nil {
		return SigInfo{}, err
	}
	if !ok {
		return SigInfo{}, errors.New("verity signature JSON object lacks the 'rootHash' field")
	}
	if out.RootHash, err = parseRootHash(rh); err != nil {
		return SigInfo{}, fmt.Errorf("verity signature: %w", err)
	}
	sig, ok, err := str("signature")
	if err != nil {
		return SigInfo{}, err
	}
	if !ok {
		return SigInfo{}, errors.New("verity signature JSON object lacks the 'signature' field")
	}
	if out.Signature, err = base64.StdEncoding.DecodeString(sig); err != nil || len(out.Signature) == 0 {
		return SigInfo{}, errors.New("verity signature field 'signature' is not base64")
	}
	fp, ok, err := str("certificateFingerprint")
	if err != nil {
		return SigInfo{}, err
	}
	if ok {
		if out.CertFingerprint, err = hex.DecodeString(fp); err != nil || len(out.CertFingerprint) != sha256.Size {
			return SigInfo{}, errors.New("verity signature field 'certificateFingerprint' is not a hex SHA-256")
		}
	}
	return out, nil
}

// parseRootHash reads a hex root hash (as in NAME.roothash files and the
// JSON object): at least 128 bits, whitespace around it ignored.
func parseRootHash(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	h, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("root hash %.80q is not hexadecimal", s)
	}
	if len(h) < 16 || len(h) > 64 {
		return nil, fmt.Errorf("root hash of %d bytes: want 16 to 64", len(h))
	}
	return h, nil
}
