package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stratalinux/strata/internal/fleet"
)

const instanceCols = `app_id, machine_id, group_id, version, status, ip, alias, oem, last_check, granted_version, granted_at, in_progress, pinned, created, granted_group`

type scanner interface{ Scan(dest ...any) error }

func scanInstance(r scanner) (fleet.Instance, error) {
	var in fleet.Instance
	var status, inProgress int
	var last, granted, created int64
	err := r.Scan(&in.AppID, &in.MachineID, &in.GroupID, &in.Version, &status, &in.IP, &in.Alias, &in.OEM,
		&last, &in.GrantedVersion, &granted, &inProgress, &in.Pinned, &created, &in.GrantedGroup)
	in.Status, in.InProgress = fleet.Status(status), inProgress != 0
	in.LastCheck, in.GrantedAt, in.Created = fromMS(last), fromMS(granted), fromMS(created)
	return in, err
}

// exec runs a hot-path statement prepared once, on the write pool or
// inside a transaction.
// Inside a transaction only an already prepared statement is used:
// preparing would need a second connection, and SQLite's writer pool has
// one.
func (s *sqlStore) exec(ctx context.Context, on execer, query string, args ...any) (sql.Result, error) {
	if tx, ok := on.(*sql.Tx); ok {
		if st, ok := s.stmts.Load(stmtKey{s.write, query}); ok {
			return tx.StmtContext(ctx, st.(*sql.Stmt)).ExecContext(ctx, args...)
		}
		return tx.ExecContext(ctx, s.q(query), args...)
	}
	st, err := s.prepared(ctx, s.write, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *sqlStore) Instance(ctx context.Context, appID, machineID string) (fleet.Instance, bool, error) {
	st, err := s.prepared(ctx, s.read, `SELECT `+instanceCols+` FROM instances WHERE app_id = ? AND machine_id = ?`)
	if err != nil {
		return fleet.Instance{}, false, fmt.Errorf("store: reading instance %s: %w", machineID, err)
	}
	in, err := scanInstance(st.QueryRowContext(ctx, appID, machineID))
	if errors.Is(err, sql.ErrNoRows) {
		return fleet.Instance{}, false, nil
	}
	if err != nil {
		return fleet.Instance{}, false, fmt.Errorf("store: reading instance %s: %w", machineID, err)
	}
	return in, true, nil
}

const rolloutCols = `group_id, target, period_start, period_grants, in_progress, granted, succeeded, failed, timed_out`

func scanRollout(r scanner) (fleet.Rollout, error) {
	var ro fleet.Rollout
	var ps int64
	err := r.Scan(&ro.GroupID, &ro.Target, &ps, &ro.PeriodGrants, &ro.InProgress, &ro.Granted, &ro.Succeeded, &ro.Failed, &ro.TimedOut)
	ro.PeriodStart = fromMS(ps)
	return ro, err
}

func (s *sqlStore) Rollout(ctx context.Context, groupID string) (fleet.Rollout, error) {
	st, err := s.prepared(ctx, s.read, `SELECT `+rolloutCols+` FROM rollouts WHERE group_id = ?`)
	if err != nil {
		return fleet.Rollout{}, err
	}
	r, err := scanRollout(st.QueryRowContext(ctx, groupID))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("rollout of group %s: %w", groupID, ErrNotFound)
	}
	return r, err
}

func (s *sqlStore) writeRollout(ctx context.Context, tx *sql.Tx, r fleet.Rollout) error {
	_, err := s.exec(ctx, tx, `UPDATE rollouts SET target = ?, period_start = ?, period_grants = ?, in_progress = ?, granted = ?, succeeded = ?, failed = ?, timed_out = ? WHERE group_id = ?`,
		r.Target, ms(r.PeriodStart), r.PeriodGrants, r.InProgress, r.Granted, r.Succeeded, r.Failed, r.TimedOut, r.GroupID)
	return err
}

func (s *sqlStore) insertInstance(ctx context.Context, tx execer, in fleet.Instance) (int64, error) {
	res, err := s.exec(ctx, tx, `INSERT INTO instances (`+instanceCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (app_id, machine_id) DO NOTHING`,
		in.AppID, in.MachineID, in.GroupID, in.Version, int(in.Status), in.IP, in.Alias, in.OEM, ms(in.LastCheck),
		in.GrantedVersion, ms(in.GrantedAt), b2i(in.InProgress), in.Pinned, ms(in.Created), in.GrantedGroup)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// updateInstance writes in if the stored update state still matches old.
func (s *sqlStore) updateInstance(ctx context.Context, tx execer, old, in fleet.Instance) (int64, error) {
	res, err := s.exec(ctx, tx, `UPDATE instances SET group_id = ?, version = ?, status = ?, ip = ?, alias = ?, oem = ?, last_check = ?,
		granted_version = ?, granted_at = ?, in_progress = ?, granted_group = ?
		WHERE app_id = ? AND machine_id = ? AND status = ? AND in_progress = ? AND granted_version = ?`,
		in.GroupID, in.Version, int(in.Status), in.IP, in.Alias, in.OEM, ms(in.LastCheck),
		in.GrantedVersion, ms(in.GrantedAt), b2i(in.InProgress), in.GrantedGroup,
		in.AppID, in.MachineID, int(old.Status), b2i(old.InProgress), old.GrantedVersion)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s *sqlStore) insertEvents(ctx context.Context, tx execer, evs []fleet.EventRecord) error {
	for _, e := range evs {
		if _, err := s.exec(ctx, tx, `INSERT INTO events (app_id, machine_id, type, result, error_code, previous_version, version, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			e.AppID, e.MachineID, e.Type, e.Result, e.ErrorCode, e.PreviousVersion, e.Version, ms(e.Created)); err != nil {
			return err
		}
	}
	return nil
}

func (s *sqlStore) SaveOptimistic(ctx context.Context, old fleet.Instance, found bool, out fleet.Outcome) (bool, error) {
	if out.NeedsLock {
		return false, nil
	}
	if !out.Write && len(out.Events) == 0 && len(out.Activities) == 0 {
		return true, nil
	}
	if len(out.Events) == 0 && len(out.Activities) == 0 {
		// One statement, no transaction: the common path.
		n, err := s.saveInstance(ctx, s.write, old, found, out.Instance)
		return n == 1, err
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	if out.Write {
		n, err := s.saveInstance(ctx, tx, old, found, out.Instance)
		if err != nil || n != 1 {
			return false, err
		}
	}
	if err := s.insertEvents(ctx, tx, out.Events); err != nil {
		return false, err
	}
	for _, a := range out.Activities {
		if err := s.insertActivity(ctx, tx, a); err != nil {
			return false, err
		}
	}
	return true, tx.Commit()
}

func (s *sqlStore) saveInstance(ctx context.Context, tx execer, old fleet.Instance, found bool, in fleet.Instance) (int64, error) {
	if !found {
		return s.insertInstance(ctx, tx, in)
	}
	return s.updateInstance(ctx, tx, old, in)
}

func (s *sqlStore) pauseGroup(ctx context.Context, tx *sql.Tx, groupID string) error {
	var pol string
	if err := tx.QueryRowContext(ctx, s.q(`SELECT policy FROM rollout_groups WHERE id = ?`), groupID).Scan(&pol); err != nil {
		return err
	}
	// Edit the stored JSON through the typed policy so unknown fields of
	// a newer server are not an issue here: same binary writes both.
	g := fleet.Group{}
	if err := jsonUnmarshal(pol, &g.Policy); err != nil {
		return err
	}
	g.Policy.Paused = true
	b, err := jsonMarshal(g.Policy)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE rollout_groups SET policy = ? WHERE id = ?`), b, groupID); err != nil {
		return err
	}
	return s.bump(ctx, tx)
}

func (s *sqlStore) SetPinned(ctx context.Context, appID, machineID, version string) error {
	res, err := s.write.ExecContext(ctx, s.q(`UPDATE instances SET pinned = ? WHERE app_id = ? AND machine_id = ?`), version, appID, machineID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("instance %s: %w", machineID, ErrNotFound)
	}
	return nil
}

func (s *sqlStore) ExpireGrants(ctx context.Context, now time.Time, groups []*fleet.Group) (int, error) {
	total := 0
	for _, g := range groups {
		if g.Policy.UpdateTimeout <= 0 {
			continue
		}
		cutoff := ms(now.Add(-g.Policy.UpdateTimeout.D()))
		var stale int
		if err := s.read.QueryRowContext(ctx, s.q(`SELECT count(*) FROM instances WHERE granted_group = ? AND in_progress = 1 AND granted_at < ?`), g.ID, cutoff).Scan(&stale); err != nil {
			return total, err
		}
		if stale == 0 {
			continue
		}
		n, err := s.expireGroup(ctx, g.ID, cutoff)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (s *sqlStore) expireGroup(ctx context.Context, groupID string, cutoff int64) (int, error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	r, err := scanRollout(tx.QueryRowContext(ctx, s.q(`SELECT `+rolloutCols+` FROM rollouts WHERE group_id = ?`+s.d.forUpdate), groupID))
	if err != nil {
		return 0, err
	}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT granted_version FROM instances WHERE granted_group = ? AND in_progress = 1 AND granted_at < ?`), groupID, cutoff)
	if err != nil {
		return 0, err
	}
	var versions []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return 0, err
		}
		versions = append(versions, v)
	}
	rows.Close()
	res, err := tx.ExecContext(ctx, s.q(`UPDATE instances SET in_progress = 0, status = ? WHERE granted_group = ? AND in_progress = 1 AND granted_at < ?`),
		int(fleet.StatusUndefined), groupID, cutoff)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	for _, v := range versions {
		r.InProgress--
		if v == r.Target {
			r.TimedOut++
		}
	}
	if r.InProgress < 0 {
		r.InProgress = 0
	}
	if err := s.writeRollout(ctx, tx, r); err != nil {
		return 0, err
	}
	return int(n), tx.Commit()
}

func (s *sqlStore) Expire(ctx context.Context, now time.Time, rt Retention) (Expired, error) {
	var e Expired
	del := func(age time.Duration, query string, dst *int64) error {
		if age <= 0 {
			return nil
		}
		res, err := s.write.ExecContext(ctx, s.q(query), ms(now.Add(-age)))
		if err != nil {
			return err
		}
		*dst, _ = res.RowsAffected()
		return nil
	}
	if err := del(rt.Events, `DELETE FROM events WHERE created < ?`, &e.Events); err != nil {
		return e, err
	}
	if err := del(rt.Activity, `DELETE FROM activity WHERE created < ?`, &e.Activity); err != nil {
		return e, err
	}
	// Instances holding a grant keep their slot until ExpireGrants frees
	// it, so the counters never lose track of them.
	err := del(rt.Instances, `DELETE FROM instances WHERE last_check < ? AND in_progress = 0`, &e.Instances)
	return e, err
}

func (s *sqlStore) breakdown(ctx context.Context, col, groupID string, alive time.Time) ([]Count, error) {
	return queryAll(ctx, s.read, s.q(`SELECT `+col+`, count(*) FROM instances WHERE group_id = ? AND last_check >= ? GROUP BY `+col), []any{groupID, ms(alive)},
		func(rows *sql.Rows) (Count, error) {
			var c Count
			err := rows.Scan(&c.Key, &c.Count)
			return c, err
		})
}

func (s *sqlStore) VersionBreakdown(ctx context.Context, groupID string, alive time.Time) ([]Count, error) {
	return s.breakdown(ctx, "version", groupID, alive)
}

func (s *sqlStore) StatusBreakdown(ctx context.Context, groupID string, alive time.Time) ([]Count, error) {
	cs, err := s.breakdown(ctx, "status", groupID, alive)
	for i := range cs {
		var n int
		fmt.Sscan(cs[i].Key, &n)
		cs[i].Key = fleet.Status(n).String()
	}
	return cs, err
}

func (s *sqlStore) ListInstances(ctx context.Context, f InstanceFilter) ([]fleet.Instance, int, error) {
	var where []string
	var args []any
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if f.AppID != "" {
		add("app_id = ?", f.AppID)
	}
	if f.GroupID != "" {
		add("group_id = ?", f.GroupID)
	}
	if f.Version != "" {
		add("version = ?", f.Version)
	}
	if f.Status != 0 {
		add("status = ?", int(f.Status))
	}
	if f.Search != "" {
		where = append(where, "(machine_id LIKE ? OR alias LIKE ?)")
		p := strings.NewReplacer("%", "", "_", "").Replace(f.Search) + "%"
		args = append(args, p, p)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	if err := s.read.QueryRowContext(ctx, s.q(`SELECT count(*) FROM instances`+cond), args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	out, err := queryAll(ctx, s.read, s.q(`SELECT `+instanceCols+` FROM instances`+cond+` ORDER BY last_check DESC, machine_id LIMIT ? OFFSET ?`),
		append(args, f.Limit, f.Offset), func(rows *sql.Rows) (fleet.Instance, error) { return scanInstance(rows) })
	return out, total, err
}

func (s *sqlStore) InstanceEvents(ctx context.Context, appID, machineID string, limit int) ([]fleet.EventRecord, error) {
	if limit <= 0 || limit > 1000 {
		limit = 200
	}
	return queryAll(ctx, s.read, s.q(`SELECT app_id, machine_id, type, result, error_code, previous_version, version, created FROM events
		WHERE app_id = ? AND machine_id = ? ORDER BY created DESC, id DESC LIMIT ?`), []any{appID, machineID, limit},
		func(rows *sql.Rows) (fleet.EventRecord, error) {
			var e fleet.EventRecord
			var created int64
			err := rows.Scan(&e.AppID, &e.MachineID, &e.Type, &e.Result, &e.ErrorCode, &e.PreviousVersion, &e.Version, &created)
			e.Created = fromMS(created)
			return e, err
		})
}

func (s *sqlStore) ListActivity(ctx context.Context, f ActivityFilter) ([]fleet.Activity, error) {
	var where []string
	var args []any
	if f.AppID != "" {
		where, args = append(where, "app_id = ?"), append(args, f.AppID)
	}
	if f.GroupID != "" {
		where, args = append(where, "group_id = ?"), append(args, f.GroupID)
	}
	if f.Before > 0 {
		where, args = append(where, "id < ?"), append(args, f.Before)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	return queryAll(ctx, s.read, s.q(`SELECT id, app_id, group_id, machine_id, version, severity, message, created FROM activity`+cond+` ORDER BY id DESC LIMIT ?`),
		append(args, f.Limit), func(rows *sql.Rows) (fleet.Activity, error) {
			var a fleet.Activity
			var sev string
			var created int64
			err := rows.Scan(&a.ID, &a.AppID, &a.GroupID, &a.MachineID, &a.Version, &sev, &a.Message, &created)
			a.Severity, a.Created = fleet.Severity(sev), fromMS(created)
			return a, err
		})
}

func (s *sqlStore) InstanceCounts(ctx context.Context, alive time.Time) ([]InstanceCount, error) {
	return queryAll(ctx, s.read, s.q(`SELECT app_id, version, status, count(*) FROM instances WHERE last_check >= ? GROUP BY app_id, version, status`), []any{ms(alive)},
		func(rows *sql.Rows) (InstanceCount, error) {
			var c InstanceCount
			var st int
			err := rows.Scan(&c.AppID, &c.Version, &st, &c.Count)
			c.Status = fleet.Status(st)
			return c, err
		})
}

func (s *sqlStore) ImportInstances(ctx context.Context, list []fleet.Instance) error {
	const batch = 5000
	for len(list) > 0 {
		n := min(batch, len(list))
		tx, err := s.write.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for _, in := range list[:n] {
			if in.GrantedGroup == "" && in.GrantedVersion != "" {
				in.GrantedGroup = in.GroupID // as migration 0002 backfills
			}
			if _, err := s.insertInstance(ctx, tx, in); err != nil {
				tx.Rollback()
				return fmt.Errorf("store: importing instance %s: %w", in.MachineID, err)
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		list = list[n:]
	}
	return nil
}

func (s *sqlStore) Touch(ctx context.Context, rows []Touch) error {
	if len(rows) == 0 {
		return nil
	}
	// One statement per chunk, not one per row: a round trip per check-in
	// was most of the database's work on the noupdate path. A machine
	// listed twice keeps its latest time (UPDATE … FROM would pick one).
	latest := make(map[[2]string]int, len(rows))
	uniq := rows[:0:0]
	for _, r := range rows {
		k := [2]string{r.AppID, r.MachineID}
		if i, ok := latest[k]; ok {
			if r.LastCheck.After(uniq[i].LastCheck) {
				uniq[i].LastCheck = r.LastCheck
			}
			continue
		}
		latest[k] = len(uniq)
		uniq = append(uniq, r)
	}
	if !s.d.dollar {
		// SQLite runs in-process (no round trips), and its planner may
		// scan the table for UPDATE … FROM: one prepared UPDATE per row.
		if _, err := s.prepared(ctx, s.write, touchSQL); err != nil {
			return err
		}
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if !s.d.dollar {
		for _, r := range uniq {
			if _, err := s.exec(ctx, tx, touchSQL, ms(r.LastCheck), r.AppID, r.MachineID, ms(r.LastCheck)); err != nil {
				return fmt.Errorf("store: recording check-ins: %w", err)
			}
		}
		return tx.Commit()
	}
	const chunk = 500
	for len(uniq) > 0 {
		n := min(len(uniq), chunk)
		var b strings.Builder
		b.WriteString(`UPDATE instances SET last_check = v.column3 FROM (VALUES `)
		args := make([]any, 0, 3*n)
		for i, r := range uniq[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(`(CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT))`)
			args = append(args, r.AppID, r.MachineID, ms(r.LastCheck))
		}
		// Never move last_check backwards (a slower replica's batch).
		b.WriteString(`) AS v WHERE instances.app_id = v.column1 AND instances.machine_id = v.column2 AND instances.last_check < v.column3`)
		if _, err := tx.ExecContext(ctx, s.q(b.String()), args...); err != nil {
			return fmt.Errorf("store: recording check-ins: %w", err)
		}
		uniq = uniq[n:]
	}
	return tx.Commit()
}

// touchSQL never moves last_check backwards (a slower replica's batch).
const touchSQL = `UPDATE instances SET last_check = ? WHERE app_id = ? AND machine_id = ? AND last_check < ?`
