package launch_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// podmanEnv is a private podman world for one test: its own storage,
// the project's containers.conf (runc, ulimits, no systemd), a busybox
// image imported from a busybox-static tree, and a strata binary.
type podmanEnv struct {
	t      *testing.T
	dir    string
	strata string
	env    []string
	home   string
}

func buildStrata(t *testing.T, dir string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..", "..")
	bin := filepath.Join(dir, "strata")
	c := exec.Command("go", "build", "-o", bin, "./cmd/strata")
	c.Dir = repo
	c.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("build strata: %v\n%s", err, out)
	}
	return bin
}

func newPodmanEnv(t *testing.T) *podmanEnv {
	t.Helper()
	privtest.RequireTools(t, "podman", "runc", "busybox")
	dir := t.TempDir()
	_, file, _, _ := runtime.Caller(0)
	conf := filepath.Join(filepath.Dir(file), "testdata", "containers.conf")
	storage := filepath.Join(dir, "storage.conf")
	os.WriteFile(storage, []byte(fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n",
		filepath.Join(dir, "graph"), filepath.Join(dir, "runroot"))), 0o644)
	home := filepath.Join(dir, "home")
	os.MkdirAll(filepath.Join(home, "bin"), 0o755)
	p := &podmanEnv{t: t, dir: dir, home: home}
	p.env = append(os.Environ(), "CONTAINERS_CONF="+conf, "CONTAINERS_STORAGE_CONF="+storage, "HOME="+home,
		"XDG_RUNTIME_DIR="+filepath.Join(dir, "xdg"), "STRATA_FLAKE_ROOT="+filepath.Join(dir, "sysroot"))
	os.MkdirAll(filepath.Join(dir, "xdg"), 0o700)
	p.strata = buildStrata(t, dir)
	// A busybox-static tree as the image.
	tree := filepath.Join(dir, "bb")
	for _, d := range []string{"bin", "tmp", "etc"} {
		os.MkdirAll(filepath.Join(tree, d), 0o755)
	}
	os.Chmod(filepath.Join(tree, "tmp"), 0o1777)
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(tree, "bin/busybox"), data, 0o755)
	for _, c := range []string{"sh", "cat", "echo", "sleep", "tty", "ls", "wc", "env", "true", "kill"} {
		os.Symlink("busybox", filepath.Join(tree, "bin", c))
	}
	p.importTree(tree, "localhost/bb:1")
	t.Cleanup(func() {
		// Only this test's private store: never the machine's own.
		rm := exec.Command("podman", "rm", "--all", "--force", "--time", "0")
		rm.Env = p.env
		rm.Run()
		c := exec.Command("podman", "system", "reset", "--force")
		c.Env = p.env
		c.Run()
	})
	return p
}

func (p *podmanEnv) importTree(tree, ref string) {
	p.t.Helper()
	c := exec.Command("sh", "-c", "tar -C \"$1\" -c . | podman import - \"$2\"", "sh", tree, ref)
	c.Env = p.env
	if out, err := c.CombinedOutput(); err != nil {
		p.t.Fatalf("podman import: %v\n%s", err, out)
	}
}

func (p *podmanEnv) podman(args ...string) string {
	p.t.Helper()
	c := exec.Command("podman", args...)
	c.Env = p.env
	out, err := c.CombinedOutput()
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// run runs a command with the test's environment; it returns stdout,
// stderr and the exit code.
func (p *podmanEnv) run(stdin string, name string, args ...string) (string, string, int) {
	p.t.Helper()
	c := exec.Command(name, args...)
	c.Env = p.env
	c.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		p.t.Fatalf("%s: %v", name, err)
	}
	return out.String(), errb.String(), code
}

func (p *podmanEnv) strataOK(args ...string) {
	p.t.Helper()
	if out, errs, code := p.run("", p.strata, args...); code != 0 {
		p.t.Fatalf("strata %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
}

func TestPodmanFlakes(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	p := newPodmanEnv(t)
	app := filepath.Join(p.home, "bin", "bbsh")
	p.strataOK("flake", "--user", "register", "podman", "--app", app, "--container", "localhost/bb:1", "--target", "/bin/sh")

	t.Run("exit code and separate streams", func(t *testing.T) {
		out, errs, code := p.run("", app, "-c", "echo out; echo err >&2; exit 3")
		if out != "out\n" || !strings.Contains(errs, "err\n") || code != 3 {
			t.Fatalf("got stdout %q stderr %q code %d", out, errs, code)
		}
	})
	t.Run("stdin streams through a pipe, no tty", func(t *testing.T) {
		out, _, code := p.run("line1\nline2\n", app, "-c", "wc -l; tty || true")
		if code != 0 || !strings.Contains(out, "2\n") || !strings.Contains(out, "not a tty") {
			t.Fatalf("got %q code %d", out, code)
		}
	})
	t.Run("tty only when stdin and stdout are terminals", func(t *testing.T) {
		if _, err := exec.LookPath("script"); err != nil {
			privtest.Missing(t, "script (util-linux) is needed for a pty")
		}
		out, _, code := p.run("", "script", "-qec", app+" -c tty", "/dev/null")
		if code != 0 || !strings.Contains(out, "/dev/pts/") {
			t.Fatalf("under a pty: %q code %d", out, code)
		}
	})
	t.Run("launcher arguments only before --", func(t *testing.T) {
		out, _, code := p.run("", app, "@dev", "%remove", "--", "-c", "echo \"$0\" \"$1\"", "%s", "@x")
		if code != 0 || out != "%s @x\n" {
			t.Fatalf("got %q code %d", out, code)
		}
		_, errs, code := p.run("", app, "@bad/name")
		if code != 125 || !strings.Contains(errs, "invalid instance name") {
			t.Fatalf("bad instance: %q code %d", errs, code)
		}
	})
	t.Run("signals reach the application", func(t *testing.T) {
		c := exec.Command(app, "-c", "trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.1; done")
		c.Env = p.env
		stdout, err := c.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 10)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		select {
		case l := <-lines:
			if l != "ready" {
				t.Fatalf("first line %q", l)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the flake did not start")
		}
		time.Sleep(300 * time.Millisecond)
		c.Process.Signal(syscall.SIGTERM)
		var rest []string
		for l := range lines {
			rest = append(rest, l)
		}
		err = c.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != 42 || strings.Join(rest, "\n") != "got-term" {
			t.Fatalf("after SIGTERM: %q code %d (%v)", rest, code, err)
		}
	})
	t.Run("containers are named and labelled", func(t *testing.T) {
		c := exec.Command(app, "@lbl", "-c", "sleep 3")
		c.Env = p.env
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		defer c.Wait()
		var ps string
		for range 50 {
			ps = p.podman("ps", "--filter", "label=io.flake.name=bbsh", "--format", "{{.Names}} {{.Labels}}")
			if ps != "" {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !strings.Contains(ps, "flake-bbsh-lbl") || !strings.Contains(ps, "io.flake.instance:lbl") {
			t.Fatalf("podman ps: %q", ps)
		}
	})
	bin := filepath.Join(p.home, "bin")

	t.Run("resume creates once and execs after", func(t *testing.T) {
		app := filepath.Join(bin, "rsh")
		p.strataOK("flake", "--user", "register", "podman", "--app", app, "--container", "localhost/bb:1", "--target", "/bin/sh", "--resume")
		// Concurrent first launches: one container, both runs succeed.
		var wg sync.WaitGroup
		codes := make([]int, 3)
		for i := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, codes[i] = p.run("", app, "-c", fmt.Sprintf("echo %d >> /tmp/seen; exit 5", i))
			}()
		}
		wg.Wait()
		for i, c := range codes {
			if c != 5 {
				t.Fatalf("launch %d: exit %d", i, c)
			}
		}
		out, _, code := p.run("", app, "-c", "wc -l < /tmp/seen")
		if code != 0 || strings.TrimSpace(out) != "3" {
			t.Fatalf("state not kept across resumed launches: %q %d", out, code)
		}
		if n := strings.Count(p.podman("ps", "-a", "--filter", "label=io.flake.name=rsh", "--format", "{{.Names}}"), "\n"); n != 1 {
			t.Fatalf("%d containers for one resumed instance", n)
		}
		if _, err := os.Stat(filepath.Join(p.dir, "xdg", "flakes", "rsh.json")); err != nil {
			t.Fatalf("instance state: %v", err)
		}
		// A separate @instance is a separate container.
		out, _, _ = p.run("", app, "@two", "-c", "cat /tmp/seen 2>/dev/null | wc -l")
		if strings.TrimSpace(out) != "0" {
			t.Fatalf("@two shares state: %q", out)
		}
	})

	t.Run("attach keeps the container", func(t *testing.T) {
		app := filepath.Join(bin, "ash")
		p.strataOK("flake", "--user", "register", "podman", "--app", app, "--container", "localhost/bb:1", "--target", "/bin/sh", "--attach")
		out, _, code := p.run("", app, "-c", "echo run >> /tmp/runs; wc -l < /tmp/runs; exit 2")
		if code != 2 || strings.TrimSpace(out) != "1" {
			t.Fatalf("first: %q %d", out, code)
		}
		out, _, code = p.run("", app)
		if code != 2 || strings.TrimSpace(out) != "2" {
			t.Fatalf("re-attach: %q %d", out, code)
		}
	})

	t.Run("delta image assembled once, includes in every instance", func(t *testing.T) {
		layer := filepath.Join(p.dir, "layer")
		os.MkdirAll(filepath.Join(layer, "usr/share"), 0o755)
		os.WriteFile(filepath.Join(layer, "usr/share/layer.txt"), []byte("from-layer\n"), 0o644)
		p.importTree(layer, "localhost/layer:1")
		delta := filepath.Join(p.dir, "delta")
		os.MkdirAll(filepath.Join(delta, "usr/share"), 0o755)
		os.WriteFile(filepath.Join(delta, "usr/share/delta.txt"), []byte("from-delta\n"), 0o644)
		p.importTree(delta, "localhost/delta:1")
		inc := filepath.Join(p.dir, "inc")
		os.MkdirAll(filepath.Join(inc, "etc/app"), 0o755)
		os.WriteFile(filepath.Join(inc, "etc/app/conf"), []byte("from-tar\n"), 0o644)
		if out, err := exec.Command("tar", "-C", inc, "-czf", filepath.Join(p.dir, "inc.tar.gz"), "etc").CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		hostPath := filepath.Join(p.dir, "hostcfg")
		os.MkdirAll(hostPath, 0o755)
		os.WriteFile(filepath.Join(hostPath, "x"), []byte("from-path\n"), 0o644)

		app := filepath.Join(bin, "dsh")
		p.strataOK("flake", "--user", "register", "podman", "--app", app, "--container", "localhost/delta:1", "--base", "localhost/bb:1",
			"--layer", "localhost/layer:1", "--target", "/bin/sh", "--include-tar", filepath.Join(p.dir, "inc.tar.gz"), "--include-path", hostPath)
		script := "cat /usr/share/layer.txt /usr/share/delta.txt /etc/app/conf " + filepath.Join(hostPath, "x")
		want := "from-layer\nfrom-delta\nfrom-tar\nfrom-path\n"
		for i := range 2 {
			out, errs, code := p.run("", app, "-c", script)
			if code != 0 || out != want {
				t.Fatalf("launch %d: %q %q %d", i, out, errs, code)
			}
		}
		imgs := p.podman("images", "--format", "{{.Repository}}:{{.Tag}}")
		if n := strings.Count(imgs, "strata-flake-dsh"); n != 1 {
			t.Fatalf("%d delta assemblies cached:\n%s", n, imgs)
		}
		// A new delta version is a new digest set: assembled again.
		os.WriteFile(filepath.Join(delta, "usr/share/delta.txt"), []byte("from-delta-2\n"), 0o644)
		p.importTree(delta, "localhost/delta:1")
		out, _, _ := p.run("", app, "-c", "cat /usr/share/delta.txt")
		if out != "from-delta-2\n" {
			t.Fatalf("re-pulled delta not used: %q", out)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		_, errs, code := p.run("", p.strata, "flake", "--user", "register", "podman", "--app", filepath.Join(bin, "nope"), "--container", "localhost/missing:1")
		if code == 0 || !strings.Contains(errs, "localhost/missing:1 is not in podman's storage") {
			t.Fatalf("missing image: %q %d", errs, code)
		}
		if _, err := os.Lstat(filepath.Join(bin, "nope")); err == nil {
			t.Fatal("half-registered app link")
		}
		os.WriteFile(filepath.Join(bin, "mine"), []byte("#!/bin/sh\n"), 0o755)
		_, errs, code = p.run("", p.strata, "flake", "--user", "register", "podman", "--app", filepath.Join(bin, "mine"), "--container", "localhost/bb:1")
		if code == 0 || !strings.Contains(errs, "not a flake launcher link") {
			t.Fatalf("foreign app path: %q %d", errs, code)
		}
		_, errs, code = p.run("", p.strata, "flake", "--user", "register", "docker", "--app", filepath.Join(bin, "d"))
		if code == 0 || !strings.Contains(errs, "unknown") {
			t.Fatalf("unknown engine: %q %d", errs, code)
		}
		// A broken drop-in is reported with file:line by the launcher.
		os.WriteFile(filepath.Join(p.home, ".config/flakes/rsh.d/50-bad.yaml"), []byte("container:\n  runtime: [\n"), 0o644)
		_, errs, code = p.run("", filepath.Join(bin, "rsh"), "-c", "true")
		if code != 125 || !strings.Contains(errs, "50-bad.yaml:") {
			t.Fatalf("bad drop-in: %q %d", errs, code)
		}
		// Removal removes link, YAML and NAME.d.
		p.strataOK("flake", "--user", "remove", "rsh")
		for _, f := range []string{filepath.Join(bin, "rsh"), filepath.Join(p.home, ".config/flakes/rsh.yaml"), filepath.Join(p.home, ".config/flakes/rsh.d")} {
			if _, err := os.Lstat(f); err == nil {
				t.Errorf("%s left after remove", f)
			}
		}
	})
}
