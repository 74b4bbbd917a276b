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
// it would or would not be picked. Flags follow systemd-sysupdate's update
// sets exactly (Newest marks the newest installed and the newest available
// set, Installed includes partial and pending instances).
type UpdateSet struct {
	Version string
	Flags   Flags
	// Current marks the version the transfers' CurrentSymlink points to
	// (or, without symlinks, the newest installed one). Strata's own
	// notion; systemd's "current" is the newest installed set.
	Current bool
	// Candidate marks the set an update without a version installs.
	Candidate bool
}

// Has reports whether all of f are set.
func (u UpdateSet) Has(f Flags) bool { return u.Flags&f == f }

// Assessment is systemd's one-word summary (current, candidate, installed,
// available, …), from the flags as update_set_flags_to_string() maps
// them. Combinations systemd never produces (a partial instance of an
// older version) read "partial" or "pending".
func (u UpdateSet) Assessment() string {
	if u.Flags == 0 {
		return "n/a"
	}
	if !u.Has(Installed) {
		switch {
		case u.Has(Obsolete):
			return "available+obsolete"
		case u.Has(Newest):
			return "candidate"
		}
		return "available"
	}
	newest := u.Has(Newest)
	switch {
	case u.Has(Pending) && newest:
		return "current+pending"
	case u.Has(Partial) && newest:
		return "current+partial"
	case u.Has(Pending):
		return "pending"
	case u.Has(Partial):
		return "partial"
	}
	base := "installed"
	switch {
	case newest:
		base = "current"
	case u.Has(Protected):
		base = "protected"
	}
	if u.Has(Obsolete) {
		base += "+obsolete"
	}
	if u.Has(Incomplete) {
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

// versionsDesc lists the distinct versions of the instances pick returns,
// newest first.
func versionsDesc(ts []TransferState, pick func(TransferState) []Instance) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range ts {
		for _, i := range pick(t) {
			if !seen[i.Version] {
				seen[i.Version] = true
				out = append(out, i.Version)
			}
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		if c := version.Compare(b, a); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return out
}

func findInstance(is []Instance, v string) *Instance {
	for k := range is {
		if is[k].Version == v {
			return &is[k]
		}
	}
	return nil
}

// Plan computes the update sets across transfers, newest first, as
// systemd-sysupdate does: first every version some target holds
// (installed; incomplete when a transfer lacks it, unless a partial or
// pending instance explains that), then every version that every
// transfer's source offers (available; a version only some sources offer
// is no update set at all). The first set of each pass is the newest.
// The candidate is the newest available set that is neither installed nor
// obsolete, unless the newest complete installed set is as new; an
// incomplete newest installed set that is available is repaired, and a
// pending newest installed one is finished (and, Strata's addition, a
// partial one resumed).
func Plan(ts []TransferState) []UpdateSet {
	if len(ts) == 0 {
		return nil
	}
	byVersion := map[string]*UpdateSet{}
	var order []*UpdateSet
	ruleFlags := func(v string) Flags {
		var f Flags
		for _, t := range ts {
			if t.T.MinVersion != "" && version.Compare(t.T.MinVersion, v) > 0 {
				f |= Obsolete
			}
			if slices.Contains(t.T.ProtectVersions, v) {
				f |= Protected
			}
		}
		return f
	}
	var newestInstalled, candidate *UpdateSet
	for k, v := range versionsDesc(ts, func(t TransferState) []Instance { return t.Target }) {
		f := Installed | ruleFlags(v)
		if k == 0 {
			f |= Newest
		}
		missing := false
		for _, t := range ts {
			switch i := findInstance(t.Target, v); {
			case i == nil:
				missing = true
			case i.State == PartialState:
				f |= Partial
			case i.State == PendingState:
				f |= Pending
			}
		}
		if missing && f&(Partial|Pending) == 0 {
			f |= Incomplete
		}
		u := &UpdateSet{Version: v, Flags: f}
		byVersion[v] = u
		order = append(order, u)
		if k == 0 {
			newestInstalled = u
		}
	}
	newestFound := false
	for _, v := range versionsDesc(ts, func(t TransferState) []Instance { return t.Source }) {
		everywhere := true
		for _, t := range ts {
			if findInstance(t.Source, v) == nil {
				everywhere = false
				break
			}
		}
		if !everywhere {
			continue // never offer a version with parts missing
		}
		f := Available | ruleFlags(v)
		if u, ok := byVersion[v]; ok {
			u.Flags |= f
			if u.Has(Newest|Installed|Incomplete|Available) && !u.Has(Obsolete) && candidate == nil {
				candidate = u
			}
			newestFound = true
			continue
		}
		if !newestFound {
			f |= Newest
		}
		newestFound = true
		u := &UpdateSet{Version: v, Flags: f}
		byVersion[v] = u
		order = append(order, u)
		if f&(Newest|Installed|Available|Obsolete) == Newest|Available {
			candidate = u
		}
	}
	if newestInstalled != nil && !newestInstalled.Has(Incomplete) && candidate != nil &&
		version.Compare(newestInstalled.Version, candidate.Version) >= 0 {
		candidate = nil
	}
	if newestInstalled != nil && newestInstalled.Has(Pending) && candidate == nil {
		candidate = newestInstalled
	}
	// Strata resumes an interrupted download (systemd needs a vacuum
	// first): a partial newest installed set that is available is it.
	if newestInstalled != nil && newestInstalled.Has(Partial|Available) && !newestInstalled.Has(Obsolete) && candidate == nil {
		candidate = newestInstalled
	}
	if candidate != nil {
		candidate.Candidate = true
	}
	out := make([]UpdateSet, 0, len(order))
	for _, u := range order {
		out = append(out, *u)
	}
	slices.SortFunc(out, func(a, b UpdateSet) int {
		if c := version.Compare(b.Version, a.Version); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
	// Current: the symlink's version, else the newest installed.
	var currentSym string
	for _, t := range ts {
		if t.CurrentVersion != "" {
			currentSym = t.CurrentVersion
			break
		}
	}
	for i, u := range out {
		final := u.Has(Installed) && u.Flags&(Partial|Pending) == 0
		if final && (currentSym == "" || u.Version == currentSym) {
			out[i].Current = true
			break
		}
	}
	return out
}

// Candidate returns the set an update would install, or false.
func Candidate(sets []UpdateSet) (UpdateSet, bool) {
	for _, u := range sets {
		if u.Candidate {
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

// Complete reports whether the version is fully installed (nothing to do):
// a final instance in every transfer.
func (u UpdateSet) Complete() bool {
	return u.Has(Installed) && u.Flags&(Incomplete|Partial|Pending) == 0
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

// Content is one transfer's instance of an update set, with the metadata
// systemd-sysupdate's "list VERSION" shows (nil: not known).
type Content struct {
	Type      ResourceType
	Path      string
	Mtime     *uint64 // µs
	Mode      *uint32
	Size      *uint64
	TriesDone *uint64
	TriesLeft *uint64
	NoAuto    *bool
	ReadOnly  *bool
	GrowFS    *bool
	SHA256    string
}

// Contents picks, per transfer, the instance that makes up set: the
// installed one when the target holds the version, else the source's.
// Local instances inherit mtime and mode from the file system when their
// name does not carry them, as systemd's do.
func Contents(ts []TransferState, set UpdateSet) []Content {
	var out []Content
	for _, t := range ts {
		typ, i := t.T.Target.Type, findInstance(t.Target, set.Version)
		remote := false
		if i == nil {
			typ, i, remote = t.T.Source.Type, findInstance(t.Source, set.Version), t.T.Source.Type.Remote()
		}
		if i == nil {
			continue
		}
		c := Content{Type: typ, Path: i.Path, Mtime: i.Fields.Mtime, Mode: i.Fields.Mode, Size: i.Fields.Size,
			TriesDone: i.Fields.TriesDone, TriesLeft: i.Fields.TriesLeft, NoAuto: i.Fields.NoAuto,
			ReadOnly: i.Fields.ReadOnly, GrowFS: i.Fields.GrowFS, SHA256: i.Fields.SHA256}
		if i.SHA256 != "" {
			c.SHA256 = i.SHA256
		}
		if !remote {
			if c.Mtime == nil && !i.Mtime.IsZero() {
				us := uint64(i.Mtime.UnixMicro())
				c.Mtime = &us
			}
			if c.Mode == nil {
				m := uint32(i.Mode.Perm() & 0o775)
				c.Mode = &m
			}
		}
		out = append(out, c)
	}
	return out
}
