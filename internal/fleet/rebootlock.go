package fleet

import (
	"fmt"
	"slices"
	"time"
)

// The reboot lock is the FleetLock protocol's counting semaphore (Zincati's
// client, airlock's server): per group, at most Max nodes hold a reboot
// slot; locks are owned by the holder's id and recursive, so a node that
// asks again (after a crash, a retry) keeps its slot. The fleet server
// keeps one per group in its store; these functions decide, the store's
// transaction carries the decision out.

// DefaultRebootLockMax is the slots of a group nobody configured (airlock's
// and locksmith's default of one node at a time).
const DefaultRebootLockMax = 1

// MaxRebootLockMax bounds the configurable slots (a typo should not let
// a whole fleet reboot at once without anyone noticing a huge number).
const MaxRebootLockMax = 10000

// MaxRebootGroups bounds the groups clients may create: the FleetLock
// endpoints carry no credentials, and each new group is a stored row.
const MaxRebootGroups = 1000

// RebootLock is one group's semaphore.
type RebootLock struct {
	Group   string             `json:"group"`
	Max     int                `json:"max_holders"`
	Holders []RebootLockHolder `json:"holders"`
}

// RebootLockHolder is a node holding a slot since a time.
type RebootLockHolder struct {
	ID    string    `json:"id"`
	Since time.Time `json:"since"`
}

// NewRebootLock is the lock of a group that has no stored row yet.
func NewRebootLock(group string) RebootLock {
	return RebootLock{Group: group, Max: DefaultRebootLockMax, Holders: []RebootLockHolder{}}
}

// LockResult is the outcome of a lock request.
type LockResult int

const (
	// LockHeld: the id held a slot already (recursive lock).
	LockHeld LockResult = iota
	// LockGranted: a free slot is now the id's.
	LockGranted
	// LockFull: every slot is held by others.
	LockFull
)

func (r LockResult) String() string {
	switch r {
	case LockHeld:
		return "held"
	case LockGranted:
		return "granted"
	case LockFull:
		return "full"
	}
	return fmt.Sprintf("LockResult(%d)", int(r))
}

// Holds reports whether id holds a slot.
func (l RebootLock) Holds(id string) bool {
	return slices.ContainsFunc(l.Holders, func(h RebootLockHolder) bool { return h.ID == id })
}

// Lock decides a pre-reboot request of id at now: the lock after it and
// the result. l is not modified. A group whose max was lowered below its
// holders keeps them (they may be rebooting) but grants nothing new until
// they are fewer than max.
func (l RebootLock) Lock(id string, now time.Time) (RebootLock, LockResult) {
	if l.Holds(id) {
		return l, LockHeld
	}
	if len(l.Holders) >= l.Max {
		return l, LockFull
	}
	next := l
	next.Holders = append(slices.Clone(l.Holders), RebootLockHolder{ID: id, Since: now.UTC()})
	return next, LockGranted
}

// Unlock decides a steady-state request of id: the lock after it and
// whether id held a slot (not holding is no error: UnlockIfHeld).
func (l RebootLock) Unlock(id string) (RebootLock, bool) {
	i := slices.IndexFunc(l.Holders, func(h RebootLockHolder) bool { return h.ID == id })
	if i < 0 {
		return l, false
	}
	next := l
	next.Holders = slices.Delete(slices.Clone(l.Holders), i, i+1)
	return next, true
}

// Free is the number of slots not held (0 when over-full).
func (l RebootLock) Free() int { return max(l.Max-len(l.Holders), 0) }

// ValidateLockMax checks a configured number of slots.
func ValidateLockMax(n int) error {
	if n < 0 || n > MaxRebootLockMax {
		return fmt.Errorf("max holders %d: want 0 (no reboots) to %d", n, MaxRebootLockMax)
	}
	return nil
}
