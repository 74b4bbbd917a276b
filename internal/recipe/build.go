package recipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/stratalinux/strata/internal/archive"
	"github.com/stratalinux/strata/internal/download"
	"github.com/stratalinux/strata/internal/repo"
)

// MaxArtifact bounds one download.
const MaxArtifact = 8 << 30

// Vars are the template variables for a version and architecture.
func (r *Recipe) Vars(res Resolved, arch string) map[string]string {
	v := map[string]string{
		"version":      res.Version,
		"tag":          res.Tag,
		"name":         r.Name,
		"arch_systemd": arch,
		"version_no_v": strings.TrimPrefix(res.Version, "v"),
	}
	for k, val := range r.Arch[arch] {
		v[k] = val
	}
	return v
}

// Expand fills {var} references.
func Expand(t string, vars map[string]string) string {
	return templateVar().ReplaceAllStringFunc(t, func(m string) string {
		if v, ok := vars[m[1:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// Download is one artifact to fetch, with its expected hash decided.
type Download struct {
	URL      string
	FileName string
	Type     string
	// SHA256 is the expected digest; empty only when Unverified says why.
	SHA256     string
	Unverified string
	Artifact   int
}

// Downloads decides the artifacts for a version and architecture,
// fetching the upstream checksum files where the recipe names them.
func (r *Recipe) Downloads(ctx context.Context, c *download.Client, res Resolved, arch string) ([]Download, error) {
	if _, ok := r.Arch[arch]; !ok {
		return nil, fmt.Errorf("%s: no build for architecture %s (recipe has %s)", r.Name, arch, strings.Join(r.Arches(), ", "))
	}
	vars := r.Vars(res, arch)
	var out []Download
	sums := map[string][]byte{}
	for i, a := range r.Artifacts {
		d := Download{URL: Expand(a.URL, vars), Artifact: i, Type: a.Type}
		d.FileName = path.Base(d.URL)
		if d.Type == "" {
			d.Type = TypeFromURL(a.URL)
		}
		vf := a.Verify
		switch {
		case len(vf.SHA256) > 0:
			h := vf.SHA256[res.Version][arch]
			if h == "" {
				return nil, fmt.Errorf("%s: no pinned sha256 for version %s on %s (add it under artifacts[%d].verify.sha256)", r.File, res.Version, arch, i)
			}
			d.SHA256 = h
		case vf.Sums != "":
			u := Expand(vf.Sums, vars)
			b, ok := sums[u]
			if !ok {
				var err error
				if b, err = c.Bytes(ctx, u, 4<<20); err != nil {
					return nil, fmt.Errorf("checksums for %s: %w", d.URL, err)
				}
				sums[u] = b
			}
			h, ok := repo.LookupSum(b, d.FileName)
			if !ok {
				return nil, fmt.Errorf("%s does not list %s", u, d.FileName)
			}
			d.SHA256 = h
		case vf.SHA256URL != "":
			u := Expand(vf.SHA256URL, vars)
			b, err := c.Bytes(ctx, u, 64<<10)
			if err != nil {
				return nil, fmt.Errorf("checksum for %s: %w", d.URL, err)
			}
			h, ok := repo.FirstHash(b)
			if !ok {
				return nil, fmt.Errorf("%s does not start with a sha256", u)
			}
			d.SHA256 = h
		case vf.GitHubDigest:
			for _, as := range res.Assets {
				if as.Name == d.FileName && strings.HasPrefix(as.Digest, "sha256:") {
					d.SHA256 = strings.TrimPrefix(as.Digest, "sha256:")
				}
			}
			if !isHex64(d.SHA256) {
				return nil, fmt.Errorf("%s: the GitHub release %s has no sha256 digest for asset %s", r.Name, res.Tag, d.FileName)
			}
		default:
			d.Unverified = vf.None
		}
		out = append(out, d)
	}
	return out, nil
}

// PopulateOptions bound and permit what Populate does.
type PopulateOptions struct {
	// AllowUnverified permits artifacts the recipe marks as unverifiable.
	AllowUnverified bool
	// MaxDownload bounds one artifact (0: MaxArtifact).
	MaxDownload int64
	// Unpack bounds each archive (zero: archive.DefaultLimits).
	Unpack archive.Limits
}

// Populate downloads the artifacts into work/dl, unpacks them and builds
// the image tree at work/root, which it returns.
func (r *Recipe) Populate(ctx context.Context, c *download.Client, dls []Download, work string, opt PopulateOptions) (string, error) {
	maxDownload := opt.MaxDownload
	if maxDownload <= 0 {
		maxDownload = MaxArtifact
	}
	unpack := opt.Unpack
	if unpack == (archive.Limits{}) {
		unpack = archive.DefaultLimits
	}
	root := filepath.Join(work, "root")
	for _, d := range []string{root, filepath.Join(work, "dl"), filepath.Join(work, "x")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	for _, d := range dls {
		if d.SHA256 == "" && !opt.AllowUnverified {
			return "", fmt.Errorf("%s: upstream publishes no checksum (%s); pass --allow-unverified to bake it anyway", d.URL, d.Unverified)
		}
		a := r.Artifacts[d.Artifact]
		file := filepath.Join(work, "dl", strconv.Itoa(d.Artifact)+"-"+safeName(d.FileName))
		if _, err := c.File(ctx, d.URL, file, d.SHA256, maxDownload); err != nil {
			var tl *download.TooLargeError
			if errors.As(err, &tl) {
				return "", fmt.Errorf("%w; raise bake's --max-download if the artifact is genuine", err)
			}
			return "", err
		}
		if d.Type == "file" {
			for _, m := range a.Map {
				to := m.To
				if strings.HasSuffix(to, "/") {
					to += d.FileName
				}
				mode, _ := ParseMode(m.Mode)
				if mode == 0 {
					mode = 0o755
				}
				if err := copyInto(file, root, to, mode); err != nil {
					return "", err
				}
			}
			continue
		}
		x := filepath.Join(work, "x", strconv.Itoa(d.Artifact))
		if err := os.MkdirAll(x, 0o755); err != nil {
			return "", err
		}
		if err := archive.ExtractFile(ctx, file, d.Type, x, archive.Options{Strip: a.Strip, Limits: unpack, Hint: "if the archive is genuine, raise bake's --max-unpack or --max-unpack-ratio"}); err != nil {
			return "", fmt.Errorf("%s: %w", d.URL, err)
		}
		if err := applyMaps(x, root, a.Map, d.URL); err != nil {
			return "", err
		}
	}
	return root, r.writeStatic(root)
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// applyMaps copies the archive members matching each mapping into the
// tree.
func applyMaps(x, root string, maps []Mapping, url string) error {
	var members []string
	err := filepath.WalkDir(x, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(x, p)
		if rel != "." {
			members = append(members, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(members)
	for _, m := range maps {
		var hits []string
		for _, mem := range members {
			if ok, _ := path.Match(m.From, mem); ok {
				hits = append(hits, mem)
			}
		}
		if len(hits) == 0 {
			return fmt.Errorf("%s: nothing in the archive matches %q (it has %s)", url, m.From, sample(members))
		}
		if !strings.HasSuffix(m.To, "/") && len(hits) > 1 {
			return fmt.Errorf("%s: %q matches %d members but %q is a single path (end it with '/' for a directory)", url, m.From, len(hits), m.To)
		}
		mode, _ := ParseMode(m.Mode)
		for _, h := range hits {
			to := m.To
			if strings.HasSuffix(to, "/") {
				to += path.Base(h)
			}
			if err := copyInto(filepath.Join(x, filepath.FromSlash(h)), root, to, mode); err != nil {
				return err
			}
		}
	}
	return nil
}

func sample(s []string) string {
	if len(s) > 8 {
		return strings.Join(s[:8], ", ") + ", …"
	}
	return strings.Join(s, ", ")
}

// copyInto copies a file, symlink or directory tree from src to the image
// path rel below root; mode (if non-zero) overrides regular files' modes.
func copyInto(src, root, rel string, mode fs.FileMode) error {
	dst := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		sub, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, sub)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			os.Remove(target)
			return os.Symlink(l, target)
		case fi.Mode().IsRegular():
			m := fi.Mode().Perm()
			if mode != 0 {
				m = mode
			}
			os.Remove(target)
			if err := copyRegular(p, target); err != nil {
				return err
			}
			return os.Chmod(target, m)
		}
		return fmt.Errorf("%s: unsupported file type", p)
	})
}

func copyRegular(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writeStatic writes the recipe's own files, symlinks, units (with the
// bakery's Upholds= wiring), tmpfiles.d and sysusers.d entries.
func (r *Recipe) writeStatic(root string) error {
	write := func(rel, content string, mode fs.FileMode) error {
		if mode == 0 {
			mode = 0o644
		}
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return err
		}
		return os.Chmod(p, mode)
	}
	for _, f := range r.Files {
		mode, _ := ParseMode(f.Mode)
		if err := write(f.Path, f.Content, mode); err != nil {
			return err
		}
	}
	for _, s := range r.Symlinks {
		p := filepath.Join(root, filepath.FromSlash(s.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		os.Remove(p)
		if err := os.Symlink(s.Target, p); err != nil {
			return err
		}
	}
	unitDir := "usr/lib/systemd/system"
	if r.ClassValue().String() == "confext" {
		unitDir = "etc/systemd/system"
	}
	for _, u := range r.Units {
		if err := write(unitDir+"/"+u.Name, ensureNL(u.Content), 0); err != nil {
			return err
		}
		names := make([]string, 0, len(u.DropIns))
		for n := range u.DropIns {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if err := write(unitDir+"/"+u.Name+".d/"+n, ensureNL(u.DropIns[n]), 0); err != nil {
				return err
			}
		}
		if target := UnitTarget(u); target != "" {
			if err := write(unitDir+"/"+target+".d/10-"+strings.TrimSuffix(u.Name, path.Ext(u.Name))+"-"+strings.TrimPrefix(path.Ext(u.Name), ".")+".conf",
				"[Unit]\nUpholds="+u.Name+"\n", 0); err != nil {
				return err
			}
		}
	}
	if len(r.Tmpfiles) > 0 {
		if err := write("usr/lib/tmpfiles.d/"+r.Name+".conf", strings.Join(r.Tmpfiles, "\n")+"\n", 0); err != nil {
			return err
		}
	}
	if len(r.Sysusers) > 0 {
		if err := write("usr/lib/sysusers.d/"+r.Name+".conf", strings.Join(r.Sysusers, "\n")+"\n", 0); err != nil {
			return err
		}
	}
	return nil
}

// UnitTarget is the target whose Upholds= starts the unit on merge, or ""
// when the unit is not enabled.
func UnitTarget(u Unit) string {
	enable := true
	if u.Enable != nil {
		enable = *u.Enable
	}
	if !enable {
		return ""
	}
	if u.Target != "" {
		return u.Target
	}
	switch path.Ext(u.Name) {
	case ".service":
		return "multi-user.target"
	case ".socket":
		return "sockets.target"
	case ".timer":
		return "timers.target"
	case ".path":
		return "paths.target"
	}
	return ""
}

func ensureNL(s string) string {
	if strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}
