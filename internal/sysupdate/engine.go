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
	"errors"
	"log/slog"
	"time"

	"github.com/stratalinux/strata/internal/download"
	"github.com/stratalinux/strata/internal/rootfs"
)

// The engine's jobs, one file each: state.go lists what sources offer and
// targets hold (States, Sets, NewestInstalled, RebootPending); update.go
// picks a version and computes every transfer's job before touching the
// disk; acquire.go downloads, verifies and unpacks one job to its pending
// name; links.go swaps CurrentSymlinks crash-safely; vacuum.go removes old
// instances and leftovers. The pure decisions are in plan.go, the lock in
// lock.go, the definitions in load.go and transfer.go.

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
