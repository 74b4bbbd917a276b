package sysupdate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

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
