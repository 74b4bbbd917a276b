package ddi

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/stratalinux/strata/internal/imagepolicy"
	"github.com/stratalinux/strata/internal/pkcs7"
)

// Report is what list, check and inspect say about an image's protection:
// how its data partition is protected (the image policy's words), who
// signed its root hash and whether that signature counts, and the policy
// rule that refuses the image, if one does.
type Report struct {
	Partition  string `json:"partition"`  // "usr" or "root"
	Protection string `json:"protection"` // unprotected, verity, signed or encrypted
	RootHash   string `json:"rootHash,omitempty"`
	// Signature is set when the image carries a root hash signature,
	// trusted or not.
	Signature *SignatureReport `json:"signature,omitempty"`
	Policy    string           `json:"imagePolicy"`
	// RefusedBy is the rule that refuses the image ("usr=signed+absent"),
	// Refused the one line saying why; both empty when it is accepted.
	RefusedBy string `json:"refusedBy,omitempty"`
	Refused   string `json:"refused,omitempty"`
}

// SignatureReport describes a root hash signature.
type SignatureReport struct {
	From string `json:"from"` // "partition 3 (usr-x86-64-verity-sig)" or "the .p7s sidecar"
	// Signer is the subject of the certificate that signed (as the
	// signature names it, when it does not verify).
	Signer string `json:"signer,omitempty"`
	// Trusted: the signature verifies against a certificate in verity.d.
	Trusted bool `json:"trusted"`
	// Problem says why an untrusted signature does not count.
	Problem string `json:"problem,omitempty"`
}

// NewReport summarizes the assessment a of im under policy for the data
// partition systemd would use (root, else usr). It is nil for a bare
// filesystem image with no verity data: there is nothing to say beyond
// "unprotected", and list and check keep their plain output for it.
func NewReport(im *Image, a Assessment, policy imagepolicy.Policy) *Report {
	var f Finding
	found := false
	for _, d := range []imagepolicy.Designator{imagepolicy.Root, imagepolicy.Usr} {
		if x, ok := a.Finding(d); ok && x.Protection != imagepolicy.ProtAbsent {
			f, found = x, true
			break
		}
	}
	if !found || im.Table == nil && f.Verity == nil {
		return nil
	}
	r := &Report{Partition: f.Designator.String(), Protection: f.Protection.String(), Policy: policy.String()}
	if f.Verity != nil {
		r.RootHash = hex.EncodeToString(f.Verity.RootHash)
		if f.Verity.Sig != nil {
			s := &SignatureReport{From: f.Verity.SigFrom, Trusted: f.Signer != nil, Problem: f.Note}
			if c := f.Signer; c != nil {
				s.Signer = c.Subject.String()
			} else if f.Claimed != nil {
				s.Signer = f.Claimed.Subject.String()
			}
			r.Signature = s
		}
	}
	if a.Refused != "" {
		r.RefusedBy = Rule(policy, a.RefusedBy)
		r.Refused = a.Refused
	}
	return r
}

// Rule renders the policy's effective rule for d as the policy syntax
// writes it: "usr=signed+absent".
func Rule(p imagepolicy.Policy, d imagepolicy.Designator) string {
	return d.String() + "=" + p.Effective(d).Format()
}

// Line is the report in one line for check and inspect, e.g. `usr
// partition signed by "CN=fleet" (trusted), root hash 5e1f…` or `usr
// partition verity-protected; its signature by "CN=other" does not count:
// …; refused by the image policy's rule usr=signed+absent`.
func (r *Report) Line() string {
	if r == nil {
		return ""
	}
	hash := ""
	if r.RootHash != "" {
		hash = ", root hash " + r.RootHash
	}
	var s string
	switch {
	case r.Signature != nil && r.Signature.Trusted:
		s = fmt.Sprintf("%s partition signed by %q (a trusted certificate)%s", r.Partition, r.Signature.Signer, hash)
	case r.Signature != nil:
		by := ""
		if r.Signature.Signer != "" {
			by = fmt.Sprintf(" by %q", r.Signature.Signer)
		}
		s = fmt.Sprintf("%s partition verity-protected%s; its signature%s does not count: %s", r.Partition, hash, by, r.Signature.Problem)
	case r.Protection == imagepolicy.ProtVerity.String():
		s = fmt.Sprintf("%s partition verity-protected%s, not signed", r.Partition, hash)
	default:
		s = fmt.Sprintf("%s partition %s", r.Partition, r.Protection)
	}
	if r.RefusedBy != "" {
		s += "; refused by the image policy's rule " + r.RefusedBy
	}
	return s
}

// claimedSigner is the certificate the signature embeds for its signer: the
// one matching the recorded fingerprint, else the only one. It is what
// the signature claims, not a verified fact.
func claimedSigner(si *SigInfo) *x509.Certificate {
	s, err := pkcs7.Parse(si.Signature)
	if err != nil {
		return nil
	}
	for _, c := range s.Certificates {
		if si.CertFingerprint != nil && bytes.Equal(CertFingerprint(c), si.CertFingerprint) {
			return c
		}
	}
	if len(s.Certificates) == 1 && si.CertFingerprint == nil {
		return s.Certificates[0]
	}
	return nil
}
