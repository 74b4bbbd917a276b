package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/testutil/privtest"
)

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(append([]string{"strata"}, args...), strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.Contains(p, "/bin/") {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
}

var sampleTree = map[string]string{
	"usr/bin/hello":                        "#!/bin/sh\necho hello\n",
	"usr/lib/systemd/system/hello.service": "[Service]\nExecStart=/usr/bin/hello\n",
	"usr/share/doc/hello/README":           "hello\n",
	"opt/hello/data":                       strings.Repeat("x", 10000),
}

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestBakeDirReproducible(t *testing.T) {
	for _, format := range []string{"squashfs", "erofs", "ext4"} {
		t.Run(format, func(t *testing.T) {
			switch format {
			case "squashfs":
				privtest.RequireTools(t, "mksquashfs", "unsquashfs")
			case "erofs":
				privtest.RequireTools(t, "mkfs.erofs", "fsck.erofs")
			case "ext4":
				privtest.RequireTools(t, "mkfs.ext4", "resize2fs", "debugfs")
			}
			var sums []string
			for i := 0; i < 2; i++ {
				if i > 0 {
					time.Sleep(1100 * time.Millisecond) // leaked clock time would show
				}
				base := t.TempDir()
				src := filepath.Join(base, "src", strings.Repeat("d", i+1))
				writeTree(t, src, sampleTree)
				out := filepath.Join(base, "out")
				stdout, stderr, code := runCLI(t, "bake", src, "--name", "hello", "--version", "1.2.3", "--arch", "amd64", "--format", format, "--output", out)
				if code != 0 {
					t.Fatalf("bake exit %d: %s", code, stderr)
				}
				img := filepath.Join(out, "hello-1.2.3-x86-64.raw")
				if strings.TrimSpace(stdout) != img {
					t.Errorf("printed %q, want %q", stdout, img)
				}
				sum := fileSHA(t, img)
				side, err := os.ReadFile(img + ".sha256")
				if err != nil {
					t.Fatal(err)
				}
				if want := sum + "  hello-1.2.3-x86-64.raw\n"; string(side) != want {
					t.Errorf(".sha256 = %q, want %q", side, want)
				}
				ents, _ := os.ReadDir(out)
				if len(ents) != 2 {
					t.Errorf("output dir holds %d entries, want 2", len(ents))
				}
				sums = append(sums, sum)
				// The image reads back with the release file and the units flag.
				d := filepath.Join(base, "x")
				rel := extractRelease(t, format, img, d)
				for _, want := range []string{"ID=_any\n", "ARCHITECTURE=x86-64\n", "EXTENSION_RELOAD_MANAGER=1\n", "SYSEXT_ID=hello\n", "SYSEXT_VERSION_ID=1.2.3\n"} {
					if !strings.Contains(rel, want) {
						t.Errorf("extension-release lacks %q:\n%s", want, rel)
					}
				}
			}
			if sums[0] != sums[1] {
				t.Errorf("two bakes of the same tree in different directories differ: %s vs %s", sums[0], sums[1])
			}
		})
	}
}

func extractRelease(t *testing.T, format, img, dir string) string {
	t.Helper()
	rp := "usr/lib/extension-release.d/extension-release.hello"
	var out []byte
	var err error
	switch format {
	case "squashfs":
		out, err = exec.Command("unsquashfs", "-cat", img, rp).Output()
	case "erofs":
		if out, err = exec.Command("fsck.erofs", "--extract="+dir, img).CombinedOutput(); err == nil {
			out, err = os.ReadFile(filepath.Join(dir, rp))
		}
	case "ext4":
		out, err = exec.Command("debugfs", "-R", "cat /"+rp, img).Output()
	}
	if err != nil {
		t.Fatalf("reading back %s: %v %s", img, err, out)
	}
	return string(out)
}

func TestBakeDirFormat(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, sampleTree)
	out := t.TempDir()
	stdout, stderr, code := runCLI(t, "bake", src, "--name", "hello", "--version", "1", "--arch", "arm64", "--format", "dir", "-o", out, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("json: %v: %s", err, stdout)
	}
	b, err := os.ReadFile(filepath.Join(res.Path, "usr/lib/extension-release.d/extension-release.hello"))
	if err != nil || !strings.Contains(string(b), "ARCHITECTURE=arm64") {
		t.Fatalf("release in dir image: %v %q", err, b)
	}
	fi, err := os.Stat(filepath.Join(res.Path, "usr/bin/hello"))
	if err != nil || fi.ModTime().Unix() != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("usr/bin/hello: %v %v %v", err, fi.ModTime(), fi.Mode())
	}
}

func TestBakeDirLintStops(t *testing.T) {
	privtest.RequireTools(t, "mksquashfs")
	src := t.TempDir()
	writeTree(t, src, map[string]string{"usr/bin/x": "x", "etc/passwd": "root:x:0:0::/root:/bin/sh\n"})
	out := t.TempDir()
	_, stderr, code := runCLI(t, "bake", src, "--name", "x", "--version", "1", "-o", out)
	if code == 0 || !strings.Contains(stderr, "etc") || !strings.Contains(stderr, "outside-hierarchy") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("failed bake left %v", ents)
	}
}

func TestBakeDirBadInput(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, sampleTree)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "x", "--version", "1-2"}, "contains '-'"},
		{[]string{"--name", "../x", "--version", "1"}, "image name"},
		{[]string{"--name", "x", "--version", "1", "--arch", "vax"}, "unknown architecture"},
		{[]string{"--name", "x", "--version", "1", "--format", "zip"}, "unknown image format"},
		{[]string{"--name", "x", "--version", "1", "--os", "_any:12"}, "--os"},
		{[]string{"--name", "x", "--version", "1", "--compression", "brotli"}, "compression"},
	} {
		_, stderr, code := runCLI(t, append([]string{"bake", src, "-o", t.TempDir()}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q (want one line with %q)", tc.args, code, stderr, tc.want)
		}
	}
}

func TestBakeMissingTool(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, sampleTree)
	t.Setenv("PATH", t.TempDir())
	_, stderr, code := runCLI(t, "bake", src, "--name", "x", "--version", "1", "--format", "erofs", "-o", t.TempDir())
	if code == 0 || !strings.Contains(stderr, "erofs-utils") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestBakeOSPin(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, sampleTree)
	out := t.TempDir()
	_, stderr, code := runCLI(t, "bake", src, "--name", "h", "--version", "1", "--format", "dir", "--os", "flatcar:level=1.0", "-o", out, "--reload-manager", "no")
	if code != 0 {
		t.Fatal(stderr)
	}
	b, _ := os.ReadFile(filepath.Join(out, "h-1-"+hostArchForTest()+"/usr/lib/extension-release.d/extension-release.h"))
	if !strings.Contains(string(b), "ID=flatcar\nSYSEXT_LEVEL=1.0\n") || strings.Contains(string(b), "RELOAD") {
		t.Errorf("release:\n%s", b)
	}
	if !strings.Contains(stderr, "unit-no-reload") {
		t.Errorf("expected unit-no-reload warning, got %q", stderr)
	}
}

func TestBakeConfextDir(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]string{"etc/app/app.conf": "x=1\n"})
	out := t.TempDir()
	stdout, stderr, code := runCLI(t, "bake", src, "--class", "confext", "--name", "app", "--version", "2", "--arch", "any", "--format", "dir", "-o", out)
	if code != 0 {
		t.Fatal(stderr)
	}
	img := strings.TrimSpace(stdout)
	if filepath.Base(img) != "app-2-any" {
		t.Errorf("path %s", img)
	}
	b, err := os.ReadFile(filepath.Join(img, "etc/extension-release.d/extension-release.app"))
	if err != nil || string(b) != "ID=_any\nCONFEXT_ID=app\nCONFEXT_VERSION_ID=2\n" {
		t.Errorf("%v %q", err, b)
	}
	// A sysext tree baked as a confext is refused by lint.
	src2 := t.TempDir()
	writeTree(t, src2, sampleTree)
	_, stderr, code = runCLI(t, "bake", src2, "--class", "confext", "--name", "app", "--version", "2", "--format", "dir", "-o", out)
	if code == 0 || !strings.Contains(stderr, "outside-hierarchy") {
		t.Errorf("exit %d %s", code, stderr)
	}
}
