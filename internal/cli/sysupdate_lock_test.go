package cli

import (
	"bytes"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/reposerve"
	"github.com/stratalinux/strata/internal/sdparse"
)

// slowWriter sends at most 32 KiB per 20 ms.
type slowWriter struct{ http.ResponseWriter }

func (w slowWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k := min(len(b), 32<<10)
		m, err := w.ResponseWriter.Write(b[:k])
		n += m
		if err != nil {
			return n, err
		}
		w.ResponseWriter.(http.Flusher).Flush()
		time.Sleep(20 * time.Millisecond)
		b = b[k:]
	}
	return n, nil
}

// strata ext add and the update timer's systemd-sysupdate run at once on
// one component, as two processes against a slow repository: one waits
// for the other, both succeed, and the installed image is whole.
func TestExtAddAndTimerUpdateDoNotCollide(t *testing.T) {
	arch := sdparse.NativeArchitecture()
	r := newServedRepo(t)
	h, err := reposerve.New(r.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasSuffix(req.URL.Path, ".raw") {
			w = slowWriter{w}
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(slow.Close)
	r.url = slow.URL
	src := t.TempDir()
	img := func(v string, size int) string {
		p := filepath.Join(src, "hello-"+v+"-"+arch+".raw")
		os.WriteFile(p, bytes.Repeat([]byte(v), size/len(v)), 0o644)
		return p
	}
	r.publish(t, img("1.0", 1024))
	root := t.TempDir()
	r.installKey(t, root)
	if res := strata(t, nil, "ext", "add", "hello@1.0", "--repo", r.url, "--no-refresh", "--root", root); res.code != 0 {
		t.Fatalf("ext add 1.0: %+v", res)
	}
	big := img("1.1", 512<<10) // 16 slow chunks: ~0.3 s
	r.publish(t, big)

	cmds := [][]string{
		{"ext", "add", "hello", "--repo", r.url, "--no-refresh", "--root", root},
		{"sysupdate", "--root", root, "-C", "hello", "update"},
	}
	outs := make([]string, len(cmds))
	codes := make([]int, len(cmds))
	var wg sync.WaitGroup
	for k, args := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := exec.Command(strataBin, args...)
			var o bytes.Buffer
			c.Stdout, c.Stderr = &o, &o
			err := c.Run()
			outs[k] = o.String()
			if ee, ok := err.(*exec.ExitError); ok {
				codes[k] = ee.ExitCode()
			} else if err != nil {
				codes[k] = -1
			}
		}()
	}
	wg.Wait()
	for k := range cmds {
		if codes[k] != 0 {
			t.Fatalf("%v: exit %d\n%s", cmds[k], codes[k], outs[k])
		}
	}
	if all := outs[0] + outs[1]; !strings.Contains(all, "Another update is running on "+filepath.Join(root, "opt/extensions/hello")) ||
		strings.Count(all, "Successfully installed update '1.1'.") != 1 {
		t.Fatalf("want one install and one wait:\n%s\n---\n%s", outs[0], outs[1])
	}
	want, _ := os.ReadFile(big)
	got, err := os.ReadFile(filepath.Join(root, "etc/extensions/hello.raw"))
	if err != nil || sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("current image is not 1.1 as published (%d bytes, %v)", len(got), err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "opt/extensions/hello"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("leftover %s", e.Name())
		}
	}
}
