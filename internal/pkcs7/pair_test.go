package pkcs7

import (
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
