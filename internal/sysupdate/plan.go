package sysupdate

import (
	"slices"
	"strings"

	"github.com/stratalinux/strata/internal/version"
)

// Flags describe one version across all enabled transfers.
type Flags uint

// Update set flags, as systemd-sysupdate names them.
const (
	Installed Flags = 1 << iota
	Available
	Newest
	Obsolete
	Protected
	Incomplete
	Partial
	Pending
)

// UpdateSet is one version: whether it is installed, available, and why
// it would or would not be picked.
type UpdateSet struct {
	Version string
	Flags   Flags
	// Current marks the version the transfers' CurrentSymlink points to
	// (or, without symlinks, the newest installed one).
	Current bool
}

// Has reports whether all of f are set.
func (u UpdateSet) Has(f Flags) bool { return u.Flags&f == f }

// Assessment is systemd's one-word summary (current, candidate, installed,
// available, …).
func (u UpdateSet) Assessment() string {
	var base string
	switch {
	case u.Has(Installed) && u.Current:
		base = "current"
		switch {
		case u.Has(Pending):
			return "current+pending"
		case u.Has(Partial):
			return "current+partial"
		}
	case u.Has(Installed) && u.Has(Protected):
		base = "protected"
	case u.Has(Installed):
		base = "installed"
	case u.Has(Available) && u.Has(Newest) && !u.Has(Obsolete):
		return "candidate"
	case u.Has(Available):
		base = "available"
	default:
		if u.Has(Partial) {
			return "partial"
		}
		if u.Has(Pending) {
			return "pending"
		}
		return "n/a"
	}
	if u.Has(Obsolete) {
		base += "+obsolete"
	}
	if u.Has(Installed) && u.Has(Incomplete) {
		base += "+incomplete"
	}
	return base
}

// TransferState is what one transfer sees: its definition, the versions
// its source offers and the instances its target holds.
type TransferState struct {
	T      *Transfer
	Source []Instance
	Target []Instance
	// CurrentVersion is the version the CurrentSymlink points to, if any.
	CurrentVersion string
}

// Plan computes the update sets across transfers, newest first. A version
// is available only when every transfer's source offers it; installed when
// any target holds a final instance (incomplete when not all do).
func Plan(ts []TransferState) []UpdateSet {
	byVersion := map[string]*UpdateSet{}
	get := func(v string) *UpdateSet {
		if u, ok := byVersion[v]; ok {
			return u
		}
		u := &UpdateSet{Version: v}
		byVersion[v] = u
		return u
	}
	type count struct{ final, avail int }
	counts := map[string]*count{}
	cnt := func(v string) *count {
		if c, ok := counts[v]; ok {
			return c
		}
		c := &count{}
		counts[v] = c
		return c
	}
	for _, ts := range ts {
		seenFinal := map[string]bool{}
		for _, i := range ts.Target {
			u := get(i.Version)
			switch i.State {
			case PartialState:
				u.Flags |= Partial
			case PendingState:
				u.Flags |= Pending
			default:
				if !seenFinal[i.Version] {
					seenFinal[i.Version] = true
					cnt(i.Version).final++
				}
			}
		}
		seenAvail := map[string]bool{}
		for _, i := range ts.Source {
			if !seenAvail[i.Version] {
				seenAvail[i.Version] = true
				cnt(i.Version).avail++
			}
		}
	}
	for v, c := range counts {
		u := get(v)
		if c.final > 0 {
			u.Flags |= Installed
			if c.final < len(ts) {
				u.Flags |= Incomplete
			}
		}
		if c.avail == len(ts) && len(ts) > 0 {
			u.Flags |= Available
		}
	}
	var currentSym string
	for _, t := range ts {
		if t.CurrentVersion != "" {
			currentSym = t.CurrentVersion
			break
		}
	}
	for v, u := range byVersion {
		for _, t := range ts {
			if t.T.MinVersion != "" && version.Compare(v, t.T.MinVersion) < 0 {
				u.Flags |= Obsolete
			}
			if slices.Contains(t.T.ProtectVersions, v) {
				u.Flags |= Protected
			}
		}
	}
	out := make([]UpdateSet, 0, len(byVersion))
	for _, u := range byVersion {
		out = append(out, *u)
	}
	slices.SortFunc(out, func(a, b UpdateSet) int {
		if c := version.Compare(b.Version, a.Version); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
	// Current: the symlink's version, else the newest installed.
	cur := -1
	for i, u := range out {
		if u.Has(Installed) && (currentSym == "" || u.Version == currentSym) {
			cur = i
			break
		}
	}
	if cur >= 0 {
		out[cur].Current = true
	}
	// Newest: the newest available version newer than every complete
	// installed one is the candidate; an incomplete installed newest one
	// is repaired; a pending newest one is finished.
	newestInstalled := ""
	for _, u := range out {
		if u.Has(Installed) && !u.Has(Incomplete) {
			newestInstalled = u.Version
			break
		}
	}
	for i, u := range out {
		if !u.Has(Available) || u.Has(Obsolete) {
			continue
		}
		if newestInstalled != "" && version.Compare(u.Version, newestInstalled) < 0 {
			break
		}
		if u.Has(Installed) && !u.Has(Incomplete) {
			break
		}
		out[i].Flags |= Newest
		break
	}
	return out
}

// Candidate returns the set an update would install, or false.
func Candidate(sets []UpdateSet) (UpdateSet, bool) {
	for _, u := range sets {
		if u.Has(Newest) {
			return u, true
		}
	}
	return UpdateSet{}, false
}

// Find returns the set of version v.
func Find(sets []UpdateSet, v string) (UpdateSet, bool) {
	for _, u := range sets {
		if u.Version == v {
			return u, true
		}
	}
	return UpdateSet{}, false
}

// Complete reports whether the version is fully installed (nothing to do).
func (u UpdateSet) Complete() bool {
	return u.Has(Installed) && !u.Has(Incomplete)
}

// VacuumPlan returns, for one transfer, the instances to delete so that at
// most limit final instances remain: every partial or pending instance
// except those of keep, then the oldest unprotected final ones. keep and
// protect are versions never to delete.
func VacuumPlan(target []Instance, limit int, keep string, protect []string) []Instance {
	var del []Instance
	var finals []Instance
	for _, i := range target {
		switch {
		case i.State != Final && i.Version == keep:
		case i.State != Final:
			del = append(del, i)
		default:
			finals = append(finals, i)
		}
	}
	sortInstances(finals) // newest first
	n := len(finals)
	for k := len(finals) - 1; k >= 0 && n > limit; k-- {
		i := finals[k]
		if i.Version == keep || slices.Contains(protect, i.Version) {
			continue
		}
		del = append(del, i)
		n--
	}
	return del
}
