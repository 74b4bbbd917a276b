package provision

import (
	"context"
	"fmt"
	"strings"

	"github.com/stratalinux/strata/internal/download"
	"github.com/stratalinux/strata/internal/pgpsign"
	"github.com/stratalinux/strata/internal/release"
	"github.com/stratalinux/strata/internal/repo"
	"github.com/stratalinux/strata/internal/sysupdate"
	"github.com/stratalinux/strata/internal/version"
)

// ResolveOptions say where to look and how to trust what is found.
type ResolveOptions struct {
	RepoURL string
	Arch    string // systemd architecture name of the nodes
	// Keyring verifies SHA256SUMS.gpg; nil means the repository is used
	// unsigned and the transfer definitions get Verify=no.
	Keyring      []byte
	InstancesMax int
	Client       *download.Client
}

// Resolve picks, for every "NAME[@VERSION]", the image in the
// repository's (verified) SHA256SUMS: the newest version for the
// architecture unless one is given.
func Resolve(ctx context.Context, o ResolveOptions, wanted []string) ([]Extension, error) {
	c := o.Client
	if c == nil {
		c = &download.Client{}
	}
	base := strings.TrimRight(o.RepoURL, "/")
	data, err := c.Bytes(ctx, base+"/"+repo.ManifestName, repo.MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("read repository: %w", err)
	}
	if o.Keyring != nil {
		sig, err := c.Bytes(ctx, base+"/"+repo.SignatureName, pgpsign.MaxKeySize)
		if err != nil {
			return nil, fmt.Errorf("repository signature: %w", err)
		}
		if _, err := pgpsign.Verify(o.Keyring, data, sig); err != nil {
			return nil, fmt.Errorf("%s/%s: %w", base, repo.SignatureName, err)
		}
	}
	m, err := repo.ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", base, repo.ManifestName, err)
	}
	var out []Extension
	for _, w := range wanted {
		name, ver, _ := strings.Cut(w, "@")
		if err := release.ValidName(name); err != nil {
			return nil, err
		}
		spec := repo.TransferSpec{Name: name, URL: base, InstancesMax: o.InstancesMax, Verify: o.Keyring != nil}
		pat, err := sysupdate.ParsePattern(strings.ReplaceAll(spec.Pattern(), "%a", o.Arch))
		if err != nil {
			return nil, err
		}
		var best *repo.Entry
		var bestVer string
		for i, e := range m.Entries {
			f, ok := pat.Match(e.Name)
			if !ok || (ver != "" && f.Version != ver) {
				continue
			}
			if best == nil || version.Compare(f.Version, bestVer) > 0 {
				best, bestVer = &m.Entries[i], f.Version
			}
		}
		if best == nil {
			if ver != "" {
				return nil, fmt.Errorf("%s %s for %s is not in %s/%s", name, ver, o.Arch, base, repo.ManifestName)
			}
			return nil, fmt.Errorf("no image of %s for %s in %s/%s", name, o.Arch, base, repo.ManifestName)
		}
		out = append(out, Extension{Name: name, Version: bestVer, File: best.Name, SHA256: best.SHA256, Transfer: repo.TransferFile(spec)})
	}
	return out, nil
}
