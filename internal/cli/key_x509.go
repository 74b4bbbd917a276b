package cli

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/stratalinux/strata/internal/pkcs7"
	"github.com/stratalinux/strata/internal/repo"
)

// x509KeyFlags are the options of `strata key generate --x509`, the key and
// certificate that sign DDI verity root hashes (`strata bake --sign-key/--sign-cert`).
type x509KeyFlags struct {
	on               bool
	outKey, outCert  string
	subject, keyType string
	days             int
}

// generateX509Key writes a private key (PEM PKCS#8, mode 0600) and a
// self-signed certificate (PEM) for signing verity root hashes.
func generateX509Key(env *Env, f x509KeyFlags) error {
	if f.outKey == "" || f.outCert == "" {
		return errors.New("--x509 needs --out-key KEY and --out-cert CERT")
	}
	for _, p := range []string{f.outKey, f.outCert} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s exists; refusing to overwrite a key", p)
		}
	}
	keyPEM, certPEM, err := pkcs7.Generate(f.keyType, f.subject, time.Now(), f.days)
	if err != nil {
		return err
	}
	for _, p := range []string{f.outKey, f.outCert} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
	}
	if err := repo.WriteAtomic(f.outKey, keyPEM, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", f.outKey, err)
	}
	if err := repo.WriteAtomic(f.outCert, certPEM, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", f.outCert, err)
	}
	certs, err := pkcs7.ParseCertificatesPEM(certPEM)
	if err != nil {
		return err
	}
	fp := sha256.Sum256(certs[0].Raw)
	fmt.Fprintf(env.Stdout, "fingerprint %s\nprivate key %s\ncertificate %s (install as /etc/verity.d/NAME.crt)\n", hex.EncodeToString(fp[:]), f.outKey, f.outCert)
	return nil
}

// loadSigner reads `strata bake --sign-key KEY --sign-cert CERT` (both or neither).
func loadSigner(keyPath, certPath string) (crypto.Signer, *x509.Certificate, error) {
	if keyPath == "" && certPath == "" {
		return nil, nil, nil
	}
	if keyPath == "" || certPath == "" {
		return nil, nil, errors.New("--sign-key and --sign-cert go together")
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("--sign-key: %w", err)
	}
	key, err := pkcs7.ParsePrivateKeyPEM(kb)
	if err != nil {
		return nil, nil, fmt.Errorf("--sign-key %s: %w", keyPath, err)
	}
	cb, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("--sign-cert: %w", err)
	}
	certs, err := pkcs7.ParseCertificatesPEM(cb)
	if err != nil {
		return nil, nil, fmt.Errorf("--sign-cert %s: %w", certPath, err)
	}
	if !pkcs7.KeyMatches(key, certs[0]) {
		return nil, nil, fmt.Errorf("--sign-key %s is not the key of --sign-cert %s", keyPath, certPath)
	}
	return key, certs[0], nil
}
