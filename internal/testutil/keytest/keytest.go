// Package keytest makes the X.509 signing key and self-signed certificate
// that tests sign root hashes and DDIs with (RSA, valid from now for 30
// days), so each test package does not write the generate-and-parse steps
// again.
package keytest

import (
	"crypto"
	"crypto/x509"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/pkcs7"
)

// Key is a signing key with its certificate, parsed and as PEM.
type Key struct {
	Signer  crypto.Signer
	Cert    *x509.Certificate
	KeyPEM  []byte
	CertPEM []byte
}

// New makes a key and a certificate for the common name cn; it fails t
// when that cannot be done.
func New(t testing.TB, cn string) Key {
	t.Helper()
	keyPEM, certPEM, err := pkcs7.Generate("rsa", cn, time.Now(), 30)
	if err != nil {
		t.Fatalf("generate test key %s: %v", cn, err)
	}
	k, err := pkcs7.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		t.Fatalf("parse test key %s: %v", cn, err)
	}
	cs, err := pkcs7.ParseCertificatesPEM(certPEM)
	if err != nil || len(cs) == 0 {
		t.Fatalf("parse test certificate %s: %d certificates, %v", cn, len(cs), err)
	}
	return Key{Signer: k, Cert: cs[0], KeyPEM: keyPEM, CertPEM: certPEM}
}
