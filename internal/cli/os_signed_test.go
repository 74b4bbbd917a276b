package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/testutil/keytest"
)

// TestOSSignedPayloads: os bake and os payload sign root hashes with --sign-key/--sign-cert; os install
// takes trusted certificates from ROOT's verity.d and refuses, in one line, a payload signed by anyone
// else or not signed at all once the booted slot is signed.
func TestOSSignedPayloads(t *testing.T) {
	needOSTools(t)
	dir := t.TempDir()
	vendor, mallory := keytest.New(t, "OS vendor"), keytest.New(t, "Mallory")
	files := map[string][]byte{
		"usr/lib/os-release":           []byte("ID=strata\n"),
		"vmlinuz":                      []byte("kernel"),
		"vendor.key":                   vendor.KeyPEM,
		"vendor.crt":                   vendor.CertPEM,
		"mallory.key":                  mallory.KeyPEM,
		"mallory.crt":                  mallory.CertPEM,
		"root/etc/verity.d/vendor.crt": vendor.CertPEM,
	}
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, c, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	at := func(p string) string { return filepath.Join(dir, p) }
	disk := at("disk.img")
	if r := strata(t, nil, "os", "bake", "--usr", at("usr"), "--kernel", at("vmlinuz"), "--version", "1.0.0", "--output", disk,
		"--usr-size", "8", "--root-size", "16", "--esp-size", "33", "--oem-size", "8",
		"--sign-key", at("vendor.key"), "--sign-cert", at("vendor.crt")); r.code != 0 {
		t.Fatalf("bake: %s", r.stderr)
	}
	if r := strata(t, nil, "os", "inspect", disk); r.code != 0 || !strings.Contains(r.stdout, "slot A: root hash signed by CN=OS vendor") {
		t.Fatalf("inspect: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := strata(t, nil, "os", "payload", "--usr", at("usr"), "--sign-key", at("vendor.key"), at("p")); r.code == 0 || !strings.Contains(r.stderr, "--sign-key and --sign-cert go together") {
		t.Fatalf("key without cert: %d %s", r.code, r.stderr)
	}
	pay := func(name string, sign ...string) string {
		out := at("p-" + name)
		args := append([]string{"os", "payload", "--usr", at("usr"), "--version", "2.0.0", out}, sign...)
		if r := strata(t, nil, args...); r.code != 0 {
			t.Fatalf("payload %s: %s", name, r.stderr)
		}
		return out
	}
	byVendor := pay("vendor", "--sign-key", at("vendor.key"), "--sign-cert", at("vendor.crt"))
	byMallory := pay("mallory", "--sign-key", at("mallory.key"), "--sign-cert", at("mallory.crt"))
	unsigned := pay("unsigned")
	for _, c := range []struct{ payload, want string }{
		{byMallory, `root hash signed by "CN=Mallory": the signer's certificate is not trusted`},
		{unsigned, "the booted slot is signed, so its successor must be"},
	} {
		r := strata(t, nil, "os", "install", "--disk", disk, "--root", at("root"), c.payload)
		if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, c.want) {
			t.Fatalf("install %s: %d %q", filepath.Base(c.payload), r.code, r.stderr)
		}
		if s := osStatus(t, disk); s.Next != "A" || s.Slots[1].Record != nil {
			t.Fatalf("refused install armed B: %+v", s)
		}
	}
	r := strata(t, nil, "os", "install", "--disk", disk, "--root", at("root"), byVendor)
	if r.code != 0 || !strings.Contains(r.stdout, "signed by CN=OS vendor") {
		t.Fatalf("install vendor's: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if s := osStatus(t, disk); s.Next != "B" {
		t.Fatalf("after install %+v", s)
	}
}
