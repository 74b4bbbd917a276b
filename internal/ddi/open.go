package ddi

import (
	"bytes"
	"cmp"
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/imagepolicy"
	"github.com/stratalinux/strata/internal/limitread"
	"github.com/stratalinux/strata/internal/pkcs7"
	"github.com/stratalinux/strata/internal/verity"
)

// GPT attribute bits systemd reads on discoverable partitions.
const (
	attrNoAuto   = 1 << 63
	attrReadOnly = 1 << 60
	attrGrowFS   = 1 << 59
)

// Partition is one partition Open chose, by designator.
type Partition struct {
	Designator   imagepolicy.Designator
	Arch         string // "" for a bare filesystem image
	Index        int    // GPT entry number; 0 for a bare image
	Offset, Size int64
	Type, UUID   gpt.GUID
	Label        string
	ReadOnly     bool
	GrowFS       bool
}

// Image is an opened DDI or bare filesystem image: the partitions systemd would consider.
type Image struct {
	Size  int64
	Table *gpt.Table // nil for a bare filesystem image
	Parts map[imagepolicy.Designator]Partition
	// Sidecars are the verity files found beside the image, if the caller loaded them.
	Sidecars Sidecars
}

// Options steer Open.
type Options struct {
	// Arch is the host's systemd architecture; "" is the running program's.
	Arch string
	// Sidecars are NAME.roothash, NAME.usrhash, NAME.roothash.p7s, … (LoadSidecars).
	Sidecars Sidecars
}

// ErrNotDDI marks images that are neither a usable GPT nor a filesystem.
var ErrNotDDI = errors.New("not a discoverable disk image")

// Open reads the image's GPT and picks, for root and usr, the data
// partition of the host's architecture (else of its secondary one, x86 on
// x86-64, arm on arm64) and the verity and signature partitions of the same
// architecture. Partitions marked no-auto are skipped; for several
// candidates the first in the table wins. The table must fit the image and
// its partitions may not overlap. An image without a GPT is a bare
// filesystem: one root partition (usr if a NAME.usrhash sidecar is given)
// covering the file.
func Open(r io.ReaderAt, size int64, opt Options) (*Image, error) {
	arch := opt.Arch
	if arch == "" {
		arch = NativeArch()
	}
	im := &Image{Size: size, Parts: map[imagepolicy.Designator]Partition{}, Sidecars: opt.Sidecars}
	t, err := gpt.Read(r, size)
	if errors.Is(err, gpt.ErrNoTable) && !hasGPTSignature(r) {
		d := imagepolicy.Root
		if opt.Sidecars.UsrHash != nil {
			d = imagepolicy.Usr
		}
		im.Parts[d] = Partition{Designator: d, Offset: 0, Size: size}
		return im, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotDDI, err)
	}
	if err := t.Check(size); err != nil {
		return nil, fmt.Errorf("%w: partition table: %v", ErrNotDDI, err)
	}
	im.Table = t
	for _, fam := range []imagepolicy.Designator{imagepolicy.Root, imagepolicy.Usr} {
		for _, a := range []string{arch, secondaryArch(arch)} {
			if a == "" {
				continue
			}
			if pickFamily(im, t, fam, a) {
				break
			}
		}
	}
	return im, nil
}

// hasGPTSignature tells a damaged table from no table: "EFI PART" at LBA 1.
func hasGPTSignature(r io.ReaderAt) bool {
	b := make([]byte, 8)
	_, err := r.ReadAt(b, gpt.SectorSize)
	return err == nil && string(b) == "EFI PART"
}

func pickFamily(im *Image, t *gpt.Table, fam imagepolicy.Designator, arch string) bool {
	found := false
	for _, want := range []imagepolicy.Designator{fam, imagepolicy.VerityOf(fam), imagepolicy.VeritySigOf(fam)} {
		for _, p := range t.Partitions {
			role, ok := classify(p.Type)
			if !ok || role.Designator != want || role.Arch != arch || p.Attributes&attrNoAuto != 0 {
				continue
			}
			if _, dup := im.Parts[want]; dup {
				continue
			}
			im.Parts[want] = Partition{
				Designator: want, Arch: arch, Index: p.Index, Offset: p.Start(), Size: p.Size(),
				Type: p.Type, UUID: p.UUID, Label: p.Name,
				ReadOnly: p.Attributes&attrReadOnly != 0, GrowFS: p.Attributes&attrGrowFS != 0,
			}
			if want == fam {
				found = true
			}
		}
		if !found {
			return false // no data partition of this arch: leave its verity partitions alone too
		}
	}
	return found
}

// Sidecars are the verity files systemd picks up beside an image
// (verity_settings_load): NAME.roothash or NAME.usrhash (hex), their .p7s
// signatures (DER) and NAME.verity (the hash tree).
type Sidecars struct {
	RootHash, UsrHash       []byte
	RootHashSig, UsrHashSig []byte
	VerityFile              string // path of NAME.verity, if it exists
	Files                   []string
}

const maxRootHashFile = 4096

// LoadSidecars reads the sidecar files of the image at path (NAME is path
// without ".raw"). Missing files are fine; unreadable, oversized or
// malformed ones are errors naming the file.
func LoadSidecars(path string) (Sidecars, error) {
	base := strings.TrimSuffix(path, ".raw")
	var s Sidecars
	read := func(suffix string, limit int64) ([]byte, error) {
		p := base + suffix
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b, err := limitread.ReadAll(f, limit)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w (limit %d bytes)", p, err, limit)
		}
		s.Files = append(s.Files, p)
		return b, nil
	}
	for _, x := range []struct {
		suffix string
		dst    *[]byte
	}{{".roothash", &s.RootHash}, {".usrhash", &s.UsrHash}} {
		b, err := read(x.suffix, maxRootHashFile)
		if err != nil {
			return Sidecars{}, err
		}
		if b != nil {
			h, err := parseRootHash(string(b))
			if err != nil {
				return Sidecars{}, fmt.Errorf("%s%s: %w", base, x.suffix, err)
			}
			*x.dst = h
		}
	}
	for _, x := range []struct {
		suffix string
		dst    *[]byte
	}{{".roothash.p7s", &s.RootHashSig}, {".usrhash.p7s", &s.UsrHashSig}} {
		b, err := read(x.suffix, pkcs7.MaxSize)
		if err != nil {
			return Sidecars{}, err
		}
		*x.dst = b
	}
	if s.RootHash != nil && s.UsrHash != nil {
		return Sidecars{}, fmt.Errorf("%s has both .roothash and .usrhash sidecars; keep one", base)
	}
	if st, err := os.Stat(base + ".verity"); err == nil && st.Mode().IsRegular() {
		s.VerityFile = base + ".verity"
		s.Files = append(s.Files, s.VerityFile)
	}
	return s, nil
}

// Verity is what protects a data partition.
type Verity struct {
	RootHash []byte
	// Sig is the signature object (from the signature partition, or built
	// from a .p7s sidecar), nil if unsigned.
	Sig     *SigInfo
	SigFrom string // where the signature came from, for messages
	// HashPart is the verity partition; nil when the tree is the NAME.verity sidecar.
	HashPart    *Partition
	HashSidecar string
}

// Verity collects the verity data of data designator d: the root hash from
// the signature partition or a sidecar (they must agree), the signature, and
// where the hash tree is. nil, nil means d is not verity-protected (no tree,
// or no root hash). The signature partition is read bounded (4 MiB).
func (im *Image) Verity(r io.ReaderAt, d imagepolicy.Designator) (*Verity, error) {
	if _, ok := im.Parts[d]; !ok {
		return nil, nil
	}
	v := &Verity{}
	side, sideSig := im.Sidecars.RootHash, im.Sidecars.RootHashSig
	if d == imagepolicy.Usr {
		side, sideSig = im.Sidecars.UsrHash, im.Sidecars.UsrHashSig
	}
	if sp, ok := im.Parts[imagepolicy.VeritySigOf(d)]; ok {
		if sp.Size > MaxSigPartition {
			return nil, fmt.Errorf("verity signature partition %d (%s) is %d bytes, larger than 4 MiB; refusing it", sp.Index, sp.Label, sp.Size)
		}
		b := make([]byte, sp.Size)
		if _, err := r.ReadAt(b, sp.Offset); err != nil {
			return nil, fmt.Errorf("read verity signature partition %d: %w", sp.Index, err)
		}
		si, err := DecodeSig(b)
		if err != nil {
			return nil, fmt.Errorf("verity signature partition %d (%s): %w", sp.Index, sp.Label, err)
		}
		v.Sig, v.SigFrom, v.RootHash = &si, fmt.Sprintf("partition %d (%s)", sp.Index, sp.Label), si.RootHash
	}
	if side != nil {
		if v.RootHash != nil && !bytes.Equal(v.RootHash, side) {
			return nil, fmt.Errorf("root hash in the signature partition (%x) does not match the sidecar's (%x)", v.RootHash, side)
		}
		v.RootHash = side
	}
	if v.Sig == nil && sideSig != nil {
		if v.RootHash == nil {
			return nil, errors.New("a root hash signature sidecar (.p7s) without a root hash (.roothash/.usrhash)")
		}
		v.Sig, v.SigFrom = &SigInfo{RootHash: v.RootHash, Signature: sideSig}, "the .p7s sidecar"
	}
	if hp, ok := im.Parts[imagepolicy.VerityOf(d)]; ok {
		v.HashPart = &hp
	} else if im.Sidecars.VerityFile != "" {
		v.HashSidecar = im.Sidecars.VerityFile
	}
	if v.HashPart == nil && v.HashSidecar == "" {
		if v.Sig != nil {
			return nil, fmt.Errorf("%s has a verity signature but no verity hash partition or .verity sidecar", d)
		}
		return nil, nil
	}
	if v.RootHash == nil {
		return nil, nil // a tree without a root hash protects nothing (systemd ignores it too)
	}
	return v, nil
}

// VerifySignature checks the signature of v against the trusted
// certificates (systemd's /etc/verity.d/*.crt and the others) and returns the signer.
func VerifySignature(v *Verity, trusted []*x509.Certificate) (*x509.Certificate, error) {
	if v == nil || v.Sig == nil {
		return nil, errors.New("not signed")
	}
	if !bytes.Equal(v.Sig.RootHash, v.RootHash) {
		return nil, fmt.Errorf("the signature is over root hash %x, not %x", v.Sig.RootHash, v.RootHash)
	}
	c, err := pkcs7.Verify(v.Sig.Signature, []byte(hex.EncodeToString(v.RootHash)), trusted)
	if err != nil {
		return nil, fmt.Errorf("signature in %s: %w", v.SigFrom, err)
	}
	return c, nil
}

// CheckTree reads the verity superblock, checks it describes the data
// partition (block sizes, SHA-256, a data size that fits) and that the
// tree hashes to the root hash (a signature or sidecar of another image
// is caught here). It does not hash the data.
func CheckTree(r io.ReaderAt, data Partition, v *Verity) (verity.Superblock, error) {
	hr, off, closeFn, err := hashSource(r, v)
	if err != nil {
		return verity.Superblock{}, err
	}
	defer closeFn()
	sb, err := verity.ReadSuperblock(hr, off)
	if err != nil {
		return sb, fmt.Errorf("verity superblock: %w", err)
	}
	if n := int64(sb.DataBlocks) * int64(sb.DataBlockSize); n > data.Size || n <= 0 {
		return sb, fmt.Errorf("verity superblock covers %d bytes, but the data partition has %d", n, data.Size)
	}
	err = verity.VerifyTree(hr, off, v.RootHash)
	if errors.Is(err, verity.ErrNoTree) {
		err = verity.Verify(context.Background(), io.NewSectionReader(r, data.Offset, data.Size), hr, off, v.RootHash)
	}
	if err != nil {
		return sb, fmt.Errorf("the verity tree does not match root hash %x (from %s): %w", v.RootHash, cmp.Or(v.SigFrom, "the sidecar"), err)
	}
	return sb, nil
}

// VerifyData hashes the whole data partition against the tree and the root
// hash: what the kernel would find, block by block, before anything is mounted.
func VerifyData(ctx context.Context, r io.ReaderAt, data Partition, v *Verity) error {
	if _, err := CheckTree(r, data, v); err != nil {
		return err
	}
	hr, off, closeFn, err := hashSource(r, v)
	if err != nil {
		return err
	}
	defer closeFn()
	return verity.Verify(ctx, io.NewSectionReader(r, data.Offset, data.Size), hr, off, v.RootHash)
}

func hashSource(r io.ReaderAt, v *Verity) (io.ReaderAt, int64, func(), error) {
	if v.HashPart != nil {
		return io.NewSectionReader(r, v.HashPart.Offset, v.HashPart.Size), 0, func() {}, nil
	}
	f, err := os.Open(v.HashSidecar)
	if err != nil {
		return nil, 0, nil, err
	}
	return f, 0, func() { f.Close() }, nil
}
