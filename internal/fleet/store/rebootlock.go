package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/stratalinux/strata/internal/fleet"
)

// RebootLockFunc decides a group's FleetLock semaphore under its row lock.
type RebootLockFunc func(cur fleet.RebootLock) (fleet.RebootLock, error)

func (s *sqlStore) RebootLock(ctx context.Context, group string) (fleet.RebootLock, error) {
	l := fleet.NewRebootLock(group)
	err := s.read.QueryRowContext(ctx, s.q(`SELECT max_holders FROM reboot_locks WHERE group_name = ?`), group).Scan(&l.Max)
	if errors.Is(err, sql.ErrNoRows) {
		return l, nil
	}
	if err != nil {
		return l, fmt.Errorf("store: reading reboot lock %s: %w", group, err)
	}
	if l.Holders, err = s.lockHolders(ctx, s.read, group); err != nil {
		return l, err
	}
	return l, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *sqlStore) lockHolders(ctx context.Context, db querier, group string) ([]fleet.RebootLockHolder, error) {
	rows, err := db.QueryContext(ctx, s.q(`SELECT holder_id, since FROM reboot_lock_holders WHERE group_name = ? ORDER BY since, holder_id`), group)
	if err != nil {
		return nil, fmt.Errorf("store: reading holders of reboot lock %s: %w", group, err)
	}
	defer rows.Close()
	out := []fleet.RebootLockHolder{}
	for rows.Next() {
		var h fleet.RebootLockHolder
		var since int64
		if err := rows.Scan(&h.ID, &since); err != nil {
			return nil, err
		}
		h.Since = fromMS(since)
		out = append(out, h)
	}
	return out, rows.Err()
}

func (s *sqlStore) ListRebootLocks(ctx context.Context) ([]fleet.RebootLock, error) {
	locks, err := queryAll(ctx, s.read, `SELECT group_name, max_holders FROM reboot_locks ORDER BY group_name`, nil,
		func(rows *sql.Rows) (fleet.RebootLock, error) {
			l := fleet.RebootLock{Holders: []fleet.RebootLockHolder{}}
			err := rows.Scan(&l.Group, &l.Max)
			return l, err
		})
	if err != nil {
		return nil, fmt.Errorf("store: listing reboot locks: %w", err)
	}
	byGroup := map[string]*fleet.RebootLock{}
	for i := range locks {
		byGroup[locks[i].Group] = &locks[i]
	}
	rows, err := s.read.QueryContext(ctx, `SELECT group_name, holder_id, since FROM reboot_lock_holders ORDER BY since, holder_id`)
	if err != nil {
		return nil, fmt.Errorf("store: listing reboot lock holders: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var g string
		var h fleet.RebootLockHolder
		var since int64
		if err := rows.Scan(&g, &h.ID, &since); err != nil {
			return nil, err
		}
		h.Since = fromMS(since)
		if l := byGroup[g]; l != nil {
			l.Holders = append(l.Holders, h)
		}
	}
	return locks, rows.Err()
}

func (s *sqlStore) SetRebootLockMax(ctx context.Context, group string, n int) (fleet.RebootLock, error) {
	return s.updateRebootLock(ctx, group, true, func(cur fleet.RebootLock) (fleet.RebootLock, error) {
		cur.Max = n
		return cur, nil
	})
}

func (s *sqlStore) UpdateRebootLock(ctx context.Context, group string, fn RebootLockFunc) (fleet.RebootLock, error) {
	return s.updateRebootLock(ctx, group, false, fn)
}

// updateRebootLock locks the group's row (creating it), reads the
// semaphore, lets fn decide and writes the difference, in one
// transaction: on SQLite the single immediate-mode writer serialises
// these, on PostgreSQL the row lock does, so concurrent requests never
// grant more than max slots. A group that did not exist and would be
// stored as the default with no holders is not written (a steady-state of
// an unknown group leaves no row behind) unless keep is set; without
// keep (a client's request), a group beyond fleet.MaxRebootGroups is
// refused.
func (s *sqlStore) updateRebootLock(ctx context.Context, group string, keep bool, fn RebootLockFunc) (fleet.RebootLock, error) {
	fail := func(err error) (fleet.RebootLock, error) {
		return fleet.RebootLock{}, fmt.Errorf("store: reboot lock %s: %w", group, err)
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	cur := fleet.NewRebootLock(group)
	created := false
	lockRow := func() error {
		return tx.QueryRowContext(ctx, s.q(`SELECT max_holders FROM reboot_locks WHERE group_name = ?`+s.d.forUpdate), group).Scan(&cur.Max)
	}
	err = lockRow()
	if errors.Is(err, sql.ErrNoRows) {
		// Another transaction may insert it meanwhile: DO NOTHING waits
		// for it, and the second SELECT … FOR UPDATE then locks its row.
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO reboot_locks (group_name, max_holders, updated) VALUES (?, ?, ?) ON CONFLICT (group_name) DO NOTHING`),
			group, fleet.DefaultRebootLockMax, ms(time.Now())); err != nil {
			return fail(err)
		}
		created = true
		err = lockRow()
	}
	if err != nil {
		return fail(err)
	}
	if cur.Holders, err = s.lockHolders(ctx, tx, group); err != nil {
		return fleet.RebootLock{}, err
	}
	next, err := fn(cur)
	if err != nil {
		return cur, err
	}
	next.Group = group
	if created && !keep && len(next.Holders) == 0 && next.Max == fleet.DefaultRebootLockMax {
		return next, nil // rolled back: nothing worth a row
	}
	if created && !keep {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM reboot_locks`).Scan(&n); err != nil {
			return fail(err)
		}
		if n > fleet.MaxRebootGroups { // n counts the row just inserted
			return cur, fmt.Errorf("reboot group %s: %w (at most %d)", group, ErrTooManyGroups, fleet.MaxRebootGroups)
		}
	}
	if err := s.writeLockDiff(ctx, tx, cur, next); err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	sort.SliceStable(next.Holders, func(i, j int) bool {
		a, b := next.Holders[i], next.Holders[j]
		return a.Since.Before(b.Since) || a.Since.Equal(b.Since) && a.ID < b.ID
	})
	return next, nil
}

// writeLockDiff stores the holders that came and went and a new max.
func (s *sqlStore) writeLockDiff(ctx context.Context, tx *sql.Tx, cur, next fleet.RebootLock) error {
	now := ms(time.Now())
	if next.Max != cur.Max {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE reboot_locks SET max_holders = ?, updated = ? WHERE group_name = ?`), next.Max, now, cur.Group); err != nil {
			return err
		}
	}
	for _, h := range cur.Holders {
		if !next.Holds(h.ID) {
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM reboot_lock_holders WHERE group_name = ? AND holder_id = ?`), cur.Group, h.ID); err != nil {
				return err
			}
		}
	}
	for _, h := range next.Holders {
		if !cur.Holds(h.ID) {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO reboot_lock_holders (group_name, holder_id, since) VALUES (?, ?, ?)`), cur.Group, h.ID, ms(h.Since)); err != nil {
				return err
			}
		}
	}
	return nil
}
