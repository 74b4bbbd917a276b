package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/testutil/exttest"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

var strataBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-cli-test")
	if err != nil {
		panic(err)
	}
	strataBin = filepath.Join(dir, "strata")
	build := exec.Command("go", "build", "-o", strataBin, "github.com/stratalinux/strata/cmd/strata")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	if err := os.Symlink(strataBin, filepath.Join(dir, "systemd-sysext")); err != nil {
		panic(err)
	}
	for _, name := range []string{"systemd-confext", "flake-ctl"} {
		if err := os.Symlink(strataBin, filepath.Join(dir, name)); err != nil {
			panic(err)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

func strata(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return runBin(t, strataBin, env, args...)
}

func runBin(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s: %v", bin, err)
	}
	return result{o.String(), e.String(), code}
}

func scratch(t *testing.T) string {
	root := exttest.Root(t, exttest.DefaultOSRelease)
	exttest.SysextTree(t, filepath.Join(root, "var/lib/extensions/hello"), "hello", "ID=debian\nVERSION_ID=12\n", map[string]string{"usr/bin/hello": "#!/bin/sh\necho hello\n"})
	exttest.SysextTree(t, filepath.Join(root, "var/lib/extensions/old"), "old", "ID=debian\nVERSION_ID=11\n", map[string]string{"usr/bin/old": "x"})
	return root
}

func TestUnprivilegedVerbs(t *testing.T) {
	root := scratch(t)
	r := strata(t, nil, "sysext", "--root", root, "list", "--json=short")
	if r.code != 0 {
		t.Fatalf("list: %d %s", r.code, r.stderr)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("list json %q: %v", r.stdout, err)
	}
	if len(rows) != 2 || rows[0]["name"] != "hello" || rows[0]["status"] != "ready" || rows[1]["status"] != "incompatible" {
		t.Fatalf("list rows %v", rows)
	}
	if !strings.Contains(rows[1]["reason"].(string), "VERSION_ID") {
		t.Errorf("reason %v", rows[1]["reason"])
	}
	for _, k := range []string{"type", "path", "time"} {
		if _, ok := rows[0][k]; !ok {
			t.Errorf("list JSON lacks %q", k)
		}
	}
	r = strata(t, nil, "sysext", "--root", root, "list")
	if r.code != 0 || !strings.Contains(r.stdout, "NAME") || !strings.Contains(r.stdout, "hello") {
		t.Fatalf("list table: %+v", r)
	}
	r = strata(t, nil, "sysext", "--root", root, "merge", "--dry-run", "--json=pretty")
	if r.code != 0 {
		t.Fatalf("dry-run: %+v", r)
	}
	var plan struct {
		Extensions  []string
		Hierarchies []struct {
			Hierarchy string
			Layers    []struct{ Kind, Name, Path string }
			Flags     []string
		}
		Ignored []map[string]any
	}
	if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil {
		t.Fatal(err)
	}
	if len(plan.Extensions) != 1 || len(plan.Hierarchies) != 1 || plan.Hierarchies[0].Hierarchy != "/usr" ||
		plan.Hierarchies[0].Layers[0].Kind != "meta" || plan.Hierarchies[0].Layers[2].Kind != "host" || len(plan.Ignored) != 1 {
		t.Fatalf("plan %+v", plan)
	}
	r = strata(t, nil, "sysext", "--root", root, "status", "--json=short")
	if r.code != 0 || strings.TrimSpace(r.stdout) != `[{"hierarchy":"/usr","extensions":[],"since":null},{"hierarchy":"/opt","extensions":[],"since":null}]` &&
		strings.TrimSpace(r.stdout) != `[{"hierarchy":"/opt","extensions":[],"since":null},{"hierarchy":"/usr","extensions":[],"since":null}]` {
		t.Fatalf("status: %+v", r)
	}
	// check: 0 when it would merge, 1 when not, with the reason.
	osr := filepath.Join(t.TempDir(), "os-release")
	os.WriteFile(osr, []byte("ID=debian\nVERSION_ID=11\n"), 0o644)
	if r = strata(t, nil, "sysext", "check", filepath.Join(root, "var/lib/extensions/old"), "--os-release", osr); r.code != 0 {
		t.Fatalf("check old on 11: %+v", r)
	}
	if r = strata(t, nil, "sysext", "--root", root, "check", filepath.Join(root, "var/lib/extensions/old")); r.code != 1 || !strings.Contains(r.stdout, "VERSION_ID") {
		t.Fatalf("check old on 12: %+v", r)
	}
	// Errors are one line, exit 1.
	r = strata(t, nil, "sysext", "--root", filepath.Join(root, "nonexistent"), "list")
	if r.code != 1 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "--root") {
		t.Fatalf("bad root: %+v", r)
	}
	r = strata(t, nil, "sysext", "--mutable=bogus", "--root", root, "status")
	if r.code != 1 || !strings.Contains(r.stderr, "--mutable=") {
		t.Fatalf("bad mutable: %+v", r)
	}
	r = strata(t, nil, "sysext", "--mutable=help")
	if r.code != 0 || !strings.Contains(r.stdout, "ephemeral-import") {
		t.Fatalf("mutable help: %+v", r)
	}
	r = strata(t, []string{"SYSTEMD_SYSEXT_HIERARCHIES=relative"}, "sysext", "--root", root, "status")
	if r.code != 1 || !strings.Contains(r.stderr, "SYSTEMD_SYSEXT_HIERARCHIES") {
		t.Fatalf("bad hierarchies env: %+v", r)
	}
	// Multi-call: invoked as systemd-sysext it is systemd-sysext.
	r = runBin(t, filepath.Join(filepath.Dir(strataBin), "systemd-sysext"), nil, "--root", root, "list", "--json=short")
	if r.code != 0 || !strings.Contains(r.stdout, `"hello"`) {
		t.Fatalf("multi-call: %+v", r)
	}
	if os.Geteuid() != 0 {
		r = strata(t, nil, "sysext", "--root", root, "merge")
		if r.code != 1 || !strings.Contains(r.stderr, "privileged") {
			t.Fatalf("unprivileged merge: %+v", r)
		}
	}
}

func TestPrivilegedCLI(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	root := scratch(t)
	if r := strata(t, nil, "sysext", "--root", root, "merge"); r.code != 0 || !strings.Contains(r.stderr, "Using extensions 'hello'.") {
		t.Fatalf("merge: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/bin/hello")); err != nil {
		t.Fatal(err)
	}
	if r := strata(t, nil, "sysext", "--root", root, "merge"); r.code != 1 || !strings.Contains(r.stderr, "already merged") {
		t.Fatalf("second merge: %+v", r)
	}
	r := strata(t, nil, "sysext", "--root", root, "status", "--json=short")
	if !strings.Contains(r.stdout, `"hierarchy":"/usr","extensions":["hello"],"since":`) {
		t.Fatalf("status: %s", r.stdout)
	}
	r = strata(t, nil, "sysext", "--root", root, "list", "--json=short")
	if !strings.Contains(r.stdout, `"status":"merged"`) {
		t.Fatalf("list after merge: %s", r.stdout)
	}
	if r := strata(t, nil, "sysext", "--root", root, "unmerge"); r.code != 0 {
		t.Fatalf("unmerge: %+v", r)
	}

	// Config file under --root: Mutable=auto, CLI --mutable=no wins; the
	// environment wins over the file too.
	exttest.Write(t, root, map[string]string{"etc/systemd/sysext.conf": "[SysExt]\nMutable=auto\n"})
	os.MkdirAll(filepath.Join(root, "var/lib/extensions.mutable/usr"), 0o755)
	writable := func() bool { return os.WriteFile(filepath.Join(root, "usr/probe"), nil, 0o644) == nil }
	strata(t, nil, "sysext", "--root", root, "merge")
	if !writable() {
		t.Fatal("sysext.conf Mutable=auto not applied")
	}
	strata(t, nil, "sysext", "--root", root, "unmerge")
	strata(t, nil, "sysext", "--root", root, "merge", "--mutable=no")
	if writable() {
		t.Fatal("--mutable=no did not override the config file")
	}
	strata(t, nil, "sysext", "--root", root, "unmerge")
	strata(t, []string{"SYSTEMD_SYSEXT_MUTABLE_MODE=no"}, "sysext", "--root", root, "merge")
	if writable() {
		t.Fatal("environment did not override the config file")
	}
	strata(t, nil, "sysext", "--root", root, "unmerge")
	os.Remove(filepath.Join(root, "etc/systemd/sysext.conf"))

	// Image policy: an unsigned squashfs is refused by a signed-only
	// policy from the config file, and --image-policy=* wins.
	src := exttest.SysextTree(t, filepath.Join(t.TempDir(), "sq"), "sq", "ID=_any\n", map[string]string{"usr/bin/sq": "x"})
	exttest.Squashfs(t, src, filepath.Join(root, "var/lib/extensions/sq.raw"))
	exttest.Write(t, root, map[string]string{"etc/systemd/sysext.conf.d/50-policy.conf": "[SysExt]\nImagePolicy=root=signed+absent:usr=signed+absent\n"})
	if r := strata(t, nil, "sysext", "--root", root, "merge"); r.code != 1 || !strings.Contains(r.stderr, "image policy") || !strings.Contains(r.stderr, "sq.raw") {
		t.Fatalf("policy: %+v", r)
	}
	if m := exttest.Mounts(t, root); len(m) != 0 {
		t.Fatalf("policy failure left mounts %v", m)
	}
	if r := strata(t, nil, "sysext", "--root", root, "merge", "--image-policy=*"); r.code != 0 {
		t.Fatalf("--image-policy=*: %+v", r)
	}
	strata(t, nil, "sysext", "--root", root, "unmerge")
	os.Remove(filepath.Join(root, "etc/systemd/sysext.conf.d/50-policy.conf"))

	// Reload: EXTENSION_RELOAD_MANAGER=1 without --root is skipped with a
	// message when PID 1 is not systemd; under --root it is silent.
	exttest.SysextTree(t, filepath.Join(root, "var/lib/extensions/svc"), "svc", "ID=_any\nEXTENSION_RELOAD_MANAGER=1\n", map[string]string{"usr/lib/systemd/system/svc.service": "[Service]\n"})
	if r := strata(t, nil, "sysext", "--root", root, "refresh"); r.code != 0 || strings.Contains(r.stderr, "reload") {
		t.Fatalf("refresh with --root: %+v", r)
	}
	strata(t, nil, "sysext", "--root", root, "unmerge")
	if m := exttest.Mounts(t, root); len(m) != 0 {
		t.Fatalf("mounts left %v", m)
	}
}

func TestStrataTest(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	src := exttest.SysextTree(t, filepath.Join(t.TempDir(), "src"), "probe", "ID=_any\n", map[string]string{
		"usr/bin/strata-test-probe": "#!/bin/sh\necho probe says hi; cat; exit 7\n",
	})
	img := exttest.Squashfs(t, src, filepath.Join(t.TempDir(), "probe.raw"))
	cmd := exec.Command(strataBin, "test", img, "--", "/usr/bin/strata-test-probe")
	cmd.Stdin = strings.NewReader("from stdin\n")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 7 || !strings.Contains(out.String(), "probe says hi\nfrom stdin\n") {
		t.Fatalf("strata test: err=%v output=%q", err, out.String())
	}
	if _, err := os.Stat("/usr/bin/strata-test-probe"); err == nil {
		t.Fatal("strata test changed the host's /usr")
	}
	// Incompatible with the given os-release: refused with the reason.
	osr := filepath.Join(t.TempDir(), "os-release")
	os.WriteFile(osr, []byte("ID=fedora\nVERSION_ID=40\n"), 0o644)
	src2 := exttest.SysextTree(t, filepath.Join(t.TempDir(), "deb"), "deb", "ID=debian\nVERSION_ID=12\n", map[string]string{"usr/bin/deb": "x"})
	r := strata(t, nil, "test", src2, "--os-release", osr, "--", "true")
	if r.code != 1 || !strings.Contains(r.stderr, "fedora") {
		t.Fatalf("incompatible test: %+v", r)
	}
}
