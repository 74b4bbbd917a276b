package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/reposerve"
	"github.com/stratalinux/strata/internal/sdparse"
	"github.com/stratalinux/strata/internal/testutil/exttest"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// servedRepo makes a signing key and an (empty) repository served on
// 127.0.0.1; publish adds images to it with the strata binary.
type servedRepo struct {
	dir, url, key, pub string
}

func newServedRepo(t *testing.T) *servedRepo {
	t.Helper()
	base := t.TempDir()
	r := &servedRepo{dir: filepath.Join(base, "repo"), key: filepath.Join(base, "k.key"), pub: filepath.Join(base, "k.pgp")}
	if res := strata(t, nil, "key", "generate", "--out", filepath.Join(base, "k"), "--email", "t@example.org"); res.code != 0 {
		t.Fatalf("key generate: %+v", res)
	}
	os.MkdirAll(r.dir, 0o755)
	h, err := reposerve.New(r.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); h.Close() })
	r.url = srv.URL
	return r
}

func (r *servedRepo) publish(t *testing.T, images ...string) {
	t.Helper()
	args := append([]string{"publish", "--repo", r.dir, "--sign-key", r.key, "--url", r.url}, images...)
	if res := strata(t, nil, args...); res.code != 0 {
		t.Fatalf("publish: %+v", res)
	}
}

// installKey puts the repository's public key where systemd looks.
func (r *servedRepo) installKey(t *testing.T, root string) {
	t.Helper()
	pub, _ := os.ReadFile(r.pub)
	exttest.Write(t, root, map[string]string{"etc/systemd/import-pubring.pgp": string(pub)})
}

func TestSysupdateCLI(t *testing.T) {
	arch := sdparse.NativeArchitecture()
	r := newServedRepo(t)
	src := t.TempDir()
	var imgs []string
	for _, v := range []string{"1.0", "1.1"} {
		p := filepath.Join(src, "hello-"+v+"-"+arch+".raw")
		os.WriteFile(p, []byte("image "+v), 0o644)
		imgs = append(imgs, p)
	}
	r.publish(t, imgs...)
	root := t.TempDir()
	r.installKey(t, root)
	tr, _ := os.ReadFile(filepath.Join(r.dir, "hello.transfer"))
	exttest.Write(t, root, map[string]string{"etc/sysupdate.hello.d/hello.transfer": string(tr)})

	// Multi-call: the binary invoked as systemd-sysupdate.
	sysupdate := filepath.Join(t.TempDir(), "systemd-sysupdate")
	if err := os.Symlink(strataBin, sysupdate); err != nil {
		t.Fatal(err)
	}
	su := func(args ...string) result {
		return runBin(t, sysupdate, nil, append([]string{"--root", root, "-C", "hello"}, args...)...)
	}
	if res := su("check-new"); res.code != 0 || strings.TrimSpace(res.stdout) != "1.1" {
		t.Fatalf("check-new before: %+v", res)
	}
	if res := su("update"); res.code != 0 || !strings.Contains(res.stderr, "Successfully installed update '1.1'.") {
		t.Fatalf("update: %+v", res)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "etc/extensions/hello.raw")); string(got) != "image 1.1" {
		t.Fatalf("current image %q", got)
	}
	// pending: the newest installed version against IMAGE_VERSION.
	exttest.Write(t, root, map[string]string{"etc/os-release": "ID=test\nIMAGE_VERSION=1.0\n"})
	if res := strata(t, nil, "sysupdate", "--root", root, "--definitions", filepath.Join(root, "etc/sysupdate.hello.d"), "pending"); res.code != 0 {
		t.Fatalf("pending with 1.1 installed over IMAGE_VERSION=1.0: %+v", res)
	}
	exttest.Write(t, root, map[string]string{"etc/os-release": "ID=test\nIMAGE_VERSION=1.1\n"})
	if res := strata(t, nil, "sysupdate", "--root", root, "--definitions", filepath.Join(root, "etc/sysupdate.hello.d"), "pending"); res.code != 1 {
		t.Fatalf("pending with the booted version installed: %+v", res)
	}
	if res := su("check-new"); res.code != 1 || res.stdout != "" {
		t.Fatalf("check-new after (want exit 1): %+v", res)
	}
	if res := su("check-new", "--json=short"); res.code != 0 || strings.TrimSpace(res.stdout) != `{"available":null}` {
		t.Fatalf("check-new --json: %+v", res)
	}
	res := su("list", "--json=short")
	var list struct {
		Current string   `json:"current"`
		All     []string `json:"all"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &list); err != nil || list.Current != "1.1" || len(list.All) != 2 || list.All[1] != "1.0" {
		t.Fatalf("list --json: %s %v", res.stdout, err)
	}
	if res := su("list"); res.code != 0 || !strings.Contains(res.stdout, "current") {
		t.Fatalf("list: %+v", res)
	}
	if res := su("list", "9.9"); res.code != 1 || !strings.Contains(res.stderr, "update '9.9' not found") {
		t.Fatalf("list unknown version: %+v", res)
	}
	if res := su("update", "1.0"); res.code != 0 {
		t.Fatalf("update 1.0: %+v", res)
	}
	if res := su("vacuum", "-m", "1", "--json=short"); res.code != 0 {
		t.Fatalf("vacuum: %+v", res)
	}
	if res := strata(t, nil, "sysupdate", "--root", root, "components"); res.code != 0 || strings.TrimSpace(res.stdout) != "hello" {
		t.Fatalf("components: %+v", res)
	}
	if res := strata(t, nil, "ext", "list", "--root", root, "--json=short"); res.code != 0 || !strings.Contains(res.stdout, `"name":"hello","current":"1.0"`) {
		t.Fatalf("ext list: %+v", res)
	}
	// A broken definition: the error names file and line, exit 1.
	exttest.Write(t, root, map[string]string{"etc/sysupdate.hello.d/hello.transfer": string(tr) + "Bogus=1\n"})
	if res := su("list"); res.code != 1 || !strings.Contains(res.stderr, "hello.transfer:16: Bogus=: unknown key in [Target]") {
		t.Fatalf("bad key: %+v", res)
	}
	if res := strata(t, nil, "sysupdate", "--root", root, "-C", "none", "list"); res.code != 1 || !strings.Contains(res.stderr, "no transfer definitions for component 'none' found") {
		t.Fatalf("missing component: %+v", res)
	}
}

// TestExtAddUpdateRemove installs a real squashfs sysext from a served
// repository on a scratch root, updates it with a gap-free refresh and
// removes it again.
func TestExtAddUpdateRemove(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	privtest.RequireTools(t, "mksquashfs")
	arch := sdparse.NativeArchitecture()
	r := newServedRepo(t)
	img := func(v string) string {
		tree := exttest.SysextTree(t, filepath.Join(t.TempDir(), "hello"), "hello", "ID=_any\n", map[string]string{"usr/bin/hello": "#!/bin/sh\necho " + v + "\n"})
		return exttest.Squashfs(t, tree, filepath.Join(t.TempDir(), "hello-"+v+"-"+arch+".raw"))
	}
	r.publish(t, img("1"))
	root := exttest.Root(t, exttest.DefaultOSRelease)
	r.installKey(t, root)
	t.Cleanup(func() { strata(t, nil, "sysext", "--root", root, "unmerge") })

	if res := strata(t, nil, "ext", "add", "hello", "--repo", r.url, "--root", root); res.code != 0 {
		t.Fatalf("ext add: %+v", res)
	}
	hello := filepath.Join(root, "usr/bin/hello")
	if b, _ := os.ReadFile(hello); !strings.Contains(string(b), "echo 1") {
		t.Fatalf("after add, /usr/bin/hello = %q", b)
	}
	r.publish(t, img("2"))
	if res := strata(t, nil, "sysupdate", "--root", root, "-C", "hello", "update", "--refresh"); res.code != 0 || !strings.Contains(res.stderr, "Refreshed systemd-sysext") {
		t.Fatalf("update --refresh: %+v", res)
	}
	if b, _ := os.ReadFile(hello); !strings.Contains(string(b), "echo 2") {
		t.Fatalf("after update --refresh, /usr/bin/hello = %q", b)
	}
	res := strata(t, nil, "ext", "list", "--root", root)
	if res.code != 0 || !strings.Contains(res.stdout, "hello") || !strings.Contains(res.stdout, "hello 2       2 1") {
		t.Fatalf("ext list: %+v", res)
	}
	if res := strata(t, nil, "ext", "remove", "hello", "--root", root); res.code != 0 {
		t.Fatalf("ext remove: %+v", res)
	}
	if _, err := os.Stat(hello); err == nil {
		t.Fatal("/usr/bin/hello still there after remove")
	}
	for _, p := range []string{"opt/extensions/hello", "etc/extensions/hello.raw", "etc/sysupdate.hello.d"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Fatalf("%s left after remove", p)
		}
	}
	// A failed add (no such extension) leaves nothing behind.
	if res := strata(t, nil, "ext", "add", "nosuch", "--repo", r.url, "--root", root, "--no-refresh"); res.code == 0 {
		t.Fatal("adding a missing extension succeeded")
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/sysupdate.nosuch.d")); err == nil {
		t.Fatal("failed add left its definition")
	}
}

// TestServeTLS runs strata serve with a certificate and fetches a range.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte("0123456789"), 0o644)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(t.TempDir(), "c.pem"), filepath.Join(t.TempDir(), "k.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(strataBin, "serve", "--repo", dir, "--listen", addr, "--tls-cert", certFile, "--tls-key", keyFile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pool := x509.NewCertPool()
	pool.AddCert(mustParse(t, der))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	var resp *http.Response
	for i := 0; i < 100; i++ {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/SHA256SUMS", nil)
		req.Header.Set("Range", "bytes=5-")
		if resp, err = client.Do(req); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusPartialContent || string(body) != "56789" {
		t.Fatalf("TLS range: %d %q", resp.StatusCode, body)
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
