package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/initrd"
	"github.com/stratalinux/strata/internal/testutil/elftest"
)

// tinyELF is an x86-64 ELF header with one program header of type typ: enough for debug/elf, which
// is all `os initrd` asks of --strata.
var tinyELF = elftest.WithProg

func TestOSInitrdIsReproducibleAndHoldsInitAndModules(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "modules", "6.1.0-test")
	writeTree(t, tree, map[string]string{
		"modules.dep":                    "kernel/drivers/md/dm-verity.ko: kernel/drivers/md/dm-mod.ko\nkernel/drivers/md/dm-mod.ko:\n",
		"kernel/drivers/md/dm-verity.ko": "verity",
		"kernel/drivers/md/dm-mod.ko":    "dm-mod",
	})
	bin := filepath.Join(dir, "strata")
	if err := os.WriteFile(bin, tinyELF(1 /* PT_LOAD */), 0o755); err != nil {
		t.Fatal(err)
	}
	args := func(out string) []string {
		return []string{"os", "initrd", "--kernel-version", "6.1.0-test", "--modules-dir", filepath.Join(dir, "modules"),
			"--module", "dm-verity", "--strata", bin, "--output", out}
	}
	var outs [][]byte
	for _, name := range []string{"a.cpio", "b.cpio"} {
		stdout, stderr, code := runCLI(t, args(filepath.Join(dir, name))...)
		if code != 0 || !strings.HasPrefix(stdout, "wrote ") {
			t.Fatalf("exit %d: %s%s", code, stdout, stderr)
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, b)
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Fatal("two runs with the same inputs gave different initrds")
	}
	entries, err := initrd.ReadCPIO(bytes.NewReader(outs[0]), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		files[e.Name] = string(e.Data)
	}
	if files["init"] != string(tinyELF(1)) {
		t.Fatalf("/init is not the --strata binary")
	}
	if got := files[initrd.ModuleListPath]; got != "kernel/drivers/md/dm-mod.ko\nkernel/drivers/md/dm-verity.ko\n" {
		t.Fatalf("load order %q", got)
	}
	if files["lib/modules/kernel/drivers/md/dm-verity.ko"] != "verity" {
		t.Fatalf("dm-verity.ko missing: %v", files)
	}
}

func TestOSInitrdRefusesBadInputs(t *testing.T) {
	dir := t.TempDir()
	dyn := filepath.Join(dir, "dyn")
	if err := os.WriteFile(dyn, tinyELF(3 /* PT_INTERP */), 0o755); err != nil {
		t.Fatal(err)
	}
	static := filepath.Join(dir, "static")
	if err := os.WriteFile(static, tinyELF(1), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTree(t, filepath.Join(dir, "m", "v"), map[string]string{"modules.dep": ""})
	out := []string{"--output", filepath.Join(dir, "out")}
	for _, c := range []struct {
		args []string
		want string
	}{
		{append([]string{"--strata", dyn, "--kernel-version", "v", "--modules-dir", filepath.Join(dir, "m")}, out...), "dynamically linked; build it with CGO_ENABLED=0"},
		{append([]string{"--strata", filepath.Join(dir, "m", "v", "modules.dep"), "--kernel-version", "v", "--modules-dir", filepath.Join(dir, "m")}, out...), "not an ELF executable"},
		{append([]string{"--strata", static, "--kernel-version", "nope", "--modules-dir", filepath.Join(dir, "m")}, out...), "no module tree for kernel nope"},
		{[]string{"--strata", dyn}, "--kernel-version V and --output FILE are required"},
	} {
		_, stderr, code := runCLI(t, append([]string{"os", "initrd"}, c.args...)...)
		if code != 1 || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, %q; want one line containing %q", c.args, code, stderr, c.want)
		}
		if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
			t.Errorf("%v: an output was written", c.args)
		}
	}
}
