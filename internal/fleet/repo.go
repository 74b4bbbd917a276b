package fleet

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/stratalinux/strata/internal/repo"
)

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

// MaxSumsBytes bounds a SHA256SUMS manifest.
const MaxSumsBytes = 4 << 20

// ParseSHA256SUMS reads systemd's manifest format ("HASH *NAME" or
// "HASH  NAME") and returns the images in it. Names with a slash, or
// lines not in that format, are errors naming the line.
func ParseSHA256SUMS(r io.Reader) ([]RepoFile, error) {
	var out []RepoFile
	sc := bufio.NewScanner(io.LimitReader(r, MaxSumsBytes))
	sc.Buffer(make([]byte, 4096), 4096)
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		if strings.TrimSpace(l) == "" {
			continue
		}
		if len(l) < 67 || (l[64:66] != " *" && l[64:66] != "  ") {
			return nil, fmt.Errorf("SHA256SUMS:%d: not \"HASH *NAME\"", line)
		}
		hash, name := strings.ToLower(l[:64]), l[66:]
		if strings.Trim(hash, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("SHA256SUMS:%d: hash is not 64 hex digits", line)
		}
		if name == "" || strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." {
			return nil, fmt.Errorf("SHA256SUMS:%d: %q is not a plain file name", line, name)
		}
		if f, ok := ParseRepoName(name); ok {
			f.SHA256 = hash
			out = append(out, f)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("SHA256SUMS:%d: %w", line+1, err)
	}
	return out, nil
}
