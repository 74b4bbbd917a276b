package ddi

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/imagepolicy"
	"github.com/stratalinux/strata/internal/pkcs7"
	"github.com/stratalinux/strata/internal/verity"
)

const (
	// grain is systemd-repart's partition alignment (4 KiB); the first partition starts at 1 MiB as with fdisk.
	grain      = 4096
	firstStart = 1 << 20
	// footer is the backup GPT (entries and header) after the last partition.
	footer = 33 * gpt.SectorSize
)

// Request says what to bake.
type Request struct {
	// FSImage is the filesystem image (squashfs, erofs, ext4) for the data partition.
	FSImage string
	// Out is the DDI to write (atomically).
	Out string
	// Designator is imagepolicy.Usr for a sysext, imagepolicy.Root for a confext.
	Designator imagepolicy.Designator
	// Arch is the systemd architecture name ("x86-64", "arm64", …).
	Arch string
	// Verity adds the dm-verity hash partition; signing implies it.
	Verity bool
	// SignKey and SignCert, if set, add the signature partition.
	SignKey  crypto.Signer
	SignCert *x509.Certificate
	// Seed derives the disk GUID, the verity salt and superblock UUID and
	// the UUIDs not derived from the root hash; the same seed and
	// filesystem give the same bytes.
	Seed string
}

// Result is what Bake made.
type Result struct {
	RootHash []byte // nil without verity
	Signed   bool
	Size     int64
	Table    *gpt.Table
}

// Geometry is where the partitions go: pure arithmetic from the sizes.
type Geometry struct {
	DataStart, DataSize     int64
	VerityStart, VeritySize int64 // zero without verity
	SigStart, SigSize       int64 // zero without signature
	DiskSize                int64
}

func alignUp(v, a int64) int64 { return (v + a - 1) / a * a }

// Plan lays out the partitions for a filesystem of fsSize bytes: 1 MiB in,
// each partition 4 KiB aligned and sized, back to back, then the backup GPT.
func Plan(fsSize int64, withVerity, withSig bool) (Geometry, error) {
	if fsSize <= 0 {
		return Geometry{}, fmt.Errorf("filesystem image of %d bytes is empty", fsSize)
	}
	g := Geometry{DataStart: firstStart, DataSize: alignUp(fsSize, grain)}
	next := g.DataStart + g.DataSize
	if withVerity || withSig {
		g.VerityStart = next
		g.VeritySize = alignUp(verity.HashSize(g.DataSize, verity.Params{}), grain)
		next += g.VeritySize
	}
	if withSig {
		g.SigStart, g.SigSize = next, SigPartitionSize
		next += g.SigSize
	}
	g.DiskSize = alignUp(next+footer, grain)
	return g, nil
}

// seedKey is the HMAC key standing in for systemd-repart's --seed (a 128-bit ID).
func seedKey(seed string) []byte {
	s := sha256.Sum256([]byte("strata-ddi\x00" + seed))
	return s[:16]
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// guidFromUUIDBytes makes a GPT GUID from 16 bytes in UUID string order (sd_id128_t's order).
func guidFromUUIDBytes(b []byte) gpt.GUID {
	var g gpt.GUID
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	copy(g[8:], b[8:16])
	return g
}

// uuidBytes is the inverse of guidFromUUIDBytes.
func uuidBytes(g gpt.GUID) []byte {
	b := make([]byte, 16)
	b[0], b[1], b[2], b[3] = g[3], g[2], g[1], g[0]
	b[4], b[5] = g[5], g[4]
	b[6], b[7] = g[7], g[6]
	copy(b[8:], g[8:])
	return b
}

// v4 marks 16 bytes (string order) as a version 4 UUID, as id128_make_v4_uuid does.
func v4(b []byte) []byte {
	b = append([]byte(nil), b[:16]...)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return b
}

// deriveUUID is repart's partition UUID rule for the first partition of a
// type: HMAC-SHA256(seed, type UUID), first half, as a v4 UUID.
func deriveUUID(key []byte, typ gpt.GUID) gpt.GUID {
	return guidFromUUIDBytes(v4(hmacSHA256(key, uuidBytes(typ))))
}

// deriveToken is repart's derive_uuid(seed, token): HMAC-SHA256(seed, token), first half, v4.
func deriveToken(key []byte, token string) gpt.GUID {
	return guidFromUUIDBytes(v4(hmacSHA256(key, []byte(token))))
}

// VerityParams are the tree parameters Bake uses: 4 KiB blocks, SHA-256, a
// 32-byte salt and a superblock UUID derived from the seed.
func VerityParams(seed string) verity.Params {
	k := seedKey(seed)
	var p verity.Params
	p.Salt = hmacSHA256(k, []byte("verity-salt"))
	copy(p.UUID[:], v4(hmacSHA256(k, []byte("verity-uuid"))))
	return p
}

// Table is the GPT for a geometry once the root hash is known (pure). As
// systemd-repart does, the data partition's UUID is the root hash's first
// 128 bits and the verity partition's its last 128 bits; the others derive
// from the seed. Names are repart's defaults ("usr-x86-64", "…-verity", "…-verity-sig").
func Table(g Geometry, d imagepolicy.Designator, arch string, rootHash []byte, seed string) (*gpt.Table, error) {
	ts, err := PartitionTypes(d, arch)
	if err != nil {
		return nil, err
	}
	if g.VeritySize > 0 && len(rootHash) < 32 {
		return nil, fmt.Errorf("root hash of %d bytes is too short to derive partition UUIDs", len(rootHash))
	}
	k := seedKey(seed)
	t := &gpt.Table{DiskGUID: deriveToken(k, "disk-uuid")}
	add := func(typ, uuid gpt.GUID, name string, start, size int64) {
		t.Partitions = append(t.Partitions, gpt.Partition{
			Index: len(t.Partitions) + 1, Type: typ, UUID: uuid, Name: name,
			FirstLBA: uint64(start / gpt.SectorSize), LastLBA: uint64((start+size)/gpt.SectorSize - 1),
		})
	}
	dataUUID := deriveUUID(k, ts.Data)
	if g.VeritySize > 0 {
		dataUUID = guidFromUUIDBytes(rootHash[:16])
	}
	add(ts.Data, dataUUID, Label(d, arch), g.DataStart, g.DataSize)
	if g.VeritySize > 0 {
		add(ts.Verity, guidFromUUIDBytes(rootHash[len(rootHash)-16:]), Label(imagepolicy.VerityOf(d), arch), g.VerityStart, g.VeritySize)
	}
	if g.SigSize > 0 {
		add(ts.Sig, deriveUUID(k, ts.Sig), Label(imagepolicy.VeritySigOf(d), arch), g.SigStart, g.SigSize)
	}
	if err := t.Check(g.DiskSize); err != nil {
		return nil, err
	}
	return t, nil
}

// SignRootHash makes the signature object for a root hash: a detached
// PKCS#7 signature over its lowercase hex, and the certificate's fingerprint.
func SignRootHash(rootHash []byte, key crypto.Signer, cert *x509.Certificate) (SigInfo, error) {
	sig, err := pkcs7.Sign([]byte(hex.EncodeToString(rootHash)), cert, key)
	if err != nil {
		return SigInfo{}, err
	}
	return SigInfo{RootHash: rootHash, CertFingerprint: CertFingerprint(cert), Signature: sig}, nil
}

// Bake writes the DDI: the filesystem image into the data partition, the
// verity tree, the signature and the GPT, to a temporary file that is
// synced and renamed over Out.
func Bake(ctx context.Context, req Request) (res Result, err error) {
	signing := req.SignKey != nil || req.SignCert != nil
	if signing && (req.SignKey == nil || req.SignCert == nil) {
		return Result{}, errors.New("signing needs both a key and a certificate (--sign-key and --sign-cert)")
	}
	withVerity := req.Verity || signing
	if _, err := PartitionTypes(req.Designator, req.Arch); err != nil {
		return Result{}, err
	}
	src, err := os.Open(req.FSImage)
	if err != nil {
		return Result{}, err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return Result{}, err
	}
	g, err := Plan(st.Size(), withVerity, signing)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", req.FSImage, err)
	}
	dir := filepath.Dir(req.Out)
	f, err := os.CreateTemp(dir, ".#"+filepath.Base(req.Out)+".*")
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Truncate(g.DiskSize); err != nil {
		return Result{}, err
	}
	if _, err := f.Seek(g.DataStart, io.SeekStart); err != nil {
		return Result{}, err
	}
	if _, err := io.Copy(f, src); err != nil {
		return Result{}, fmt.Errorf("copy %s into the data partition: %w", req.FSImage, err)
	}
	if withVerity {
		root, hashSize, err := verity.Format(ctx, io.NewSectionReader(f, g.DataStart, g.DataSize), g.DataSize,
			io.NewOffsetWriter(f, g.VerityStart), 0, VerityParams(req.Seed))
		if err != nil {
			return Result{}, fmt.Errorf("verity tree of %s: %w", req.FSImage, err)
		}
		if hashSize > g.VeritySize {
			return Result{}, fmt.Errorf("verity tree of %d bytes does not fit its %d-byte partition", hashSize, g.VeritySize)
		}
		res.RootHash = root
	}
	if signing {
		si, err := SignRootHash(res.RootHash, req.SignKey, req.SignCert)
		if err != nil {
			return Result{}, err
		}
		b, err := EncodeSig(si, int(g.SigSize))
		if err != nil {
			return Result{}, err
		}
		if _, err := f.WriteAt(b, g.SigStart); err != nil {
			return Result{}, err
		}
		res.Signed = true
	}
	t, err := Table(g, req.Designator, req.Arch, res.RootHash, req.Seed)
	if err != nil {
		return Result{}, err
	}
	if err := t.Write(f, g.DiskSize); err != nil {
		return Result{}, err
	}
	if err := f.Sync(); err != nil {
		return Result{}, err
	}
	if err := f.Chmod(0o644); err != nil {
		return Result{}, err
	}
	if err := f.Close(); err != nil {
		return Result{}, err
	}
	if err := os.Rename(f.Name(), req.Out); err != nil {
		return Result{}, err
	}
	f = nil
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	res.Size, res.Table = g.DiskSize, t
	return res, nil
}
