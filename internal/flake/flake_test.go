package flake

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const podmanYAML = `---
include:
  tar: ~
  path: ~
container:
  name: localhost/joe
  target_app_path: /usr/bin/joe
  host_app_path: /usr/bin/joe
  base_container: localhost/base
  check_host_dependencies: false
  layers:
    - localhost/python
  runtime:
    runas: root
    resume: false
    attach: false
    podman:
      - "--storage-opt size=10G"
      - "-ti"
vm: ~
`

func TestMergeDeep(t *testing.T) {
	dropin := "container:\n  runtime:\n    resume: true\n    podman: [\"--net host\"]\n"
	cfg, err := Merge([]string{"a.yaml", "b.yaml"}, [][]byte{[]byte(podmanYAML), []byte(dropin)})
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Container
	if c == nil || c.Name != "localhost/joe" || c.BaseContainer != "localhost/base" {
		t.Fatalf("map keys not kept: %+v", c)
	}
	if !c.Runtime.Resume || c.Runtime.RunAs != "root" {
		t.Errorf("runtime not merged: %+v", c.Runtime)
	}
	if !reflect.DeepEqual(c.Runtime.Podman, []string{"--net host"}) {
		t.Errorf("list must replace, got %q", c.Runtime.Podman)
	}
	if !reflect.DeepEqual(c.Layers, []string{"localhost/python"}) {
		t.Errorf("layers lost: %q", c.Layers)
	}
	// A drop-in starting with --- is read (flake-pilot silently drops it).
	cfg, err = Merge([]string{"a", "b"}, [][]byte{[]byte(podmanYAML), []byte("---\ncontainer:\n  name: other\n")})
	if err != nil || cfg.Container.Name != "other" {
		t.Fatalf("--- drop-in: %v %+v", err, cfg)
	}
	// Empty drop-ins are fine.
	if _, err := Merge([]string{"a", "b"}, [][]byte{[]byte(podmanYAML), []byte("---\n# nothing\n")}); err != nil {
		t.Fatal(err)
	}
}

func TestMergeErrorsNameFileAndLine(t *testing.T) {
	cases := []struct{ doc, want string }{
		{"container:\n  name: [unclosed\n", "b.yaml:"},
		{"container:\n  resume: x\n  runtime:\n    resume: maybe\n", "b.yaml:4:"},
		{"- a\n- b\n", "b.yaml:1: the top level must be a mapping"},
		{"a: &x [1]\nb: *x\n", "aliases"},
	}
	for _, c := range cases {
		_, err := Merge([]string{"a.yaml", "b.yaml"}, [][]byte{[]byte(podmanYAML), []byte(c.doc)})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.doc, err, c.want)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	cfg, err := Merge([]string{"a"}, [][]byte{[]byte(podmanYAML)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"---\n", "include:", "check_host_dependencies: false", "vm: null"} {
		if !strings.Contains(string(out), key) {
			t.Errorf("written YAML lacks %q:\n%s", key, out)
		}
	}
	back, err := Merge([]string{"b"}, [][]byte{out})
	if err != nil || !reflect.DeepEqual(back.Container, cfg.Container) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, back, cfg)
	}
}

func TestSplitArgs(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		args     []string
		env      map[string]string
		instance string
		opts     []string
		app      []string
		err      string
	}{
		{args: []string{"ec2", "help"}, app: []string{"ec2", "help"}},
		{args: []string{"@dev", "%remove", "ls"}, instance: "dev", opts: []string{"remove"}, app: []string{"ls"}},
		{args: []string{"ls", "@dev"}, instance: "dev", app: []string{"ls"}},
		{args: []string{"--", "%s", "@x"}, app: []string{"%s", "@x"}},
		{args: []string{"@a", "--", "@b"}, instance: "a", app: []string{"@b"}},
		{args: []string{"diff", "--", "%f"}, app: []string{"diff", "--", "%f"}},
		{args: []string{"%port:49300"}, opts: []string{"port"}, app: []string{}},
		{args: []string{"x"}, env: map[string]string{"FLAKE_INSTANCE": "ci", "FLAKE_OPTS": "%remove interactive"}, instance: "ci", opts: []string{"interactive", "remove"}, app: []string{"x"}},
		{args: []string{"@a/b"}, err: "invalid instance name"},
		{args: []string{"%bogus"}, err: "unknown flake option %bogus"},
		{args: []string{"%port:x"}, err: "port"},
		{args: []string{"@" + strings.Repeat("a", 64)}, err: "invalid instance name"},
	}
	for _, c := range cases {
		iv, err := SplitArgs(c.args, env(c.env))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: got %v, want error %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		var opts []string
		for _, o := range []string{"interactive", "port", "progress", "remove"} {
			if iv.Has(o) {
				opts = append(opts, o)
			}
		}
		if iv.Instance != c.instance || !reflect.DeepEqual(opts, c.opts) || !reflect.DeepEqual(iv.Args, c.app) {
			t.Errorf("%q: got instance %q opts %q args %q", c.args, iv.Instance, opts, iv.Args)
		}
	}
}

func TestRegisterListRemove(t *testing.T) {
	root := t.TempDir()
	launcher := "/usr/bin/strata"
	reg := Registry{Root: root}
	cfg := &Config{Container: &Container{Name: "localhost/busybox", HostAppPath: "/usr/bin/hello", TargetAppPath: "/bin/echo",
		Runtime: &PodmanRuntime{RunAs: "root"}}}
	if err := reg.Register(Registration{App: "/usr/bin/hello", Launcher: launcher, Config: cfg}); err != nil {
		t.Fatal(err)
	}
	link, err := os.Readlink(filepath.Join(root, "usr/bin/hello"))
	if err != nil || link != launcher {
		t.Fatalf("app link: %q %v", link, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "usr/share/flakes/hello.d")); err != nil || !fi.IsDir() {
		t.Fatalf("hello.d: %v", err)
	}
	// Drop-in honoured by List/Lookup.
	if err := os.WriteFile(filepath.Join(root, "usr/share/flakes/hello.d/10-resume.yaml"), []byte("container:\n  runtime:\n    resume: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, _, err := Lookup(root, "hello")
	if err != nil || !got.Container.Runtime.Resume || got.Container.Name != "localhost/busybox" {
		t.Fatalf("lookup: %v %+v", err, got)
	}
	ents, err := reg.List()
	if err != nil || len(ents) != 1 || ents[0].Engine != "podman" || ents[0].Target != "/bin/echo" {
		t.Fatalf("list: %v %+v", err, ents)
	}
	// Twice: refused, nothing changed.
	if err := reg.Register(Registration{App: "/usr/bin/hello", Launcher: launcher, Config: cfg}); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Fatalf("second register: %v", err)
	}
	// A foreign file at the app path: refused, no YAML written.
	os.WriteFile(filepath.Join(root, "usr/bin/vim"), []byte("#!/bin/sh\n"), 0o755)
	cfg2 := *cfg
	if err := reg.Register(Registration{App: "/usr/bin/vim", Launcher: launcher, Config: &cfg2}); err == nil || !strings.Contains(err.Error(), "not a flake launcher") {
		t.Fatalf("foreign app: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/share/flakes/vim.yaml")); err == nil {
		t.Fatal("half-registered vim.yaml")
	}
	if err := reg.Remove("hello", "", false); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"usr/bin/hello", "usr/share/flakes/hello.yaml", "usr/share/flakes/hello.d"} {
		if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
	if err := reg.Remove("vim", "/usr/bin/vim", false); err == nil {
		t.Fatal("removing an unregistered foreign file succeeded")
	}
	if _, err := os.Stat(filepath.Join(root, "usr/bin/vim")); err != nil {
		t.Fatal("foreign file was removed")
	}
	// Failure half-way leaves nothing: app dir not creatable.
	os.WriteFile(filepath.Join(root, "blocker"), nil, 0o644)
	if err := reg.Register(Registration{App: "/blocker/sub/app", Launcher: launcher, Config: cfg}); err == nil {
		t.Fatal("register under a file succeeded")
	}
	if _, err := os.Stat(filepath.Join(root, "usr/share/flakes/app.yaml")); err == nil {
		t.Fatal("app.yaml left after a failed registration")
	}
	if _, err := os.Stat(filepath.Join(root, "usr/share/flakes/app.d")); err == nil {
		t.Fatal("app.d left after a failed registration")
	}
}

func TestGlobalConfigAndUserMode(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/flakes.yml"), []byte("generic:\n  flakes_dir: /var/lib/myflakes\n"), 0o644)
	d, err := Registry{Root: root}.Dir()
	if err != nil || d != filepath.Join(root, "var/lib/myflakes") {
		t.Fatalf("flakes_dir from flakes.yml: %q %v", d, err)
	}
	os.WriteFile(filepath.Join(root, "etc/flakes.yml"), []byte("generic: [\n"), 0o644)
	if _, err := (Registry{Root: root}).Dir(); err == nil || !strings.Contains(err.Error(), "flakes.yml:") {
		t.Fatalf("bad flakes.yml: %v", err)
	}
	home := t.TempDir()
	u := Registry{User: true, Home: home}
	d, err = u.Dir()
	if err != nil || d != filepath.Join(home, ".config/flakes") {
		t.Fatalf("user dir: %q %v", d, err)
	}
	cfg := &Config{Container: &Container{Name: "x", HostAppPath: filepath.Join(home, "bin/tool")}}
	if err := u.Register(Registration{App: filepath.Join(home, "bin/tool"), Launcher: "/usr/bin/strata", Config: cfg}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(home, "bin/tool")); err != nil {
		t.Fatal(err)
	}
}

func TestValidateName(t *testing.T) {
	for _, bad := range []string{"", "..", ".hidden", "a/b", "strata", "systemd-sysext", "a b"} {
		if ValidateName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, good := range []string{"aws", "python3.11", "g++"} {
		if err := ValidateName(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
}
