// Package recipetest serves artifacts shaped like upstream releases (a
// GitHub release listing with asset digests, tarballs, SHA256SUMS and
// .sha256 files) from 127.0.0.1, in the mirror layout strata bake
// --base-url expects: /HOST/PATH.
package recipetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Upstream is a fake upstream.
type Upstream struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	// Hits counts requests per path.
	Hits map[string]int
}

// Tool is the recipe the upstream serves artifacts for.
const Tool = `name: tool
description: test tool
versions:
  github: acme/tool
  match: '^v([0-9.]+)$'
arch:
  x86-64: amd64
  arm64: arm64
artifacts:
  - url: https://github.com/acme/tool/releases/download/{tag}/tool-{version}-linux-{arch}.tar.gz
    verify:
      sums: https://github.com/acme/tool/releases/download/{tag}/SHA256SUMS
    strip: 1
    map:
      - {from: "bin/*", to: usr/bin/}
      - {from: share, to: usr/share/tool/}
  - url: https://dl.example.com/{tag}/toolctl-{arch}
    verify:
      sha256-url: https://dl.example.com/{tag}/toolctl-{arch}.sha256
    map: [{to: usr/bin/toolctl, mode: "0755"}]
  - url: https://github.com/acme/tool/releases/download/{tag}/extra-{arch}.tar.gz
    verify: {github-digest: true}
    map: [{from: "extra/*", to: usr/lib/tool/}]
units:
  - name: tool.service
    content: |
      [Service]
      ExecStart=/usr/bin/tool
tmpfiles:
  - d /var/lib/tool 0755 root root -
sysusers:
  - u tool - "Tool daemon"
`

// New starts the upstream with versions 1.9.0 and 1.10.0 (1.10.0 newest).
func New(t testing.TB) *Upstream {
	u := &Upstream{files: map[string][]byte{}, Hits: map[string]int{}}
	var rels []map[string]any
	for _, v := range []string{"1.9.0", "1.10.0", "2.0.0-rc1"} {
		tag := "v" + v
		var sums strings.Builder
		var assets []map[string]any
		for _, arch := range []string{"amd64", "arm64"} {
			tgz := Tarball(t, map[string]string{
				"tool/bin/tool":        "#!/bin/sh\necho tool " + v + " " + arch + "\n",
				"tool/bin/tool-helper": "#!/bin/sh\n",
				"tool/share/README":    "readme\n",
			})
			name := fmt.Sprintf("tool-%s-linux-%s.tar.gz", v, arch)
			u.files["/github.com/acme/tool/releases/download/"+tag+"/"+name] = tgz
			fmt.Fprintf(&sums, "%s  %s\n", Sum(tgz), name)
			ctl := []byte("#!/bin/sh\necho toolctl " + arch + "\n")
			u.files["/dl.example.com/"+tag+"/toolctl-"+arch] = ctl
			u.files["/dl.example.com/"+tag+"/toolctl-"+arch+".sha256"] = []byte(Sum(ctl) + "  toolctl-" + arch + "\n")
			extra := Tarball(t, map[string]string{"extra/plugin.so.txt": "plugin " + arch})
			en := "extra-" + arch + ".tar.gz"
			u.files["/github.com/acme/tool/releases/download/"+tag+"/"+en] = extra
			assets = append(assets, map[string]any{"name": en, "digest": "sha256:" + Sum(extra),
				"browser_download_url": "https://github.com/acme/tool/releases/download/" + tag + "/" + en})
		}
		u.files["/github.com/acme/tool/releases/download/"+tag+"/SHA256SUMS"] = []byte(sums.String())
		rels = append(rels, map[string]any{"tag_name": tag, "draft": false, "prerelease": strings.Contains(v, "rc"), "assets": assets})
	}
	rels = append(rels, map[string]any{"tag_name": "nightly", "draft": false, "prerelease": false})
	b, _ := json.Marshal(rels)
	u.files["/api.github.com/repos/acme/tool/releases"] = b
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *Upstream) serve(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.Hits[r.URL.Path]++
	b, ok := u.files[r.URL.Path]
	u.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.Write(b)
}

// Set replaces (or adds) a served file.
func (u *Upstream) Set(path string, b []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.files[path] = b
}

// Get returns a served file.
func (u *Upstream) Get(path string) []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.files[path]
}

// Sum is the hex sha256 of b.
func Sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Tarball builds a deterministic tar.gz of files (sorted by name).
func Tarball(t testing.TB, files map[string]string) []byte {
	var names []string
	for n := range files {
		names = append(names, n)
	}
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			if names[j] < names[i] {
				names[i], names[j] = names[j], names[i]
			}
		}
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, n := range names {
		mode := int64(0o644)
		if strings.Contains(n, "/bin/") {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: mode, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}
