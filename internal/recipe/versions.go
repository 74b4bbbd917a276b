package recipe

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/stratalinux/strata/internal/download"
	"github.com/stratalinux/strata/internal/version"
)

// GitHubAPI is the API base the github: version source uses.
const GitHubAPI = "https://api.github.com"

// Asset is a GitHub release asset.
type Asset struct {
	Name   string `json:"name"`
	URL    string `json:"browser_download_url"`
	Digest string `json:"digest"`
}

// Resolved is one upstream version.
type Resolved struct {
	Version string
	Tag     string
	Assets  []Asset
}

type ghRelease struct {
	Tag        string  `json:"tag_name"`
	Draft      bool    `json:"draft"`
	Prerelease bool    `json:"prerelease"`
	Assets     []Asset `json:"assets"`
}

// ListVersions lists the upstream versions, newest first.
func (r *Recipe) ListVersions(ctx context.Context, c *download.Client) ([]Resolved, error) {
	var re *regexp.Regexp
	if r.Versions.Match != "" {
		re = regexp.MustCompile(r.Versions.Match)
	}
	pick := func(tag string) (string, bool) {
		if re == nil {
			return tag, true
		}
		m := re.FindStringSubmatch(tag)
		if m == nil {
			return "", false
		}
		if len(m) > 1 {
			return m[1], true
		}
		return m[0], true
	}
	var out []Resolved
	seen := map[string]bool{}
	addV := func(res Resolved) {
		if !seen[res.Version] && res.Version != "" {
			seen[res.Version] = true
			out = append(out, res)
		}
	}
	switch {
	case r.Versions.GitHub != "":
		u := GitHubAPI + "/repos/" + r.Versions.GitHub + "/releases?per_page=100"
		b, err := c.Bytes(ctx, u, 16<<20)
		if err != nil {
			return nil, err
		}
		var rels []ghRelease
		if err := json.Unmarshal(b, &rels); err != nil {
			return nil, fmt.Errorf("%s: not a GitHub release listing: %v", u, err)
		}
		for _, rel := range rels {
			if rel.Draft || rel.Prerelease && !r.Versions.Prerelease {
				continue
			}
			if v, ok := pick(rel.Tag); ok {
				addV(Resolved{Version: v, Tag: rel.Tag, Assets: rel.Assets})
			}
		}
	case r.Versions.URL != "":
		b, err := c.Bytes(ctx, r.Versions.URL, 16<<20)
		if err != nil {
			return nil, err
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			v := m[0]
			if len(m) > 1 {
				v = m[1]
			}
			addV(Resolved{Version: v, Tag: v})
		}
	default:
		for _, v := range r.Versions.List {
			addV(Resolved{Version: v, Tag: v})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return CompareVersions(out[i].Version, out[j].Version) > 0 })
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no upstream versions found", r.File)
	}
	return out, nil
}

// Resolve finds a version ("latest" or "" for the newest). A version may
// be given with or without the tag's leading "v".
func (r *Recipe) Resolve(ctx context.Context, c *download.Client, want string) (Resolved, error) {
	if want != "" && want != "latest" && r.Versions.GitHub == "" && r.Versions.URL == "" {
		for _, v := range r.Versions.List {
			if v == want {
				return Resolved{Version: v, Tag: v}, nil
			}
		}
	}
	all, err := r.ListVersions(ctx, c)
	if err != nil {
		return Resolved{}, err
	}
	if want == "" || want == "latest" {
		return all[0], nil
	}
	for _, v := range all {
		if v.Version == want || v.Tag == want || strings.TrimPrefix(v.Version, "v") == strings.TrimPrefix(want, "v") {
			return v, nil
		}
	}
	var some []string
	for i, v := range all {
		if i == 5 {
			break
		}
		some = append(some, v.Version)
	}
	return Resolved{}, fmt.Errorf("%s: version %q not found upstream (newest: %s)", r.Name, want, strings.Join(some, ", "))
}

// CompareVersions orders versions the way systemd does (version.Compare).
func CompareVersions(a, b string) int { return version.Compare(a, b) }
