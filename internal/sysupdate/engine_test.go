package sysupdate

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/download"
	"github.com/stratalinux/strata/internal/pgpsign"
	"github.com/stratalinux/strata/internal/repo"
	"github.com/stratalinux/strata/internal/reposerve"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// testRepo is a published repository served on 127.0.0.1.
type testRepo struct {
	dir    string
	url    string
	key    pgpsign.Key
	images map[string][]byte // file name → content
	served atomic.Int64      // image bytes sent
	hook   func(w http.ResponseWriter, r *http.Request) bool
}

var testKey = sync1(func() pgpsign.Key {
	k, err := pgpsign.Generate("Strata test", "test@example.org")
	if err != nil {
		panic(err)
	}
	return k
})

func sync1[T any](f func() T) func() T {
	var v T
	var done bool
	return func() T {
		if !done {
			v, done = f(), true
		}
		return v
	}
}

func newTestRepo(t *testing.T, signed bool, size int, versions ...string) *testRepo {
	t.Helper()
	r := &testRepo{dir: t.TempDir(), key: testKey(), images: map[string][]byte{}}
	h, err := reposerve.New(r.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.hook != nil && r.hook(w, req) {
			return
		}
		cw := &countingWriter{ResponseWriter: w}
		h.ServeHTTP(cw, req)
		if strings.HasSuffix(req.URL.Path, ".raw") {
			r.served.Add(cw.n)
		}
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	r.publish(t, signed, size, versions...)
	return r
}

func (r *testRepo) publish(t *testing.T, signed bool, size int, versions ...string) {
	t.Helper()
	src := t.TempDir()
	var imgs []string
	for _, v := range versions {
		name := "hello-" + v + "-x86-64.raw"
		data := make([]byte, size)
		rand.Read(data)
		r.images[name] = data
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, p)
	}
	opt := repo.PublishOptions{Dir: r.dir, Images: imgs, URL: r.url}
	if signed {
		opt.SignKey = r.key.Private
	}
	if _, err := repo.Publish(opt); err != nil {
		t.Fatal(err)
	}
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

// clientRoot is a scratch root with the repository's transfer definition
// and public key installed.
func clientRoot(t *testing.T, r *testRepo, transfer string) string {
	t.Helper()
	root := t.TempDir()
	if transfer == "" {
		transfer = string(repo.TransferFile(repo.TransferSpec{Name: "hello", URL: r.url, Verify: true}))
	}
	writeFiles(t, root, map[string]string{
		"etc/sysupdate.hello.d/hello.transfer": transfer,
		"etc/systemd/import-pubring.pgp":       string(r.key.Public),
	})
	return root
}

func newEngine(t *testing.T, root string) *Engine {
	t.Helper()
	d, err := Load(root, DefinitionDirs("hello"), testSpec)
	if err != nil {
		t.Fatal(err)
	}
	return &Engine{Root: root, Defs: d, CheckFreshness: true, Client: &download.Client{Stall: 2 * time.Second}}
}

func installed(t *testing.T, root string) []string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(root, "opt/extensions/hello"))
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func current(t *testing.T, root string) string {
	t.Helper()
	l, err := os.Readlink(filepath.Join(root, "etc/extensions/hello.raw"))
	if err != nil {
		return ""
	}
	return l
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestUpdateInstallVacuumProtect(t *testing.T) {
	r := newTestRepo(t, true, 100<<10, "1.0", "1.1")
	root := clientRoot(t, r, string(repo.TransferFile(repo.TransferSpec{Name: "hello", URL: r.url, Verify: true, InstancesMax: 2})))
	ctx := context.Background()

	e := newEngine(t, root)
	sets, _, err := e.Sets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := Candidate(sets); !ok || c.Version != "1.1" {
		t.Fatalf("candidate %+v %v, want 1.1", c, ok)
	}
	res, err := e.Update(ctx, "")
	if err != nil || !res.Installed || res.Version != "1.1" {
		t.Fatalf("update: %+v %v", res, err)
	}
	got, _ := os.ReadFile(filepath.Join(root, "opt/extensions/hello/hello-1.1-x86-64.raw"))
	if sha(got) != sha(r.images["hello-1.1-x86-64.raw"]) {
		t.Fatal("installed image differs from the published one")
	}
	if l := current(t, root); l != "../../opt/extensions/hello/hello-1.1-x86-64.raw" {
		t.Fatalf("symlink %q", l)
	}
	// Nothing new: no candidate, update is a no-op.
	e = newEngine(t, root)
	sets, _, _ = e.Sets(ctx)
	if _, ok := Candidate(sets); ok {
		t.Fatal("candidate after installing the newest version")
	}
	if res, err := e.Update(ctx, ""); err != nil || res.Installed {
		t.Fatalf("second update: %+v %v", res, err)
	}
	// Install the older one explicitly, point the link back at it
	// (a rollback), then publish two more versions and update twice:
	// InstancesMax=2 keeps the current (1.0) one throughout.
	if _, err := newEngine(t, root).Update(ctx, "1.0"); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(root, "etc/extensions/hello.raw"))
	os.Symlink("../../opt/extensions/hello/hello-1.0-x86-64.raw", filepath.Join(root, "etc/extensions/hello.raw"))
	r.publish(t, true, 100<<10, "1.2")
	e = newEngine(t, root)
	if res, err := e.Update(ctx, ""); err != nil || res.Version != "1.2" {
		t.Fatalf("update to 1.2: %+v %v", res, err)
	}
	if s := strings.Join(installed(t, root), " "); s != "hello-1.1-x86-64.raw hello-1.2-x86-64.raw" {
		// 1.0 was current while vacuuming; with a link flip to 1.2 only
		// 1.0 is no longer protected afterwards.
		t.Logf("installed after 1.2: %s", s)
	}
	for _, f := range installed(t, root) {
		if strings.HasPrefix(f, ".") {
			t.Fatalf("leftover %s", f)
		}
	}
	if n := len(installed(t, root)); n > 2 {
		t.Fatalf("InstancesMax=2 but %d instances: %v", n, installed(t, root))
	}
	if l := current(t, root); !strings.HasSuffix(l, "hello-1.2-x86-64.raw") {
		t.Fatalf("symlink %q after update to 1.2", l)
	}
}

func TestVacuumKeepsCurrentAndProtected(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"etc/sysupdate.d/a.transfer": "[Transfer]\nProtectVersion=1\n[Source]\nType=regular-file\nPath=/src\nMatchPattern=a_@v.raw\n[Target]\nType=regular-file\nPath=/dst\nInstancesMax=2\nCurrentSymlink=/etc/a.raw\n",
		"dst/a_1.raw":                "1", "dst/a_2.raw": "2", "dst/a_3.raw": "3", "dst/a_4.raw": "4", "dst/a_5.raw": "5",
		"dst/.sysupdate.partial.a_6.raw": "partial", "dst/.#junk": "x",
	})
	os.Symlink("/dst/a_2.raw", filepath.Join(root, "etc/a.raw"))
	d, err := Load(root, DefinitionDirs(""), testSpec)
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{Root: root, Defs: d}
	res, err := e.Vacuum(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "dst"))
	var names []string
	for _, de := range entries {
		names = append(names, de.Name())
	}
	// 1 is protected, 2 is current; the newest (5) fills the budget of 2
	// only after those: protected and current always stay.
	if strings.Join(names, " ") != "a_1.raw a_2.raw" {
		t.Fatalf("after vacuum: %v (removed %d)", names, res.Removed)
	}
}

func TestBadSignatureInstallsNothing(t *testing.T) {
	r := newTestRepo(t, true, 10<<10, "1.0")
	root := clientRoot(t, r, "")
	other, err := pgpsign.Generate("Other", "o@example.org")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc/systemd/import-pubring.pgp"), other.Public, 0o644)
	_, err = newEngine(t, root).Update(context.Background(), "")
	if !errors.Is(err, pgpsign.ErrBadSignature) {
		t.Fatalf("update with the wrong keyring: %v", err)
	}
	if len(installed(t, root)) != 0 || current(t, root) != "" {
		t.Fatal("something was installed")
	}
	// No keyring at all.
	os.Remove(filepath.Join(root, "etc/systemd/import-pubring.pgp"))
	if _, err = newEngine(t, root).Update(context.Background(), ""); !errors.Is(err, ErrNoKeyring) {
		t.Fatalf("update without keyring: %v", err)
	}
}

func TestMissingSignature(t *testing.T) {
	r := newTestRepo(t, false, 10<<10, "1.0")
	root := clientRoot(t, r, "")
	_, err := newEngine(t, root).Update(context.Background(), "")
	if err == nil || !strings.Contains(err.Error(), "SHA256SUMS.gpg is missing") {
		t.Fatalf("unsigned repository with Verify=yes: %v", err)
	}
	if len(installed(t, root)) != 0 {
		t.Fatal("installed without a signature")
	}
	e := newEngine(t, root)
	no := false
	e.Verify = &no // --verify=no
	if res, err := e.Update(context.Background(), ""); err != nil || !res.Installed {
		t.Fatalf("--verify=no: %+v %v", res, err)
	}
}

func TestCorruptDownloadInstallsNothing(t *testing.T) {
	r := newTestRepo(t, true, 300<<10, "1.0")
	r.hook = func(w http.ResponseWriter, req *http.Request) bool {
		if !strings.HasSuffix(req.URL.Path, ".raw") {
			return false
		}
		data := bytes.Clone(r.images["hello-1.0-x86-64.raw"])
		data[1000] ^= 0xff
		w.Write(data)
		return true
	}
	root := clientRoot(t, r, "")
	_, err := newEngine(t, root).Update(context.Background(), "")
	var mm *download.MismatchError
	if !errors.As(err, &mm) {
		t.Fatalf("corrupt download: %v", err)
	}
	if len(installed(t, root)) != 0 || current(t, root) != "" {
		t.Fatalf("left behind: %v", installed(t, root))
	}
}

func TestResumeWithRange(t *testing.T) {
	const size = 2 << 20
	r := newTestRepo(t, true, size, "1.0")
	root := clientRoot(t, r, "")
	img := r.images["hello-1.0-x86-64.raw"]
	// An earlier run was killed after 1.5 MiB.
	writeFiles(t, root, map[string]string{"opt/extensions/hello/.sysupdate.partial.hello-1.0-x86-64.raw": string(img[:3*size/4])})
	if _, err := newEngine(t, root).Update(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if got := r.served.Load(); got != size/4 {
		t.Fatalf("server sent %d bytes, want only the missing %d", got, size/4)
	}
	got, _ := os.ReadFile(filepath.Join(root, "opt/extensions/hello/hello-1.0-x86-64.raw"))
	if sha(got) != sha(img) {
		t.Fatal("resumed image is corrupt")
	}
	// A partial file from another (changed) image: the hash catches it and
	// the next attempt starts over.
	r2 := newTestRepo(t, true, 64<<10, "2.0")
	root2 := clientRoot(t, r2, "")
	writeFiles(t, root2, map[string]string{"opt/extensions/hello/.sysupdate.partial.hello-2.0-x86-64.raw": "garbage that is not a prefix"})
	if _, err := newEngine(t, root2).Update(context.Background(), ""); err == nil {
		t.Fatal("resume over a foreign partial file succeeded without error")
	}
	if _, err := newEngine(t, root2).Update(context.Background(), ""); err != nil {
		t.Fatalf("second attempt after a bad partial: %v", err)
	}
}

func TestServerFaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		hook func(w http.ResponseWriter, req *http.Request) bool
		want string
	}{
		{"manifest 500", func(w http.ResponseWriter, req *http.Request) bool {
			if strings.HasSuffix(req.URL.Path, "/SHA256SUMS") {
				http.Error(w, "boom", 500)
				return true
			}
			return false
		}, "500 Internal Server Error"},
		{"image 404", func(w http.ResponseWriter, req *http.Request) bool {
			if strings.HasSuffix(req.URL.Path, ".raw") {
				http.NotFound(w, req)
				return true
			}
			return false
		}, "404 Not Found"},
		{"stall", func(w http.ResponseWriter, req *http.Request) bool {
			if strings.HasSuffix(req.URL.Path, ".raw") {
				w.Header().Set("Content-Length", "10240")
				w.Write(make([]byte, 100))
				w.(http.Flusher).Flush()
				select {
				case <-req.Context().Done():
				case <-time.After(5 * time.Second):
				}
				return true
			}
			return false
		}, "stall timeout"},
		{"truncated", func(w http.ResponseWriter, req *http.Request) bool {
			if strings.HasSuffix(req.URL.Path, ".raw") {
				w.Header().Set("Content-Length", "10240")
				w.Write(make([]byte, 100))
				return true
			}
			return false
		}, "10240"},
		{"bad manifest line", func(w http.ResponseWriter, req *http.Request) bool {
			if strings.HasSuffix(req.URL.Path, "/SHA256SUMS") {
				fmt.Fprintf(w, "%s hello-1.0-x86-64.raw\n", strings.Repeat("0", 64))
				return true
			}
			return false
		}, "corrupt manifest at line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRepo(t, false, 10<<10, "1.0")
			r.hook = tc.hook
			root := clientRoot(t, r, "")
			e := newEngine(t, root)
			no := false
			e.Verify = &no
			e.Client.Stall = 300 * time.Millisecond
			_, err := e.Update(context.Background(), "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			for _, f := range installed(t, root) {
				if !strings.HasPrefix(f, ".sysupdate.partial.") {
					t.Fatalf("installed %s", f)
				}
			}
			if current(t, root) != "" {
				t.Fatal("symlink created")
			}
		})
	}
}

func TestBestBefore(t *testing.T) {
	r := newTestRepo(t, false, 1<<10, "1.0")
	m, _ := os.ReadFile(filepath.Join(r.dir, "SHA256SUMS"))
	stale := append(m, []byte(repoEmpty+"  BEST-BEFORE-2020-01-01\n")...)
	os.WriteFile(filepath.Join(r.dir, "SHA256SUMS"), stale, 0o644)
	root := clientRoot(t, r, "")
	e := newEngine(t, root)
	no := false
	e.Verify = &no
	if _, err := e.Update(context.Background(), ""); !errors.Is(err, repo.ErrStale) {
		t.Fatalf("stale manifest: %v", err)
	}
	e = newEngine(t, root)
	e.Verify, e.CheckFreshness = &no, false // SYSTEMD_SYSUPDATE_VERIFY_FRESHNESS=0
	if _, err := e.Update(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
}

const repoEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestMinVersionAndFeatures(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"etc/sysupdate.d/a.transfer":    "[Transfer]\nMinVersion=2\n[Source]\nType=regular-file\nPath=/src\nMatchPattern=a_@v.raw\n[Target]\nPath=/dst\n",
		"etc/sysupdate.d/b.transfer":    "[Transfer]\nFeatures=extra\n[Source]\nType=regular-file\nPath=/src\nMatchPattern=b_@v.raw\n[Target]\nPath=/dst\n",
		"etc/sysupdate.d/extra.feature": "[Feature]\nDescription=Extra\n",
		"src/a_1.raw":                   "one", "src/a_2.raw": "two", "src/b_2.raw": "b",
	})
	d, err := Load(root, DefinitionDirs(""), testSpec)
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{Root: root, Defs: d}
	sets, _, err := e.Sets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	one, _ := Find(sets, "1")
	if !one.Has(Obsolete) || one.Assessment() != "available+obsolete" {
		t.Fatalf("version 1: %s", one.Assessment())
	}
	if _, err := e.Update(context.Background(), "1"); err == nil {
		t.Fatal("installed a version older than MinVersion=")
	}
	if res, err := e.Update(context.Background(), ""); err != nil || res.Version != "2" {
		t.Fatalf("update: %+v %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(root, "dst/b_2.raw")); err == nil {
		t.Fatal("transfer of a disabled feature installed a file")
	}
	// Enable the feature: version 2 becomes incomplete and is repaired.
	writeFiles(t, root, map[string]string{"etc/sysupdate.d/extra.feature.d/on.conf": "[Feature]\nEnabled=yes\n"})
	d, _ = Load(root, DefinitionDirs(""), testSpec)
	e = &Engine{Root: root, Defs: d}
	sets, _, _ = e.Sets(context.Background())
	two, _ := Find(sets, "2")
	if two.Assessment() != "current+incomplete" {
		t.Fatalf("after enabling: %s", two.Assessment())
	}
	if _, err := e.Update(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "dst/b_2.raw")); string(b) != "b" {
		t.Fatal("incomplete version not repaired")
	}
	// Disable again: vacuum removes the disabled transfer's files.
	os.Remove(filepath.Join(root, "etc/sysupdate.d/extra.feature.d/on.conf"))
	d, _ = Load(root, DefinitionDirs(""), testSpec)
	e = &Engine{Root: root, Defs: d}
	if res, err := e.Vacuum(context.Background()); err != nil || res.DisabledTransfers != 1 {
		t.Fatalf("vacuum: %+v %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(root, "dst/b_2.raw")); err == nil {
		t.Fatal("vacuum kept a disabled transfer's file")
	}
}

func TestDirectoryAndTarSources(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"etc/sysupdate.d/tree.transfer": "[Source]\nType=directory\nPath=/src\nMatchPattern=tree_@v\n[Target]\nType=directory\nPath=/var/lib/trees\nCurrentSymlink=current\nInstancesMax=2\n",
		"src/tree_1/usr/bin/x":          "1", "src/tree_2/usr/bin/x": "2", "src/tree_2/usr/share/d/y": "y",
	})
	os.Symlink("x", filepath.Join(root, "src/tree_2/usr/bin/link"))
	d, err := Load(root, DefinitionDirs(""), testSpec)
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{Root: root, Defs: d}
	if _, err := e.Update(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "var/lib/trees/current/usr/bin/link")); string(b) != "2" {
		t.Fatalf("directory target through CurrentSymlink: %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(root, "var/lib/trees/current")); l != "tree_2" {
		t.Fatalf("relative symlink %q", l)
	}
}

// TestFullDisk: the target file system fills up during the download; the
// update fails with a clear error and the current version stays.
func TestFullDisk(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	r := newTestRepo(t, true, 100<<10, "1.0")
	root := clientRoot(t, r, "")
	ext := filepath.Join(root, "opt/extensions")
	os.MkdirAll(ext, 0o755)
	if err := syscall.Mount("tmpfs", ext, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(ext, syscall.MNT_DETACH)
	if _, err := newEngine(t, root).Update(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	r.publish(t, true, 2<<20, "1.1")
	_, err := newEngine(t, root).Update(context.Background(), "")
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "hello-1.1-x86-64.raw") {
		t.Fatalf("full disk: %v", err)
	}
	if s := strings.Join(installed(t, root), " "); s != "hello-1.0-x86-64.raw" {
		t.Fatalf("after a failed update: %s", s)
	}
	checkCurrent(t, root, r)
}

// TestURLTar: a url-tar source unpacks into a directory target; an archive
// entry that climbs out of the target is refused and nothing is installed.
func TestURLTar(t *testing.T) {
	srcDir := t.TempDir()
	mk := func(name string, entries map[string]string) {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gz)
		for n, c := range entries {
			tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg})
			tw.Write([]byte(c))
		}
		tw.Close()
		gz.Close()
		os.WriteFile(filepath.Join(srcDir, name), buf.Bytes(), 0o644)
	}
	mk("tree_1.tar.gz", map[string]string{"usr/bin/x": "one"})
	mk("tree_2.tar.gz", map[string]string{"../../escape": "evil"})
	var sums []repo.Entry
	for _, n := range []string{"tree_1.tar.gz", "tree_2.tar.gz"} {
		b, _ := os.ReadFile(filepath.Join(srcDir, n))
		sums = append(sums, repo.Entry{SHA256: sha(b), Name: n})
	}
	os.WriteFile(filepath.Join(srcDir, "SHA256SUMS"), repo.FormatManifest(sums), 0o644)
	root, d := urlTarTree(t, srcDir)
	e := &Engine{Root: root, Defs: d}
	if _, err := e.Update(context.Background(), "2"); err == nil || !strings.Contains(err.Error(), "refusing archive entry") {
		t.Fatalf("escaping archive: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "trees/tree_2")); err == nil {
		t.Fatal("escaping archive installed")
	}
	if _, err := e.Update(context.Background(), "1"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "trees/current/usr/bin/x")); string(b) != "one" {
		t.Fatalf("unpacked tree: %q", b)
	}
}

// TestCompressedURLFile: a .gz payload is verified as served and stored
// decompressed, as systemd-pull does.
func TestCompressedURLFile(t *testing.T) {
	srcDir := t.TempDir()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.Write(bytes.Repeat([]byte("image "), 10000))
	gz.Close()
	os.WriteFile(filepath.Join(srcDir, "foo-1.raw.gz"), buf.Bytes(), 0o644)
	os.WriteFile(filepath.Join(srcDir, "SHA256SUMS"), repo.FormatManifest([]repo.Entry{{SHA256: sha(buf.Bytes()), Name: "foo-1.raw.gz"}}), 0o644)
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"etc/sysupdate.d/foo.transfer": "[Transfer]\nVerify=no\n[Source]\nType=url-file\nPath=file://" + srcDir + "\nMatchPattern=foo-@v.raw.gz\n[Target]\nPath=/ext\nMatchPattern=foo-@v.raw\nCurrentSymlink=/etc/extensions/foo.raw\n"})
	d, err := Load(root, DefinitionDirs(""), testSpec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&Engine{Root: root, Defs: d}).Update(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(root, "etc/extensions/foo.raw"))
	if !bytes.Equal(got, bytes.Repeat([]byte("image "), 10000)) {
		t.Fatalf("stored %d bytes, want the decompressed image", len(got))
	}
	entries, _ := os.ReadDir(filepath.Join(root, "ext"))
	if len(entries) != 1 || entries[0].Name() != "foo-1.raw" {
		t.Fatalf("target dir: %v", entries)
	}
}

// TestDeclaredSizeStopsDownload: a server streaming past the size the
// repository's index.json declares is cut off there, and nothing is left
// in the target directory.
func TestDeclaredSizeStopsDownload(t *testing.T) {
	r := newTestRepo(t, true, 100000, "1.0")
	var sent atomic.Int64
	r.hook = func(w http.ResponseWriter, req *http.Request) bool {
		if !strings.HasSuffix(req.URL.Path, ".raw") {
			return false
		}
		buf := make([]byte, 64<<10)
		for n := 0; n < 1024 && req.Context().Err() == nil; n++ { // 64 MiB at most
			if _, err := w.Write(buf); err != nil {
				break
			}
			sent.Add(int64(len(buf)))
		}
		return true
	}
	root := clientRoot(t, r, "")
	_, err := newEngine(t, root).Update(context.Background(), "")
	if err == nil || !strings.Contains(err.Error(), "declares 100000 bytes") {
		t.Fatalf("oversized download: %v", err)
	}
	if got := installed(t, root); len(got) != 0 {
		t.Errorf("left in the target: %v", got)
	}
	if sent.Load() > 16<<20 {
		t.Errorf("server sent %d bytes before the client stopped", sent.Load())
	}
}

// TestURLTarBomb: a 1 MB tar.gz that unpacks to 1 GiB stops at its
// budget, and the partial tree is removed.
func TestURLTarBomb(t *testing.T) {
	srcDir := t.TempDir()
	gz := func(p []byte) []byte {
		var b bytes.Buffer
		w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		w.Write(p)
		w.Close()
		return b.Bytes()
	}
	zeros := gz(make([]byte, 1<<20))
	var bomb bytes.Buffer
	for i := 0; i < 16; i++ { // 16 files of 64 MiB, as concatenated gzip members
		var hb bytes.Buffer
		tw := tar.NewWriter(&hb)
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("f%d", i), Mode: 0o644, Size: 64 << 20, Typeflag: tar.TypeReg})
		tw.Flush()
		bomb.Write(gz(hb.Bytes()))
		for j := 0; j < 64; j++ {
			bomb.Write(zeros)
		}
	}
	bomb.Write(gz(make([]byte, 1024)))
	os.WriteFile(filepath.Join(srcDir, "tree_1.tar.gz"), bomb.Bytes(), 0o644)
	os.WriteFile(filepath.Join(srcDir, "SHA256SUMS"), repo.FormatManifest([]repo.Entry{{SHA256: sha(bomb.Bytes()), Name: "tree_1.tar.gz"}}), 0o644)
	root, d := urlTarTree(t, srcDir)
	_, err := (&Engine{Root: root, Defs: d}).Update(context.Background(), "1")
	if err == nil || !strings.Contains(err.Error(), "archive unpacks to more than") || !strings.Contains(err.Error(), "--max-unpack-ratio") {
		t.Fatalf("bomb: %v", err)
	}
	filepath.WalkDir(filepath.Join(root, "trees"), func(p string, de os.DirEntry, err error) error {
		if err == nil && de.Type().IsRegular() {
			fi, _ := de.Info()
			t.Errorf("left behind: %s (%d bytes)", p, fi.Size())
		}
		return nil
	})
	t.Logf("%d-byte bomb: %v", bomb.Len(), err)
}

// urlTarTree serves srcDir over HTTP for the test's lifetime and returns a root whose one
// transfer unpacks tree_@v.tar.gz from it into /trees (CurrentSymlink /trees/current).
func urlTarTree(t *testing.T, srcDir string) (string, *Definitions) {
	t.Helper()
	h, err := reposerve.New(srcDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"etc/sysupdate.d/tree.transfer": "[Transfer]\nVerify=no\n[Source]\nType=url-tar\nPath=" + srv.URL + "\nMatchPattern=tree_@v.tar.gz\n[Target]\nType=directory\nPath=/trees\nMatchPattern=tree_@v\nCurrentSymlink=/trees/current\n"})
	d, err := Load(root, DefinitionDirs(""), testSpec)
	if err != nil {
		t.Fatal(err)
	}
	return root, d
}
