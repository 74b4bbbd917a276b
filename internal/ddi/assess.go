package ddi

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/stratalinux/strata/internal/imagepolicy"
	"github.com/stratalinux/strata/internal/pkcs7"
	"github.com/stratalinux/strata/internal/rootfs"
)

// Finding is what Assess concluded about one designator.
type Finding struct {
	Designator imagepolicy.Designator
	Partition  *Partition // nil if absent
	Protection imagepolicy.Protection
	Verity     *Verity           // nil unless verity-protected
	Signer     *x509.Certificate // set when Protection is signed
	// Claimed is the certificate a signature names (embedded in the
	// PKCS#7, matched by its fingerprint), trusted or not; nil if unsigned
	// or the signature embeds none.
	Claimed *x509.Certificate
	// Note explains a downgrade, e.g. why a present signature does not count.
	Note     string
	Decision imagepolicy.Decision
}

// Assessment is the verdict on an image under a policy.
type Assessment struct {
	Findings []Finding
	// Refused is the first refusal's reason ("" if the image is acceptable).
	Refused string
	// RefusedBy is the designator whose rule refused the image (valid when Refused is set).
	RefusedBy imagepolicy.Designator
}

// Finding returns the finding for designator d.
func (a Assessment) Finding(d imagepolicy.Designator) (Finding, bool) {
	for _, f := range a.Findings {
		if f.Designator == d {
			return f, true
		}
	}
	return Finding{}, false
}

var luksMagic = []byte("LUKS\xba\xbe")

// Assess classifies the root and usr partitions of an opened image and lets
// the policy decide, as systemd-dissect does: a data partition with a tree
// and a root hash is verity, with a signature that verifies against trusted
// it is signed (a signature that does not verify leaves it verity, with a
// Note saying why), a LUKS header makes it encrypted, else unprotected.
// The verity and signature partitions get their own (synthesized) rules.
// Structural errors (garbage signature JSON, a tree that does not fit) are
// returned as errors: such an image is refused whatever the policy.
func Assess(im *Image, r io.ReaderAt, trusted []*x509.Certificate, policy imagepolicy.Policy) (Assessment, error) {
	var a Assessment
	decide := func(f Finding) {
		f.Decision = imagepolicy.Decide(policy, f.Designator, imagepolicy.Found{Protection: f.Protection})
		if f.Decision.Action == imagepolicy.Refuse && a.Refused == "" {
			a.Refused, a.RefusedBy = f.Decision.Reason, f.Designator
			if f.Note != "" {
				a.Refused += " (" + f.Note + ")"
			}
		}
		a.Findings = append(a.Findings, f)
	}
	for _, d := range []imagepolicy.Designator{imagepolicy.Root, imagepolicy.Usr} {
		p, ok := im.Parts[d]
		if !ok {
			decide(Finding{Designator: d, Protection: imagepolicy.ProtAbsent})
			for _, x := range []imagepolicy.Designator{imagepolicy.VerityOf(d), imagepolicy.VeritySigOf(d)} {
				if xp, ok := im.Parts[x]; ok {
					decide(Finding{Designator: x, Partition: &xp, Protection: imagepolicy.ProtUnprotected})
				} else {
					decide(Finding{Designator: x, Protection: imagepolicy.ProtAbsent})
				}
			}
			continue
		}
		f := Finding{Designator: d, Partition: &p, Protection: imagepolicy.ProtUnprotected}
		v, err := im.Verity(r, d)
		if err != nil {
			return Assessment{}, err
		}
		if v != nil {
			if _, err := CheckTree(r, p, v); err != nil {
				return Assessment{}, fmt.Errorf("%s partition: %w", d, err)
			}
			f.Verity, f.Protection = v, imagepolicy.ProtVerity
			if v.Sig != nil {
				f.Claimed = claimedSigner(v.Sig)
				signer, err := VerifySignature(v, trusted)
				if err == nil {
					f.Protection, f.Signer = imagepolicy.ProtSigned, signer
				} else {
					f.Note = err.Error()
				}
			}
		} else if isLUKS(r, p) {
			f.Protection = imagepolicy.ProtEncrypted
		}
		decide(f)
		// The verity partitions: present ones are unprotected by nature.
		for _, x := range []imagepolicy.Designator{imagepolicy.VerityOf(d), imagepolicy.VeritySigOf(d)} {
			xf := Finding{Designator: x, Protection: imagepolicy.ProtAbsent}
			if xp, ok := im.Parts[x]; ok {
				xf.Partition, xf.Protection = &xp, imagepolicy.ProtUnprotected
			}
			// A sidecar counts as present for the policy, as systemd's verity settings do.
			if xf.Partition == nil && v != nil && (x == imagepolicy.VerityOf(d) && v.HashSidecar != "" || x == imagepolicy.VeritySigOf(d) && v.Sig != nil) {
				xf.Protection = imagepolicy.ProtUnprotected
			}
			decide(xf)
		}
	}
	return a, nil
}

func isLUKS(r io.ReaderAt, p Partition) bool {
	b := make([]byte, len(luksMagic))
	_, err := r.ReadAt(b, p.Offset)
	return err == nil && string(b) == string(luksMagic)
}

// VerityDirs are the directories systemd reads trusted root hash signing
// certificates from (CONF_PATHS("verity.d")), highest priority first.
var VerityDirs = []string{"/etc/verity.d", "/run/verity.d", "/usr/local/lib/verity.d", "/usr/lib/verity.d"}

// TrustedCert is one certificate found in the verity.d directories.
type TrustedCert struct {
	Path string // inside the root
	Cert *x509.Certificate
}

const maxCertFile = 1 << 20

// TrustedCertificates collects */verity.d/*.crt under root ("" or "/" for
// the host) as systemd does: by file name, a file in an earlier directory
// masking one of the same name in a later one, in name order. Symbolic
// links resolve inside root. Files that do not parse are skipped and named
// in skipped, as systemd skips them.
func TrustedCertificates(root string) (certs []TrustedCert, skipped []string, err error) {
	byName := map[string]string{}
	for _, dir := range VerityDirs {
		ents, err := readDirIn(root, dir)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range ents {
			if !strings.HasSuffix(e, ".crt") {
				continue
			}
			if _, seen := byName[e]; !seen {
				byName[e] = path.Join(dir, e)
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := byName[n]
		b, err := rootfs.ReadFile(root, p, maxCertFile)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		cs, err := pkcs7.ParseCertificatesPEM(b)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		// systemd reads one certificate per file (PEM_read_X509).
		certs = append(certs, TrustedCert{Path: p, Cert: cs[0]})
	}
	return certs, skipped, nil
}

// Certs returns just the certificates.
func Certs(tc []TrustedCert) []*x509.Certificate {
	out := make([]*x509.Certificate, len(tc))
	for i, c := range tc {
		out[i] = c.Cert
	}
	return out
}

func readDirIn(root, dir string) ([]string, error) {
	if root == "" {
		root = "/"
	}
	resolved, err := rootfs.Chase(root, dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("resolve %s under %s: %w", dir, root, err)
	}
	ents, err := os.ReadDir(resolved)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(root, dir), err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() || e.Type()&os.ModeSymlink != 0 {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
