package sysupdate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/stratalinux/strata/internal/download"
	"github.com/stratalinux/strata/internal/pgpsign"
	"github.com/stratalinux/strata/internal/repo"
	"github.com/stratalinux/strata/internal/rootfs"
	"github.com/stratalinux/strata/internal/version"
)

// State is where an installed instance stands in the install sequence.
type State int

// Instance states: a finished instance, one still being downloaded, one
// downloaded and verified but not yet renamed into place.
const (
	Final State = iota
	PartialState
	PendingState
)

// The name prefixes systemd uses for instances on their way in.
const (
	partialPrefix = ".sysupdate.partial."
	pendingPrefix = ".sysupdate.pending."
	tempPrefix    = ".#"
)

// Instance is one version of one resource: a manifest entry, a file or a
// directory.
type Instance struct {
	Fields
	Name   string // name relative to the resource ('/'-separated), prefix stripped
	Path   string // host path, or URL for remote sources
	SHA256 string // manifest hash (remote sources)
	State  State
	Size   int64
	Mtime  time.Time
	Mode   fs.FileMode
}

// sortInstances orders newest first, then by name.
func sortInstances(is []Instance) {
	sort.SliceStable(is, func(i, j int) bool {
		if c := version.Compare(is[i].Version, is[j].Version); c != 0 {
			return c > 0
		}
		return is[i].Name < is[j].Name
	})
}

// manifestCache keeps one parsed manifest per URL within a run.
type manifestCache map[string]*repo.Manifest

// sizeCache keeps, per source URL, the file sizes its index.json declares
// (empty when it has none: a plain systemd-sysupdate repository).
type sizeCache map[string]map[string]int64

// declaredSizes reads the sizes a Strata repository's index.json declares,
// so a download is stopped once it passes its file's size. Best effort: a
// missing or unreadable index only leaves the sizes unknown.
func (e *Engine) declaredSizes(ctx context.Context, t *Transfer) map[string]int64 {
	if sz, ok := e.sizes[t.Source.Path]; ok {
		return sz
	}
	sz := map[string]int64{}
	iURL := joinURL(t.Source.Path, repo.IndexName)
	if data, err := e.client().Bytes(ctx, iURL, repo.MaxIndexSize); err != nil {
		if !download.NotFound(err) {
			e.log().Debug("no declared sizes", "url", iURL, "err", err)
		}
	} else if ix, err := repo.ParseIndex(data); err != nil {
		e.log().Warn("ignoring index", "url", iURL, "err", err)
	} else {
		for _, x := range ix.Extensions {
			for _, v := range x.Versions {
				if v.Size > 0 {
					sz[v.File] = v.Size
				}
			}
		}
	}
	if e.sizes == nil {
		e.sizes = sizeCache{}
	}
	e.sizes[t.Source.Path] = sz
	return sz
}

// listRemote reads Path/SHA256SUMS, verifies its signature when asked, and
// matches every entry against the source patterns.
func (e *Engine) listRemote(ctx context.Context, t *Transfer) ([]Instance, error) {
	m, err := e.manifest(ctx, t)
	if err != nil {
		return nil, err
	}
	sizes := e.declaredSizes(ctx, t)
	var out []Instance
	for _, ent := range m.Entries {
		f, ok := MatchAny(t.Source.Patterns, ent.Name)
		if !ok {
			continue
		}
		if f.SHA256 != "" && f.SHA256 != ent.SHA256 {
			e.log().Warn("manifest entry's hash differs from the hash in its name, ignoring", "file", ent.Name)
			continue
		}
		if !e.versionAllowed(t, f.Version) {
			continue
		}
		size := int64(-1)
		if n, ok := sizes[ent.Name]; ok {
			size = n
		}
		out = append(out, Instance{Fields: f, Name: ent.Name, Path: joinURL(t.Source.Path, ent.Name), SHA256: ent.SHA256, Size: size})
	}
	sortInstances(out)
	return out, nil
}

func (e *Engine) versionAllowed(t *Transfer, v string) bool {
	return t.MaxVersion == "" || version.Compare(v, t.MaxVersion) <= 0
}

func joinURL(base, name string) string {
	return strings.TrimRight(base, "/") + "/" + url.PathEscape(name)
}

// verifyWanted applies --verify= over the transfer's Verify=.
func (e *Engine) verifyWanted(t *Transfer) bool {
	if e.Verify != nil {
		return *e.Verify
	}
	return t.Verify
}

func (e *Engine) manifest(ctx context.Context, t *Transfer) (*repo.Manifest, error) {
	verify := e.verifyWanted(t)
	key := fmt.Sprintf("%v %s", verify, t.Source.Path)
	if m, ok := e.cache[key]; ok {
		return m, nil
	}
	mURL := joinURL(t.Source.Path, repo.ManifestName)
	data, err := e.client().Bytes(ctx, mURL, repo.MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("transfer %s: fetch manifest: %w", t.ID, err)
	}
	if verify {
		if err := e.verifySignature(ctx, t, data); err != nil {
			return nil, err
		}
	}
	m, err := repo.ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("transfer %s: %s: %w", t.ID, mURL, err)
	}
	for _, w := range m.Warnings {
		e.log().Warn("manifest: "+w, "url", mURL)
	}
	if e.CheckFreshness {
		if err := m.CheckFresh(e.now()); err != nil {
			return nil, fmt.Errorf("transfer %s: %s: %w", t.ID, mURL, err)
		}
	}
	if e.cache == nil {
		e.cache = manifestCache{}
	}
	e.cache[key] = m
	return m, nil
}

// ErrNoKeyring is returned when verification is on and no keyring exists.
var ErrNoKeyring = errors.New("no OpenPGP keyring found")

func (e *Engine) verifySignature(ctx context.Context, t *Transfer, manifest []byte) error {
	ring, where, err := e.keyring()
	if err != nil {
		return fmt.Errorf("transfer %s: %w", t.ID, err)
	}
	sURL := joinURL(t.Source.Path, repo.SignatureName)
	sig, err := e.client().Bytes(ctx, sURL, pgpsign.MaxKeySize)
	if err != nil {
		if download.NotFound(err) {
			return fmt.Errorf("transfer %s: %s is missing and signatures are required (Verify=yes); publish with --sign-key, or set Verify=no / --verify=no", t.ID, sURL)
		}
		return fmt.Errorf("transfer %s: fetch signature: %w", t.ID, err)
	}
	if _, err := pgpsign.Verify(ring, manifest, sig); err != nil {
		return fmt.Errorf("transfer %s: %s: %w (keyring %s)", t.ID, sURL, err, where)
	}
	return nil
}

func (e *Engine) keyring() ([]byte, string, error) {
	if e.Keyring != nil {
		return e.Keyring, "(given)", nil
	}
	for _, p := range pgpsign.KeyringPaths {
		data, err := rootfs.ReadFile(e.root(), p, pgpsign.MaxKeySize)
		if err == nil {
			return data, p, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("read keyring %s: %w", p, err)
		}
	}
	return nil, "", fmt.Errorf("%w: put the repository's public key at %s (strata key generate writes one), or set Verify=no / --verify=no", ErrNoKeyring, pgpsign.KeyringPaths[0])
}

// hostPath resolves an absolute path inside --root, following symlinks
// inside the root when the path exists.
func (e *Engine) hostPath(p string) string {
	if resolved, err := rootfs.Chase(e.root(), p); err == nil {
		return resolved
	}
	return rootfs.Join(e.root(), p)
}

// listLocal walks a local resource (source or target) and matches entries
// of the right kind against the patterns; for targets, names carrying the
// partial/pending prefixes are matched with the prefix stripped.
func (e *Engine) listLocal(r Resource, target bool) ([]Instance, error) {
	base := e.hostPath(r.Path)
	wantDir := !r.Type.isFileLike()
	depth := 0
	for _, p := range r.Patterns {
		depth = max(depth, p.Depth())
	}
	var out []Instance
	var walk func(dir, rel string, level int) error
	walk = func(dir, rel string, level int) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("list %s: %w", dir, err)
		}
		for _, de := range entries {
			name := de.Name()
			full := path.Join(dir, name)
			state := Final
			match := name
			if target {
				switch {
				case strings.HasPrefix(name, partialPrefix):
					state, match = PartialState, strings.TrimPrefix(name, partialPrefix)
				case strings.HasPrefix(name, pendingPrefix):
					state, match = PendingState, strings.TrimPrefix(name, pendingPrefix)
				case strings.HasPrefix(name, tempPrefix):
					continue
				}
			}
			relName := path.Join(rel, match)
			fi, err := os.Stat(full)
			if err != nil {
				continue // dangling symlink and the like
			}
			if fi.IsDir() && level < depth {
				if err := walk(full, relName, level+1); err != nil {
					return err
				}
			}
			if fi.IsDir() != wantDir {
				continue
			}
			f, ok := MatchAny(r.Patterns, relName)
			if !ok {
				continue
			}
			out = append(out, Instance{Fields: f, Name: relName, Path: full, State: state, Size: fi.Size(), Mtime: fi.ModTime(), Mode: fi.Mode().Perm()})
		}
		return nil
	}
	if err := walk(base, "", 0); err != nil {
		return nil, err
	}
	sortInstances(out)
	return out, nil
}

// listSource lists the available versions of t.
func (e *Engine) listSource(ctx context.Context, t *Transfer) ([]Instance, error) {
	if t.Source.Type.Remote() {
		return e.listRemote(ctx, t)
	}
	is, err := e.listLocal(t.Source, false)
	if err != nil {
		return nil, err
	}
	out := is[:0]
	for _, i := range is {
		if e.versionAllowed(t, i.Version) {
			out = append(out, i)
		}
	}
	return out, nil
}

// listTarget lists the installed (and partial/pending) instances of t.
func (e *Engine) listTarget(t *Transfer) ([]Instance, error) {
	return e.listLocal(t.Target, true)
}
