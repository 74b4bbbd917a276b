package pkcs7

import (
	"crypto"
	"crypto/x509"
)

// KeyMatches reports whether key is the private key of cert: a signature
// made with any other would not verify against the certificate.
func KeyMatches(key crypto.Signer, cert *x509.Certificate) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}
