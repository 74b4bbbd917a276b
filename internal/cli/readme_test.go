package cli

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/testutil/exttest"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// readmeBlocks returns the command lines of README.md's ```sh blocks by
// section title, comments removed.
func readmeBlocks(t *testing.T) map[string][]string {
	_, file, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string][]string{}
	section, in := "", false
	for _, l := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(l, "## ") || l == "# Strata":
			section = strings.TrimPrefix(l, "## ")
		case l == "```sh":
			in = true
		case l == "```":
			in = false
		case in:
			if i := strings.Index(l, " #"); i >= 0 {
				l = l[:i]
			}
			if l = strings.TrimSpace(l); l != "" {
				blocks[section] = append(blocks[section], l)
			}
		}
	}
	return blocks
}

// The README's commands, run as written in a scratch directory, with
// these substitutions (and only these): sudo is dropped (the test runs as
// root in a private mount namespace); sysext, confext, sysupdate and ext
// get --root SCRATCH; /etc/systemd/import-pubring.pgp is below SCRATCH;
// /srv/ext is below the scratch directory; https://ext.example.org and
// :8080 are the strata serve the test starts on 127.0.0.1; foo.raw is the
// baked hello-1.0-x86-64.raw and /path/to/os-release SCRATCH's; the
// extension "docker" is "hello". The sections not run are named below
// with the reason; a new section or command fails the test until it is
// run here or listed.
func TestREADMECommands(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	blocks := readmeBlocks(t)
	notRun := map[string]string{
		"# Strata": "make demo and make test install packages and run the whole suite",
		"Roll out to a fleet (`strata serve --data`, `strata fleet`)":     "covered by fleet_test.go and serve_test.go, not yet run from the README",
		"Flakes: isolated applications as host commands (`strata flake`)": "needs container images (docker.io/amazon/aws-cli) and a VM kernel",
	}
	dir := t.TempDir()
	root := exttest.Root(t, exttest.DefaultOSRelease)
	t.Cleanup(func() {
		strata(t, nil, "sysext", "--root", root, "unmerge")
		strata(t, nil, "confext", "--root", root, "unmerge")
	})
	writeTree(t, filepath.Join(dir, "tree"), map[string]string{"usr/bin/hello": "#!/bin/sh\necho \"hello $*\"\n"})
	// A free port for the server, known before publish writes its URL.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	serverURL := "http://" + addr
	repl := func() *strings.Replacer {
		return strings.NewReplacer("sudo ", "",
			"strata sysext ", "strata sysext --root "+root+" ", "strata confext ", "strata confext --root "+root+" ",
			"strata sysupdate ", "strata sysupdate --root "+root+" ", "strata ext add ", "strata ext add --root "+root+" ",
			" /etc/systemd/import-pubring.pgp", " "+root+"/etc/systemd/import-pubring.pgp",
			"/srv/ext", filepath.Join(dir, "srv/ext"), "https://ext.example.org", serverURL,
			"foo.raw", "hello-1.0-x86-64.raw", "/path/to/os-release", filepath.Join(root, "etc/os-release"),
			"--listen :8080", "--listen "+addr, "docker", "hello")
	}
	sh := func(line string) (string, string) {
		t.Helper()
		cmdline := repl().Replace(line)
		c := exec.Command("sh", "-c", cmdline)
		c.Dir = dir
		c.Env = append(os.Environ(), "PATH="+filepath.Dir(strataBin)+":"+os.Getenv("PATH"))
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		if err := c.Run(); err != nil {
			t.Fatalf("README: %s\nran: %s\n%v\n%s%s", line, cmdline, err, out.String(), errb.String())
		}
		return out.String(), errb.String()
	}
	// What each README line must have done, beyond exiting 0.
	expect := map[string]func(stdout string){
		"strata bake ./tree --name hello --version 1.0": func(string) {
			for _, f := range []string{"hello-1.0-x86-64.raw", "hello-1.0-x86-64.raw.sha256"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("bake: %v", err)
				}
			}
			// Installed as the docs say: linked under its name (until
			// ext add installs it from the repository).
			data, _ := os.ReadFile(filepath.Join(dir, "hello-1.0-x86-64.raw"))
			exttest.Write(t, root, map[string]string{"opt/baked/hello-1.0-x86-64.raw": string(data)})
			os.MkdirAll(filepath.Join(root, "etc/extensions"), 0o755)
			os.Symlink("/opt/baked/hello-1.0-x86-64.raw", filepath.Join(root, "etc/extensions/hello.raw"))
		},
		"strata bake --list": func(out string) {
			if !strings.Contains(out, "docker") {
				t.Errorf("bake --list: %q", out)
			}
		},
		"sudo strata test hello-1.0-x86-64.raw -- hello --version": func(out string) {
			if out != "hello --version\n" {
				t.Errorf("test: %q", out)
			}
		},
		"strata sysext merge": func(string) {
			if _, err := os.Stat(filepath.Join(root, "usr/bin/hello")); err != nil {
				t.Errorf("merge: %v", err)
			}
		},
		"strata sysext status --json=pretty": func(out string) {
			if !strings.Contains(out, `"hello"`) {
				t.Errorf("status: %q", out)
			}
		},
		"strata sysext unmerge": func(string) {
			if _, err := os.Stat(filepath.Join(root, "usr/bin/hello")); err == nil {
				t.Error("unmerge left /usr/bin/hello")
			}
		},
		"strata publish *.raw --repo /srv/ext --sign-key keys/repo.key --url https://ext.example.org": func(string) {
			if b, _ := os.ReadFile(filepath.Join(dir, "srv/ext/SHA256SUMS")); !strings.Contains(string(b), "hello-1.0-x86-64.raw") {
				t.Errorf("SHA256SUMS: %q", b)
			}
		},
		"strata ext add docker --repo https://ext.example.org": func(string) {
			if _, err := os.Stat(filepath.Join(root, "usr/bin/hello")); err != nil {
				t.Errorf("ext add: not merged: %v", err)
			}
		},
		"strata provision --repo https://ext.example.org docker": func(out string) {
			if !strings.Contains(out, "/etc/extensions/hello.raw") {
				t.Errorf("provision: %q", out)
			}
		},
	}
	order := []string{"Bake extension images (`strata bake`, `strata lint`, `strata test`)",
		"Merge extensions (`strata sysext`, `strata confext`)",
		"Publish and update (`strata publish`, `strata serve`, `strata sysupdate`, `strata ext`)"}
	for s := range blocks {
		if _, ok := notRun[s]; !ok && !strings.Contains(strings.Join(order, "\n"), s) {
			t.Errorf("README section %q is neither run nor listed as not run", s)
		}
	}
	ran := map[string]bool{}
	for _, s := range order {
		if len(blocks[s]) == 0 {
			t.Fatalf("README has no commands under %q", s)
		}
		for _, line := range blocks[s] {
			if strings.HasPrefix(line, "strata serve ") {
				// The server runs for the rest of the test.
				startReadmeServe(t, dir, serverURL, strings.Fields(repl().Replace(line))[1:])
				ran[line] = true
				continue
			}
			out, _ := sh(line)
			if f := expect[line]; f != nil {
				f(out)
			}
			ran[line] = true
			if line == "strata confext merge --mutable=ephemeral" {
				strata(t, nil, "confext", "--root", root, "unmerge")
			}
		}
		if s == order[1] {
			os.Remove(filepath.Join(root, "etc/extensions/hello.raw"))
		}
	}
	for line := range expect {
		if !ran[line] {
			t.Errorf("README no longer shows %q", line)
		}
	}
}

// startServe runs strata serve with args until the test ends and waits
// until it answers at url.
func startReadmeServe(t *testing.T, dir, url string, args []string) {
	t.Helper()
	cmd := exec.Command(strataBin, args...)
	cmd.Dir = dir
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	go io.Copy(io.Discard, stderr)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url + "/SHA256SUMS"); err == nil {
			resp.Body.Close()
			return
		}
	}
	t.Fatalf("%v did not start", args)
}
