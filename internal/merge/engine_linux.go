package merge

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stratalinux/strata/internal/ddi"
	"github.com/stratalinux/strata/internal/fsread"
	"github.com/stratalinux/strata/internal/image"
	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/imagepolicy"
	"github.com/stratalinux/strata/internal/osrelease"
	"github.com/stratalinux/strata/internal/rootfs"
	"github.com/stratalinux/strata/internal/sdparse"
	"golang.org/x/sys/unix"
)

// moveMountBeneath is MOVE_MOUNT_BENEATH (Linux 6.5), missing from x/sys.
const moveMountBeneath = 0x00000200

// Engine merges, refreshes and unmerges the extensions of one class.
type Engine struct {
	Class       imageclass.Class
	Root        string   // "/" unless --root
	Hierarchies []string // e.g. /usr, /opt
	Mode        Mode
	Force       bool
	Noexec      *bool
	// OverlayOptions is the value of SYSTEMD_*_OVERLAYFS_MOUNT_OPTIONS
	// when set.
	OverlayOptions *string
	// OSRelease overrides the host os-release path inside the root
	// (SYSTEMD_OS_RELEASE).
	OSRelease     string
	AlwaysRefresh bool
	Policy        imagepolicy.Policy
	Arch          string
	Log           *slog.Logger
	// StagingParent is where the private staging directory is made;
	// default StagingDir inside the root.
	StagingParent string
	// Images, when not nil, replaces discovery: exactly these images are
	// considered (strata test).
	Images []image.Image
	// Host, when not nil, replaces the host's os-release.
	Host *osrelease.Host
	// Stack merges on top of whatever the hierarchies show now, even a
	// merge of ours, without replacing it (strata test, in a private
	// namespace). It takes no lock: nothing it mounts is shared.
	Stack bool

	// trustedCerts caches the root's verity.d certificates (trusted).
	trustedCerts []*x509.Certificate
	trustedRead  bool

	// staged, when set (tests), is called once the images are mounted
	// in the staging directory, before any overlay is built.
	staged func(staging string)
}

// Result says what a merge or refresh did.
type Result struct {
	Plan      Plan
	Verdicts  []Verdict
	Skipped   bool     // refresh found nothing changed
	Unmerged  []string // hierarchies whose merge was removed
	NothingUp bool     // no extension applied
}

// ErrAlreadyMerged is returned by Merge when a hierarchy already carries a
// merge of ours.
var ErrAlreadyMerged = errors.New("already merged")

// AlreadyMergedError names the hierarchy that is merged already, in
// systemd's words.
type AlreadyMergedError struct{ Hierarchy string }

func (e *AlreadyMergedError) Error() string {
	return fmt.Sprintf("Hierarchy '%s' is already merged. (Use refresh to replace the merge.)", e.Hierarchy)
}

func (e *AlreadyMergedError) Is(target error) bool { return target == ErrAlreadyMerged }

func (e *Engine) log() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

// trusted returns the certificates that may sign root hashes: systemd's
// verity.d directories under the root. Unreadable files are logged and
// skipped, as systemd skips them.
func (e *Engine) trusted() []*x509.Certificate {
	if !e.trustedRead {
		e.trustedRead = true
		certs, skipped, err := ddi.TrustedCertificates(e.Root)
		if err != nil && e.Log != nil {
			e.Log.Warn("read trusted verity certificates", "err", err)
		}
		for _, s := range skipped {
			if e.Log != nil {
				e.Log.Warn("skipped a verity.d certificate", "file", s)
			}
		}
		e.trustedCerts = ddi.Certs(certs)
	}
	return e.trustedCerts
}

func (e *Engine) arch() string {
	if e.Arch == "" {
		return sdparse.NativeArchitecture()
	}
	return e.Arch
}

// HostRelease reads the host's os-release inside the root:
// $SYSTEMD_OS_RELEASE, else /etc/os-release, else /usr/lib/os-release.
func (e *Engine) HostRelease() (osrelease.Host, error) {
	if e.Host != nil {
		return *e.Host, nil
	}
	paths := []string{"/etc/os-release", "/usr/lib/os-release"}
	if e.OSRelease != "" {
		paths = []string{e.OSRelease}
	}
	var lastErr error
	for _, p := range paths {
		data, err := rootfs.ReadFile(e.Root, p, 1<<20)
		if err != nil {
			lastErr = err
			continue
		}
		rel, _, err := osrelease.Parse(strings.NewReader(string(data)))
		if err != nil {
			return osrelease.Host{}, fmt.Errorf("parse %s of OS tree %s: %w", p, rootfs.Clean(e.Root), err)
		}
		if rel["ID"] == "" {
			return osrelease.Host{}, fmt.Errorf("'ID' field not found or empty in 'os-release' data of OS tree '%s'", rootfs.Clean(e.Root))
		}
		scope := "system"
		if image.InInitrd(e.Root) {
			scope = "initrd"
		}
		return osrelease.Host{Release: rel, Scope: scope, Architecture: e.arch()}, nil
	}
	return osrelease.Host{}, fmt.Errorf("failed to acquire 'os-release' data of OS tree '%s': %w", rootfs.Clean(e.Root), lastErr)
}

// Discover lists the images of the engine's class.
func (e *Engine) Discover() (image.Discovery, error) {
	if e.Images != nil {
		return image.Discovery{Images: e.Images}, nil
	}
	return image.Discover(e.Root, e.Class, image.InInitrd(e.Root), e.arch())
}

// Status reads the merge state of every hierarchy that exists.
func (e *Engine) Status() ([]MergedState, error) {
	var out []MergedState
	hs := append([]string(nil), e.Hierarchies...)
	sort.Strings(hs)
	for _, h := range hs {
		target := rootfs.Join(e.Root, h)
		if _, err := os.Lstat(target); err != nil {
			continue
		}
		st, err := ReadState(e.Class, h, target)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Merge merges all applicable extensions. It fails if a hierarchy is
// already merged.
func (e *Engine) Merge(ctx context.Context) (Result, error) {
	return e.apply(ctx, false)
}

// Refresh replaces the current merge with one of the current images
// without a moment in which the hierarchies lack their extensions, or
// unmerges when no image applies any more.
func (e *Engine) Refresh(ctx context.Context) (Result, error) {
	return e.apply(ctx, true)
}

type preparedTree struct {
	hp HierarchyPlan
	fd int
}

func (e *Engine) apply(ctx context.Context, refresh bool) (Result, error) {
	var res Result
	if err := requirePrivilege(); err != nil {
		return res, err
	}
	if !e.Stack {
		unlock, err := e.lock(ctx)
		if err != nil {
			return res, err
		}
		defer unlock()
	}
	host, err := e.HostRelease()
	if err != nil {
		return res, err
	}
	disc, err := e.Discover()
	if err != nil {
		return res, err
	}
	before := map[string]MergedState{}
	for _, h := range e.Hierarchies {
		if e.Stack {
			break
		}
		st, err := ReadState(e.Class, h, rootfs.Join(e.Root, h))
		if err != nil {
			return res, err
		}
		if st.Ours && !refresh {
			return res, &AlreadyMergedError{Hierarchy: h}
		}
		before[h] = st
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}

	staging, cleanup, err := e.makeStaging()
	if err != nil {
		return res, err
	}
	defer cleanup()

	type outcome struct {
		trees    []preparedTree
		plan     Plan
		verdicts []Verdict
		err      error
	}
	done := make(chan outcome, 1)
	go func() {
		// The work happens on a thread of its own with a private mount
		// namespace: image mounts, meta layers and overlays built there
		// never show in the host's mount table. Only the finished
		// overlays come back, as detached mount trees. The thread is
		// discarded afterwards (it stays locked), which ends the
		// namespace.
		runtime.LockOSThread()
		trees, plan, verdicts, err := e.prepare(staging, host, disc, before, refresh)
		done <- outcome{trees, plan, verdicts, err}
	}()
	out := <-done
	res.Plan, res.Verdicts = out.plan, out.verdicts
	if out.err != nil {
		closeTrees(out.trees)
		return res, out.err
	}
	defer closeTrees(out.trees)

	if len(res.Plan.Extensions) > 0 {
		e.log().Info(fmt.Sprintf("Using extensions %s.", quoteList(usedFileNames(res.Plan.Extensions, disc))))
	} else if !res.Plan.Empty() {
		e.log().Info("No extensions found, proceeding in mutable mode.")
	} else {
		res.NothingUp = true
		ignored := 0
		for _, v := range res.Verdicts {
			if !v.Use {
				ignored++
			}
		}
		if ignored > 0 {
			e.log().Info(fmt.Sprintf("No suitable extensions found (%d ignored due to incompatible image(s)).", ignored))
		} else {
			e.log().Info("No extensions found.")
		}
	}

	if refresh && !e.AlwaysRefresh && !res.Plan.Empty() && e.unchanged(res.Plan, before) {
		e.log().Info("Skipping extension refresh because no change was found, use --always-refresh=yes to always do a refresh.")
		res.Skipped = true
		return res, nil
	}

	// Swap in: new trees go beneath the current merge (if any); the old
	// tops are detached only once every new tree is in place.
	// replaced are the hierarchies whose previous merge is still on top
	// (or, where mount-beneath is missing, hidden below the new one).
	type replaced struct {
		hierarchy, target string
		oldBelow          bool
	}
	var stacked []replaced
	var attachedFresh []string
	for _, t := range out.trees {
		target := t.hp.Target
		if before[t.hp.Hierarchy].Ours {
			err := unix.MoveMount(t.fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH|moveMountBeneath)
			if err == nil {
				stacked = append(stacked, replaced{hierarchy: t.hp.Hierarchy, target: target})
				continue
			}
			if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
				e.undoFresh(attachedFresh)
				return res, fmt.Errorf("mount new overlay beneath %s: %w", target, err)
			}
			// Kernels before 6.5 cannot mount beneath: stack on top
			// instead; the hidden old overlay is removed below.
			e.log().Debug("mount beneath unsupported, stacking", "target", target)
		}
		if err := os.MkdirAll(target, 0o755); err != nil {
			e.undoFresh(attachedFresh)
			return res, fmt.Errorf("create hierarchy %s: %w", target, err)
		}
		if err := unix.MoveMount(t.fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			e.undoFresh(attachedFresh)
			return res, fmt.Errorf("mount overlay on %s: %w", target, err)
		}
		if before[t.hp.Hierarchy].Ours {
			stacked = append(stacked, replaced{hierarchy: t.hp.Hierarchy, target: target, oldBelow: true})
		} else {
			attachedFresh = append(attachedFresh, target)
		}
	}
	for _, r := range stacked {
		if r.oldBelow {
			if err := detachBelowTop(r.target); err != nil {
				e.log().Warn("could not remove the previous overlay hidden below the new one", "hierarchy", r.target, "err", err)
			}
			continue
		}
		if err := detachTop(r.target); err != nil {
			return res, fmt.Errorf("detach previous overlay of %s: %w", r.target, err)
		}
		if wd := before[r.hierarchy].WorkDir; wd != "" && !planUsesWorkDir(res.Plan, wd) {
			_ = os.RemoveAll(rootfs.Join(e.Root, wd))
		}
	}
	for _, t := range out.trees {
		e.log().Info(fmt.Sprintf("Merged extensions into '%s'.", t.hp.Target))
	}
	// Hierarchies merged before that the new plan no longer covers.
	for _, h := range e.Hierarchies {
		if !before[h].Ours || planHas(res.Plan, h) {
			continue
		}
		if err := e.unmergeHierarchy(h); err != nil {
			return res, err
		}
		res.Unmerged = append(res.Unmerged, h)
	}
	return res, nil
}

func (e *Engine) undoFresh(targets []string) {
	for _, t := range targets {
		_ = unix.Unmount(t, unix.MNT_DETACH)
	}
}

func planHas(p Plan, h string) bool {
	for _, hp := range p.Hierarchies {
		if hp.Hierarchy == h {
			return true
		}
	}
	return false
}

func planUsesWorkDir(p Plan, wd string) bool {
	for _, hp := range p.Hierarchies {
		if hp.WorkDirMarker == wd {
			return true
		}
	}
	return false
}

// unchanged reports whether every hierarchy of the plan is merged now
// from the same origin, and no other hierarchy is merged.
func (e *Engine) unchanged(p Plan, before map[string]MergedState) bool {
	want := p.Origin.Marshal()
	for _, h := range e.Hierarchies {
		st := before[h]
		if st.Ours != planHas(p, h) {
			return false
		}
		if st.Ours && !SameOrigin(st.Origin, want) {
			return false
		}
	}
	return true
}

func detachTop(target string) error {
	return unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
}

// detachBelowTop removes the overlay hidden under a freshly stacked one
// (kernels without mount-beneath): the new top is cloned aside, both are
// detached, and the clone is attached again.
func detachBelowTop(target string) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, target, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
		return err
	}
	if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
		return err
	}
	return unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH)
}

func closeTrees(ts []preparedTree) {
	for _, t := range ts {
		if t.fd > 0 {
			unix.Close(t.fd)
		}
	}
}

// prepare runs on a locked thread: it enters a private mount namespace,
// mounts the images, decides the plan and builds one detached overlay
// tree per hierarchy.
func (e *Engine) prepare(staging string, host osrelease.Host, disc image.Discovery, before map[string]MergedState, refresh bool) ([]preparedTree, Plan, []Verdict, error) {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return nil, Plan{}, nil, fmt.Errorf("enter private mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return nil, Plan{}, nil, fmt.Errorf("make private mount namespace a slave: %w", err)
	}
	if err := unix.Mount(e.Class.String(), staging, "tmpfs", unix.MS_NODEV|unix.MS_NOSUID, "mode=0700"); err != nil {
		return nil, Plan{}, nil, fmt.Errorf("mount staging tmpfs on %s: %w", staging, err)
	}
	if err := unix.Mount("", staging, "", unix.MS_PRIVATE, ""); err != nil {
		return nil, Plan{}, nil, fmt.Errorf("make staging private: %w", err)
	}
	// Mounts below the hierarchies (a tmpfs on /usr/share/x, a bind
	// mount) are carried into the new overlays: captured now, as they
	// are visible, and attached inside each overlay before it is moved
	// into place, so they never disappear.
	subs := map[string][]submount{}
	for _, h := range e.Hierarchies {
		s, err := captureSubmounts(rootfs.Join(e.Root, h), e.Class.MarkerDir())
		if err != nil {
			return nil, Plan{}, nil, err
		}
		subs[h] = s
	}
	defer func() {
		for _, list := range subs {
			for _, sm := range list {
				unix.Close(sm.fd)
			}
		}
	}()
	// Reveal the host hierarchies below our current merge, in this
	// namespace only.
	for _, h := range e.Hierarchies {
		if e.Stack {
			break
		}
		target := rootfs.Join(e.Root, h)
		for i := 0; i < 16; i++ {
			st, err := ReadState(e.Class, h, target)
			if err != nil || !st.Ours {
				break
			}
			_ = unix.Unmount(filepath.Join(target, e.Class.MarkerDir()), unix.MNT_DETACH)
			if err := unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
				return nil, Plan{}, nil, fmt.Errorf("look below current merge of %s: %w", h, err)
			}
		}
	}

	cands := make([]Candidate, 0, len(disc.Images))
	for _, img := range disc.Images {
		cands = append(cands, e.readMounted(img, staging))
	}
	if e.staged != nil {
		e.staged(staging)
	}
	verdicts := Evaluate(cands, e.Class, host, e.Force)
	var exts []Extension
	for i, v := range verdicts {
		if v.Fatal != nil {
			return nil, Plan{}, verdicts, v.Fatal
		}
		if !v.Use {
			e.log().Debug("ignoring extension", "name", v.Name, "reason", v.Reason)
			continue
		}
		exts = append(exts, extensionOf(cands[i], e.Class))
	}
	hier, err := e.hierarchyStates()
	if err != nil {
		return nil, Plan{}, verdicts, err
	}
	plan, err := MakePlan(Input{
		Class: e.Class, Root: e.Root, Staging: staging, Extensions: exts, Hierarchies: hier,
		Mode: e.Mode, Noexec: e.Noexec, OverlayOptions: e.OverlayOptions,
	})
	if err != nil {
		return nil, Plan{}, verdicts, err
	}
	if refresh && !e.AlwaysRefresh && !plan.Empty() && e.unchanged(plan, before) {
		return nil, plan, verdicts, nil
	}
	var trees []preparedTree
	for _, hp := range plan.Hierarchies {
		fd, err := e.buildOverlay(staging, plan, hp, subs[hp.Hierarchy])
		if err != nil {
			closeTrees(trees)
			return nil, plan, verdicts, err
		}
		trees = append(trees, preparedTree{hp: hp, fd: fd})
	}
	return trees, plan, verdicts, nil
}

// readMounted mounts one image in the staging area and reads what the
// decision needs from it.
func (e *Engine) readMounted(img image.Image, staging string) Candidate {
	c := Candidate{Image: img}
	dir := ExtensionDir(staging, img.Name)
	if err := attachImage(img, dir, e.arch(), e.Policy, e.trusted()); err != nil {
		c.OpenErr = err
		return c
	}
	fillFromTree(&c, image.DirTree{Root: dir}, e.Class, e.Hierarchies)
	return c
}

// fillFromTree reads release data, os-release presence and the provided
// hierarchies from an image's tree.
func fillFromTree(c *Candidate, t fsread.FS, class imageclass.Class, hierarchies []string) {
	c.Release, c.ReleaseErr = image.ReadRelease(t, class, c.Image.Name)
	if errors.Is(c.ReleaseErr, image.ErrNoReleaseData) {
		_, err := image.ReadRelease(t, class.Other(), c.Image.Name)
		c.OtherClassRelease = err == nil
	}
	if _, err := t.Lstat("usr/lib/os-release"); err == nil {
		c.HasOSRelease = true
	}
	for _, h := range hierarchies {
		rel := strings.TrimPrefix(path.Clean(h), "/")
		fi, err := t.Lstat(rel)
		if err != nil || !fi.IsDir() {
			continue
		}
		entries, err := t.ReadDir(rel)
		if err == nil && len(entries) > 0 {
			c.Provides = append(c.Provides, h)
		}
	}
}

func extensionOf(c Candidate, class imageclass.Class) Extension {
	ext := Extension{
		Name: c.Image.Name, Entry: c.Image.Entry, Provides: c.Provides,
		Dev: c.Image.Dev, Ino: c.Image.Ino, Mtime: c.Image.Mtime.UnixMicro(),
	}
	if v, ok := c.Release.Fields["EXTENSION_RELOAD_MANAGER"]; ok {
		b, err := sdparse.Boolean(v)
		ext.Reload = err == nil && b
	}
	return ext
}

// hierarchyStates inspects each hierarchy and its mutable directory.
func (e *Engine) hierarchyStates() ([]Hierarchy, error) {
	var out []Hierarchy
	for _, h := range e.Hierarchies {
		hs := Hierarchy{Path: h, Host: rootfs.Join(e.Root, h), Mode: 0o755}
		if fi, resolved, err := rootfs.Stat(e.Root, h); err == nil && fi.IsDir() {
			hs.Exists, hs.Host, hs.Mode = true, resolved, fi.Mode().Perm()
			hs.Empty = dirEmpty(resolved)
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				hs.Dev = uint64(st.Dev)
			}
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("inspect hierarchy %s: %w", h, err)
		}
		md := MutableDir{Path: rootfs.Join(e.Root, filepath.Join(MutableBase, MutableComponent(h)))}
		if e.Mode != MutableNo {
			if fi, resolved, err := rootfs.Stat(e.Root, filepath.Join(MutableBase, MutableComponent(h))); err == nil && fi.IsDir() {
				md.Resolved, md.Mode = resolved, fi.Mode().Perm()
				md.IsHierarchy = hs.Exists && sameFile(resolved, hs.Host)
				md.ReadOnly = unix.Access(resolved, unix.W_OK) == unix.EROFS
			}
		}
		hs.Mutable = md
		out = append(out, hs)
	}
	return out, nil
}

func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

func dirEmpty(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return true
	}
	defer f.Close()
	names, _ := f.Readdirnames(1)
	return len(names) == 0
}

// buildOverlay mounts the overlay of one hierarchy in the staging area,
// writes its marker files, and returns it as a detached mount tree.
func (e *Engine) buildOverlay(staging string, plan Plan, hp HierarchyPlan, subs []submount) (int, error) {
	marker := filepath.Join(hp.Meta, e.Class.MarkerDir())
	if err := os.MkdirAll(marker, 0o755); err != nil {
		return -1, err
	}
	if err := os.Chmod(marker, 0o755); err != nil {
		return -1, err
	}
	if hp.CreateUpper {
		if err := os.MkdirAll(hp.Upper, 0o755); err != nil {
			return -1, fmt.Errorf("create mutable directory %s: %w", hp.Upper, err)
		}
		if err := os.Chmod(hp.Upper, hp.Mode.Perm()); err != nil {
			return -1, err
		}
	}
	if hp.Ephemeral {
		for _, d := range []string{hp.Upper, hp.Work} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return -1, err
			}
		}
		if err := os.Chmod(hp.Upper, hp.Mode.Perm()); err != nil {
			return -1, err
		}
	} else if hp.Work != "" {
		if err := os.MkdirAll(hp.Work, 0o700); err != nil {
			return -1, fmt.Errorf("create work directory %s: %w", hp.Work, err)
		}
	}
	top := hp.Meta
	if hp.Upper != "" {
		top = hp.Upper
	}
	if err := os.Chmod(top, hp.Mode.Perm()); err != nil {
		return -1, err
	}
	mnt := filepath.Join(staging, "overlay", MutableComponent(hp.Hierarchy))
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return -1, err
	}
	flags, data := SplitOptions(hp.Flags, hp.Options)
	if err := mountOverlay(e.Class.MountSource(), mnt, flags, data); err != nil {
		return -1, fmt.Errorf("failed to mount %s (type overlay) on %s (%s): %w", e.Class.MountSource(), hp.Target, hp.Options, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(mnt, &st); err != nil {
		return -1, err
	}
	for name, data := range MarkerFiles(e.Class, hp, plan.Origin, uint64(st.Dev)) {
		if err := os.WriteFile(filepath.Join(marker, name), data, 0o644); err != nil {
			return -1, fmt.Errorf("write marker %s: %w", name, err)
		}
	}
	now := time.Now()
	_ = os.Chtimes(hp.Meta, now, now)
	if hp.Upper != "" {
		m := filepath.Join(mnt, e.Class.MarkerDir())
		if err := unix.Mount(m, m, "", unix.MS_BIND, ""); err != nil {
			return -1, fmt.Errorf("bind marker directory: %w", err)
		}
		if err := unix.Mount("", m, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
			return -1, fmt.Errorf("make marker directory read-only: %w", err)
		}
	}
	for _, sm := range subs {
		dst := filepath.Join(mnt, sm.rel)
		if fi, err := os.Stat(dst); err != nil || !fi.IsDir() {
			e.log().Warn(fmt.Sprintf("Not carrying mount %s into the merged %s: the merged tree has no directory there.", filepath.Join(hp.Target, sm.rel), hp.Hierarchy))
			continue
		}
		if err := unix.MoveMount(sm.fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return -1, fmt.Errorf("carry mount %s into the merged %s: %w", filepath.Join(hp.Target, sm.rel), hp.Hierarchy, err)
		}
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, mnt, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return -1, fmt.Errorf("detach overlay of %s: %w", hp.Hierarchy, err)
	}
	return fd, nil
}

// submount is a mount below a hierarchy, cloned as a detached tree.
type submount struct {
	rel string
	fd  int
}

// captureSubmounts clones the outermost mounts strictly below target (as
// this thread's namespace shows them), except our marker directory.
func captureSubmounts(target, marker string) ([]submount, error) {
	data, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	var points []string
	seen := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		rel, ok := strings.CutPrefix(mp, target+"/")
		if !ok || rel == "" || rel == marker || strings.HasPrefix(rel, marker+"/") || seen[rel] {
			continue
		}
		seen[rel] = true
		points = append(points, rel)
	}
	sort.Strings(points)
	var out []submount
	for _, rel := range points {
		if len(out) > 0 && strings.HasPrefix(rel, out[len(out)-1].rel+"/") {
			continue // nested: travels with its parent (AT_RECURSIVE)
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, filepath.Join(target, rel), unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err != nil {
			for _, sm := range out {
				unix.Close(sm.fd)
			}
			return nil, fmt.Errorf("capture mount %s: %w", filepath.Join(target, rel), err)
		}
		out = append(out, submount{rel: rel, fd: fd})
	}
	return out, nil
}

// unescapeMountinfo undoes the octal escapes of /proc/*/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Unmerge removes every merge of ours from the hierarchies.
func (e *Engine) Unmerge(ctx context.Context) ([]string, error) {
	if err := requirePrivilege(); err != nil {
		return nil, err
	}
	unlock, err := e.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var done []string
	for _, h := range e.Hierarchies {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		st, err := ReadState(e.Class, h, rootfs.Join(e.Root, h))
		if err != nil {
			return done, err
		}
		if !st.Ours {
			continue
		}
		if err := e.unmergeHierarchy(h); err != nil {
			return done, err
		}
		done = append(done, h)
	}
	return done, nil
}

func (e *Engine) unmergeHierarchy(h string) error {
	target := rootfs.Join(e.Root, h)
	for i := 0; i < 64; i++ {
		st, err := ReadState(e.Class, h, target)
		if err != nil {
			return fmt.Errorf("unmerge %s: %w", target, err)
		}
		if !st.Ours {
			return nil
		}
		if err := unix.Unmount(filepath.Join(target, e.Class.MarkerDir()), unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount marker of %s: %w", target, err)
		}
		if err := unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
			return fmt.Errorf("unmount %s: %w", target, err)
		}
		if st.WorkDir != "" {
			if err := os.RemoveAll(rootfs.Join(e.Root, st.WorkDir)); err != nil {
				e.log().Warn("could not remove work directory", "path", st.WorkDir, "err", err)
			}
		}
		e.log().Info(fmt.Sprintf("Unmerged '%s'.", target))
	}
	return fmt.Errorf("unmerge %s: too many stacked overlays", target)
}

// requirePrivilege checks for CAP_SYS_ADMIN in the effective set.
func requirePrivilege() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	if data[0].Effective&(1<<unix.CAP_SYS_ADMIN) == 0 {
		return &PrivilegeError{}
	}
	return nil
}

// PrivilegeError says the caller lacks CAP_SYS_ADMIN.
type PrivilegeError struct{}

func (*PrivilegeError) Error() string {
	return "Need to be privileged. (Run as root, or with CAP_SYS_ADMIN.)"
}

func (*PrivilegeError) Is(target error) bool { return target == syscall.EPERM }

// usedFileNames maps merged extension names to their images' file names,
// which is what systemd v257+ logs.
func usedFileNames(names []string, disc image.Discovery) []string {
	files := make([]string, len(names))
	for i, n := range names {
		files[i] = n
		for _, img := range disc.Images {
			if img.Name == n {
				files[i] = filepath.Base(img.Entry)
			}
		}
	}
	return files
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "'" + n + "'"
	}
	return strings.Join(q, ", ")
}
