package flake

import (
	"strings"
	"testing"
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
