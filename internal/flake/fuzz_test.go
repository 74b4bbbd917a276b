package flake

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/testutil/fuzztest"
)

// FuzzMerge: arbitrary YAML drop-ins never panic, and a merge that
// succeeds marshals and reads back.
func FuzzMerge(f *testing.F) {
	f.Add([]byte(podmanYAML), []byte("container:\n  runtime:\n    resume: true\n"))
	f.Add([]byte("---\n"), []byte("vm:\n  name: x\n  runtime:\n    firecracker:\n      boot_args: [a]\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"), []byte("{"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		cfg, err := Merge([]string{"a.yaml", "b.yaml"}, [][]byte{a, b})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "a.yaml") && !strings.HasPrefix(err.Error(), "b.yaml") {
				t.Fatalf("error does not name its file: %v", err)
			}
			return
		}
		out, err := Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Merge([]string{"c"}, [][]byte{out}); err != nil {
			t.Fatalf("written config does not read back: %v\n%s", err, out)
		}
	})
}

// FuzzSplitArgs: the split never panics, never loses an application
// argument after "--", and instance names it accepts are safe.
func FuzzSplitArgs(f *testing.F) {
	f.Add("@dev\x00%remove\x00ls\x00--\x00%s")
	f.Add("--\x00@x")
	f.Add("a\x00--\x00b")
	f.Fuzz(func(t *testing.T, joined string) {
		args := strings.Split(joined, "\x00")
		iv, err := SplitArgs(args, nil)
		if err != nil {
			return
		}
		if strings.ContainsAny(iv.Instance, "/ \x00.") {
			t.Fatalf("unsafe instance %q", iv.Instance)
		}
		for i, a := range args {
			if a == "--" {
				tail := args[i+1:]
				if len(iv.Args) < len(tail) || strings.Join(iv.Args[len(iv.Args)-len(tail):], "\x00") != strings.Join(tail, "\x00") {
					t.Fatalf("args after -- changed: %q → %q", args, iv.Args)
				}
				break
			}
		}
	})
}

// FuzzRegistry: a registry on a scratch root built from an arbitrary
// flakes.yml, NAME.yaml and drop-in never panics, never resolves outside
// the root, lists the flake (with its settings or its error), and a
// flake it loads writes out and reads back to the same settings.
func FuzzRegistry(f *testing.F) {
	f.Add([]byte("generic:\n  flakes_dir: /usr/share/flakes\n  podman_ids_dir: /var/lib/containers/flake-pilot\n"), []byte(podmanYAML), []byte("container:\n  runtime:\n    resume: true\n"))
	f.Add([]byte(""), []byte("vm:\n  name: fc\n  target_app_path: /usr/bin/x\n  host_app_path: /usr/bin/x\n  runtime:\n    firecracker:\n      boot_args: [\"init=/usr/sbin/sci\"]\n      mem_size_mib: 4096\n"), []byte("---\n"))
	f.Add([]byte("generic:\n  flakes_dir: /opt/flakes\n"), []byte("container: {name: a, runtime: {podman: [-ti]}}\n"), []byte("include: {tar: [/a.tar]}\n"))
	f.Add([]byte("generic:\n  flakes_dir: relative\n"), []byte("{"), []byte("a: &x [1]\nb: *x\n"))
	f.Add([]byte("generic: [1]\n"), []byte("container: 3\n"), []byte("vm: {runtime: {firecracker: {mem_size_mib: -1}}}\n"))
	scratch := fuzztest.Scratch(f)
	f.Fuzz(func(t *testing.T, global, main, dropin []byte) {
		root, err := os.MkdirTemp(scratch, "")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(root)
		reg := Registry{Root: root}
		etc := filepath.Join(root, "etc")
		os.MkdirAll(etc, 0o755)
		os.WriteFile(filepath.Join(etc, "flakes.yml"), global, 0o644)
		dir, err := reg.Dir()
		if err != nil {
			if !strings.Contains(err.Error(), "flakes.yml") {
				t.Fatalf("error does not name flakes.yml: %v", err)
			}
			return
		}
		if rel, err := filepath.Rel(root, dir); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			t.Fatalf("flakes_dir %q resolves outside the root: %s", global, dir)
		}
		os.MkdirAll(filepath.Join(dir, "app.d"), 0o755)
		os.WriteFile(filepath.Join(dir, "app.yaml"), main, 0o644)
		os.WriteFile(filepath.Join(dir, "app.d", "10.yaml"), dropin, 0o644)
		ents, err := reg.List()
		if err != nil || len(ents) != 1 || ents[0].Name != "app" || (ents[0].Settings == nil) == (ents[0].Error == "") {
			t.Fatalf("List: %+v %v", ents, err)
		}
		cfg, _, err := Lookup(root, "app")
		if err != nil {
			if !strings.Contains(err.Error(), "app.yaml") && !strings.Contains(err.Error(), "10.yaml") {
				t.Fatalf("error names no file: %v", err)
			}
			return
		}
		out, err := Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Merge([]string{"rt.yaml"}, [][]byte{out})
		if err != nil {
			t.Fatalf("written config does not read back: %v\n%s", err, out)
		}
		// nil and empty lists both write as []: compare what is written.
		if again, err := Marshal(back); err != nil || !bytes.Equal(again, out) {
			t.Fatalf("round trip changed the settings: %v\n%s\n%s", err, out, again)
		}
	})
}
