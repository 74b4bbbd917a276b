package fleet

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/repo"
)

func manifest(t *testing.T, names ...string) *repo.Manifest {
	t.Helper()
	var b strings.Builder
	for i, n := range names {
		fmt.Fprintf(&b, "%064x  %s\n", i+1, n)
	}
	m, err := repo.ParseManifest([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// step renders a step as "file[+create kind][ extras…]" for comparison.
func step(s ImportStep) string {
	out := s.File.File
	if s.CreateApp != nil {
		out += "+create " + string(s.CreateApp.Kind)
	}
	for _, x := range s.Extras {
		out += " " + x.File
	}
	return out
}

func TestPlanImport(t *testing.T) {
	for _, tc := range []struct {
		name     string
		files    []string
		existing []App
		want     []string
	}{
		{"empty", nil, nil, nil},
		{"extensions first, apps created once",
			[]string{"os-2-x86-64.raw", "docker-1-x86-64.raw", "docker-2-x86-64.raw"}, nil,
			[]string{"docker-1-x86-64.raw+create extension", "docker-2-x86-64.raw", "os-2-x86-64.raw+create os docker-2-x86-64.raw"}},
		{"existing apps are not created",
			[]string{"docker-1-x86-64.raw", "os-1-x86-64.raw"}, []App{{Name: "os", Kind: KindOS}, {Name: "docker", Kind: KindExtension}},
			[]string{"docker-1-x86-64.raw", "os-1-x86-64.raw docker-1-x86-64.raw"}},
		{"newest per architecture, by version order not listing order",
			[]string{"os-1-arm64.raw", "os-1-x86-64.raw", "k-1.10-x86-64.raw", "k-1.9-x86-64.raw", "k-1.2-arm64.raw"}, nil,
			[]string{"k-1.10-x86-64.raw+create extension", "k-1.9-x86-64.raw", "k-1.2-arm64.raw",
				"os-1-arm64.raw+create os k-1.2-arm64.raw", "os-1-x86-64.raw k-1.10-x86-64.raw"}},
		{"no OS image: extensions only", []string{"a-1-x86-64.raw", "README.md"}, nil,
			[]string{"a-1-x86-64.raw+create extension"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := PlanImport(manifest(t, tc.files...), "os", tc.existing)
			var got []string
			for _, s := range p.Steps {
				got = append(got, step(s))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("plan\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
