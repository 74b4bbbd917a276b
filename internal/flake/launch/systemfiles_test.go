package launch_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// deltaWithScript imports a delta image whose /systemfiles is script
// (or, with link set, a symbolic link to link), plus extra symlinks.
func (p *podmanEnv) deltaWithScript(ref, script, link string, symlinks map[string]string) {
	p.t.Helper()
	tree := filepath.Join(p.dir, "tree-"+strings.NewReplacer("/", "_", ":", "_").Replace(ref))
	os.MkdirAll(filepath.Join(tree, "usr/share"), 0o755)
	os.WriteFile(filepath.Join(tree, "usr/share/delta.txt"), []byte("delta\n"), 0o644)
	if link != "" {
		os.Symlink(link, filepath.Join(tree, "systemfiles"))
	} else {
		os.WriteFile(filepath.Join(tree, "systemfiles"), []byte(script), 0o644)
	}
	for at, to := range symlinks {
		os.MkdirAll(filepath.Join(tree, filepath.Dir(at)), 0o755)
		os.Symlink(to, filepath.Join(tree, at))
		os.MkdirAll(filepath.Join(tree, to), 0o755) // the link's target, in the image
	}
	p.importTree(tree, ref)
}

// One delta flake whose script's behaviour a host control file selects;
// the opt-in is switched on with a drop-in. (The test's name is short on
// purpose: it names t.TempDir, which holds podman's run root, and with a
// run root path some ten characters longer every podman run here waits
// out conmon's 20 s timeout before it returns.)
func TestSystemfiles(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	privtest.RequireRoot(t)
	p := newPodmanEnv(t)
	bin := filepath.Join(p.home, "bin")
	// Host files the script names: a file, a symbolic link, and a
	// directory whose content is not copied (rsync --files-from, no -r).
	host := filepath.Join(p.dir, "hostdeps")
	os.MkdirAll(filepath.Join(host, "dir"), 0o755)
	os.WriteFile(filepath.Join(host, "dep.conf"), []byte("from-host\n"), 0o644)
	os.WriteFile(filepath.Join(host, "dir/inner"), []byte("not copied\n"), 0o644)
	os.Symlink("dep.conf", filepath.Join(host, "link"))
	// In the image, the host directory's path is a symbolic link to
	// another host directory: what the script names must land inside the
	// container, never through the link onto the host.
	escape := filepath.Join(p.dir, "escape")
	os.MkdirAll(escape, 0o755)
	ran, control := filepath.Join(p.dir, "ran"), filepath.Join(p.dir, "control")
	script := "echo \"$(id -u) $(pwd) $PATH $HOME ${CONTAINERS_CONF:-unset}\" >> " + ran + "\n" +
		"case \"$(cat " + control + " 2>/dev/null)\" in\n" +
		"fail) echo cannot find libfoo >&2; exit 9;;\n" +
		"hang) echo thinking >&2; sleep 60;;\n" +
		"esac\n" +
		"echo " + host + "/dep.conf\necho " + host + "/link\necho " + host + "/dir\n"
	p.deltaWithScript("localhost/sf:1", script, "", map[string]string{strings.TrimPrefix(host, "/"): escape})
	app := filepath.Join(bin, "sf")
	p.strataOK("flake", "--user", "register", "podman", "--app", app, "--container", "localhost/sf:1", "--base", "localhost/bb:1", "--target", "/bin/sh")
	check := "cat " + host + "/dep.conf; readlink " + host + "/link; ls " + host + "/dir | wc -l; cat /usr/share/delta.txt; exit 6"
	setControl := func(s string) { os.WriteFile(control, []byte(s), 0o644) }

	t.Run("without the opt-in: not run, one warning", func(t *testing.T) {
		for i := range 2 {
			out, errs, code := p.run("", app, "-c", "cat "+host+"/dep.conf 2>&1; cat /usr/share/delta.txt")
			if code != 0 || !strings.Contains(out, "No such file") || !strings.HasSuffix(out, "delta\n") {
				t.Fatalf("launch %d: %q %q %d", i, out, errs, code)
			}
			warned := strings.Count(errs, "ships /systemfiles, which was not run") == 1 && strings.Count(errs, "\n") == 1 &&
				strings.Contains(errs, "--allow-systemfiles")
			if (i == 0) != warned {
				t.Fatalf("launch %d: warning %v: %q", i, warned, errs)
			}
		}
		if _, err := os.Stat(ran); err == nil {
			t.Fatal("the script ran without the opt-in")
		}
	})
	os.WriteFile(filepath.Join(p.home, ".config/flakes/sf.d/50-allow.yaml"), []byte("container:\n  strata:\n    allow_systemfiles: true\n"), 0o644)

	t.Run("with the opt-in: run on the host, its files in each new instance", func(t *testing.T) {
		for i := range 2 {
			out, errs, code := p.run("", app, "-c", check)
			if code != 6 || out != "from-host\ndep.conf\n0\ndelta\n" || strings.Contains(errs, "systemfiles") {
				t.Fatalf("launch %d: %q %q %d", i, out, errs, code)
			}
		}
		b, _ := os.ReadFile(ran)
		cwd, _ := os.Getwd()
		want := "0 " + cwd + " /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /root unset\n"
		if string(b) != want+want {
			t.Fatalf("script runs: %q, want twice %q", b, want)
		}
		if _, err := os.Stat(filepath.Join(escape, "dep.conf")); err == nil {
			t.Fatal("a host file was written through the container's symbolic link")
		}
	})
	t.Run("a failing script fails the launch with its code and stderr", func(t *testing.T) {
		setControl("fail")
		defer setControl("")
		containers := func() []string {
			return strings.Fields(p.podman("ps", "-a", "--filter", "label=io.flake.name=sf", "--format", "{{.Names}}"))
		}
		before := containers()
		_, errs, code := p.run("", app, "-c", "echo should not run")
		if code != 125 || !strings.Contains(errs, "flake sf: delta image localhost/sf:1: /systemfiles: failed with exit code 9: cannot find libfoo\n") {
			t.Fatalf("%q %d", errs, code)
		}
		// (A previous launch's container may still be on its way out.)
		for _, c := range containers() {
			if !slices.Contains(before, c) {
				t.Fatalf("container %s left behind", c)
			}
		}
		// %ignore_sync_error runs the app anyway, as in flake-pilot.
		out, errs, code := p.run("", app, "%ignore_sync_error", "-c", "echo ran")
		if code != 0 || out != "ran\n" || !strings.Contains(errs, "(ignored: %ignore_sync_error)") {
			t.Fatalf("ignore_sync_error: %q %q %d", out, errs, code)
		}
	})
	t.Run("a script that hangs is killed at the timeout", func(t *testing.T) {
		setControl("hang")
		defer setControl("")
		env := p.env
		p.env = append(append([]string(nil), env...), "STRATA_FLAKE_SYSTEMFILES_TIMEOUT=1s")
		_, errs, code := p.run("", app, "-c", "true")
		p.env = env
		if code != 125 || !strings.Contains(errs, "/systemfiles: did not finish within 1s and was killed (thinking)") {
			t.Fatalf("%q %d", errs, code)
		}
	})
	t.Run("a /systemfiles link to a host script is not followed out", func(t *testing.T) {
		marker := filepath.Join(p.dir, "host-script-ran")
		hostScript := filepath.Join(p.dir, "host-script")
		os.WriteFile(hostScript, []byte("touch "+marker+"\necho "+host+"/dep.conf\n"), 0o644)
		p.deltaWithScript("localhost/sf-link:1", "", hostScript, nil)
		app := filepath.Join(bin, "sflink")
		p.strataOK("flake", "--user", "register", "podman", "--app", app, "--container", "localhost/sf-link:1", "--base", "localhost/bb:1", "--target", "/bin/sh", "--allow-systemfiles")
		out, errs, code := p.run("", app, "-c", "cat "+host+"/dep.conf 2>&1; exit 3")
		if code != 3 || !strings.Contains(out, "No such file") {
			t.Fatalf("%q %q %d", out, errs, code)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatal("the host script behind the link ran")
		}
	})
}
