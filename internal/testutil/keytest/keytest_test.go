package keytest

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"testing"
)

// The key signs what the certificate verifies, and the certificate names cn.
func TestNewSignsWhatTheCertVerifies(t *testing.T) {
	k := New(t, "keytest")
	if k.Cert.Subject.CommonName != "keytest" {
		t.Fatalf("certificate CN %q, want keytest", k.Cert.Subject.CommonName)
	}
	sum := sha256.Sum256([]byte("root hash"))
	sig, err := k.Signer.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Cert.CheckSignature(x509.SHA256WithRSA, []byte("root hash"), sig); err != nil {
		t.Fatalf("certificate does not verify the key's signature: %v", err)
	}
	if other := New(t, "other"); other.Cert.Equal(k.Cert) {
		t.Fatal("two keys share a certificate")
	}
	if len(k.KeyPEM) == 0 || len(k.CertPEM) == 0 {
		t.Fatal("empty PEM")
	}
}
