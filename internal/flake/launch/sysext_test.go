package launch_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/osrelease"
	"github.com/stratalinux/strata/internal/testutil/exttest"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// A --from-sysext flake runs its app from the extension image merged for
// that process only: the host's /usr never shows the file.
func TestSysextFlake(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	privtest.RequireTools(t, "mksquashfs")
	dir := t.TempDir()
	rel, _, err := osrelease.ParseFile("/etc/os-release")
	if err != nil {
		t.Fatal(err)
	}
	release := "ID=" + rel["ID"] + "\nVERSION_ID=" + rel["VERSION_ID"] + "\n"
	tree := exttest.SysextTree(t, filepath.Join(dir, "tree"), "hello", release, map[string]string{
		"usr/bin/strata-flake-hello": "#!/bin/sh\necho \"from-ext $*\"\nexit 4\n",
	})
	os.Chmod(filepath.Join(tree, "usr/bin/strata-flake-hello"), 0o755)
	img := exttest.Squashfs(t, tree, filepath.Join(dir, "hello.raw"))

	home := filepath.Join(dir, "home")
	env := append(os.Environ(), "HOME="+home, "XDG_RUNTIME_DIR="+filepath.Join(dir, "xdg"), "STRATA_FLAKE_ROOT="+filepath.Join(dir, "sysroot"))
	p := &podmanEnv{t: t, dir: dir, home: home, env: env}
	p.strata = buildStrata(t, dir)
	app := filepath.Join(home, "bin", "hello")
	p.strataOK("flake", "--user", "register", "--from-sysext", img, "--app", app, "--target", "/usr/bin/strata-flake-hello")
	out, errs, code := p.run("", app, "--", "a b", "%s")
	if code != 4 || out != "from-ext a b %s\n" {
		t.Fatalf("got %q %q exit %d", out, errs, code)
	}
	if _, err := os.Stat("/usr/bin/strata-flake-hello"); err == nil {
		t.Fatal("the extension's file is visible on the host")
	}
	list, _, _ := p.run("", p.strata, "flake", "--user", "list")
	if !strings.Contains(list, "hello") || !strings.Contains(list, "sysext") {
		t.Fatalf("list: %q", list)
	}
}
