package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/pkcs7"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

func TestKeyGenerateX509(t *testing.T) {
	dir := t.TempDir()
	key, cert := filepath.Join(dir, "keys", "verity.key"), filepath.Join(dir, "keys", "verity.crt")
	res := strata(t, nil, "key", "generate", "--x509", "--out-key", key, "--out-cert", cert, "--subject", "Fleet signing", "--key-type", "ecdsa")
	if res.code != 0 {
		t.Fatalf("key generate --x509: %d %s", res.code, res.stderr)
	}
	if !strings.Contains(res.stdout, "fingerprint ") || !strings.Contains(res.stdout, cert) {
		t.Errorf("output %q", res.stdout)
	}
	st, err := os.Stat(key)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode: %v %v", st, err)
	}
	kb, _ := os.ReadFile(key)
	cb, _ := os.ReadFile(cert)
	k, err := pkcs7.ParsePrivateKeyPEM(kb)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pkcs7.ParseCertificatesPEM(cb)
	if err != nil || certs[0].Subject.CommonName != "Fleet signing" {
		t.Fatalf("certificate: %v %v", certs, err)
	}
	if _, err := pkcs7.Sign([]byte("x"), certs[0], k); err != nil {
		t.Errorf("key and certificate do not match: %v", err)
	}
	if _, err := exec.LookPath("openssl"); err == nil {
		out, err := exec.Command("openssl", "x509", "-in", cert, "-noout", "-subject").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Fleet signing") {
			t.Errorf("openssl x509: %v %s", err, out)
		}
	} else {
		privtest.Missing(t, "openssl is not installed")
	}
	// No overwriting, and both paths are required.
	if res := strata(t, nil, "key", "generate", "--x509", "--out-key", key, "--out-cert", cert); res.code == 0 || !strings.Contains(res.stderr, "refusing to overwrite") {
		t.Errorf("overwrite: %d %s", res.code, res.stderr)
	}
	if res := strata(t, nil, "key", "generate", "--x509", "--out-key", filepath.Join(dir, "k2")); res.code == 0 || !strings.Contains(res.stderr, "--out-cert") {
		t.Errorf("missing --out-cert: %d %s", res.code, res.stderr)
	}
}

// TestBakeDDISigned: `strata bake --format ddi --sign-key --sign-cert` with a
// key from `strata key generate --x509` writes a signed DDI; misuse is one line.
func TestBakeDDISigned(t *testing.T) {
	privtest.RequireTools(t, "mksquashfs")
	dir := t.TempDir()
	key, cert := filepath.Join(dir, "k.pem"), filepath.Join(dir, "c.crt")
	if res := strata(t, nil, "key", "generate", "--x509", "--out-key", key, "--out-cert", cert); res.code != 0 {
		t.Fatalf("key generate: %s", res.stderr)
	}
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(tree, "usr/bin/hi"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	out := filepath.Join(dir, "out")
	res := strata(t, nil, "bake", tree, "--name", "hi", "--version", "1", "--arch", "x86-64", "--format", "ddi", "--sign-key", key, "--sign-cert", cert, "-o", out)
	if res.code != 0 {
		t.Fatalf("bake --format ddi: %d %s", res.code, res.stderr)
	}
	img := filepath.Join(out, "hi-1-x86-64.raw")
	b, err := os.ReadFile(img)
	if err != nil || !bytes.Contains(b, []byte(`{"rootHash":"`)) || string(b[512:520]) != "EFI PART" {
		t.Fatalf("DDI %s: %v", img, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--format", "squashfs", "--verity"}, "need --format ddi"},
		{[]string{"--format", "ddi", "--sign-key", key}, "--sign-key and --sign-cert go together"},
		{[]string{"--format", "ddi", "--sign-key", cert, "--sign-cert", cert}, "no PEM private key"},
	} {
		args := append([]string{"bake", tree, "--name", "hi", "--version", "2", "--arch", "x86-64", "-o", out}, c.args...)
		if res := strata(t, nil, args...); res.code == 0 || !strings.Contains(res.stderr, c.want) || strings.Count(strings.TrimSpace(res.stderr), "\n") > 0 {
			t.Errorf("%v: %d %q, want one line with %q", c.args, res.code, res.stderr, c.want)
		}
	}
}
