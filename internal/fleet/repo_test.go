package fleet

import (
	"strings"
	"testing"
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

func FuzzParseSHA256SUMS(f *testing.F) {
	f.Add(strings.Repeat("a", 64) + " *docker-1.0-x86-64.raw\n")
	f.Add(strings.Repeat("b", 64) + "  ../etc/passwd\n")
	f.Fuzz(func(t *testing.T, s string) {
		files, err := ParseSHA256SUMS(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, fl := range files {
			if strings.ContainsAny(fl.File, "/\\") || len(fl.SHA256) != 64 || fl.Arch == "" {
				t.Fatalf("accepted %+v", fl)
			}
		}
	})
}

func TestParseSHA256SUMSRejects(t *testing.T) {
	for _, bad := range []string{
		strings.Repeat("a", 64) + " *../docker-1.0-x86-64.raw",
		strings.Repeat("g", 64) + " *docker-1.0-x86-64.raw",
		"abc docker-1.0-x86-64.raw",
	} {
		if _, err := ParseSHA256SUMS(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "SHA256SUMS:1") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
