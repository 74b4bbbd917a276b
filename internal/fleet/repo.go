package fleet

import "github.com/stratalinux/strata/internal/repo"

// RepoFile is one image of a `strata publish` repository, named
// NAME-VERSION-ARCH.raw (the bakery's MatchPattern=NAME-@v-%a.raw),
// optionally compressed.
type RepoFile struct {
	File    string
	Name    string
	Version string
	// Arch is the Omaha architecture (amd64, arm64, x86).
	Arch   string
	SHA256 string
}

// systemd's %a names to Omaha's.
var repoArch = map[string]string{"x86-64": "amd64", "arm64": "arm64", "x86": "x86"}

// ParseRepoName splits an image file name with the publish side's own
// rule (repo.ParseImageName); ok is false for other files and for
// architectures Omaha clients do not name.
func ParseRepoName(file string) (RepoFile, bool) {
	n, err := repo.ParseImageName(file)
	if err != nil || !ValidVersion(n.Version) || repoArch[n.Arch] == "" {
		return RepoFile{}, false
	}
	return RepoFile{File: file, Name: n.Name, Version: n.Version, Arch: repoArch[n.Arch]}, true
}

// RepoFiles returns the images a SHA256SUMS manifest lists (parsed by
// repo.ParseManifest, as systemd-sysupdate reads it), with their hashes;
// other files are left out.
func RepoFiles(m *repo.Manifest) []RepoFile {
	var out []RepoFile
	for _, e := range m.Entries {
		if f, ok := ParseRepoName(e.Name); ok {
			f.SHA256 = e.SHA256
			out = append(out, f)
		}
	}
	return out
}
