// Package sysupdate reads systemd-sysupdate's transfer and feature
// definitions and carries them out: it lists the versions a source offers
// and a target holds, decides the update sets (pure: Plan, VacuumPlan),
// downloads and verifies a new version, installs it atomically
// (partial → pending → final names, fsync, rename, CurrentSymlink swapped
// by rename) and vacuums old instances. It is compatible with systemd's
// files and on-disk names and adds HTTP Range resume of interrupted
// downloads.
package sysupdate

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stratalinux/strata/internal/archive"
	"github.com/stratalinux/strata/internal/download"
	"github.com/stratalinux/strata/internal/rootfs"
	"github.com/stratalinux/strata/internal/version"
	"github.com/ulikunitz/xz"
)

// Engine carries out sysupdate verbs for one set of definitions.
type Engine struct {
	Root string // "/" unless --root
	Defs *Definitions
	// Client downloads; nil means defaults.
	Client *download.Client
	// Verify overrides every transfer's Verify= (--verify=).
	Verify *bool
	// Keyring, when set, replaces the keyring files.
	Keyring []byte
	// CheckFreshness honours BEST-BEFORE entries (on unless
	// SYSTEMD_SYSUPDATE_VERIFY_FRESHNESS=0).
	CheckFreshness bool
	// Offline: never contact sources (list, update of pending versions).
	Offline bool
	// InstancesMax overrides every transfer's InstancesMax= (-m).
	InstancesMax int
	// MaxSize bounds one downloaded payload (0: unlimited).
	MaxSize  int64
	Log      *slog.Logger
	Now      func() time.Time
	Progress func(name string) func(done, total int64)
	// Step is called at every point where the updater changes the disk
	// (and after every downloaded chunk): the deterministic kill points
	// of the fault-injection test.
	Step func(label string)
	// ChunkSize is the download write unit (0: the default 256 KiB).
	ChunkSize int

	// MaxUnpackRatio bounds a url-tar's expansion (0: archive.DefaultRatio).
	MaxUnpackRatio int64

	cache manifestCache
	sizes sizeCache
}

func (e *Engine) log() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

func (e *Engine) root() string { return rootfs.Clean(e.Root) }

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) client() *download.Client {
	if e.Client == nil {
		e.Client = &download.Client{}
	}
	return e.Client
}

func (e *Engine) step(label string) {
	if e.Step != nil {
		e.Step(label)
	}
}

func (e *Engine) max(t *Transfer) int {
	if e.InstancesMax > 0 {
		return e.InstancesMax
	}
	return t.Max()
}

// ErrNoEnabled is returned when no enabled transfer exists.
var ErrNoEnabled = errors.New("no enabled transfer definitions found")

// States lists sources (unless offline) and targets of every enabled
// transfer.
func (e *Engine) States(ctx context.Context) ([]TransferState, error) {
	ts := e.Defs.EnabledTransfers()
	if len(ts) == 0 {
		return nil, ErrNoEnabled
	}
	out := make([]TransferState, 0, len(ts))
	for _, t := range ts {
		st := TransferState{T: t}
		var err error
		if !e.Offline {
			if st.Source, err = e.listSource(ctx, t); err != nil {
				return nil, err
			}
		}
		if st.Target, err = e.listTarget(t); err != nil {
			return nil, err
		}
		st.CurrentVersion = e.currentVersion(t)
		out = append(out, st)
	}
	return out, nil
}

// symlinkPath is the CurrentSymlink as an absolute path inside the root.
func symlinkPath(t *Transfer) string {
	if t.CurrentSymlink == "" {
		return ""
	}
	if path.IsAbs(t.CurrentSymlink) {
		return t.CurrentSymlink
	}
	return path.Join(t.Target.Path, t.CurrentSymlink)
}

// currentVersion reads the CurrentSymlink and matches its target against
// the target patterns.
func (e *Engine) currentVersion(t *Transfer) string {
	link := symlinkPath(t)
	if link == "" {
		return ""
	}
	dest, err := os.Readlink(e.hostPath(path.Dir(link)) + "/" + path.Base(link))
	if err != nil {
		return ""
	}
	if !path.IsAbs(dest) {
		dest = path.Join(path.Dir(link), dest)
	}
	rel := strings.TrimPrefix(dest, strings.TrimSuffix(t.Target.Path, "/")+"/")
	if rel == dest {
		return ""
	}
	f, ok := MatchAny(t.Target.Patterns, rel)
	if !ok {
		return ""
	}
	return f.Version
}

// Sets returns the update sets and the states they came from.
func (e *Engine) Sets(ctx context.Context) ([]UpdateSet, []TransferState, error) {
	st, err := e.States(ctx)
	if err != nil {
		return nil, nil, err
	}
	return Plan(st), st, nil
}

// UpdateResult says what Update did.
type UpdateResult struct {
	Version   string   `json:"version"`
	Installed bool     `json:"installed"`         // something new was installed
	Message   string   `json:"message,omitempty"` // why nothing was done, when so
	Links     []string `json:"links,omitempty"`   // CurrentSymlinks updated
}

// NotFoundError is an explicit version that no source or target knows.
type NotFoundError struct{ Version string }

func (e *NotFoundError) Error() string { return fmt.Sprintf("update '%s' not found", e.Version) }

// job is one transfer's share of installing a version.
type job struct {
	t         *Transfer
	src       *Instance
	dir       string // host path of the target directory
	finalName string // relative to the target directory
	final     string // host paths
	partial   string
	pending   string
	dlTemp    string // url-tar download file
	meta      Fields // what the installed instance gets: name, mtime, mode
}

// Update acquires and installs want (or the candidate when empty).
func (e *Engine) Update(ctx context.Context, want string) (*UpdateResult, error) {
	// One update per target at a time; the second one waits and then
	// sees what the first installed.
	unlock, err := e.lockTargets(ctx, e.Defs.EnabledTransfers(), true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Finish a symlink swap an interrupted run had committed to.
	relinked, err := e.finishLinks()
	if err != nil {
		return nil, err
	}
	sets, states, err := e.Sets(ctx)
	if err != nil {
		return nil, err
	}
	if len(relinked) > 0 {
		if set, ok := Find(sets, relinked[0]); ok && set.Complete() && want == "" {
			if _, more := Candidate(sets); !more {
				return &UpdateResult{Version: set.Version, Installed: true, Links: e.links()}, nil
			}
		}
	}
	set, ok, err := e.pick(sets, want)
	if err != nil {
		return nil, err
	}
	if !ok {
		// Report what is installed, so a caller that waited for another
		// run (ext add behind the timer) knows the version it now has.
		res := &UpdateResult{Message: "No update needed."}
		for _, u := range sets {
			if u.Complete() {
				res.Version = u.Version
				break
			}
		}
		return res, nil
	}
	if set.Complete() && !set.Has(Pending) && !set.Has(Partial) {
		return &UpdateResult{Version: set.Version, Message: fmt.Sprintf("Selected update '%s' is already installed. Skipping update.", set.Version)}, nil
	}
	jobs, err := e.jobs(states, set.Version)
	if err != nil {
		return nil, err
	}
	// Make room first (space for one more instance), never touching the
	// version being installed, the current one or protected ones.
	for i, st := range states {
		keep := set.Version
		if err := e.vacuumTransfer(st, e.max(st.T)-1, keep, jobs[i]); err != nil {
			return nil, err
		}
	}
	for _, j := range jobs {
		if err := e.acquire(ctx, j); err != nil {
			return nil, err
		}
	}
	res := &UpdateResult{Version: set.Version, Installed: true}
	// Commit to the symlink swap before the first final rename, so that a
	// run killed in between finishes it (finishLinks).
	for _, j := range jobs {
		if symlinkPath(j.t) == "" {
			continue
		}
		if err := os.WriteFile(linkMarker(j.final), nil, 0o644); err != nil {
			return nil, err
		}
		if err := syncDir(filepath.Dir(j.final)); err != nil {
			return nil, err
		}
		e.step("marker")
	}
	for _, j := range jobs {
		if _, err := os.Lstat(j.pending); err == nil {
			if err := renameSync(j.pending, j.final); err != nil {
				return nil, fmt.Errorf("install %s: %w", j.final, err)
			}
			e.step("install")
		}
	}
	for _, j := range jobs {
		if link, err := e.linkCurrent(j); err != nil {
			return nil, err
		} else if link != "" {
			res.Links = append(res.Links, link)
		}
		if symlinkPath(j.t) != "" {
			if err := os.Remove(linkMarker(j.final)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		}
	}
	// systemd vacuums to InstancesMax-1 before downloading, removing the
	// current instance if it is the oldest unprotected one; Strata keeps
	// the current one until its successor is in place, then trims to
	// InstancesMax: the same instances remain, and a failed download
	// never leaves the symlink dangling.
	for _, j := range jobs {
		target, err := e.listTarget(j.t)
		if err != nil {
			return nil, err
		}
		st := TransferState{T: j.t, Target: target, CurrentVersion: e.currentVersion(j.t)}
		if err := e.vacuumTransfer(st, e.max(j.t), set.Version, j); err != nil {
			return nil, err
		}
	}
	e.log().Info(fmt.Sprintf("Successfully installed update '%s'.", set.Version))
	return res, nil
}

func (e *Engine) pick(sets []UpdateSet, want string) (UpdateSet, bool, error) {
	if want != "" {
		set, ok := Find(sets, want)
		if !ok {
			return UpdateSet{}, false, &NotFoundError{Version: want}
		}
		if set.Has(Obsolete) {
			return UpdateSet{}, false, fmt.Errorf("update '%s' is older than MinVersion=, refusing", want)
		}
		if !set.Has(Available) && !set.Has(Pending) && !set.Complete() {
			return UpdateSet{}, false, fmt.Errorf("update '%s' is not available from every source", want)
		}
		return set, true, nil
	}
	if e.Offline {
		for _, u := range sets {
			if u.Has(Pending) && !u.Has(Obsolete) {
				return u, true, nil
			}
			if u.Current {
				break
			}
		}
		return UpdateSet{}, false, nil
	}
	set, ok := Candidate(sets)
	return set, ok, nil
}

// jobs computes every transfer's source instance and target names before
// anything is touched, so a bad pattern fails early.
func (e *Engine) jobs(states []TransferState, v string) ([]job, error) {
	var out []job
	for _, st := range states {
		t := st.T
		j := job{t: t, dir: e.hostPath(t.Target.Path)}
		for i := range st.Source {
			if st.Source[i].Version == v {
				j.src = &st.Source[i]
				break
			}
		}
		fields := Fields{Version: v}
		if j.src != nil {
			fields = j.src.Fields
			if fields.SHA256 == "" {
				fields.SHA256 = j.src.SHA256
			}
			local := !t.Source.Type.Remote()
			if fields.Size == nil && j.src.Size >= 0 && local {
				sz := uint64(j.src.Size)
				fields.Size = &sz
			}
			// Local instances inherit mtime and mode from the file
			// system unless their name carries them (@t, @m); a tar
			// keeps what it holds (systemd's compile_pattern_fields).
			tar := t.Source.Type == Tar || t.Source.Type == URLTar
			if fields.Mtime == nil && local && !j.src.Mtime.IsZero() {
				us := uint64(j.src.Mtime.UnixMicro())
				fields.Mtime = &us
			}
			if fields.Mode == nil && local && j.src.Mode != 0 {
				m := uint32(j.src.Mode.Perm() & 0o775)
				fields.Mode = &m
			}
			if tar {
				fields.Mtime, fields.Mode = nil, nil
			}
		}
		if t.Mode != nil {
			fields.Mode = t.Mode
		}
		if t.ReadOnly != nil {
			fields.ReadOnly = t.ReadOnly
		}
		if t.TriesLeft != nil {
			fields.TriesLeft = t.TriesLeft
		}
		if t.TriesDone != nil {
			fields.TriesDone = t.TriesDone
		}
		if t.PartitionNoAuto != nil {
			fields.NoAuto = t.PartitionNoAuto
		}
		if t.PartitionGrowFileSystem != nil {
			fields.GrowFS = t.PartitionGrowFileSystem
		}
		j.meta = fields
		// An instance already on disk keeps its name.
		for _, i := range st.Target {
			if i.Version == v && (i.State == Final || i.State == PendingState) {
				j.finalName = i.Name
				break
			}
		}
		if j.finalName == "" {
			if j.src == nil {
				return nil, fmt.Errorf("transfer %s: version %s is not offered by the source %s", t.ID, v, t.Source.Path)
			}
			name, err := t.Target.Patterns[0].Format(fields)
			if err != nil {
				return nil, fmt.Errorf("transfer %s: %w", t.ID, err)
			}
			if strings.Contains("/"+name+"/", "/../") || strings.HasPrefix(name, "/") {
				return nil, fmt.Errorf("transfer %s: target name %q escapes %s", t.ID, name, t.Target.Path)
			}
			j.finalName = name
		}
		j.final = filepath.Join(j.dir, j.finalName)
		d, b := filepath.Split(j.final)
		j.partial = filepath.Join(d, partialPrefix+b)
		j.pending = filepath.Join(d, pendingPrefix+b)
		j.dlTemp = filepath.Join(d, tempPrefix+"strata-dl."+b)
		out = append(out, j)
	}
	return out, nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// acquire brings one transfer's instance to the pending name: downloaded
// (resumed), verified, fsynced.
func (e *Engine) acquire(ctx context.Context, j job) error {
	if exists(j.final) || exists(j.pending) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(j.final), 0o755); err != nil {
		return fmt.Errorf("transfer %s: create %s: %w", j.t.ID, filepath.Dir(j.final), err)
	}
	var err error
	switch j.t.Source.Type {
	case URLFile:
		err = e.acquireURLFile(ctx, j)
	case RegularFile:
		err = e.acquireLocalFile(j)
	case URLTar, Tar:
		err = e.acquireTar(ctx, j)
	case Directory:
		err = e.acquireDir(j)
	default:
		err = fmt.Errorf("source type %s is not supported", j.t.Source.Type)
	}
	if err != nil {
		return fmt.Errorf("transfer %s: %w", j.t.ID, err)
	}
	if err := e.applyMeta(j); err != nil {
		return fmt.Errorf("transfer %s: %w", j.t.ID, err)
	}
	if err := renameSync(j.partial, j.pending); err != nil {
		return fmt.Errorf("transfer %s: %w", j.t.ID, err)
	}
	e.step("pending")
	return nil
}

// fileMode is the installed file's mode: Mode=, else @m of the source's
// name, else the local source's mode; ReadOnly= (or @r) strips the write
// bits.
func (e *Engine) fileMode(j job) fs.FileMode {
	mode := fs.FileMode(0o644)
	if j.meta.Mode != nil {
		mode = fs.FileMode(*j.meta.Mode)
	}
	if j.meta.ReadOnly != nil && *j.meta.ReadOnly {
		mode &^= 0o222
	}
	return mode
}

// applyMeta gives the acquired instance what systemd applies before it
// becomes pending: the mtime (@t of the source's name, else a local
// source's) and, for directories, the mode; files got theirs when
// written. Then it is made durable.
func (e *Engine) applyMeta(j job) error {
	fi, err := os.Lstat(j.partial)
	if err != nil {
		return err
	}
	if fi.IsDir() && j.meta.Mode != nil {
		if err := os.Chmod(j.partial, e.fileMode(j)); err != nil {
			return err
		}
	}
	if j.meta.Mtime != nil {
		mt := time.UnixMicro(int64(*j.meta.Mtime))
		if err := os.Chtimes(j.partial, mt, mt); err != nil {
			return fmt.Errorf("set mtime of %s: %w", j.partial, err)
		}
	}
	if fi.IsDir() {
		return syncTree(j.partial)
	}
	f, err := os.Open(j.partial)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func (e *Engine) progress(name string) func(done, total int64) {
	if e.Progress == nil {
		return nil
	}
	return e.Progress(name)
}

func (e *Engine) acquireURLFile(ctx context.Context, j job) error {
	if compressedName(j.src.Name) {
		return e.acquireCompressed(ctx, j)
	}
	f, err := os.OpenFile(j.partial, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	e.step("partial-open")
	_, err = e.client().Resume(ctx, j.src.Path, f, j.src.SHA256, download.Options{MaxSize: e.MaxSize, Size: max(j.src.Size, 0), Progress: e.progress(j.src.Name), Step: e.Step, ChunkSize: e.ChunkSize})
	if err != nil {
		f.Close()
		var mm *download.MismatchError
		var tl *download.TooLargeError
		if errors.As(err, &mm) || errors.As(err, &tl) || errors.Is(err, syscall.ENOSPC) {
			// Nothing worth resuming; on a full disk, give the space back.
			os.Remove(j.partial)
		}
		return err
	}
	e.step("verified")
	if err := f.Chmod(e.fileMode(j)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return nil
}

// compressedName says a url-file payload is compressed: like
// systemd-pull, Strata stores it decompressed (the manifest hash is over
// the compressed bytes).
func compressedName(name string) bool {
	for _, s := range []string{".gz", ".xz", ".zst", ".bz2"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// acquireCompressed downloads (resumably) to a temporary file, verifies
// it, and decompresses it into the partial file.
func (e *Engine) acquireCompressed(ctx context.Context, j job) error {
	f, err := os.OpenFile(j.dlTemp, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = e.client().Resume(ctx, j.src.Path, f, j.src.SHA256, download.Options{MaxSize: e.MaxSize, Size: max(j.src.Size, 0), Progress: e.progress(j.src.Name), Step: e.Step, ChunkSize: e.ChunkSize})
	if err != nil {
		f.Close()
		var mm *download.MismatchError
		var tl *download.TooLargeError
		if errors.As(err, &mm) || errors.As(err, &tl) || errors.Is(err, syscall.ENOSPC) {
			os.Remove(j.dlTemp)
		}
		return err
	}
	e.step("verified")
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	defer f.Close()
	r, err := decompressor(bufio.NewReader(f), j.src.Name)
	if err != nil {
		return fmt.Errorf("%s: %w", j.src.Name, err)
	}
	out, err := os.OpenFile(j.partial, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		os.Remove(j.partial)
		return fmt.Errorf("decompress %s: %w", j.src.Name, err)
	}
	if err := out.Chmod(e.fileMode(j)); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	e.step("decompressed")
	os.Remove(j.dlTemp)
	return nil
}

func decompressor(br *bufio.Reader, name string) (io.Reader, error) {
	switch {
	case strings.HasSuffix(name, ".gz"):
		return gzip.NewReader(br)
	case strings.HasSuffix(name, ".xz"):
		return xz.NewReader(br)
	case strings.HasSuffix(name, ".zst"):
		d, err := zstd.NewReader(br, zstd.WithDecoderMaxMemory(1<<30), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case strings.HasSuffix(name, ".bz2"):
		return bzip2.NewReader(br), nil
	}
	return br, nil
}

func (e *Engine) acquireLocalFile(j job) error {
	os.Remove(j.partial)
	if err := copyFile(j.src.Path, j.partial, 0o600); err != nil {
		return err
	}
	if err := os.Chmod(j.partial, e.fileMode(j)); err != nil {
		return err
	}
	e.step("copied")
	return nil // applyMeta sets the mtime and fsyncs
}

func (e *Engine) acquireTar(ctx context.Context, j job) error {
	src := j.src.Path
	if j.t.Source.Type == URLTar {
		f, err := os.OpenFile(j.dlTemp, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		_, err = e.client().Resume(ctx, j.src.Path, f, j.src.SHA256, download.Options{MaxSize: e.MaxSize, Size: max(j.src.Size, 0), Progress: e.progress(j.src.Name), Step: e.Step, ChunkSize: e.ChunkSize})
		f.Close()
		if err != nil {
			var mm *download.MismatchError
			var tl *download.TooLargeError
			if errors.As(err, &mm) || errors.As(err, &tl) {
				os.Remove(j.dlTemp)
			}
			return err
		}
		src = j.dlTemp
		e.step("verified")
	}
	if err := os.RemoveAll(j.partial); err != nil {
		return err
	}
	if err := os.Mkdir(j.partial, 0o755); err != nil {
		return err
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	typ, err := tarType(br)
	if err != nil {
		return fmt.Errorf("%s: %w", j.src.Name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	lim := archive.DefaultLimits
	if e.MaxUnpackRatio != 0 {
		lim.MaxRatio = e.MaxUnpackRatio
	}
	if err := archive.ExtractTar(ctx, br, typ, j.partial, archive.Options{Limits: lim, InputSize: fi.Size(), Hint: "raise --max-unpack-ratio if the archive is genuine"}); err != nil {
		// A bomb's partial tree may be large: give the space back.
		os.RemoveAll(j.partial)
		if j.t.Source.Type == URLTar {
			os.Remove(j.dlTemp)
		}
		return fmt.Errorf("unpack %s: %w", j.src.Name, err)
	}
	if err := syncTree(j.partial); err != nil {
		return err
	}
	e.step("unpacked")
	if j.t.Source.Type == URLTar {
		os.Remove(j.dlTemp)
	}
	return nil
}

// tarType recognises the compression by its magic bytes.
func tarType(br *bufio.Reader) (string, error) {
	head, _ := br.Peek(6)
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return "tar.gz", nil
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return "tar.xz", nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "tar.zst", nil
	case len(head) == 0:
		return "", io.ErrUnexpectedEOF
	}
	return "tar", nil
}

func (e *Engine) acquireDir(j job) error {
	if err := os.RemoveAll(j.partial); err != nil {
		return err
	}
	if err := copyTree(j.src.Path, j.partial); err != nil {
		return fmt.Errorf("copy %s: %w", j.src.Path, err)
	}
	if err := syncTree(j.partial); err != nil {
		return err
	}
	e.step("copied")
	return nil
}

// linkMarkerPrefix names the marker an install leaves while it swaps the
// CurrentSymlink: ".#strata-link.FINAL".
const linkMarkerPrefix = tempPrefix + "strata-link."

func linkMarker(final string) string {
	return filepath.Join(filepath.Dir(final), linkMarkerPrefix+filepath.Base(final))
}

// finishLinks completes symlink swaps of interrupted installs: for every
// marker whose final instance exists, point the CurrentSymlink at it.
// It returns the versions relinked.
func (e *Engine) finishLinks() ([]string, error) {
	var done []string
	for _, t := range e.Defs.EnabledTransfers() {
		if symlinkPath(t) == "" {
			continue
		}
		target, err := e.listTarget(t)
		if err != nil {
			return nil, err
		}
		for _, i := range target {
			if i.State != Final {
				continue
			}
			marker := linkMarker(i.Path)
			if !exists(marker) {
				continue
			}
			j := job{t: t, finalName: i.Name, final: i.Path}
			if _, err := e.linkCurrent(j); err != nil {
				return nil, err
			}
			if err := os.Remove(marker); err != nil {
				return nil, err
			}
			e.log().Info(fmt.Sprintf("Finished installing '%s' (interrupted before its symlink was updated).", i.Version))
			done = append(done, i.Version)
		}
	}
	return done, nil
}

func (e *Engine) links() []string {
	var out []string
	for _, t := range e.Defs.EnabledTransfers() {
		if l := symlinkPath(t); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// linkCurrent points the CurrentSymlink at the installed instance.
func (e *Engine) linkCurrent(j job) (string, error) {
	link := symlinkPath(j.t)
	if link == "" {
		return "", nil
	}
	targetInRoot := path.Join(j.t.Target.Path, filepath.ToSlash(j.finalName))
	rel, err := filepath.Rel(path.Dir(link), targetInRoot)
	if err != nil {
		return "", err
	}
	host := filepath.Join(e.hostPath(path.Dir(link)), path.Base(link))
	if cur, err := os.Readlink(host); err == nil && cur == rel {
		return "", nil
	}
	e.step("symlink")
	if err := replaceSymlink(rel, host); err != nil {
		return "", fmt.Errorf("transfer %s: update %s: %w", j.t.ID, link, err)
	}
	e.step("symlinked")
	return link, nil
}

// VacuumResult counts what Vacuum removed, as systemd-sysupdate reports
// it: the most instances one enabled transfer lost, and how many disabled
// transfers had instances removed.
type VacuumResult struct {
	Removed           int `json:"removed"`
	DisabledTransfers int `json:"disabledTransfers"`
}

// Vacuum removes instances beyond InstancesMax, leftovers of interrupted
// installs, and everything of disabled transfers; the current and
// protected versions always stay.
func (e *Engine) Vacuum(ctx context.Context) (VacuumResult, error) {
	var res VacuumResult
	unlock, err := e.lockTargets(ctx, e.Defs.Transfers, false)
	if err != nil {
		return res, err
	}
	defer unlock()
	for _, t := range e.Defs.Transfers {
		target, err := e.listTarget(t)
		if err != nil {
			return res, err
		}
		st := TransferState{T: t, Target: target, CurrentVersion: e.currentVersion(t)}
		limit := e.max(t)
		disabled := !e.Defs.Enabled(t)
		if disabled {
			// A disabled transfer owns no instances: all go.
			limit = -1
		}
		before := len(target)
		if err := e.vacuumTransfer(st, limit, "", job{}); err != nil {
			return res, err
		}
		after, err := e.listTarget(t)
		if err != nil {
			return res, err
		}
		// systemd counts like this: instances as the most any enabled
		// transfer removed (transfers move in lockstep), disabled
		// transfers that had something to remove.
		switch n := before - len(after); {
		case disabled && n > 0:
			res.DisabledTransfers++
		case !disabled:
			res.Removed = max(res.Removed, n)
		}
	}
	return res, ctx.Err()
}

// vacuumTransfer removes temporaries and the instances VacuumPlan picks.
func (e *Engine) vacuumTransfer(st TransferState, limit int, keep string, j job) error {
	t := st.T
	dir := e.hostPath(t.Target.Path)
	if t.RemoveTemporary {
		if err := e.removeTemporaries(dir, j); err != nil {
			return err
		}
	}
	protect := slices.Clone(t.ProtectVersions)
	if limit < 0 {
		protect = nil
	} else if st.CurrentVersion != "" {
		protect = append(protect, st.CurrentVersion)
	} else {
		// Without a symlink the newest installed version is current.
		for _, i := range st.Target {
			if i.State == Final {
				protect = append(protect, i.Version)
				break
			}
		}
	}
	if limit < 0 {
		limit = 0
	}
	for _, i := range VacuumPlan(st.Target, limit, keep, protect) {
		kind := "old"
		switch i.State {
		case PartialState:
			kind = "old partial"
		case PendingState:
			kind = "old pending"
		}
		e.log().Info(fmt.Sprintf("Removing %s '%s'.", kind, i.Path))
		if err := removeInstance(i.Path); err != nil {
			return fmt.Errorf("transfer %s: remove %s: %w", t.ID, i.Path, err)
		}
		e.step("vacuum")
		removeEmptyParents(filepath.Dir(i.Path), dir)
	}
	return nil
}

// removeTemporaries deletes ".#*" leftovers in the target directory, except
// the download this job is resuming.
func (e *Engine) removeTemporaries(dir string, j job) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, de := range entries {
		p := filepath.Join(dir, de.Name())
		if !strings.HasPrefix(de.Name(), tempPrefix) || p == j.dlTemp {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		e.step("vacuum-temp")
	}
	return nil
}

// removeInstance deletes a file, or a directory by first renaming it
// aside so that an interrupted removal never leaves a half-deleted
// instance under a matching name.
func removeInstance(p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if !fi.IsDir() {
		if err := os.Remove(p); err != nil {
			return err
		}
		return syncDir(filepath.Dir(p))
	}
	aside := filepath.Join(filepath.Dir(p), tempPrefix+"strata-rm."+filepath.Base(p))
	if err := renameSync(p, aside); err != nil {
		return err
	}
	return os.RemoveAll(aside)
}

func removeEmptyParents(dir, stop string) {
	for dir != stop && strings.HasPrefix(dir, stop+"/") {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// NewestInstalled returns the newest completely installed version.
func NewestInstalled(sets []UpdateSet) string {
	for _, u := range sets {
		if u.Complete() {
			return u.Version
		}
	}
	return ""
}

// RebootPending reports whether the newest installed version is newer
// than the booted one (IMAGE_VERSION).
func RebootPending(sets []UpdateSet, booted string) bool {
	n := NewestInstalled(sets)
	return n != "" && (booted == "" || version.Compare(n, booted) > 0)
}
