package pkcs7

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKeyMatches(t *testing.T) {
	pair := func() ([]byte, []byte) {
		k, c, err := Generate("ecdsa", "test", time.Unix(0, 0), 1)
		if err != nil {
			t.Fatal(err)
		}
		return k, c
	}
	k1, c1 := pair()
	_, c2 := pair()
	key, err := ParsePrivateKeyPEM(k1)
	if err != nil {
		t.Fatal(err)
	}
	own, err := ParseCertificatesPEM(c1)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ParseCertificatesPEM(c2)
	if err != nil {
		t.Fatal(err)
	}
	if !KeyMatches(key, own[0]) {
		t.Error("a key does not match its own certificate")
	}
	if KeyMatches(key, other[0]) {
		t.Error("a key matches another key's certificate")
	}
}

func TestLoadSigner(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	k1, c1, err := Generate("ecdsa", "one", time.Now(), 1)
	if err != nil {
		t.Fatal(err)
	}
	_, c2, err := Generate("ecdsa", "two", time.Now(), 1)
	if err != nil {
		t.Fatal(err)
	}
	key, cert1, cert2 := write("k1.pem", k1), write("c1.crt", c1), write("c2.crt", c2)
	if k, c, err := LoadSigner(key, cert1); err != nil || k == nil || c.Subject.CommonName != "one" {
		t.Fatalf("matching pair: %v %v %v", k, c, err)
	}
	if _, _, err := LoadSigner(key, cert2); err == nil || !strings.Contains(err.Error(), "is not the key of the certificate "+cert2) {
		t.Fatalf("mismatched pair: %v", err)
	}
	if _, _, err := LoadSigner(cert1, cert1); err == nil || !strings.Contains(err.Error(), cert1) {
		t.Fatalf("certificate as key: %v", err)
	}
	if _, _, err := LoadSigner(filepath.Join(dir, "missing"), cert1); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing key: %v", err)
	}
	if len(Fingerprint(mustCert(t, c1))) != 64 {
		t.Fatal("fingerprint is not a hex SHA-256")
	}
}

func mustCert(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	certs, err := ParseCertificatesPEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}
