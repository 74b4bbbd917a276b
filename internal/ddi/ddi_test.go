package ddi

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/imagepolicy"
	"github.com/stratalinux/strata/internal/testutil/exttest"
	"github.com/stratalinux/strata/internal/testutil/keytest"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

type signer struct {
	key      crypto.Signer
	cert     *x509.Certificate
	certPath string
}

func newSigner(t *testing.T, dir, cn string) signer {
	t.Helper()
	k := keytest.New(t, cn)
	p := filepath.Join(dir, cn+".crt")
	if err := os.WriteFile(p, k.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return signer{k.Signer, k.Cert, p}
}

func fsImage(t *testing.T, dir string) string {
	t.Helper()
	privtest.RequireTools(t, "mksquashfs")
	tree := exttest.SysextTree(t, filepath.Join(dir, "tree"), "hello", "ID=_any\n", map[string]string{
		"usr/bin/hello":       "#!/bin/sh\necho hello\n",
		"usr/share/hello/big": incompressible(1<<20 + 12345),
	})
	return exttest.Squashfs(t, tree, filepath.Join(dir, "hello.squashfs"))
}

// incompressible is n bytes of a SHA-256 chain, so the image spans many blocks and tree levels.
func incompressible(n int) string {
	out := make([]byte, 0, n+32)
	sum := sha256.Sum256([]byte("strata"))
	for len(out) < n {
		out = append(out, sum[:]...)
		sum = sha256.Sum256(sum[:])
	}
	return string(out[:n])
}

func bake(t *testing.T, req Request) Result {
	t.Helper()
	res, err := Bake(context.Background(), req)
	if err != nil {
		t.Fatalf("Bake: %v", err)
	}
	return res
}

func openImage(t *testing.T, path string, opt Options) (*Image, *os.File) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	im, err := Open(f, st.Size(), opt)
	if err != nil {
		t.Fatalf("Open %s: %v", path, err)
	}
	return im, f
}

func extract(t *testing.T, img string, p Partition, out string) string {
	t.Helper()
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b[p.Offset:p.Offset+p.Size], 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func sgdisk(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("sgdisk", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestBakeSignedDDI bakes a signed sysext DDI and checks it with the
// reference tools: sgdisk for the layout, veritysetup for the tree, openssl
// for the signature, and our reader and policy for the verdict.
func TestBakeSignedDDI(t *testing.T) {
	privtest.RequireTools(t, "sgdisk", "veritysetup", "openssl")
	dir := t.TempDir()
	fs := fsImage(t, dir)
	s := newSigner(t, dir, "fleet")
	out := filepath.Join(dir, "hello.raw")
	res := bake(t, Request{FSImage: fs, Out: out, Designator: imagepolicy.Usr, Arch: "x86-64", Verity: true, SignKey: s.key, SignCert: s.cert, Seed: "hello_1.raw"})
	if !res.Signed || len(res.RootHash) != 32 {
		t.Fatalf("result %+v", res)
	}
	rh := hex.EncodeToString(res.RootHash)

	// Layout, as sgdisk reads it.
	p := sgdisk(t, "-p", out)
	for _, name := range []string{"usr-x86-64", "usr-x86-64-verity", "usr-x86-64-verity-sig"} {
		if !strings.Contains(p, name) {
			t.Errorf("sgdisk -p lacks %s:\n%s", name, p)
		}
	}
	want := []struct{ typ, uuid, name string }{
		{"8484680C-9521-48C6-9C11-B0720656F69E", strings.ToUpper(uuidString(res.RootHash[:16])), "usr-x86-64"},
		{"77FF5F63-E7B6-4633-ACF4-1565B864C0E6", strings.ToUpper(uuidString(res.RootHash[16:])), "usr-x86-64-verity"},
		{"E7BB33FB-06CF-4E81-8273-E543B413E2E2", "", "usr-x86-64-verity-sig"},
	}
	for i, w := range want {
		info := sgdisk(t, "-i", string(rune('1'+i)), out)
		if !strings.Contains(info, "Partition GUID code: "+w.typ) {
			t.Errorf("partition %d type:\n%s", i+1, info)
		}
		if w.uuid != "" && !strings.Contains(info, "Partition unique GUID: "+w.uuid) {
			t.Errorf("partition %d unique GUID is not from the root hash %s:\n%s", i+1, rh, info)
		}
		if !strings.Contains(info, "Partition name: '"+w.name+"'") {
			t.Errorf("partition %d name:\n%s", i+1, info)
		}
	}
	if v := sgdisk(t, "-v", out); !strings.Contains(v, "No problems found") {
		t.Errorf("sgdisk -v:\n%s", v)
	}

	// Our reader finds the three partitions, the root hash and the signature.
	im, f := openImage(t, out, Options{Arch: "x86-64"})
	data, okD := im.Parts[imagepolicy.Usr]
	hash, okV := im.Parts[imagepolicy.UsrVerity]
	_, okS := im.Parts[imagepolicy.UsrVeritySig]
	if !okD || !okV || !okS {
		t.Fatalf("partitions %+v", im.Parts)
	}
	v, err := im.Verity(f, imagepolicy.Usr)
	if err != nil || v == nil || !bytes.Equal(v.RootHash, res.RootHash) || v.Sig == nil {
		t.Fatalf("Verity: %+v %v", v, err)
	}
	if !bytes.Equal(v.Sig.CertFingerprint, CertFingerprint(s.cert)) {
		t.Errorf("fingerprint %x", v.Sig.CertFingerprint)
	}

	// The data partition starts with the filesystem, byte for byte.
	fsb, _ := os.ReadFile(fs)
	all, _ := os.ReadFile(out)
	if !bytes.Equal(all[data.Offset:data.Offset+int64(len(fsb))], fsb) {
		t.Error("data partition does not hold the filesystem image")
	}

	// veritysetup agrees with the tree and the root hash.
	dataFile := extract(t, out, data, filepath.Join(dir, "data"))
	hashFile := extract(t, out, hash, filepath.Join(dir, "hash"))
	if o, err := exec.Command("veritysetup", "verify", dataFile, hashFile, rh).CombinedOutput(); err != nil {
		t.Errorf("veritysetup verify: %v\n%s", err, o)
	}
	if err := VerifyData(context.Background(), f, data, v); err != nil {
		t.Errorf("VerifyData: %v", err)
	}

	// openssl accepts the signature over the hex root hash.
	sigFile, content := filepath.Join(dir, "sig.p7s"), filepath.Join(dir, "content")
	_ = os.WriteFile(sigFile, v.Sig.Signature, 0o644)
	_ = os.WriteFile(content, []byte(rh), 0o644)
	if o, err := exec.Command("openssl", "smime", "-verify", "-inform", "der", "-in", sigFile, "-binary", "-content", content, "-CAfile", s.certPath, "-purpose", "any", "-out", os.DevNull).CombinedOutput(); err != nil {
		t.Errorf("openssl smime -verify: %v\n%s", err, o)
	}

	// The JSON object is systemd-repart's, NUL-padded to 16 KiB.
	sp := im.Parts[imagepolicy.UsrVeritySig]
	raw := all[sp.Offset : sp.Offset+sp.Size]
	if sp.Size != SigPartitionSize || !bytes.HasPrefix(raw, []byte(`{"rootHash":"`+rh+`","certificateFingerprint":"`)) {
		t.Errorf("signature partition (%d bytes) starts %q", sp.Size, raw[:120])
	}

	// Policy decisions.
	trusted := []*x509.Certificate{s.cert}
	other := newSigner(t, dir, "stranger")
	for _, c := range []struct {
		policy  string
		trusted []*x509.Certificate
		refused string
	}{
		{"usr=signed", trusted, ""},
		{"usr=signed", []*x509.Certificate{other.cert}, "usr partition found with flags 'verity', but the image policy asks for 'signed'"},
		{"usr=signed", nil, "not trusted"},
		{"usr=verity", trusted, "asks for 'verity'"},
		{imagepolicy.Default(imagepolicy.Sysext).Format(), nil, ""},
		{"usr=unprotected", trusted, "found with flags 'signed'"},
		{"root=signed", trusted, "root partition is absent"},
	} {
		a, err := Assess(im, f, c.trusted, imagepolicy.MustParse(c.policy))
		if err != nil {
			t.Fatalf("Assess(%s): %v", c.policy, err)
		}
		if c.refused == "" && a.Refused != "" || c.refused != "" && !strings.Contains(a.Refused, c.refused) {
			t.Errorf("policy %q: refused %q, want %q", c.policy, a.Refused, c.refused)
		}
	}
	a, _ := Assess(im, f, trusted, imagepolicy.MustParse("usr=signed"))
	if fd, _ := a.Finding(imagepolicy.Usr); fd.Signer == nil || fd.Signer.Subject.CommonName != "fleet" {
		t.Errorf("signer not reported: %+v", fd)
	}
}

func uuidString(b []byte) string {
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func TestBakeReproducible(t *testing.T) {
	dir := t.TempDir()
	fs := fsImage(t, dir)
	s := newSigner(t, dir, "k")
	var prev []byte
	for i := 0; i < 2; i++ {
		out := filepath.Join(dir, "r.raw")
		bake(t, Request{FSImage: fs, Out: out, Designator: imagepolicy.Root, Arch: "arm64", SignKey: s.key, SignCert: s.cert, Seed: "s"})
		b, _ := os.ReadFile(out)
		if prev != nil && !bytes.Equal(prev, b) {
			t.Fatal("two bakes of the same input differ")
		}
		prev = b
	}
	// Another seed changes the salt, hence the root hash and UUIDs.
	out := filepath.Join(dir, "o.raw")
	bake(t, Request{FSImage: fs, Out: out, Designator: imagepolicy.Root, Arch: "arm64", Verity: true, Seed: "other"})
	b, _ := os.ReadFile(out)
	if bytes.Equal(prev[:1<<20], b[:1<<20]) {
		t.Error("another seed gave the same table")
	}
}

func TestUnsignedAndPlain(t *testing.T) {
	dir := t.TempDir()
	fs := fsImage(t, dir)
	veri := filepath.Join(dir, "v.raw")
	bake(t, Request{FSImage: fs, Out: veri, Designator: imagepolicy.Usr, Arch: "x86-64", Verity: true, Seed: "v"})
	plain := filepath.Join(dir, "p.raw")
	bake(t, Request{FSImage: fs, Out: plain, Designator: imagepolicy.Root, Arch: "x86-64", Seed: "p"})

	im, f := openImage(t, veri, Options{Arch: "x86-64"})
	if _, ok := im.Parts[imagepolicy.UsrVeritySig]; ok {
		t.Error("unsigned image has a signature partition")
	}
	// Without a signature partition the root hash is unknown: the tree protects nothing...
	a, err := Assess(im, f, nil, imagepolicy.MustParse("usr=verity"))
	if err != nil || !strings.Contains(a.Refused, "flags 'unprotected'") {
		t.Errorf("verity image without root hash: %q %v", a.Refused, err)
	}
	// ...until a .usrhash sidecar gives it.
	res, _ := Bake(context.Background(), Request{FSImage: fs, Out: veri, Designator: imagepolicy.Usr, Arch: "x86-64", Verity: true, Seed: "v"})
	if err := os.WriteFile(strings.TrimSuffix(veri, ".raw")+".usrhash", []byte(hex.EncodeToString(res.RootHash)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := LoadSidecars(veri)
	if err != nil {
		t.Fatal(err)
	}
	im, f = openImage(t, veri, Options{Arch: "x86-64", Sidecars: sc})
	for _, c := range []struct{ policy, refused string }{{"usr=verity", ""}, {"usr=signed", "asks for 'signed'"}, {"usr=unprotected", "flags 'verity'"}} {
		a, err := Assess(im, f, nil, imagepolicy.MustParse(c.policy))
		if err != nil || (c.refused == "") != (a.Refused == "") || !strings.Contains(a.Refused, c.refused) {
			t.Errorf("%s: %q %v", c.policy, a.Refused, err)
		}
	}

	im, f = openImage(t, plain, Options{Arch: "x86-64"})
	if len(im.Parts) != 1 {
		t.Errorf("plain image parts %+v", im.Parts)
	}
	for _, c := range []struct{ policy, refused string }{{"root=unprotected", ""}, {"root=verity+signed", "flags 'unprotected'"}, {imagepolicy.Default(imagepolicy.Confext).Format(), ""}, {"~", "requires it to be absent"}} {
		a, err := Assess(im, f, nil, imagepolicy.MustParse(c.policy))
		if err != nil || (c.refused == "") != (a.Refused == "") || !strings.Contains(a.Refused, c.refused) {
			t.Errorf("plain %s: %q %v", c.policy, a.Refused, err)
		}
	}
	// Another architecture's partitions are not this host's.
	im, f = openImage(t, plain, Options{Arch: "arm64"})
	if len(im.Parts) != 0 {
		t.Errorf("x86-64 partitions picked for arm64: %+v", im.Parts)
	}
	_ = f
}

// TestSidecarsOnBareImage: a bare squashfs with NAME.roothash,
// NAME.roothash.p7s and NAME.verity, the other form systemd accepts.
func TestSidecarsOnBareImage(t *testing.T) {
	privtest.RequireTools(t, "veritysetup")
	dir := t.TempDir()
	fs := fsImage(t, dir)
	img := filepath.Join(dir, "bare.raw")
	b, _ := os.ReadFile(fs)
	_ = os.WriteFile(img, b, 0o644)
	out, err := exec.Command("veritysetup", "format", img, filepath.Join(dir, "bare.verity")).CombinedOutput()
	if err != nil {
		t.Fatalf("veritysetup format: %v\n%s", err, out)
	}
	var rh string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Root hash:") {
			rh = strings.TrimSpace(strings.TrimPrefix(l, "Root hash:"))
		}
	}
	s := newSigner(t, dir, "side")
	rhb, _ := hex.DecodeString(rh)
	si, err := SignRootHash(rhb, s.key, s.cert)
	if err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "bare.roothash"), []byte(rh+"\n"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "bare.roothash.p7s"), si.Signature, 0o644)
	sc, err := LoadSidecars(img)
	if err != nil || sc.VerityFile == "" || len(sc.Files) != 3 {
		t.Fatalf("sidecars %+v %v", sc, err)
	}
	im, f := openImage(t, img, Options{Sidecars: sc})
	if im.Table != nil || len(im.Parts) != 1 {
		t.Fatalf("bare image: %+v", im)
	}
	a, err := Assess(im, f, []*x509.Certificate{s.cert}, imagepolicy.MustParse("root=signed"))
	if err != nil || a.Refused != "" {
		t.Fatalf("signed bare image: %q %v", a.Refused, err)
	}
	v, _ := im.Verity(f, imagepolicy.Root)
	if err := VerifyData(context.Background(), f, im.Parts[imagepolicy.Root], v); err != nil {
		t.Errorf("VerifyData with the .verity sidecar: %v", err)
	}
	// A wrong root hash sidecar: the signature no longer matches, the tree no longer verifies.
	_ = os.WriteFile(filepath.Join(dir, "bare.roothash"), []byte(strings.Repeat("ab", 32)), 0o644)
	sc, _ = LoadSidecars(img)
	im, f = openImage(t, img, Options{Sidecars: sc})
	// The tree is checked against the root hash before anything else: an
	// error whatever the policy.
	if _, err := Assess(im, f, []*x509.Certificate{s.cert}, imagepolicy.MustParse("*")); err == nil || !strings.Contains(err.Error(), "does not match root hash") {
		t.Errorf("wrong root hash: %v", err)
	}
	v, _ = im.Verity(f, imagepolicy.Root)
	if err := VerifyData(context.Background(), f, im.Parts[imagepolicy.Root], v); err == nil {
		t.Error("VerifyData accepted a wrong root hash")
	}
	// Oversized sidecars are refused.
	_ = os.WriteFile(filepath.Join(dir, "bare.roothash"), bytes.Repeat([]byte("a"), 5000), 0o644)
	if _, err := LoadSidecars(img); err == nil {
		t.Error("a 5000-byte .roothash loaded")
	}
}

func TestTrustedCertificates(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	a := newSigner(t, dir, "a")
	b := newSigner(t, dir, "b")
	c := newSigner(t, dir, "c")
	put := func(p, src string) {
		full := filepath.Join(root, p)
		_ = os.MkdirAll(filepath.Dir(full), 0o755)
		data, _ := os.ReadFile(src)
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	put("etc/verity.d/one.crt", a.certPath)
	put("usr/lib/verity.d/one.crt", b.certPath) // masked by /etc's one.crt
	put("usr/lib/verity.d/two.crt", c.certPath)
	put("run/verity.d/notes.txt", c.certPath) // not *.crt
	_ = os.WriteFile(filepath.Join(root, "usr/lib/verity.d/bad.crt"), []byte("garbage"), 0o644)
	// A symlink that points outside the root resolves inside it (and finds nothing).
	_ = os.Symlink("/etc/ssl/certs/ca-certificates.crt", filepath.Join(root, "etc/verity.d/host.crt"))
	got, skipped, err := TrustedCertificates(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range got {
		names = append(names, g.Path+"="+g.Cert.Subject.CommonName)
	}
	if strings.Join(names, " ") != "/etc/verity.d/one.crt=a /usr/lib/verity.d/two.crt=c" {
		t.Errorf("trusted %v", names)
	}
	if len(skipped) != 2 {
		t.Errorf("skipped %v", skipped)
	}
	if got, _, err := TrustedCertificates(filepath.Join(dir, "empty")); err != nil || len(got) != 0 {
		t.Errorf("empty root: %v %v", got, err)
	}
}

// TestBadImages: lying trees, garbage and huge signature partitions,
// truncated and overlapping tables: an error or a refusal each, never a pass.
func TestBadImages(t *testing.T) {
	dir := t.TempDir()
	fs := fsImage(t, dir)
	s := newSigner(t, dir, "k")
	good := filepath.Join(dir, "good.raw")
	res := bake(t, Request{FSImage: fs, Out: good, Designator: imagepolicy.Usr, Arch: "x86-64", SignKey: s.key, SignCert: s.cert, Seed: "g"})
	orig, _ := os.ReadFile(good)
	trusted := []*x509.Certificate{s.cert}
	policy := imagepolicy.MustParse("usr=signed")
	part := func(i int) gpt.Partition { return res.Table.Partitions[i] }
	variant := func(name string, mutate func(b []byte) []byte) string {
		p := filepath.Join(dir, name+".raw")
		if err := os.WriteFile(p, mutate(bytes.Clone(orig)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	assess := func(p string) (Assessment, *Image, *os.File, error) {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		st, _ := f.Stat()
		im, err := Open(f, st.Size(), Options{Arch: "x86-64"})
		if err != nil {
			return Assessment{}, nil, f, err
		}
		a, err := Assess(im, f, trusted, policy)
		return a, im, f, err
	}

	// One byte flipped in the data: the policy passes (it looks at metadata) but VerifyData names the block.
	flipped := variant("flip", func(b []byte) []byte { b[part(0).Start()+part(0).Size()/2] ^= 0xff; return b })
	a, im, f, err := assess(flipped)
	if err != nil || a.Refused != "" {
		t.Fatalf("flipped data: %q %v", a.Refused, err)
	}
	v, _ := im.Verity(f, imagepolicy.Usr)
	if err := VerifyData(context.Background(), f, im.Parts[imagepolicy.Usr], v); err == nil || !strings.Contains(err.Error(), "block") {
		t.Errorf("VerifyData on flipped data: %v", err)
	}

	sigStart := part(2).Start()
	setSig := func(name string, body []byte) string {
		return variant(name, func(b []byte) []byte {
			clear(b[sigStart : sigStart+SigPartitionSize])
			copy(b[sigStart:], body)
			return b
		})
	}
	for _, c := range []struct{ name, body, want string }{
		{"garbage", "{not json", "not a JSON object"},
		{"nul", `{"rootHash":"00"}` + "\x00x", "embedded NUL"},
		{"noroot", `{"signature":"AAAA"}`, "lacks the 'rootHash'"},
		{"nosig", `{"rootHash":"` + hex.EncodeToString(res.RootHash) + `"}`, "lacks the 'signature'"},
		{"empty", "", "is empty"},
	} {
		if _, _, _, err := assess(setSig(c.name, []byte(c.body))); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// A signature over another root hash (a valid signature, the wrong hash).
	otherHash := bytes.Repeat([]byte{0x42}, 32)
	si, _ := SignRootHash(otherHash, s.key, s.cert)
	si.RootHash = res.RootHash
	body, _ := EncodeSig(si, SigPartitionSize)
	a, _, _, err = assess(setSig("otherhash", body))
	if err != nil || !strings.Contains(a.Refused, "asks for 'signed'") || !strings.Contains(a.Refused, "does not verify") {
		t.Errorf("signature over another root hash: %q %v", a.Refused, err)
	}
	// A signature partition claiming a root hash the tree does not have.
	si, _ = SignRootHash(otherHash, s.key, s.cert)
	body, _ = EncodeSig(si, SigPartitionSize)
	if _, _, _, err = assess(setSig("lie", body)); err == nil || !strings.Contains(err.Error(), "does not match root hash "+hex.EncodeToString(otherHash)) {
		t.Errorf("a signature partition over a root hash the tree does not have: %v", err)
	}
	// A verity tree that lies: one byte of the hash blocks (past the superblock) changed.
	lying := variant("lyingtree", func(b []byte) []byte { b[part(1).Start()+4096+17] ^= 0x01; return b })
	if _, _, _, err := assess(lying); err == nil || !strings.Contains(err.Error(), "the verity tree does not match root hash") || strings.Count(err.Error(), "\n") != 0 {
		t.Errorf("a lying verity tree: %v", err)
	}

	// A truncated image: the table no longer fits.
	trunc := variant("trunc", func(b []byte) []byte { return b[:len(b)-64<<10] })
	if _, _, _, err := assess(trunc); err == nil || !strings.Contains(err.Error(), "do not fit a disk of") {
		t.Errorf("truncated image: %v", err)
	}
	// A partition running past the end of the usable area (a truncated partition).
	pastEnd := variant("pastend", func(b []byte) []byte {
		tb := *res.Table
		tb.Partitions = append([]gpt.Partition(nil), res.Table.Partitions...)
		tb.Partitions[2].LastLBA = uint64(len(b)/512) + 100
		return rawTable(t, b, &tb)
	})
	if _, _, _, err = assess(pastEnd); err == nil || !strings.Contains(err.Error(), "entry 3: LBAs") || !strings.Contains(err.Error(), "do not fit a disk of") {
		t.Errorf("a partition past the end of the disk: %v", err)
	}
	// Overlapping partitions.
	overlap := variant("overlap", func(b []byte) []byte {
		tb := *res.Table
		tb.Partitions = append([]gpt.Partition(nil), res.Table.Partitions...)
		tb.Partitions[1].FirstLBA = tb.Partitions[0].LastLBA - 7
		return rawTable(t, b, &tb)
	})
	if _, _, _, err := assess(overlap); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("overlapping partitions: %v", err)
	}
	// A 100 MB signature partition (sparse) is refused before it is read.
	huge := filepath.Join(dir, "huge.raw")
	hf, _ := os.Create(huge)
	size := int64(len(orig)) + 100<<20
	_ = hf.Truncate(size)
	_, _ = hf.WriteAt(orig[:part(2).Start()], 0)
	tb := *res.Table
	tb.Partitions = append([]gpt.Partition(nil), res.Table.Partitions...)
	tb.Partitions[2].LastLBA = uint64((part(2).Start()+100<<20)/512 - 1)
	if err := tb.Write(hf, size); err != nil {
		t.Fatal(err)
	}
	hf.Close()
	if _, _, _, err := assess(huge); err == nil || !strings.Contains(err.Error(), "larger than 4 MiB") {
		t.Errorf("100 MB signature partition: %v", err)
	}
}

// rawTable writes t into b bypassing Table.Check, for tables Write refuses.
func rawTable(t *testing.T, b []byte, tb *gpt.Table) []byte {
	t.Helper()
	ok := *tb
	ok.Partitions = nil
	if err := ok.Write(bytesWriterAt(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
	// Entries start at LBA 2 (primary) and after the backup's: patch both and fix the CRCs.
	patchGPT(b, tb)
	return b
}

type bytesWriterAt []byte

func (w bytesWriterAt) WriteAt(p []byte, off int64) (int, error) { return copy(w[off:], p), nil }

func FuzzDecodeSig(f *testing.F) {
	f.Add([]byte(`{"rootHash":"` + strings.Repeat("ab", 32) + `","certificateFingerprint":"` + strings.Repeat("cd", 32) + `","signature":"AAAA"}` + "\x00\x00"))
	f.Add([]byte(`{"rootHash":1}`))
	f.Add([]byte("\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		si, err := DecodeSig(b)
		if err != nil {
			return
		}
		if len(si.RootHash) < 16 || len(si.Signature) == 0 {
			t.Fatalf("accepted %+v", si)
		}
		enc, err := EncodeSig(si, MaxSigPartition)
		if err != nil {
			return
		}
		back, err := DecodeSig(enc)
		if err != nil || !bytes.Equal(back.RootHash, si.RootHash) || !bytes.Equal(back.Signature, si.Signature) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzOpenAssess feeds arbitrary bytes through the whole reader (GPT,
// partition choice, signature partition, verity superblock and tree,
// policy): it returns errors, never panics, and never calls anything
// signed without a trusted certificate. The seeds are baked DDIs of about
// 2 MB: run it with -fuzzminimizetime=2s, or minimizing one input takes a minute.
func FuzzOpenAssess(f *testing.F) {
	dir := f.TempDir()
	fsimg := filepath.Join(dir, "fs.img")
	if err := os.WriteFile(fsimg, []byte(incompressible(64<<10)), 0o644); err != nil {
		f.Fatal(err)
	}
	for i, verity := range []bool{false, true} {
		out := filepath.Join(dir, fmt.Sprintf("%d.raw", i))
		if _, err := Bake(context.Background(), Request{FSImage: fsimg, Out: out, Designator: imagepolicy.Usr, Arch: "x86-64", Verity: verity, Seed: "fuzz"}); err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	policy := imagepolicy.MustParse("*")
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		im, err := Open(r, int64(len(b)), Options{Arch: "x86-64"})
		if err != nil {
			return
		}
		a, err := Assess(im, r, nil, policy)
		if err != nil {
			return
		}
		for _, fd := range a.Findings {
			if fd.Protection == imagepolicy.ProtSigned || fd.Signer != nil {
				t.Fatalf("%s counted as signed with no trusted certificate", fd.Designator)
			}
		}
		_ = NewReport(im, a, policy).Line()
	})
}

type dissectMount struct {
	Designator    string `json:"designator"`
	PartitionUUID string `json:"partition_uuid"`
	Label         string `json:"partition_label"`
	FSType        string `json:"fstype"`
	Architecture  string `json:"architecture"`
	Verity        any    `json:"verity"`
	PartNo        int    `json:"partno"`
}

func dissect(t *testing.T, args ...string) []dissectMount {
	t.Helper()
	out, err := exec.Command("systemd-dissect", append([]string{"--json=short"}, args...)...).Output()
	if err != nil {
		t.Fatalf("systemd-dissect %v: %v\n%s", args, err, out)
	}
	var v struct {
		Mounts []dissectMount `json:"mounts"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("systemd-dissect output %q: %v", out, err)
	}
	return v.Mounts
}

// TestSystemdDissect: Debian's systemd-dissect (252) sees what we bake:
// the same partitions, labels, UUIDs and architecture; given the root hash,
// it finds the data partition by it and reports the verity signature.
func TestSystemdDissect(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireTools(t, "systemd-dissect")
	dir := t.TempDir()
	fs := fsImage(t, dir)
	s := newSigner(t, dir, "dissect")
	for _, d := range []imagepolicy.Designator{imagepolicy.Usr, imagepolicy.Root} {
		out := filepath.Join(dir, d.String()+".raw")
		res := bake(t, Request{FSImage: fs, Out: out, Designator: d, Arch: "x86-64", SignKey: s.key, SignCert: s.cert, Seed: d.String()})
		im, _ := openImage(t, out, Options{Arch: "x86-64"})
		var args []string
		if d == imagepolicy.Root {
			args = append(args, "--root-hash="+hex.EncodeToString(res.RootHash)) // 252 has no --usr-hash
		}
		ms := dissect(t, append(args, out)...)
		if len(ms) != 3 {
			t.Fatalf("%s: systemd-dissect sees %d partitions: %+v", d, len(ms), ms)
		}
		for _, m := range ms {
			dd, err := imagepolicy.ParseDesignator(m.Designator)
			if err != nil {
				t.Fatalf("%s: %v", d, err)
			}
			p, ok := im.Parts[dd]
			if !ok {
				t.Errorf("%s: systemd-dissect sees %s, we do not", d, m.Designator)
				continue
			}
			if m.PartitionUUID != p.UUID.String() || m.Label != p.Label || m.PartNo != p.Index || m.Architecture != "x86-64" {
				t.Errorf("%s: systemd-dissect %+v, we %+v", d, m, p)
			}
			switch dd {
			case imagepolicy.Usr, imagepolicy.Root:
				if m.FSType != "squashfs" {
					t.Errorf("%s: fstype %q", d, m.FSType)
				}
				if m.PartitionUUID != uuidString(res.RootHash[:16]) {
					t.Errorf("%s: data partition UUID %s is not the root hash's first half", d, m.PartitionUUID)
				}
				if d == imagepolicy.Root && m.Verity != "signed" {
					t.Errorf("root: systemd-dissect says verity %v, want signed", m.Verity)
				}
			case imagepolicy.UsrVerity, imagepolicy.RootVerity:
				if m.FSType != "DM_verity_hash" {
					t.Errorf("%s: verity fstype %q", d, m.FSType)
				}
			default:
				if m.FSType != "verity_hash_signature" {
					t.Errorf("%s: signature fstype %q", d, m.FSType)
				}
			}
		}
	}
	// A root hash that is not the image's: systemd-dissect finds no partition for it.
	if out, err := exec.Command("systemd-dissect", "--root-hash="+strings.Repeat("ab", 32), filepath.Join(dir, "root.raw")).CombinedOutput(); err == nil {
		t.Errorf("systemd-dissect accepted a foreign root hash:\n%s", out)
	}
}
