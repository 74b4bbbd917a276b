package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/testutil/privtest"
)

func TestInspectAndLintBakedImages(t *testing.T) {
	hostRel := filepath.Join(t.TempDir(), "os-release")
	os.WriteFile(hostRel, []byte("ID=debian\nVERSION_ID=12\n"), 0o644)
	for _, format := range []string{"squashfs", "erofs", "ext4"} {
		t.Run(format, func(t *testing.T) {
			privtest.RequireTools(t, map[string]string{"squashfs": "mksquashfs", "erofs": "mkfs.erofs", "ext4": "mkfs.ext4"}[format])
			src := t.TempDir()
			writeTree(t, src, sampleTree)
			out := t.TempDir()
			stdout, stderr, code := runCLI(t, "bake", src, "--name", "hello", "--version", "1.0", "--arch", "x86-64", "--format", format, "-o", out)
			if code != 0 {
				t.Fatal(stderr)
			}
			img := strings.TrimSpace(stdout)
			stdout, stderr, code = runCLI(t, "inspect", img, "--json", "--os-release", hostRel, "--arch", "x86-64")
			if code != 0 {
				t.Fatalf("inspect: %s", stderr)
			}
			var rep struct {
				Name, Class, Format, SHA256 string
				Size                        int64
				Release                     map[string]string
				Files                       struct {
					Files    int
					TopLevel []string `json:"top_level"`
					Units    []string
				}
				Compatible struct{ OK bool }
			}
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatalf("%v: %s", err, stdout)
			}
			if rep.Name != "hello" || rep.Class != "sysext" || rep.Format != format || rep.SHA256 != fileSHA(t, img) ||
				rep.Release["ARCHITECTURE"] != "x86-64" || rep.Files.Files != 5 || strings.Join(rep.Files.TopLevel, ",") != map[bool]string{true: "lost+found,opt,usr", false: "opt,usr"}[format == "ext4"] ||
				len(rep.Files.Units) != 1 || !rep.Compatible.OK {
				t.Errorf("report: %s", stdout)
			}
			// Another architecture: not compatible, and the text says why.
			stdout, _, _ = runCLI(t, "inspect", img, "--os-release", hostRel, "--arch", "arm64")
			if !strings.Contains(stdout, "NOT compatible") || !strings.Contains(stdout, "EXTENSION_RELOAD_MANAGER=1") {
				t.Errorf("text report:\n%s", stdout)
			}
			// lint reads the image too.
			stdout, stderr, code = runCLI(t, "lint", img, "--json")
			if code != 0 || strings.TrimSpace(stdout) != "[]" {
				t.Errorf("lint %s: exit %d %s %s", img, code, stdout, stderr)
			}
		})
	}
}

func TestLintDirExitCode(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]string{"usr/bin/x": "x", "var/lib/x": "x"})
	stdout, stderr, code := runCLI(t, "lint", src)
	if code != 1 || !strings.Contains(stdout, "outside-hierarchy") || !strings.Contains(stdout, "release-missing") || !strings.Contains(stderr, "error(s)") {
		t.Errorf("exit %d\n%s\n%s", code, stdout, stderr)
	}
}
