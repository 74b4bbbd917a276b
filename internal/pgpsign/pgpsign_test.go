package pgpsign

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSignVerify(t *testing.T) {
	k, err := Generate("Strata", "s@example.org")
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("0123  a.raw\n")
	sig, err := Sign(k.Private, bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	fp, err := Verify(k.Public, msg, sig)
	if err != nil || fp != k.Fingerprint {
		t.Fatalf("Verify = %s, %v (want %s)", fp, err, k.Fingerprint)
	}
	if _, err := Verify(k.Public, append(msg, 'x'), sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered message: %v", err)
	}
	other, _ := Generate("Other", "o@example.org")
	if _, err := Verify(other.Public, msg, sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong key: %v", err)
	}
	if _, err := Sign(k.Public, bytes.NewReader(msg)); err == nil || !strings.Contains(err.Error(), "no private key") {
		t.Fatalf("signing with a public key: %v", err)
	}
	if _, err := Verify([]byte("garbage"), msg, sig); err == nil {
		t.Fatal("garbage keyring accepted")
	}
	if _, err := Generate("a<b", ""); err == nil {
		t.Fatal("bad identity accepted")
	}
}
