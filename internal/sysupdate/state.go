package sysupdate

import (
	"context"
	"os"
	"path"
	"strings"

	"github.com/stratalinux/strata/internal/version"
)

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
