package recipe

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/archive"
	"github.com/stratalinux/strata/internal/download"
	"github.com/stratalinux/strata/internal/recipe/recipetest"
)

func upstreamClient(u *recipetest.Upstream) *download.Client {
	return &download.Client{Rewrite: func(s string) string {
		i := strings.Index(s, "://")
		return u.URL + "/" + s[i+3:]
	}}
}

func TestPopulateFromUpstream(t *testing.T) {
	u := recipetest.New(t)
	r, err := Parse("tool.yaml", []byte(recipetest.Tool))
	if err != nil {
		t.Fatal(err)
	}
	c := upstreamClient(u)
	ctx := context.Background()
	res, err := r.Resolve(ctx, c, "latest")
	if err != nil || res.Version != "1.10.0" || res.Tag != "v1.10.0" {
		t.Fatalf("latest: %+v %v", res, err)
	}
	if res2, err := r.Resolve(ctx, c, "v1.9.0"); err != nil || res2.Version != "1.9.0" {
		t.Fatalf("v1.9.0: %+v %v", res2, err)
	}
	if _, err := r.Resolve(ctx, c, "3.0"); err == nil || !strings.Contains(err.Error(), "1.10.0") {
		t.Errorf("missing version: %v", err)
	}
	dls, err := r.Downloads(ctx, c, res, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	root, err := r.Populate(ctx, c, dls, work, PopulateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"usr/bin/tool":                        "echo tool 1.10.0 arm64",
		"usr/bin/toolctl":                     "toolctl arm64",
		"usr/share/tool/share/README":         "readme",
		"usr/lib/tool/plugin.so.txt":          "plugin arm64",
		"usr/lib/systemd/system/tool.service": "ExecStart=/usr/bin/tool",
		"usr/lib/systemd/system/multi-user.target.d/10-tool-service.conf": "Upholds=tool.service",
		"usr/lib/tmpfiles.d/tool.conf":                                    "d /var/lib/tool",
		"usr/lib/sysusers.d/tool.conf":                                    "u tool",
	} {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s: %v %q", p, err, b)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "usr/bin/toolctl")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("toolctl mode: %v", fi)
	}
}

func TestChecksumMismatch(t *testing.T) {
	u := recipetest.New(t)
	r, _ := Parse("tool.yaml", []byte(recipetest.Tool))
	c := upstreamClient(u)
	ctx := context.Background()
	res, _ := r.Resolve(ctx, c, "1.10.0")
	p := "/github.com/acme/tool/releases/download/v1.10.0/tool-1.10.0-linux-amd64.tar.gz"
	good := u.Get(p)
	u.Set(p, append([]byte{}, append(good[:len(good)-1], good[len(good)-1]^1)...))
	dls, err := r.Downloads(ctx, c, res, "x86-64")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Populate(ctx, c, dls, t.TempDir(), PopulateOptions{})
	var me *download.MismatchError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), recipetest.Sum(good)) || !strings.Contains(err.Error(), "tool-1.10.0-linux-amd64.tar.gz") {
		t.Fatalf("want mismatch naming URL and hashes, got %v", err)
	}
}

func TestUnverifiedNeedsConsent(t *testing.T) {
	u := recipetest.New(t)
	src := strings.Replace(recipetest.Tool, "    verify:\n      sums: https://github.com/acme/tool/releases/download/{tag}/SHA256SUMS\n", "    verify: {none: no sums upstream}\n", 1)
	r, err := Parse("tool.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	c := upstreamClient(u)
	ctx := context.Background()
	res, _ := r.Resolve(ctx, c, "latest")
	dls, _ := r.Downloads(ctx, c, res, "x86-64")
	if _, err := r.Populate(ctx, c, dls, t.TempDir(), PopulateOptions{}); err == nil || !strings.Contains(err.Error(), "--allow-unverified") {
		t.Fatalf("got %v", err)
	}
	if _, err := r.Populate(ctx, c, dls, t.TempDir(), PopulateOptions{AllowUnverified: true}); err != nil {
		t.Fatal(err)
	}
}

func TestVersionSources(t *testing.T) {
	u := recipetest.New(t)
	u.Set("/downloads.example.com/static/", []byte(`<a href="docker-27.5.1.tgz">docker-27.5.1.tgz</a>
<a href="docker-28.0.4.tgz">docker-28.0.4.tgz</a><a href="docker-28.0.10.tgz">x</a><a href="docker-28.0.4.tgz">dup</a>`))
	c := upstreamClient(u)
	ctx := context.Background()
	r, err := Parse("d.yaml", []byte(`name: d
versions:
  url: https://downloads.example.com/static/
  match: 'docker-([0-9.]+[0-9])\.tgz'
arch: {x86-64: x86_64}
artifacts:
  - url: https://downloads.example.com/static/docker-{version}.tgz
    verify: {none: no sums}
    map: [{from: "*", to: usr/bin/}]
`))
	if err != nil {
		t.Fatal(err)
	}
	vs, err := r.ListVersions(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range vs {
		got = append(got, v.Version)
	}
	if strings.Join(got, " ") != "28.0.10 28.0.4 27.5.1" {
		t.Errorf("versions %v", got)
	}
	r2, err := Parse("l.yaml", []byte(`name: l
versions: {list: ["1.0", "1.2", "1.10"]}
arch: {arm64: aarch64}
artifacts:
  - url: https://x.example.com/{version}/l-{arch}
    verify: {sha256: {"1.10": {arm64: "`+strings.Repeat("a", 64)+`"}}}
    map: [{to: usr/bin/l}]
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := r2.Resolve(ctx, c, "latest")
	if err != nil || res.Version != "1.10" {
		t.Fatalf("%+v %v", res, err)
	}
	dls, err := r2.Downloads(ctx, c, res, "arm64")
	if err != nil || dls[0].SHA256 != strings.Repeat("a", 64) || dls[0].URL != "https://x.example.com/1.10/l-aarch64" || dls[0].Type != "file" {
		t.Errorf("%+v %v", dls, err)
	}
	res, _ = r2.Resolve(ctx, c, "1.2")
	if _, err := r2.Downloads(ctx, c, res, "arm64"); err == nil || !strings.Contains(err.Error(), "no pinned sha256 for version 1.2") {
		t.Errorf("unpinned version: %v", err)
	}
	if _, err := r2.Downloads(ctx, c, res, "x86-64"); err == nil || !strings.Contains(err.Error(), "no build for architecture x86-64") {
		t.Errorf("missing arch: %v", err)
	}
}

// TestPopulateLimits: the bake options bound an artifact's download and
// what its archive unpacks to; the error names the URL and the option.
func TestPopulateLimits(t *testing.T) {
	u := recipetest.New(t)
	src := strings.Replace(recipetest.Tool, "    verify:\n      sums: https://github.com/acme/tool/releases/download/{tag}/SHA256SUMS\n", "    verify: {none: no sums upstream}\n", 1)
	r, err := Parse("tool.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	c := upstreamClient(u)
	ctx := context.Background()
	res, _ := r.Resolve(ctx, c, "1.10.0")
	// 64 MiB of zeros in 64 concatenated gzip members of 1 MiB each.
	var one, bomb bytes.Buffer
	zw := gzip.NewWriter(&one)
	zw.Write(make([]byte, 1<<20))
	zw.Close()
	var hb bytes.Buffer
	tw := tar.NewWriter(&hb)
	tw.WriteHeader(&tar.Header{Name: "tool-1.10.0/zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: 64 << 20})
	tw.Flush()
	zw = gzip.NewWriter(&bomb)
	zw.Write(hb.Bytes())
	zw.Close()
	for i := 0; i < 64; i++ {
		bomb.Write(one.Bytes())
	}
	zw = gzip.NewWriter(&bomb)
	zw.Write(make([]byte, 1024))
	zw.Close()
	u.Set("/github.com/acme/tool/releases/download/v1.10.0/tool-1.10.0-linux-amd64.tar.gz", bomb.Bytes())
	dls, _ := r.Downloads(ctx, c, res, "x86-64")
	work := t.TempDir()
	_, err = r.Populate(ctx, c, dls, work, PopulateOptions{AllowUnverified: true, Unpack: archive.Limits{MaxBytes: 8 << 20}})
	var le *archive.LimitError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "tool-1.10.0-linux-amd64.tar.gz") || !strings.Contains(err.Error(), "--max-unpack") {
		t.Fatalf("bomb: %v", err)
	}
	var written int64
	filepath.WalkDir(filepath.Join(work, "x"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			fi, _ := d.Info()
			written += fi.Size()
		}
		return nil
	})
	if written > 8<<20 {
		t.Errorf("unpacked %d bytes, limit %d", written, 8<<20)
	}
	_, err = r.Populate(ctx, c, dls, t.TempDir(), PopulateOptions{AllowUnverified: true, MaxDownload: 1000})
	if err == nil || !strings.Contains(err.Error(), "allowed 1000 bytes") || !strings.Contains(err.Error(), "--max-download") {
		t.Fatalf("download limit: %v", err)
	}
}
