// Package store keeps the fleet's state in SQLite (embedded, the default)
// or PostgreSQL (for several stateless server replicas) behind one
// interface, with one set of migrations. Rollout counters change in the
// same transaction as the instance that moves them, under a lock on the
// group's counter row, so limits hold across replicas.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/stratalinux/strata/internal/fleet"
)

// Store is what the fleet server needs from a database.
type Store interface {
	// Dialect is "sqlite" or "postgres".
	Dialect() string
	Close() error

	CreateApp(ctx context.Context, a *fleet.App) error
	ListApps(ctx context.Context) ([]*fleet.App, error)
	CreatePackage(ctx context.Context, p *fleet.Package) error
	ListPackages(ctx context.Context, appID string) ([]*fleet.Package, error)
	CreateChannel(ctx context.Context, c *fleet.Channel) error
	UpdateChannel(ctx context.Context, c *fleet.Channel) error
	ListChannels(ctx context.Context, appID string) ([]*fleet.Channel, error)
	CreateGroup(ctx context.Context, g *fleet.Group) error
	UpdateGroup(ctx context.Context, g *fleet.Group) error
	ListGroups(ctx context.Context, appID string) ([]*fleet.Group, error)
	AddActivity(ctx context.Context, a fleet.Activity) error
	// Generation increases with every admin write; servers reload their
	// configuration snapshot when it changes.
	Generation(ctx context.Context) (int64, error)
	LoadConfig(ctx context.Context) (*fleet.Config, error)

	CreateToken(ctx context.Context, name, hash string) (string, error)
	HasToken(ctx context.Context, hash string) (bool, error)

	Instance(ctx context.Context, appID, machineID string) (fleet.Instance, bool, error)
	Rollout(ctx context.Context, groupID string) (fleet.Rollout, error)
	// SaveOptimistic writes an outcome that does not touch the counters,
	// only if the instance's update state is still what old says; false
	// means it changed meanwhile and the caller must use Transition.
	SaveOptimistic(ctx context.Context, old fleet.Instance, found bool, out fleet.Outcome) (bool, error)
	// Transition locks the group's counters, reads the instance and
	// writes what fn decides, in one transaction.
	Transition(ctx context.Context, appID, machineID, groupID string, fn TransitionFunc) (fleet.Outcome, error)
	SetPinned(ctx context.Context, appID, machineID, version string) error
	// Touch records check-in times in one transaction (group commit of
	// the checks that changed nothing else).
	Touch(ctx context.Context, rows []Touch) error
	// ImportInstances bulk-inserts instances (seeding, migrating from
	// another server); existing ones are left alone.
	ImportInstances(ctx context.Context, list []fleet.Instance) error
	// ExpireGrants releases grants older than their group's update
	// timeout (counting them as timed out).
	ExpireGrants(ctx context.Context, now time.Time, groups []*fleet.Group) (int, error)
	// Expire deletes events, activity and dead instances past their age.
	Expire(ctx context.Context, now time.Time, r Retention) (Expired, error)

	VersionBreakdown(ctx context.Context, groupID string, aliveSince time.Time) ([]Count, error)
	StatusBreakdown(ctx context.Context, groupID string, aliveSince time.Time) ([]Count, error)
	ListInstances(ctx context.Context, f InstanceFilter) ([]fleet.Instance, int, error)
	InstanceEvents(ctx context.Context, appID, machineID string, limit int) ([]fleet.EventRecord, error)
	ListActivity(ctx context.Context, f ActivityFilter) ([]fleet.Activity, error)
	// InstanceCounts counts alive instances by app, version and status.
	InstanceCounts(ctx context.Context, aliveSince time.Time) ([]InstanceCount, error)

	// RebootLock reads a group's FleetLock semaphore (the default, one
	// slot and no holders, when none is stored).
	RebootLock(ctx context.Context, group string) (fleet.RebootLock, error)
	// ListRebootLocks lists the stored semaphores by group.
	ListRebootLocks(ctx context.Context) ([]fleet.RebootLock, error)
	// SetRebootLockMax sets a group's slots, keeping its holders.
	SetRebootLockMax(ctx context.Context, group string, max int) (fleet.RebootLock, error)
	// UpdateRebootLock locks the group's semaphore, reads it and writes
	// what fn decides, in one transaction.
	UpdateRebootLock(ctx context.Context, group string, fn RebootLockFunc) (fleet.RebootLock, error)
}

// Touch is one instance's latest check-in.
type Touch struct {
	AppID, MachineID string
	LastCheck        time.Time
}

// TransitionFunc decides under the lock.
type TransitionFunc func(inst fleet.Instance, found bool, r fleet.Rollout) (fleet.Outcome, error)

// Count is one bar of a breakdown.
type Count struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
}

// InstanceCount is one row of the per-version, per-status census.
type InstanceCount struct {
	AppID   string       `json:"app_id"`
	Version string       `json:"version"`
	Status  fleet.Status `json:"status"`
	Count   int          `json:"count"`
}

// InstanceFilter selects a page of a group's instances.
type InstanceFilter struct {
	AppID   string
	GroupID string
	Version string
	Status  fleet.Status
	Search  string // machine id or alias prefix
	Offset  int
	Limit   int
}

// ActivityFilter selects activity entries, newest first.
type ActivityFilter struct {
	AppID   string
	GroupID string
	Limit   int
	Before  int64 // id, for paging
}

// Retention says how old rows may get; zero keeps them.
type Retention struct {
	Events    time.Duration
	Activity  time.Duration
	Instances time.Duration
}

// Expired counts what Expire deleted.
type Expired struct {
	Events, Activity, Instances int64
}

// Errors callers can test for.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
	// ErrTooManyGroups refuses a new reboot group beyond
	// fleet.MaxRebootGroups.
	ErrTooManyGroups = errors.New("too many reboot groups")
)
