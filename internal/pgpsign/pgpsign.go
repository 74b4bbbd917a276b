// Package pgpsign makes and checks the detached OpenPGP signatures that
// guard a repository's SHA256SUMS (SHA256SUMS.gpg), in the form
// systemd-pull verifies with gpg: a binary detached signature, checked
// against the keyring at /etc/systemd/import-pubring.pgp (or the /usr/lib
// fallback).
package pgpsign

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// MaxKeySize bounds a keyring or signature read from disk or network.
const MaxKeySize = 1 << 20

// KeyringPaths are the keyrings systemd-pull consults, first found wins.
var KeyringPaths = []string{
	"/etc/systemd/import-pubring.pgp",
	"/usr/lib/systemd/import-pubring.pgp",
	"/etc/systemd/import-pubring.gpg",
	"/usr/lib/systemd/import-pubring.gpg",
}

func config() *packet.Config {
	return &packet.Config{
		Algorithm:   packet.PubKeyAlgoEdDSA,
		DefaultHash: crypto.SHA256,
		Time:        time.Now,
	}
}

// Key is a generated key pair, both halves ASCII-armored.
type Key struct {
	Private []byte
	Public  []byte
	// Fingerprint is the primary key's fingerprint in upper-case hex.
	Fingerprint string
}

// Generate makes a new Ed25519 signing key for the identity
// "name <email>".
func Generate(name, email string) (Key, error) {
	if strings.ContainsAny(name+email, "<>()\n") {
		return Key{}, fmt.Errorf("name and e-mail may not contain <, >, ( , ) or newlines")
	}
	e, err := openpgp.NewEntity(name, "", email, config())
	if err != nil {
		return Key{}, fmt.Errorf("generate key: %w", err)
	}
	var priv, pub bytes.Buffer
	w, err := armor.Encode(&priv, openpgp.PrivateKeyType, nil)
	if err != nil {
		return Key{}, err
	}
	if err := e.SerializePrivate(w, config()); err != nil {
		return Key{}, err
	}
	w.Close()
	w, err = armor.Encode(&pub, openpgp.PublicKeyType, nil)
	if err != nil {
		return Key{}, err
	}
	if err := e.Serialize(w); err != nil {
		return Key{}, err
	}
	w.Close()
	return Key{Private: priv.Bytes(), Public: pub.Bytes(), Fingerprint: fmt.Sprintf("%X", e.PrimaryKey.Fingerprint)}, nil
}

// ReadKeyring parses an armored or binary keyring.
func ReadKeyring(data []byte) (openpgp.EntityList, error) {
	if len(data) > MaxKeySize {
		return nil, fmt.Errorf("keyring larger than %d bytes", MaxKeySize)
	}
	if bytes.Contains(data, []byte("-----BEGIN PGP")) {
		el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("read armored keyring: %w", err)
		}
		return el, nil
	}
	el, err := openpgp.ReadKeyRing(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("read keyring: %w", err)
	}
	return el, nil
}

// Sign returns a binary detached signature of msg made with the private
// key in keyData (armored or binary; not passphrase-protected).
func Sign(keyData []byte, msg io.Reader) ([]byte, error) {
	el, err := ReadKeyring(keyData)
	if err != nil {
		return nil, err
	}
	var signer *openpgp.Entity
	for _, e := range el {
		if e.PrivateKey != nil {
			signer = e
			break
		}
	}
	if signer == nil {
		return nil, errors.New("the key file holds no private key (did you pass the public half?)")
	}
	if signer.PrivateKey.Encrypted {
		return nil, errors.New("the private key is passphrase-protected; Strata signs with unprotected keys only")
	}
	var sig bytes.Buffer
	if err := openpgp.DetachSign(&sig, signer, msg, config()); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return sig.Bytes(), nil
}

// ErrBadSignature is a signature that does not verify against the keyring.
var ErrBadSignature = errors.New("signature does not verify against the keyring")

// Verify checks a detached signature (binary or armored) of msg against
// the keyring and returns the signer's fingerprint.
func Verify(keyring []byte, msg, sig []byte) (string, error) {
	el, err := ReadKeyring(keyring)
	if err != nil {
		return "", err
	}
	if len(sig) > MaxKeySize {
		return "", fmt.Errorf("signature larger than %d bytes", MaxKeySize)
	}
	var signer *openpgp.Entity
	if bytes.Contains(sig, []byte("-----BEGIN PGP")) {
		signer, err = openpgp.CheckArmoredDetachedSignature(el, bytes.NewReader(msg), bytes.NewReader(sig), nil)
	} else {
		signer, err = openpgp.CheckDetachedSignature(el, bytes.NewReader(msg), bytes.NewReader(sig), nil)
	}
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return fmt.Sprintf("%X", signer.PrimaryKey.Fingerprint), nil
}
