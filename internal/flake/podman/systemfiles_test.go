package podman

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/flake/runas"
)

func TestSystemfilesList(t *testing.T) {
	got, err := SystemfilesList([]byte("/etc/hosts\n\netc/resolv.conf\r\n/etc/hosts\n//usr/lib/./x/\n"))
	want := []string{"/etc/hosts", "/etc/resolv.conf", "/usr/lib/x"}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("got %q %v, want %q", got, err, want)
	}
	for _, bad := range []string{"/etc/../../root/.ssh\n", "../x\n", "a\x00b\n"} {
		if _, err := SystemfilesList([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzSystemfilesList(f *testing.F) {
	f.Add([]byte("/etc/hosts\n\netc/x\n"))
	f.Add([]byte("/a/../b\n"))
	f.Add([]byte("\r\n//\n/.\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		paths, err := SystemfilesList(data)
		if err != nil {
			return
		}
		for _, p := range paths {
			if !strings.HasPrefix(p, "/") || p == "/" || filepath.Clean(p) != p || strings.Contains(p, "..") && slices.Contains(strings.Split(p, "/"), "..") {
				t.Fatalf("unsafe path %q from %q", p, data)
			}
		}
	})
}

func TestRunSystemfiles(t *testing.T) {
	ctx := context.Background()
	env := SystemfilesEnv(runas.User{Name: "root", Home: "/root"}, []string{"LANG=C.UTF-8", "SECRET=x", "TERM=dumb", "PATH=/evil"})
	if !slices.Equal(env, []string{"PATH=" + secureEnvPath, "HOME=/root", "USER=root", "LOGNAME=root", "LANG=C.UTF-8", "TERM=dumb"}) {
		t.Fatalf("env %q", env)
	}
	cwd, _ := os.Getwd()
	out, err := RunSystemfiles(ctx, ScriptRun{Script: []byte("echo /etc/hosts; pwd; echo \"$SECRET|$USER|$PATH\"; cat; echo err >&2"), Env: env, Timeout: 10 * time.Second})
	want := "/etc/hosts\n" + cwd + "\n|root|" + secureEnvPath + "\nerr\n"
	if err != nil || string(out) != strings.TrimSuffix(want, "err\n") {
		t.Fatalf("got %q %v", out, err)
	}
	_, err = RunSystemfiles(ctx, ScriptRun{Script: []byte("echo half; echo broken >&2; exit 7"), Env: env, Timeout: 10 * time.Second})
	var se *ScriptError
	if !errors.As(err, &se) || se.Code != 7 || !strings.Contains(err.Error(), "exit code 7: broken") {
		t.Fatalf("failure: %v", err)
	}
	// The timeout kills the script's whole process group, children too.
	start := time.Now()
	_, err = RunSystemfiles(ctx, ScriptRun{Script: []byte("echo waiting >&2; sleep 30 & sleep 30; wait"), Env: env, Timeout: 300 * time.Millisecond})
	if !errors.As(err, &se) || !se.TimedOut || !strings.Contains(err.Error(), "did not finish within 300ms") || time.Since(start) > 5*time.Second {
		t.Fatalf("timeout: %v after %v", err, time.Since(start))
	}
	_, err = RunSystemfiles(ctx, ScriptRun{Script: []byte("head -c 2000000 /dev/zero"), Env: env, Timeout: 10 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "printed more than") {
		t.Fatalf("unbounded output: %v", err)
	}
}

func TestWriteHostEntries(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "d/sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "d/sub/inner"), []byte("no"), 0o644)
	os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o640)
	os.Symlink("/etc/shadow", filepath.Join(dir, "l"))
	var buf bytes.Buffer
	if err := writeHostEntries(&buf, []string{filepath.Join(dir, "f"), filepath.Join(dir, "d"), filepath.Join(dir, "l")}); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	got := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got[h.Name] = string(h.Typeflag) + string(b) + h.Linkname
	}
	rel := strings.TrimPrefix(dir, "/")
	want := map[string]string{rel + "/f": "0data", rel + "/d/": "5", rel + "/l": "2/etc/shadow"}
	if len(got) != len(want) {
		t.Fatalf("entries %q, want %q", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("entries %q, want %q", got, want)
		}
	}
	if err := writeHostEntries(io.Discard, []string{filepath.Join(dir, "missing")}); err == nil || !strings.Contains(err.Error(), "is not on the host") {
		t.Fatalf("missing path: %v", err)
	}
}

// readTarFile reads what podman cp streams out of an image: bounded, and
// only a regular file.
func FuzzReadTarFile(f *testing.F) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "systemfiles", Mode: 0o644, Size: 8, Typeflag: tar.TypeReg})
	tw.Write([]byte("echo /x\n"))
	tw.Close()
	f.Add(buf.Bytes(), int64(64))
	buf.Reset()
	tw = tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "systemfiles", Linkname: "/etc/shadow", Typeflag: tar.TypeSymlink})
	tw.Close()
	f.Add(buf.Bytes(), int64(64))
	f.Fuzz(func(t *testing.T, data []byte, max int64) {
		if max <= 0 || max > 1<<20 {
			max = 1 << 10
		}
		b, err := readTarFile(bytes.NewReader(data), SystemfilesPath, max)
		if err == nil && int64(len(b)) > max {
			t.Fatalf("%d bytes read, bound %d", len(b), max)
		}
	})
}
