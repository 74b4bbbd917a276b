package recipe

import (
	"errors"
	"strings"
	"testing"

	"github.com/stratalinux/strata/recipes"
)

const minimal = `name: tool
versions:
  github: acme/tool
  match: '^v(.*)$'
arch:
  x86-64: amd64
  arm64: arm64
artifacts:
  - url: https://example.com/{tag}/tool-{version}-linux-{arch}.tar.gz
    verify:
      sums: https://example.com/{tag}/SHA256SUMS
    strip: 1
    map:
      - {from: "bin/*", to: usr/bin/}
units:
  - name: tool.service
    content: |
      [Service]
      ExecStart=/usr/bin/tool
`

func TestParseMinimal(t *testing.T) {
	r, err := Parse("tool.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "tool" || len(r.Artifacts) != 1 || r.Arch["x86-64"]["arch"] != "amd64" || r.Artifacts[0].Strip != 1 {
		t.Errorf("%+v", r)
	}
	if got := r.Arches(); strings.Join(got, ",") != "arm64,x86-64" {
		t.Errorf("arches %v", got)
	}
	if UnitTarget(r.Units[0]) != "multi-user.target" {
		t.Error("service not upheld by multi-user.target")
	}
}

func TestParseErrorsNameFileLineKey(t *testing.T) {
	for _, c := range []struct {
		edit func(string) string
		want string
	}{
		{func(s string) string { return strings.Replace(s, "name: tool", "name: ../tool", 1) }, "tool.yaml:1: name: "},
		{func(s string) string { return strings.Replace(s, "  github: acme/tool", "  github: acme", 1) }, "tool.yaml:3: versions.github: want OWNER/REPO"},
		{func(s string) string { return strings.Replace(s, "  x86-64: amd64", "  amd64: amd64", 1) }, "tool.yaml:6: arch.amd64: not a systemd"},
		{func(s string) string { return strings.Replace(s, "{arch}.tar.gz", "{cpu}.tar.gz", 1) }, "tool.yaml:9: artifacts[0].url: unknown template variable {cpu}"},
		{func(s string) string {
			return strings.Replace(s, "    verify:\n      sums: https://example.com/{tag}/SHA256SUMS\n", "", 1)
		}, "artifacts[0].verify: give exactly one"},
		{func(s string) string { return strings.Replace(s, "to: usr/bin/", "to: /etc/x", 1) }, "tool.yaml:14: artifacts[0].map[0].to:"},
		{func(s string) string { return strings.Replace(s, "to: usr/bin/", "to: usr/../../x", 1) }, "artifacts[0].map[0].to:"},
		{func(s string) string { return strings.Replace(s, "strip: 1", "strip: many", 1) }, "tool.yaml:12: "},
		{func(s string) string { return s + "bogus: 1\n" }, "tool.yaml:20: field bogus not found"},
		{func(s string) string { return strings.Replace(s, "tool.service", "tool", 1) }, "tool.yaml:16: units[0].name:"},
		{func(s string) string { return "name: [unclosed\n" }, "tool.yaml:"},
		{func(s string) string { return "- a\n- b\n" }, "tool.yaml:1: a recipe is a YAML mapping"},
	} {
		_, err := Parse("tool.yaml", []byte(c.edit(minimal)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want %q, got %v", c.want, err)
		}
		var re *Error
		if err != nil && !errors.As(err, &re) {
			t.Errorf("not a *recipe.Error: %T", err)
		}
	}
}

func TestCatalogParses(t *testing.T) {
	names := recipes.Names()
	for _, want := range []string{"docker", "containerd", "docker-compose", "kubernetes", "k3s", "wasmtime", "cilium", "tailscale", "crun", "etcd"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("catalog lacks %s", want)
		}
	}
	for _, n := range names {
		b, _ := recipes.Get(n)
		r, err := Parse("recipes/"+n+".yaml", b)
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if r.Name != n {
			t.Errorf("%s.yaml names %s", n, r.Name)
		}
		for _, a := range []string{"x86-64", "arm64"} {
			if _, ok := r.Arch[a]; !ok {
				t.Errorf("%s lacks %s", n, a)
			}
		}
		for i, a := range r.Artifacts {
			if !strings.HasPrefix(a.URL, "https://") {
				t.Errorf("%s artifact %d: %s", n, i, a.URL)
			}
		}
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.10.0", "1.9.0", 1},
		{"v1.32.2+k3s1", "v1.32.10+k3s1", -1},
		{"2.0", "2.0", 0},
	} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("%s vs %s = %d", c.a, c.b, got)
		}
	}
}

func TestExpand(t *testing.T) {
	got := Expand("a-{version}-{arch}-{missing}", map[string]string{"version": "1", "arch": "x"})
	if got != "a-1-x-{missing}" {
		t.Error(got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	for _, n := range recipes.Names() {
		b, _ := recipes.Get(n)
		f.Add(b)
	}
	f.Add([]byte("name: x\nversions: {list: [1]}\narch: {x86-64: a}\nartifacts: [{url: 'http://h/{version}', verify: {none: x}, map: [{to: usr/x}]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse("f.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// A valid recipe maps only inside the image.
		for _, a := range r.Artifacts {
			for _, m := range a.Map {
				if strings.HasPrefix(m.To, "/") || strings.Contains(m.To, "..") {
					t.Fatalf("accepted escaping map target %q", m.To)
				}
			}
		}
		for _, fl := range r.Files {
			if strings.HasPrefix(fl.Path, "/") || strings.Contains("/"+fl.Path+"/", "/../") {
				t.Fatalf("accepted escaping file %q", fl.Path)
			}
		}
	})
}
