package lint

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/fsread"
	"github.com/stratalinux/strata/internal/imageclass"
)

func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func run(t *testing.T, root string, opt Options) Findings {
	t.Helper()
	f, err := Run(context.Background(), os.DirFS(root).(fsread.FS), opt)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func has(f Findings, sev Severity, rule, path string) bool {
	for _, x := range f {
		if x.Severity == sev && x.Rule == rule && (path == "" || x.Path == path) {
			return true
		}
	}
	return false
}

const rel = "usr/lib/extension-release.d/extension-release.x"

func TestCleanTree(t *testing.T) {
	root := tree(t, map[string]string{"usr/bin/x": "x", rel: "ID=_any\nARCHITECTURE=x86-64\n"})
	if f := run(t, root, Options{Name: "x"}); len(f) != 0 {
		t.Errorf("findings on a clean tree: %v", f)
	}
	if f := run(t, root, Options{}); len(f) != 0 {
		t.Errorf("findings with inferred name: %v", f)
	}
}

func TestRules(t *testing.T) {
	root := tree(t, map[string]string{
		"usr/bin/x":          "x",
		"etc/foo":            "x",
		"usr/lib/os-release": "ID=evil\n",
		"usr/lib/extension-release.d/extension-release.y":      "ID=_any\n",
		"usr/lib/systemd/system/x.service":                     "[Service]\n",
		"usr/lib/systemd/system/multi-user.target.d/x.service": "[Unit]\n",
		"usr/bin/suid":        "x",
		"usr/share/ww":        "x",
		"usr/share/bad\nname": "x",
	})
	must(t, os.Chmod(filepath.Join(root, "usr/bin/suid"), 0o755|os.ModeSetuid))
	must(t, os.Chmod(filepath.Join(root, "usr/share/ww"), 0o666))
	must(t, os.Symlink("../../../etc/shadow", filepath.Join(root, "usr/share/esc")))
	must(t, os.Symlink("/etc/ok", filepath.Join(root, "usr/share/abs")))
	must(t, os.Symlink("../bin/x", filepath.Join(root, "usr/share/fine")))
	f := run(t, root, Options{Name: "x", MaxSize: 10})
	for _, c := range []struct {
		sev        Severity
		rule, path string
	}{
		{Error, RuleOutside, "etc"},
		{Error, RuleOSRelease, "usr/lib/os-release"},
		{Error, RuleMisnamed, "usr/lib/extension-release.d/extension-release.y"},
		{Error, RuleNoRelease, rel},
		{Warning, RuleSetuid, "usr/bin/suid"},
		{Warning, RuleWorldWrite, "usr/share/ww"},
		{Error, RuleSymlinkEsc, "usr/share/esc"},
		{Error, RuleBadName, ""},
		{Error, RuleTooBig, ""},
		{Warning, RuleDropinSuffix, "usr/lib/systemd/system/multi-user.target.d/x.service"},
	} {
		if !has(f, c.sev, c.rule, c.path) {
			t.Errorf("missing %s %s at %q in:\n%v", c.sev, c.rule, c.path, f)
		}
	}
	for _, x := range f {
		if x.Path == "usr/share/abs" || x.Path == "usr/share/fine" {
			t.Errorf("false positive: %v", x)
		}
	}
	if f.Err("t") == nil {
		t.Error("Err() is nil with errors present")
	}
}

func TestUnitsWithoutReload(t *testing.T) {
	root := tree(t, map[string]string{"usr/lib/systemd/system/x.service": "[Service]\n", rel: "ID=_any\n"})
	if f := run(t, root, Options{Name: "x"}); !has(f, Warning, RuleUnitReload, "") {
		t.Errorf("no unit-no-reload warning: %v", f)
	}
	root = tree(t, map[string]string{"usr/lib/systemd/system/x.service": "[Service]\n", rel: "ID=_any\nEXTENSION_RELOAD_MANAGER=1\n"})
	if f := run(t, root, Options{Name: "x"}); len(f) != 0 {
		t.Errorf("findings: %v", f)
	}
}

func TestConfext(t *testing.T) {
	root := tree(t, map[string]string{"etc/x.conf": "x", "etc/extension-release.d/extension-release.x": "ID=_any\n", "usr/bin/y": "y"})
	f := run(t, root, Options{Class: imageclass.Confext, Name: "x"})
	if !has(f, Error, RuleOutside, "usr") || len(f) != 1 {
		t.Errorf("findings: %v", f)
	}
}

func TestDynamicELF(t *testing.T) {
	gcc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler to build a dynamic ELF")
	}
	root := tree(t, map[string]string{rel: "ID=_any\n", "src/m.c": "int main(void){return 0;}\n"})
	must(t, os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755))
	out, err := exec.Command(gcc, "-o", filepath.Join(root, "usr/bin/dyn"), filepath.Join(root, "src/m.c"), "-Wl,--no-as-needed", "-lz").CombinedOutput()
	if err != nil {
		t.Skipf("cannot link against libz: %s", out)
	}
	must(t, os.RemoveAll(filepath.Join(root, "src")))
	// libz is a base library: no finding.
	if f := run(t, root, Options{Name: "x"}); has(f, Warning, RuleDynamic, "") {
		t.Errorf("libz flagged: %v", f)
	}
	// Patch the DT_NEEDED name to a library nobody has.
	b, _ := os.ReadFile(filepath.Join(root, "usr/bin/dyn"))
	b2 := []byte(strings.Replace(string(b), "libz.so.1", "libq.so.1", 1))
	must(t, os.WriteFile(filepath.Join(root, "usr/bin/dyn"), b2, 0o755))
	if f := run(t, root, Options{Name: "x"}); !has(f, Warning, RuleDynamic, "usr/bin/dyn") {
		t.Errorf("missing library not flagged: %v", f)
	}
	// Shipping the library in the image satisfies it.
	must(t, os.MkdirAll(filepath.Join(root, "usr/lib/x"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "usr/lib/x/libq.so.1"), []byte("x"), 0o644))
	if f := run(t, root, Options{Name: "x"}); has(f, Warning, RuleDynamic, "") {
		t.Errorf("library in the image still flagged: %v", f)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
