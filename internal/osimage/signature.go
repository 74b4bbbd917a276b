package osimage

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/stratalinux/strata/internal/pkcs7"
)

// Signer signs a slot's verity root hash: a key and its certificate (pkcs7.LoadSigner).
type Signer struct {
	Key  crypto.Signer
	Cert *x509.Certificate
}

// maxSignature bounds the decoded signature of a record (the record itself is 4 KiB).
const maxSignature = 3 << 10

// ErrUnsigned means a slot record carries no signature.
var ErrUnsigned = errors.New("its root hash is not signed")

// ErrUntrusted means a record's signature is by a certificate that is not trusted.
var ErrUntrusted = errors.New("the signer's certificate is not trusted")

// SignRecord sets rec.Signature: a detached PKCS#7 signature (SHA-256, the certificate embedded) over
// the root hash's lowercase hex, the same content as systemd's usr-verity-sig partition signs.
func SignRecord(rec *Record, s Signer) error {
	der, err := pkcs7.Sign([]byte(rec.RootHash), s.Cert, s.Key)
	if err != nil {
		return fmt.Errorf("sign root hash: %w", err)
	}
	if len(der) > maxSignature {
		return fmt.Errorf("signature of %d bytes does not fit the slot record (at most %d; use an ECDSA or RSA-2048 key)", len(der), maxSignature)
	}
	rec.Signature = base64.StdEncoding.EncodeToString(der)
	return nil
}

// VerifyRecord checks rec's signature over its root hash against trusted and returns the signer.
// An unsigned record is ErrUnsigned.
func VerifyRecord(rec Record, trusted []*x509.Certificate) (*x509.Certificate, error) {
	if rec.Signature == "" {
		return nil, ErrUnsigned
	}
	sig, err := parseSignature(rec.Signature)
	if err != nil {
		return nil, err
	}
	signer := signerOf(sig)
	if len(trusted) == 0 {
		return nil, &signatureError{fmt.Sprintf("root hash signed by %q, but no certificate is trusted to check it against (add one to /etc/verity.d)", signer), ErrUntrusted}
	}
	c, err := sig.Verify([]byte(rec.RootHash), trusted)
	switch {
	case errors.Is(err, pkcs7.ErrUntrusted):
		return nil, fmt.Errorf("root hash signed by %q: %w", signer, ErrUntrusted)
	case err != nil:
		return nil, fmt.Errorf("root hash signature by %q: %w", signer, err)
	}
	return c, nil
}

// SignerName names the certificate embedded in a record's signature (its subject), for status output;
// "" when unsigned or unreadable. It says who signed, not that the signer is trusted.
func SignerName(rec Record) string {
	sig, err := parseSignature(rec.Signature)
	if err != nil {
		return ""
	}
	return signerOf(sig)
}

func signerOf(sig *pkcs7.Signature) string {
	if len(sig.Certificates) == 0 {
		return ""
	}
	return sig.Certificates[0].Subject.String()
}

// parseSignature decodes and parses a record's signature field.
func parseSignature(s string) (*pkcs7.Signature, error) {
	der, err := decodeSignature(s)
	if err != nil {
		return nil, err
	}
	sig, err := pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("slot record: signature: %w", err)
	}
	return sig, nil
}

// signatureError is a refusal with its own wording that still matches ErrUntrusted.
type signatureError struct {
	msg  string
	kind error
}

func (e *signatureError) Error() string        { return e.msg }
func (e *signatureError) Is(target error) bool { return target == e.kind }

func decodeSignature(s string) ([]byte, error) {
	if s == "" {
		return nil, ErrUnsigned
	}
	if base64.StdEncoding.DecodedLen(len(s)) > maxSignature {
		return nil, fmt.Errorf("slot record: signature of %d characters is longer than %d bytes", len(s), maxSignature)
	}
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("slot record: signature is not base64: %w", err)
	}
	return der, nil
}
