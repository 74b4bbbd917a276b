package cli

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/stratalinux/strata/internal/atomicfile"
	"github.com/stratalinux/strata/internal/pkcs7"
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
// self-signed certificate (PEM) for signing verity root hashes. Neither
// file is ever replaced (atomicfile.WriteNew); both are checked first so
// that an existing certificate does not leave a lone new key behind.
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
	certs, err := pkcs7.ParseCertificatesPEM(certPEM)
	if err != nil {
		return err
	}
	for _, w := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{f.outKey, keyPEM, 0o600}, {f.outCert, certPEM, 0o644}} {
		if err := os.MkdirAll(filepath.Dir(w.path), 0o755); err != nil {
			return err
		}
		if err := atomicfile.WriteNew(w.path, w.data, w.mode); err != nil {
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("%s exists; refusing to overwrite a key", w.path)
			}
			return err
		}
	}
	fmt.Fprintf(env.Stdout, "fingerprint %s\nprivate key %s\ncertificate %s (install as /etc/verity.d/NAME.crt)\n", pkcs7.Fingerprint(certs[0]), f.outKey, f.outCert)
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
	key, cert, err := pkcs7.LoadSigner(keyPath, certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("--sign-key/--sign-cert: %w", err)
	}
	return key, cert, nil
}
