package fleet

import (
	"slices"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/repo"
)

func TestParseRepoName(t *testing.T) {
	cases := map[string]RepoFile{
		"docker-27.1.0-x86-64.raw":        {Name: "docker", Version: "27.1.0", Arch: "amd64"},
		"docker-compose-2.24.5-arm64.raw": {Name: "docker-compose", Version: "2.24.5", Arch: "arm64"},
		"strata-os-2.0.0-x86-64.raw":      {Name: "strata-os", Version: "2.0.0", Arch: "amd64"},
	}
	for in, want := range cases {
		got, ok := ParseRepoName(in)
		want.File = in
		if !ok || got != want {
			t.Errorf("%s: %+v %v", in, got, ok)
		}
	}
	for _, bad := range []string{"SHA256SUMS", "docker.raw", "docker-27-sparc.raw", "../x-1-x86-64.raw"} {
		if _, ok := ParseRepoName(bad); ok {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestRepoFiles(t *testing.T) {
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	m, err := repo.ParseManifest([]byte(a + " *docker-1.0-x86-64.raw\n" + b + "  index.json\n" + b + "  os-2-arm64.raw\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := RepoFiles(m)
	want := []RepoFile{
		{File: "docker-1.0-x86-64.raw", Name: "docker", Version: "1.0", Arch: "amd64", SHA256: a},
		{File: "os-2-arm64.raw", Name: "os", Version: "2", Arch: "arm64", SHA256: b},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("RepoFiles = %+v, want %+v", got, want)
	}
}
