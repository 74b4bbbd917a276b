package repo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stratalinux/strata/internal/atomicfile"
	"github.com/stratalinux/strata/internal/pgpsign"
)

// PublishOptions control one publish run.
type PublishOptions struct {
	Dir    string   // the repository directory (created when missing)
	Images []string // image files to add
	// SignKey is an OpenPGP private key; when set, SHA256SUMS.gpg is
	// written.
	SignKey []byte
	// URL is the repository's public base URL, written into the transfer
	// definitions (default: file:// and the directory's absolute path).
	URL          string
	InstancesMax int
	Now          func() time.Time
	Log          *slog.Logger
}

// PublishResult says what changed.
type PublishResult struct {
	Added     []string // image file names copied in
	Unchanged []string // already there with the same content
	Transfers []string // transfer definition files written
	Signed    bool
}

// ConflictError is an image already published with different content.
type ConflictError struct{ File string }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s is already published with different content; published versions are never rewritten, publish it under a new version", e.File)
}

// Publish adds images to the repository at opt.Dir: each image is copied
// in (hashed while copying) unless already there, then SHA256SUMS, its
// signature, the transfer definitions and index.json are each replaced
// atomically. Existing versions are kept as they are.
func Publish(opt PublishOptions) (*PublishResult, error) {
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opt.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create repository %s: %w", opt.Dir, err)
	}
	abs, err := filepath.Abs(opt.Dir)
	if err != nil {
		return nil, err
	}
	url := opt.URL
	if url == "" {
		url = "file://" + abs
	}
	// Validate all names before copying anything.
	names := make([]ImageName, len(opt.Images))
	seen := map[string]string{}
	for i, img := range opt.Images {
		n, err := ParseImageName(filepath.Base(img))
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[n.File()]; dup {
			return nil, fmt.Errorf("%s and %s have the same name", prev, img)
		}
		seen[n.File()] = img
		names[i] = n
	}
	manifest := &Manifest{}
	if data, err := os.ReadFile(filepath.Join(abs, ManifestName)); err == nil {
		if manifest, err = ParseManifest(data); err != nil {
			return nil, fmt.Errorf("existing %s: %w", filepath.Join(abs, ManifestName), err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	ix := &Index{}
	if data, err := os.ReadFile(filepath.Join(abs, IndexName)); err == nil {
		if ix, err = ParseIndex(data); err != nil {
			return nil, fmt.Errorf("existing %s: %w", filepath.Join(abs, IndexName), err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := checkPrefixes(ix, names); err != nil {
		return nil, err
	}
	res := &PublishResult{}
	for i, img := range opt.Images {
		n := names[i]
		dest := filepath.Join(abs, n.File())
		sum, size, added, err := placeImage(img, dest, manifest)
		if err != nil {
			return nil, err
		}
		if added {
			res.Added = append(res.Added, n.File())
			log.Info("published", "file", n.File(), "sha256", sum)
		} else {
			res.Unchanged = append(res.Unchanged, n.File())
		}
		if _, ok := manifest.Lookup(n.File()); !ok {
			manifest.Entries = append(manifest.Entries, Entry{SHA256: sum, Name: n.File()})
		}
		ix.add(n, size, sum, now())
	}
	manifestData := FormatManifest(manifest.Entries)
	if err := WriteAtomic(filepath.Join(abs, ManifestName), manifestData, 0o644); err != nil {
		return nil, err
	}
	if len(opt.SignKey) > 0 {
		sig, err := pgpsign.Sign(opt.SignKey, bytes.NewReader(manifestData))
		if err != nil {
			return nil, err
		}
		if err := WriteAtomic(filepath.Join(abs, SignatureName), sig, 0o644); err != nil {
			return nil, err
		}
		res.Signed = true
	} else if _, err := os.Stat(filepath.Join(abs, SignatureName)); err == nil {
		// A stale signature would make every client reject the new list.
		if err := os.Remove(filepath.Join(abs, SignatureName)); err != nil {
			return nil, err
		}
		log.Warn("repository was signed before; SHA256SUMS.gpg removed because no --sign-key was given")
	}
	transfers := map[string][]string{}
	for _, e := range ix.Extensions {
		for _, spec := range transferSpecs(e, url, opt.InstancesMax, res.Signed) {
			file := spec.ID() + ".transfer"
			data := TransferFile(spec)
			if old, err := os.ReadFile(filepath.Join(abs, file)); err != nil || !bytes.Equal(old, data) {
				if err := WriteAtomic(filepath.Join(abs, file), data, 0o644); err != nil {
					return nil, err
				}
				res.Transfers = append(res.Transfers, file)
			}
			transfers[e.Name] = append(transfers[e.Name], file)
		}
	}
	ix.Signed = res.Signed
	ix.Updated = now().UTC().Truncate(time.Second)
	ix.normalize(transfers)
	if err := WriteAtomic(filepath.Join(abs, IndexName), ix.Marshal(), 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

// placeImage copies src to dest (hashing in the same pass) unless dest
// already holds the same bytes. It returns the hash, the size and whether
// the image was added.
func placeImage(src, dest string, m *Manifest) (string, int64, bool, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", 0, false, fmt.Errorf("open image: %w", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return "", 0, false, err
	}
	if !fi.Mode().IsRegular() {
		return "", 0, false, fmt.Errorf("%s is not a regular file", src)
	}
	if dfi, err := os.Stat(dest); err == nil {
		if os.SameFile(fi, dfi) {
			// Publishing in place: hash once (or trust the manifest).
			if sum, ok := m.Lookup(filepath.Base(dest)); ok {
				return sum, fi.Size(), false, nil
			}
			sum, err := hashFile(in)
			return sum, fi.Size(), true, err
		}
		srcSum, err := hashFile(in)
		if err != nil {
			return "", 0, false, err
		}
		destSum, ok := m.Lookup(filepath.Base(dest))
		if !ok {
			if destSum, err = hashPath(dest); err != nil {
				return "", 0, false, err
			}
		}
		if srcSum != destSum {
			return "", 0, false, &ConflictError{File: filepath.Base(dest)}
		}
		return srcSum, fi.Size(), false, nil
	}
	tmp := filepath.Join(filepath.Dir(dest), ".#"+filepath.Base(dest)+"."+strconv.FormatInt(time.Now().UnixNano(), 36))
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", 0, false, err
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(out, h), in, make([]byte, 1<<20))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(tmp, fi.ModTime(), fi.ModTime())
	}
	if err == nil {
		err = os.Link(tmp, dest) // fails if dest appeared meanwhile: never overwrite
	}
	os.Remove(tmp)
	if err != nil {
		return "", 0, false, fmt.Errorf("copy %s into the repository: %w", src, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(dest)); err != nil {
		return "", 0, false, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, true, nil
}

func hashFile(f *os.File) (string, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashPath(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return hashFile(f)
}

// WriteAtomic replaces path with data (atomicfile.Write).
func WriteAtomic(path string, data []byte, mode fs.FileMode) error {
	return atomicfile.Write(path, data, mode)
}

// checkPrefixes refuses extension names where one is the other plus "-"
// and more: the pattern NAME-@v-%a.raw of the shorter would also match
// the longer one's files (systemd-sysupdate would "update" docker to
// docker-compose).
func checkPrefixes(ix *Index, add []ImageName) error {
	all := map[string]bool{}
	for _, e := range ix.Extensions {
		all[e.Name] = true
	}
	for _, n := range add {
		all[n.Name] = true
	}
	for a := range all {
		for b := range all {
			if a != b && strings.HasPrefix(b, a+"-") {
				return fmt.Errorf("extension names %q and %q clash in one repository: the pattern %s-@v-%%a.raw would also match %s's images; rename one (for example %q)", a, b, a, b, strings.Replace(b, a+"-", a+"_", 1))
			}
		}
	}
	return nil
}
