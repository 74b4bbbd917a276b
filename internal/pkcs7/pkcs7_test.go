package pkcs7

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/testutil/privtest"
)

type keyPair struct {
	keyPath, certPath string
	cert              *x509.Certificate
}

func genPair(t *testing.T, dir, typ, cn string) keyPair {
	t.Helper()
	keyPEM, certPEM, err := Generate(typ, cn, time.Now(), 30)
	if err != nil {
		t.Fatal(err)
	}
	kp := keyPair{keyPath: filepath.Join(dir, cn+".key"), certPath: filepath.Join(dir, cn+".crt")}
	if err := os.WriteFile(kp.keyPath, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kp.certPath, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	certs, err := ParseCertificatesPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	kp.cert = certs[0]
	return kp
}

func sign(t *testing.T, kp keyPair, content []byte) []byte {
	t.Helper()
	b, err := os.ReadFile(kp.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePrivateKeyPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := Sign(content, kp.cert, k)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func openssl(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	return out, err
}

const rootHash = "3c6a5e2f0d8b4c1e9a7f6b5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a291"

// TestOpenSSLVerifiesOurs: our signatures pass `openssl smime -verify` and
// `openssl cms -verify` with the signer's certificate as the only CA.
func TestOpenSSLVerifiesOurs(t *testing.T) {
	privtest.RequireTools(t, "openssl")
	dir := t.TempDir()
	data := filepath.Join(dir, "roothash")
	if err := os.WriteFile(data, []byte(rootHash), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, typ := range KeyTypes {
		kp := genPair(t, dir, typ, "strata-test-"+typ)
		sig := sign(t, kp, []byte(rootHash))
		sigPath := filepath.Join(dir, typ+".p7s")
		if err := os.WriteFile(sigPath, sig, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, tool := range []string{"smime", "cms"} {
			out, err := openssl(t, tool, "-verify", "-inform", "der", "-in", sigPath, "-binary", "-content", data, "-CAfile", kp.certPath, "-purpose", "any", "-out", os.DevNull)
			if err != nil || !strings.Contains(string(out), "Verification successful") {
				t.Errorf("%s: openssl %s -verify: %v\n%s", typ, tool, err, out)
			}
			// The same check against other content fails.
			other := filepath.Join(dir, "other")
			_ = os.WriteFile(other, []byte(strings.Repeat("0", 64)), 0o644)
			if out, err := openssl(t, tool, "-verify", "-inform", "der", "-in", sigPath, "-binary", "-content", other, "-CAfile", kp.certPath, "-purpose", "any", "-out", os.DevNull); err == nil {
				t.Errorf("%s: openssl %s accepted the signature over other content:\n%s", typ, tool, out)
			}
		}
		// Our signature's structure is openssl's: no signed attributes, the certificate embedded.
		out, err := openssl(t, "pkcs7", "-inform", "der", "-in", sigPath, "-print_certs", "-noout")
		if err != nil || !strings.Contains(string(out), "strata-test-"+typ) {
			t.Errorf("%s: openssl pkcs7 -print_certs: %v\n%s", typ, err, out)
		}
	}
}

// TestWeVerifyOpenSSL: signatures made by `openssl smime -sign -noattr`
// (what systemd-repart makes) and by `openssl cms -sign` (with signed
// attributes) verify here, and the signer is reported.
func TestWeVerifyOpenSSL(t *testing.T) {
	privtest.RequireTools(t, "openssl")
	dir := t.TempDir()
	data := filepath.Join(dir, "roothash")
	if err := os.WriteFile(data, []byte(rootHash), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, typ := range KeyTypes {
		kp := genPair(t, dir, typ, "openssl-"+typ)
		for _, c := range []struct {
			name string
			args []string
		}{
			{"smime-noattr", []string{"smime", "-sign", "-binary", "-noattr", "-outform", "der"}},
			{"smime-attrs", []string{"smime", "-sign", "-binary", "-outform", "der"}},
			{"cms-noattr", []string{"cms", "-sign", "-binary", "-noattr", "-outform", "der", "-md", "sha256"}},
		} {
			sigPath := filepath.Join(dir, typ+"-"+c.name+".p7s")
			args := append(c.args, "-in", data, "-signer", kp.certPath, "-inkey", kp.keyPath, "-out", sigPath)
			if out, err := openssl(t, args...); err != nil {
				t.Fatalf("%s %s: %v\n%s", typ, c.name, err, out)
			}
			sig, err := os.ReadFile(sigPath)
			if err != nil {
				t.Fatal(err)
			}
			signer, err := Verify(sig, []byte(rootHash), []*x509.Certificate{kp.cert})
			if err != nil {
				t.Errorf("%s %s: %v", typ, c.name, err)
				continue
			}
			if signer.Subject.CommonName != "openssl-"+typ {
				t.Errorf("%s %s: signer %q", typ, c.name, signer.Subject)
			}
			if _, err := Verify(sig, []byte(strings.ToUpper(rootHash)), []*x509.Certificate{kp.cert}); err == nil {
				t.Errorf("%s %s: verified over other content", typ, c.name)
			}
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	dir := t.TempDir()
	a := genPair(t, dir, "ecdsa", "a")
	b := genPair(t, dir, "rsa", "b")
	sig := sign(t, a, []byte(rootHash))
	if _, err := Verify(sig, []byte(rootHash), []*x509.Certificate{a.cert}); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	// Other content.
	if _, err := Verify(sig, []byte(rootHash[:63]+"0"), []*x509.Certificate{a.cert}); err == nil {
		t.Error("signature over other content verified")
	}
	// The signer is not trusted, even though its certificate is embedded.
	if _, err := Verify(sig, []byte(rootHash), []*x509.Certificate{b.cert}); !errors.Is(err, ErrUntrusted) {
		t.Errorf("untrusted signer: %v", err)
	}
	if _, err := Verify(sig, []byte(rootHash), nil); !errors.Is(err, ErrUntrusted) {
		t.Errorf("no trusted certificates: %v", err)
	}
	// A certificate with the same issuer and serial but another key (a forged trust anchor).
	forged := *b.cert
	forged.RawIssuer = a.cert.RawIssuer
	forged.SerialNumber = a.cert.SerialNumber
	if _, err := Verify(sig, []byte(rootHash), []*x509.Certificate{&forged}); err == nil {
		t.Error("verified with a certificate of another key")
	}
	// A flipped bit in the signer info (everything after the embedded
	// certificate) is refused or does not parse. The embedded certificate
	// is not trusted, so its bits do not matter (systemd ignores it too).
	certEnd := bytes.Index(sig, a.cert.Raw) + len(a.cert.Raw)
	if certEnd < len(a.cert.Raw) {
		t.Fatal("certificate not embedded")
	}
	for i := certEnd; i < len(sig); i++ {
		bad := bytes.Clone(sig)
		bad[i] ^= 0x01
		if _, err := Verify(bad, []byte(rootHash), []*x509.Certificate{a.cert}); err == nil {
			t.Errorf("flipped bit at byte %d of %d verified", i, len(sig))
		}
	}
	if _, err := Parse(make([]byte, MaxSize+1)); err == nil {
		t.Error("oversized input parsed")
	}
	kb, _ := os.ReadFile(b.keyPath)
	bk, err := ParsePrivateKeyPEM(kb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Sign([]byte("x"), a.cert, bk); err == nil {
		t.Error("signed with a key that is not the certificate's")
	}
}

func TestSignDeterministic(t *testing.T) {
	dir := t.TempDir()
	for _, typ := range KeyTypes {
		kp := genPair(t, dir, typ, "det-"+typ)
		if !bytes.Equal(sign(t, kp, []byte(rootHash)), sign(t, kp, []byte(rootHash))) {
			t.Errorf("%s: two signatures of the same content differ", typ)
		}
	}
}

func FuzzParse(f *testing.F) {
	keyPEM, certPEM, err := Generate("ecdsa", "fuzz", time.Now(), 1)
	if err != nil {
		f.Fatal(err)
	}
	certs, _ := ParseCertificatesPEM(certPEM)
	k, _ := ParsePrivateKeyPEM(keyPEM)
	sig, err := Sign([]byte(rootHash), certs[0], k)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sig)
	f.Add([]byte{0x30, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		_, _ = s.Verify([]byte(rootHash), certs)
	})
}
