// Package pkcs7 signs and verifies detached PKCS#7 SignedData (DER), the form
// systemd uses for dm-verity root hash signatures: what `openssl smime -sign
// -binary -noattr -outform der` (and systemd-repart's PKCS7_sign with
// PKCS7_DETACHED|PKCS7_NOATTR|PKCS7_BINARY) produce, with SHA-256 and RSA or
// ECDSA P-256 keys. Verification follows systemd's userspace check
// (PKCS7_verify with PKCS7_NOINTERN|PKCS7_NOVERIFY): the signer must be one of
// the trusted certificates itself, found by issuer and serial number; the
// certificates embedded in the signature are not trusted and no chain is built.
package pkcs7

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
)

var (
	oidData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidRSA           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA256WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidECPublicKey   = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidECDSAWithSHA2 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
)

// MaxSize bounds a signature this package reads; systemd reads the whole
// verity-sig partition (at most 4 MiB) and real signatures are a few KiB.
const MaxSize = 4 << 20

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"optional"` // [0] EXPLICIT, kept raw: Bytes is the inner element
}

type signedData struct {
	Version          int
	DigestAlgorithms []pkix.AlgorithmIdentifier `asn1:"set"`
	ContentInfo      contentInfo
	Certificates     asn1.RawValue `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue `asn1:"optional,tag:1"`
	SignerInfos      []signerInfo  `asn1:"set"`
}

type issuerAndSerial struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

type signerInfo struct {
	Version                   int
	IssuerAndSerial           issuerAndSerial
	DigestAlgorithm           pkix.AlgorithmIdentifier
	AuthenticatedAttributes   asn1.RawValue `asn1:"optional,tag:0"`
	DigestEncryptionAlgorithm pkix.AlgorithmIdentifier
	EncryptedDigest           []byte
	UnauthenticatedAttributes asn1.RawValue `asn1:"optional,tag:1"`
}

type attribute struct {
	Type   asn1.ObjectIdentifier
	Values asn1.RawValue `asn1:"set"`
}

// Sign makes a detached SignedData over content: SHA-256, no signed
// attributes, the signer's certificate embedded. RSA keys sign with PKCS#1
// v1.5; ECDSA keys sign deterministically (RFC 6979), so the same key and
// content give the same bytes.
func Sign(content []byte, cert *x509.Certificate, key crypto.Signer) ([]byte, error) {
	if cert == nil || key == nil {
		return nil, errors.New("pkcs7 sign: certificate and key are required")
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, errors.New("pkcs7 sign: the key does not belong to the certificate")
	}
	var encAlg pkix.AlgorithmIdentifier
	var rnd io.Reader = rand.Reader
	switch key.Public().(type) {
	case *rsa.PublicKey:
		encAlg = pkix.AlgorithmIdentifier{Algorithm: oidRSA, Parameters: asn1.NullRawValue}
	case *ecdsa.PublicKey:
		encAlg = pkix.AlgorithmIdentifier{Algorithm: oidECDSAWithSHA2}
		if _, ok := key.(*ecdsa.PrivateKey); ok {
			rnd = nil // crypto/ecdsa signs deterministically (RFC 6979) without a random source
		}
	default:
		return nil, fmt.Errorf("pkcs7 sign: unsupported key type %T (want RSA or ECDSA)", key.Public())
	}
	digest := sha256.Sum256(content)
	sig, err := key.Sign(rnd, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("pkcs7 sign: %w", err)
	}
	sha := pkix.AlgorithmIdentifier{Algorithm: oidSHA256, Parameters: asn1.NullRawValue}
	sd := signedData{
		Version:          1,
		DigestAlgorithms: []pkix.AlgorithmIdentifier{sha},
		ContentInfo:      contentInfo{ContentType: oidData},
		Certificates:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: cert.Raw},
		SignerInfos: []signerInfo{{
			Version:                   1,
			IssuerAndSerial:           issuerAndSerial{Issuer: asn1.RawValue{FullBytes: cert.RawIssuer}, Serial: cert.SerialNumber},
			DigestAlgorithm:           sha,
			DigestEncryptionAlgorithm: encAlg,
			EncryptedDigest:           sig,
		}},
	}
	inner, err := asn1.Marshal(sd)
	if err != nil {
		return nil, fmt.Errorf("pkcs7 sign: encode: %w", err)
	}
	return asn1.Marshal(contentInfo{ContentType: oidSignedData, Content: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: inner}})
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// Signature is a parsed SignedData.
type Signature struct {
	// Certificates are the ones embedded in the signature (untrusted).
	Certificates []*x509.Certificate
	signers      []signerInfo
	content      []byte // encapsulated content, if not detached
}

// Parse decodes a DER ContentInfo holding SignedData.
func Parse(der []byte) (*Signature, error) {
	if len(der) > MaxSize {
		return nil, fmt.Errorf("pkcs7: signature of %d bytes is larger than %d", len(der), MaxSize)
	}
	var ci contentInfo
	rest, err := asn1.Unmarshal(der, &ci)
	if err != nil {
		return nil, fmt.Errorf("pkcs7: not DER PKCS#7: %w", err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("pkcs7: %d bytes of trailing data", len(rest))
	}
	if ci.Content.Class != asn1.ClassContextSpecific || ci.Content.Tag != 0 || !ci.Content.IsCompound {
		return nil, errors.New("pkcs7: ContentInfo lacks its [0] content")
	}
	if !ci.ContentType.Equal(oidSignedData) {
		return nil, fmt.Errorf("pkcs7: content type %v is not signedData", ci.ContentType)
	}
	var sd signedData
	rest, err = asn1.Unmarshal(ci.Content.Bytes, &sd)
	if err != nil {
		return nil, fmt.Errorf("pkcs7: bad SignedData: %w", err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("pkcs7: %d bytes of trailing data after SignedData", len(rest))
	}
	if sd.Version != 1 {
		return nil, fmt.Errorf("pkcs7: SignedData version %d is not 1", sd.Version)
	}
	if !sd.ContentInfo.ContentType.Equal(oidData) {
		return nil, fmt.Errorf("pkcs7: signed content type %v is not data", sd.ContentInfo.ContentType)
	}
	s := &Signature{signers: sd.SignerInfos}
	if c := sd.ContentInfo.Content; len(c.FullBytes) > 0 {
		if c.Class != asn1.ClassContextSpecific || c.Tag != 0 {
			return nil, errors.New("pkcs7: bad encapsulated content tag")
		}
		var octets []byte
		if _, err := asn1.Unmarshal(sd.ContentInfo.Content.Bytes, &octets); err != nil {
			return nil, fmt.Errorf("pkcs7: bad encapsulated content: %w", err)
		}
		s.content = octets
	}
	if len(sd.Certificates.Bytes) > 0 {
		certs, err := x509.ParseCertificates(sd.Certificates.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pkcs7: bad embedded certificate: %w", err)
		}
		s.Certificates = certs
	}
	if len(s.signers) == 0 {
		return nil, errors.New("pkcs7: no signer")
	}
	return s, nil
}

// ErrUntrusted means no signer of the signature is among the trusted certificates.
var ErrUntrusted = errors.New("signed by a certificate that is not trusted")

// Verify checks a detached signature over content against the trusted
// certificates and returns the certificate that signed it. Every signer
// must verify, as PKCS7_verify requires.
func Verify(der, content []byte, trusted []*x509.Certificate) (*x509.Certificate, error) {
	s, err := Parse(der)
	if err != nil {
		return nil, err
	}
	return s.Verify(content, trusted)
}

// Verify checks the parsed signature; see the package function Verify.
func (s *Signature) Verify(content []byte, trusted []*x509.Certificate) (*x509.Certificate, error) {
	if content == nil {
		content = s.content
	} else if s.content != nil && !bytes.Equal(s.content, content) {
		return nil, errors.New("pkcs7: the signature carries other content than the one given")
	}
	var signer *x509.Certificate
	for i, si := range s.signers {
		cert := findSigner(si.IssuerAndSerial, trusted)
		if cert == nil {
			return nil, fmt.Errorf("pkcs7: signer %d (serial %v) %w", i+1, si.IssuerAndSerial.Serial, ErrUntrusted)
		}
		if err := verifySigner(si, cert, content); err != nil {
			return nil, fmt.Errorf("pkcs7: signature by %q does not verify: %w", cert.Subject.String(), err)
		}
		if signer == nil {
			signer = cert
		}
	}
	return signer, nil
}

func findSigner(ias issuerAndSerial, certs []*x509.Certificate) *x509.Certificate {
	if ias.Serial == nil {
		return nil
	}
	for _, c := range certs {
		if c != nil && c.SerialNumber != nil && c.SerialNumber.Cmp(ias.Serial) == 0 && bytes.Equal(c.RawIssuer, ias.Issuer.FullBytes) {
			return c
		}
	}
	return nil
}

func verifySigner(si signerInfo, cert *x509.Certificate, content []byte) error {
	if si.Version != 1 {
		return fmt.Errorf("signer info version %d is not 1", si.Version)
	}
	if da := si.DigestAlgorithm; !da.Algorithm.Equal(oidSHA256) || !nullOrAbsent(da.Parameters) {
		return fmt.Errorf("digest algorithm %v is not SHA-256", da.Algorithm)
	}
	sum := sha256.Sum256(content)
	signed := sum
	if len(si.AuthenticatedAttributes.FullBytes) > 0 {
		// With signed attributes the signature covers their DER as a SET,
		// and the messageDigest attribute carries the content's digest.
		md, err := messageDigest(si.AuthenticatedAttributes.Bytes)
		if err != nil {
			return err
		}
		if !bytes.Equal(md, sum[:]) {
			return errors.New("the content's digest does not match the signed messageDigest")
		}
		set := append([]byte(nil), si.AuthenticatedAttributes.FullBytes...)
		set[0] = 0x31 // [0] IMPLICIT → SET
		signed = sha256.Sum256(set)
	}
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		a := si.DigestEncryptionAlgorithm.Algorithm
		if !a.Equal(oidRSA) && !a.Equal(oidSHA256WithRSA) {
			return fmt.Errorf("signature algorithm %v does not fit an RSA key", a)
		}
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, signed[:], si.EncryptedDigest)
	case *ecdsa.PublicKey:
		a := si.DigestEncryptionAlgorithm.Algorithm
		if !a.Equal(oidECDSAWithSHA2) && !a.Equal(oidECPublicKey) {
			return fmt.Errorf("signature algorithm %v does not fit an ECDSA key", a)
		}
		if !ecdsa.VerifyASN1(pub, signed[:], si.EncryptedDigest) {
			return errors.New("ECDSA signature invalid")
		}
		return nil
	}
	return fmt.Errorf("unsupported public key type %T", cert.PublicKey)
}

func nullOrAbsent(v asn1.RawValue) bool {
	return len(v.FullBytes) == 0 || bytes.Equal(v.FullBytes, asn1.NullBytes)
}

func messageDigest(attrs []byte) ([]byte, error) {
	var md []byte
	sawType := false
	for len(attrs) > 0 {
		var a attribute
		rest, err := asn1.Unmarshal(attrs, &a)
		if err != nil {
			return nil, fmt.Errorf("bad signed attribute: %w", err)
		}
		attrs = rest
		switch {
		case a.Type.Equal(oidMessageDigest):
			if md != nil {
				return nil, errors.New("messageDigest attribute given twice")
			}
			if _, err := asn1.Unmarshal(a.Values.Bytes, &md); err != nil {
				return nil, fmt.Errorf("bad messageDigest attribute: %w", err)
			}
		case a.Type.Equal(oidContentType):
			var ct asn1.ObjectIdentifier
			if _, err := asn1.Unmarshal(a.Values.Bytes, &ct); err != nil || !ct.Equal(oidData) {
				return nil, errors.New("the contentType attribute is not data")
			}
			sawType = true
		}
	}
	if md == nil || !sawType {
		return nil, errors.New("signed attributes lack messageDigest or contentType")
	}
	return md, nil
}
