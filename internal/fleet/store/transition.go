package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalinux/strata/internal/fleet"
)

// Transitions that touch a group's counters serialize on its counter row,
// and each used to hold that row through its own commit: the group's
// grants per second could not exceed one over the commit time (on
// PostgreSQL, a WAL flush), whatever the number of replicas or
// connections. So the Transitions of one group that arrive while one is
// committing are committed together, in the next transaction (group
// commit). Every request is still decided by its own function, in
// arrival order, against the counters its predecessors left, under the
// lock: limits hold exactly as before; what is shared is the lock wait
// and the flush.

// maxBatch bounds one transaction (its statement parameters and how long
// it holds the counter row).
const maxBatch = 128

// batchTimeout bounds a shared transaction: it no longer belongs to one
// request's context, so one caller going away does not abort the others.
const batchTimeout = 30 * time.Second

type transitionKey struct{ appID, groupID string }

// transitionQueues holds the waiting Transitions per group.
type transitionQueues struct {
	mu     sync.Mutex
	groups map[transitionKey]*transitionQueue
	// commits and requests count shared transactions and the requests
	// they carried (tests look at the ratio).
	commits, requests atomic.Int64
}

type transitionQueue struct {
	pending []*transition
	// running is true while a goroutine commits this group's batches.
	running bool
}

// transition is one waiting Transition call.
type transition struct {
	ctx       context.Context
	machineID string
	fn        TransitionFunc
	out       fleet.Outcome
	err       error
	finished  bool // guarded by transitionQueues.mu once queued
	done      chan struct{}
}

// take removes up to maxBatch pending transitions, at most one per
// machine (a replayed request waits for the next batch, so it sees what
// the first one wrote), keeping arrival order.
func (q *transitionQueue) take() []*transition {
	var batch, rest []*transition
	seen := map[string]bool{}
	for _, t := range q.pending {
		if len(batch) == maxBatch || seen[t.machineID] {
			rest = append(rest, t)
			continue
		}
		seen[t.machineID] = true
		batch = append(batch, t)
	}
	q.pending = rest
	return batch
}

func (s *sqlStore) Transition(ctx context.Context, appID, machineID, groupID string, fn TransitionFunc) (fleet.Outcome, error) {
	t := &transition{ctx: ctx, machineID: machineID, fn: fn, done: make(chan struct{})}
	k := transitionKey{appID, groupID}
	tq := &s.transitions
	tq.mu.Lock()
	if tq.groups == nil {
		tq.groups = map[transitionKey]*transitionQueue{}
	}
	q := tq.groups[k]
	if q == nil {
		q = &transitionQueue{}
		tq.groups[k] = q
	}
	q.pending = append(q.pending, t)
	lead := !q.running
	q.running = true
	tq.mu.Unlock()
	if lead {
		// The caller commits batches itself (no goroutine hand-off on the
		// common, uncontended path) until its own request is done.
		s.drain(k, q, t)
	}
	<-t.done
	return t.out, t.err
}

// drain commits q's batches until own is done (own nil: until q is
// empty), then hands what is left to a new goroutine.
func (s *sqlStore) drain(k transitionKey, q *transitionQueue, own *transition) {
	tq := &s.transitions
	for {
		tq.mu.Lock()
		if len(q.pending) == 0 {
			q.running = false
			delete(tq.groups, k)
			tq.mu.Unlock()
			return
		}
		if own != nil && own.finished {
			tq.mu.Unlock()
			go s.drain(k, q, nil)
			return
		}
		batch := q.take()
		tq.mu.Unlock()
		s.commitBatch(k, batch)
		tq.mu.Lock()
		for _, t := range batch {
			t.finished = true
		}
		tq.mu.Unlock()
		for _, t := range batch {
			close(t.done)
		}
	}
}

// commitBatch runs batch in one transaction; if that fails, each request
// runs alone, so one request's trouble is its own.
func (s *sqlStore) commitBatch(k transitionKey, batch []*transition) {
	live := batch[:0:0]
	for _, t := range batch {
		if err := t.ctx.Err(); err != nil {
			t.err = err
			continue
		}
		live = append(live, t)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(live[0].ctx), batchTimeout)
	defer cancel()
	err := s.transitionTx(ctx, k, live)
	if err == nil {
		s.transitions.commits.Add(1)
		s.transitions.requests.Add(int64(len(live)))
		return
	}
	if len(live) == 1 {
		live[0].err = err
		return
	}
	for _, t := range live {
		t.out, t.err = fleet.Outcome{}, nil
		if err := s.transitionTx(ctx, k, []*transition{t}); err != nil {
			t.err = err
		}
	}
}

// transitionTx locks the group's counters, reads the instances, lets each
// request decide in order and writes the result, in one transaction. A
// request whose function fails gets its error and writes nothing; any
// other failure fails the whole transaction.
func (s *sqlStore) transitionTx(ctx context.Context, k transitionKey, batch []*transition) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	r, err := scanRollout(tx.QueryRowContext(ctx, s.q(`SELECT `+rolloutCols+` FROM rollouts WHERE group_id = ?`+s.d.forUpdate), k.groupID))
	if err != nil {
		return fmt.Errorf("store: locking rollout of group %s: %w", k.groupID, err)
	}
	current, err := s.lockInstances(ctx, tx, k.appID, batch)
	if err != nil {
		return err
	}
	var (
		events     []fleet.EventRecord
		activities []fleet.Activity
		rolloutOut bool
		brake      bool
		// The rows are locked, so the writes need no "still as read"
		// conditions and go out in a few statements, not one per request.
		updates, inserts []fleet.Instance
	)
	for _, t := range batch {
		in, found := current[t.machineID]
		out, err := t.fn(in, found, r)
		t.out, t.err = out, err
		if err != nil {
			continue
		}
		if out.Write {
			if found {
				updates = append(updates, out.Instance)
			} else {
				inserts = append(inserts, out.Instance)
			}
		}
		if out.RolloutChanged {
			r = out.Rollout
			r.GroupID = k.groupID
			t.out.Rollout.GroupID = k.groupID
			rolloutOut = true
		}
		events = append(events, out.Events...)
		activities = append(activities, out.Activities...)
		brake = brake || out.Brake
	}
	if err := s.updateInstanceRows(ctx, tx, updates); err != nil {
		return err
	}
	for _, in := range inserts {
		if n, err := s.insertInstance(ctx, tx, in); err != nil || n != 1 {
			if err == nil {
				err = fmt.Errorf("store: instance %s was registered concurrently", in.MachineID)
			}
			return err
		}
	}
	if rolloutOut {
		if err := s.writeRollout(ctx, tx, r); err != nil {
			return err
		}
	}
	if err := s.insertEventRows(ctx, tx, events); err != nil {
		return err
	}
	for _, a := range activities {
		if err := s.insertActivity(ctx, tx, a); err != nil {
			return err
		}
	}
	if brake {
		if err := s.pauseGroup(ctx, tx, k.groupID); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// lockInstances reads (and on PostgreSQL row-locks) the batch's
// instances in one statement.
func (s *sqlStore) lockInstances(ctx context.Context, tx *sql.Tx, appID string, batch []*transition) (map[string]fleet.Instance, error) {
	args := make([]any, 0, len(batch)+1)
	args = append(args, appID)
	for _, t := range batch {
		args = append(args, t.machineID)
	}
	query := `SELECT ` + instanceCols + ` FROM instances WHERE app_id = ? AND machine_id IN (?` + strings.Repeat(", ?", len(batch)-1) + `)` + s.d.forUpdate
	rows, err := tx.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("store: reading instances: %w", err)
	}
	defer rows.Close()
	found := make(map[string]fleet.Instance, len(batch))
	for rows.Next() {
		in, err := scanInstance(rows)
		if err != nil {
			return nil, fmt.Errorf("store: reading instances: %w", err)
		}
		found[in.MachineID] = in
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading instances: %w", err)
	}
	return found, nil
}

// insertEventRows writes events with multi-row INSERTs (one round trip
// per chunk instead of one per event).
func (s *sqlStore) insertEventRows(ctx context.Context, tx *sql.Tx, evs []fleet.EventRecord) error {
	const cols, chunk = 8, 256
	for len(evs) > 0 {
		n := min(len(evs), chunk)
		var b strings.Builder
		b.WriteString(`INSERT INTO events (app_id, machine_id, type, result, error_code, previous_version, version, created) VALUES `)
		args := make([]any, 0, n*cols)
		for i, e := range evs[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, e.AppID, e.MachineID, e.Type, e.Result, e.ErrorCode, e.PreviousVersion, e.Version, ms(e.Created))
		}
		if _, err := tx.ExecContext(ctx, s.q(b.String()), args...); err != nil {
			return fmt.Errorf("store: recording events: %w", err)
		}
		evs = evs[n:]
	}
	return nil
}

// updateInstanceRows writes locked instances; on PostgreSQL with one
// UPDATE … FROM (VALUES …) per chunk (VALUES columns are named column1…;
// the casts type the parameters).
func (s *sqlStore) updateInstanceRows(ctx context.Context, tx *sql.Tx, list []fleet.Instance) error {
	if !s.d.dollar {
		// SQLite: in-process, and its planner may scan the table for
		// UPDATE … FROM; one UPDATE per row.
		for _, in := range list {
			if _, err := s.exec(ctx, tx, `UPDATE instances SET group_id = ?, version = ?, status = ?, ip = ?, alias = ?, oem = ?, last_check = ?,
		granted_version = ?, granted_at = ?, in_progress = ?, granted_group = ? WHERE app_id = ? AND machine_id = ?`,
				in.GroupID, in.Version, int(in.Status), in.IP, in.Alias, in.OEM, ms(in.LastCheck),
				in.GrantedVersion, ms(in.GrantedAt), b2i(in.InProgress), in.GrantedGroup, in.AppID, in.MachineID); err != nil {
				return fmt.Errorf("store: writing instances: %w", err)
			}
		}
		return nil
	}
	const chunk = 200
	const row = `(CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS INTEGER), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS INTEGER), CAST(? AS TEXT))`
	for len(list) > 0 {
		n := min(len(list), chunk)
		var b strings.Builder
		b.WriteString(`UPDATE instances SET group_id = v.column3, version = v.column4, status = v.column5, ip = v.column6, alias = v.column7, oem = v.column8,
		last_check = v.column9, granted_version = v.column10, granted_at = v.column11, in_progress = v.column12, granted_group = v.column13 FROM (VALUES `)
		args := make([]any, 0, n*13)
		for i, in := range list[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(row)
			args = append(args, in.AppID, in.MachineID, in.GroupID, in.Version, int(in.Status), in.IP, in.Alias, in.OEM,
				ms(in.LastCheck), in.GrantedVersion, ms(in.GrantedAt), b2i(in.InProgress), in.GrantedGroup)
		}
		b.WriteString(`) AS v WHERE instances.app_id = v.column1 AND instances.machine_id = v.column2`)
		res, err := tx.ExecContext(ctx, s.q(b.String()), args...)
		if err != nil {
			return fmt.Errorf("store: writing instances: %w", err)
		}
		if got, err := res.RowsAffected(); err != nil || got != int64(n) {
			return fmt.Errorf("store: wrote %d of %d locked instances (%v)", got, n, err)
		}
		list = list[n:]
	}
	return nil
}
