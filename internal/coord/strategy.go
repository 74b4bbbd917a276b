// Package coord decides when a node may reboot into a staged update: the
// reboot strategy (Flatcar's REBOOT_STRATEGY), the maintenance window in
// locksmith's format, and the Lock a node takes from its fleet before it
// reboots. The decisions here are pure; the backends (etcdlock, fleetlock,
// kured) carry them out.
package coord

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Strategy is how a node coordinates its reboot (REBOOT_STRATEGY=).
type Strategy string

const (
	// Reboot reboots without a lock (locksmith's default when unset).
	Reboot Strategy = "reboot"
	// EtcdLock takes a slot of locksmith's semaphore in etcd first.
	EtcdLock Strategy = "etcd-lock"
	// FleetLock takes a slot from a FleetLock server (Zincati's protocol).
	FleetLock Strategy = "fleetlock"
	// Kured writes kured's sentinel and lets kured drain and reboot.
	Kured Strategy = "kured"
	// Off never reboots; the update waits for someone else to reboot.
	Off Strategy = "off"
	// BestEffort is CoreOS's legacy strategy: etcd-lock when an etcd is
	// configured, else reboot. Current locksmith rejects it as unknown;
	// Strata still reads old update.conf files that carry it. Resolve it
	// before use.
	BestEffort Strategy = "best-effort"
)

// ParseStrategy reads a REBOOT_STRATEGY= value. Empty means reboot, as in
// locksmithd. "fleet_lock" is Zincati's spelling of fleetlock.
func ParseStrategy(s string) (Strategy, error) {
	switch s {
	case "":
		return Reboot, nil
	case "reboot", "etcd-lock", "fleetlock", "kured", "off", "best-effort":
		return Strategy(s), nil
	case "fleet_lock":
		return FleetLock, nil
	}
	return "", fmt.Errorf("REBOOT_STRATEGY=%q is not a reboot strategy (use reboot, etcd-lock, fleetlock, kured or off)", s)
}

// Resolve turns the legacy best-effort into the strategy it stands for:
// etcd-lock when the node has an etcd endpoint configured, else reboot.
// Other strategies are returned unchanged.
func (s Strategy) Resolve(etcdConfigured bool) Strategy {
	if s != BestEffort {
		return s
	}
	if etcdConfigured {
		return EtcdLock
	}
	return Reboot
}

// NeedsLock reports whether the strategy takes a fleet lock before it
// reboots (and releases it once the new slot is in steady state).
func (s Strategy) NeedsLock() bool {
	return s == EtcdLock || s == FleetLock || s == Kured
}

// Lock is a reboot slot shared by a fleet. Acquire blocks until the slot
// is held (holding it already is success: locks are recursive) or ctx ends;
// Release frees the slot if this node holds it and is a no-op otherwise.
type Lock interface {
	Acquire(ctx context.Context) error
	Release(ctx context.Context) error
}

// NoLock is the Lock of strategies that take none (reboot, off).
type NoLock struct{}

// Acquire succeeds at once.
func (NoLock) Acquire(context.Context) error { return nil }

// Release succeeds at once.
func (NoLock) Release(context.Context) error { return nil }

// Action is what a node with a staged update does now.
type Action int

const (
	// Wait until Decision.Until (outside the window) and ask again.
	Wait Action = iota
	// TakeLock then ask again: the lock may take long, and locksmith
	// re-checks the window after it got the lock.
	TakeLock
	// RebootNow: the window is open and the lock (if any) is held.
	RebootNow
	// Never: strategy off; the node does not reboot by itself.
	Never
	// HandOff: the lock backend reboots the node (kured); do nothing more.
	HandOff
)

func (a Action) String() string {
	switch a {
	case Wait:
		return "wait"
	case TakeLock:
		return "take-lock"
	case RebootNow:
		return "reboot-now"
	case Never:
		return "never"
	case HandOff:
		return "hand-off"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Decision is the outcome of Decide.
type Decision struct {
	Action Action
	// Until is when to ask again, for Wait.
	Until time.Time
}

// Decide says what a node with a staged update does at now, given its
// strategy (resolved), window and whether it holds the lock already.
// A reboot never happens outside the window; the lock is taken only inside
// it, so a node does not sit on a slot all week.
func Decide(s Strategy, w Window, now time.Time, lockHeld bool) Decision {
	if s == Off {
		return Decision{Action: Never}
	}
	if !w.Contains(now) {
		start, _ := w.Next(now)
		return Decision{Action: Wait, Until: start}
	}
	if s.NeedsLock() && !lockHeld {
		return Decision{Action: TakeLock}
	}
	if s == Kured {
		return Decision{Action: HandOff}
	}
	return Decision{Action: RebootNow}
}

// Backoff is the wait before retry attempt n (0-based): locksmith's
// doubling from 5 s capped at 5 min, with ±20 % jitter so a fleet that lost
// its lock server does not come back in step.
func Backoff(n int) time.Duration {
	d := 5 * time.Second
	for i := 0; i < n && d < 5*time.Minute; i++ {
		d *= 2
	}
	d = min(d, 5*time.Minute)
	return d - d/5 + time.Duration(rand.Int64N(int64(2*d/5)+1))
}
