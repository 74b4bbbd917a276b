package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stratalinux/strata/internal/fleet"
)

//go:embed migrations/*.sql
var migrations embed.FS

// dialect holds what differs between SQLite and PostgreSQL.
type dialect struct {
	name       string
	autoID     string
	dollar     bool   // $1 placeholders
	forUpdate  string // row lock suffix
	migrateLck string // statement serialising migrations across replicas
}

var (
	sqliteDialect   = dialect{name: "sqlite", autoID: "INTEGER PRIMARY KEY AUTOINCREMENT"}
	postgresDialect = dialect{name: "postgres", autoID: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", dollar: true,
		forUpdate: " FOR UPDATE", migrateLck: "SELECT pg_advisory_xact_lock(424242)"}
)

// sqlStore implements Store on database/sql; read and write may be the
// same pool (PostgreSQL) or a single-connection writer beside a reader
// pool (SQLite, which allows one writer at a time).
type sqlStore struct {
	d     dialect
	read  *sql.DB
	write *sql.DB
	// stmts caches prepared hot-path statements (parsing SQL was a fifth
	// of a check's CPU time).
	stmts sync.Map // stmtKey → *sql.Stmt
	// transitions batches concurrent Transitions per group.
	transitions transitionQueues
}

type stmtKey struct {
	db    *sql.DB
	query string
}

// prepared returns a cached prepared statement of query on db.
func (s *sqlStore) prepared(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, error) {
	k := stmtKey{db, query}
	if st, ok := s.stmts.Load(k); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := db.PrepareContext(ctx, s.q(query))
	if err != nil {
		return nil, err
	}
	if old, loaded := s.stmts.LoadOrStore(k, st); loaded {
		st.Close()
		return old.(*sql.Stmt), nil
	}
	return st, nil
}

func (s *sqlStore) Dialect() string { return s.d.name }

func (s *sqlStore) Close() error {
	s.stmts.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
	err := s.write.Close()
	if s.read != s.write {
		err = errors.Join(err, s.read.Close())
	}
	return err
}

// q rewrites ? placeholders for PostgreSQL.
func (s *sqlStore) q(query string) string {
	if !s.d.dollar {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

func (s *sqlStore) migrate(ctx context.Context) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migrating: %w", err)
	}
	defer tx.Rollback()
	if s.d.migrateLck != "" {
		if _, err := tx.ExecContext(ctx, s.d.migrateLck); err != nil {
			return fmt.Errorf("store: migration lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`); err != nil {
		return fmt.Errorf("store: migrating: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("store: migration %s has no number", base)
		}
		var have int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT count(*) FROM schema_migrations WHERE version = ?`), v).Scan(&have); err != nil {
			return fmt.Errorf("store: migrating: %w", err)
		}
		if have > 0 {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		text := strings.ReplaceAll(string(body), "{{ID}}", s.d.autoID)
		for _, stmt := range splitSQL(text) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("store: migration %s: %w", base, err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version) VALUES (?)`), v); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// splitSQL cuts a migration into statements (no semicolons in literals).
func splitSQL(text string) []string {
	var out []string
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "--") {
			continue
		}
		lines = append(lines, l)
	}
	for _, st := range strings.Split(strings.Join(lines, "\n"), ";") {
		if st = strings.TrimSpace(st); st != "" {
			out = append(out, st)
		}
	}
	return out
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func join(ids []string) string { return strings.Join(ids, ",") }

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// conflict maps unique-constraint violations of both databases.
func conflict(err error, what string) error {
	if err == nil {
		return nil
	}
	m := strings.ToLower(err.Error())
	if strings.Contains(m, "unique") || strings.Contains(m, "duplicate key") {
		return fmt.Errorf("%s: %w", what, ErrConflict)
	}
	if strings.Contains(m, "foreign key") {
		return fmt.Errorf("%s: refers to something that does not exist: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// bump increases the configuration generation inside an admin write.
func (s *sqlStore) bump(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `UPDATE meta SET value = value + 1 WHERE key = 'generation'`)
	return err
}

// adminTx runs fn and bumps the generation in one transaction.
func (s *sqlStore) adminTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := s.bump(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *sqlStore) CreateApp(ctx context.Context, a *fleet.App) error {
	if a.ID == "" {
		a.ID = newID()
	}
	a.ID = strings.ToLower(a.ID)
	a.ProductID = strings.ToLower(a.ProductID)
	if a.Kind == "" {
		a.Kind = fleet.KindOS
	}
	if a.Created.IsZero() {
		a.Created = time.Now().UTC()
	}
	return s.adminTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO apps (id, name, product_id, kind, description, created) VALUES (?, ?, ?, ?, ?, ?)`),
			a.ID, a.Name, nullable(a.ProductID), string(a.Kind), a.Description, ms(a.Created))
		return conflict(err, "application "+a.Name)
	})
}

func (s *sqlStore) ListApps(ctx context.Context) ([]*fleet.App, error) {
	return queryAll(ctx, s.read, `SELECT id, name, COALESCE(product_id, ''), kind, description, created FROM apps ORDER BY name`, nil,
		func(rows *sql.Rows) (*fleet.App, error) {
			a := &fleet.App{}
			var kind string
			var created int64
			err := rows.Scan(&a.ID, &a.Name, &a.ProductID, &kind, &a.Description, &created)
			a.Kind, a.Created = fleet.Kind(kind), fromMS(created)
			return a, err
		})
}

func (s *sqlStore) CreatePackage(ctx context.Context, p *fleet.Package) error {
	if p.ID == "" {
		p.ID = newID()
	}
	if p.Created.IsZero() {
		p.Created = time.Now().UTC()
	}
	return s.adminTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO packages (id, app_id, version, arch, url, filename, size, sha1, sha256, extras, blacklist, created)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			p.ID, p.AppID, p.Version, p.Arch, p.URL, p.Filename, p.Size, p.SHA1, p.SHA256, join(p.Extras), join(p.Blacklist), ms(p.Created))
		return conflict(err, "package "+p.Version)
	})
}

func (s *sqlStore) ListPackages(ctx context.Context, appID string) ([]*fleet.Package, error) {
	query, args := byApp(`SELECT id, app_id, version, arch, url, filename, size, sha1, sha256, extras, blacklist, created FROM packages`, appID)
	return queryAll(ctx, s.read, s.q(query+` ORDER BY created`), args, func(rows *sql.Rows) (*fleet.Package, error) {
		p := &fleet.Package{}
		var extras, bl string
		var created int64
		err := rows.Scan(&p.ID, &p.AppID, &p.Version, &p.Arch, &p.URL, &p.Filename, &p.Size, &p.SHA1, &p.SHA256, &extras, &bl, &created)
		p.Extras, p.Blacklist, p.Created = split(extras), split(bl), fromMS(created)
		return p, err
	})
}

func (s *sqlStore) CreateChannel(ctx context.Context, c *fleet.Channel) error {
	if c.ID == "" {
		c.ID = newID()
	}
	if c.Created.IsZero() {
		c.Created = time.Now().UTC()
	}
	return s.adminTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO channels (id, app_id, name, arch, package_id, floors, created) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			c.ID, c.AppID, c.Name, c.Arch, nullable(c.PackageID), join(c.Floors), ms(c.Created))
		return conflict(err, "channel "+c.Name)
	})
}

func (s *sqlStore) UpdateChannel(ctx context.Context, c *fleet.Channel) error {
	return s.adminTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE channels SET name = ?, arch = ?, package_id = ?, floors = ? WHERE id = ?`),
			c.Name, c.Arch, nullable(c.PackageID), join(c.Floors), c.ID)
		if err != nil {
			return conflict(err, "channel "+c.Name)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("channel %s: %w", c.ID, ErrNotFound)
		}
		return nil
	})
}

func (s *sqlStore) ListChannels(ctx context.Context, appID string) ([]*fleet.Channel, error) {
	query, args := byApp(`SELECT id, app_id, name, arch, COALESCE(package_id, ''), floors, created FROM channels`, appID)
	return queryAll(ctx, s.read, s.q(query+` ORDER BY name`), args, func(rows *sql.Rows) (*fleet.Channel, error) {
		c := &fleet.Channel{}
		var floors string
		var created int64
		err := rows.Scan(&c.ID, &c.AppID, &c.Name, &c.Arch, &c.PackageID, &floors, &created)
		c.Floors, c.Created = split(floors), fromMS(created)
		return c, err
	})
}

func (s *sqlStore) CreateGroup(ctx context.Context, g *fleet.Group) error {
	if g.ID == "" {
		g.ID = newID()
	}
	if g.Created.IsZero() {
		g.Created = time.Now().UTC()
	}
	pol, err := json.Marshal(g.Policy)
	if err != nil {
		return err
	}
	return s.adminTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO rollout_groups (id, app_id, name, track, arch, channel_id, policy, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
			g.ID, g.AppID, g.Name, g.Track, g.Arch, nullable(g.ChannelID), string(pol), ms(g.Created))
		if err != nil {
			return conflict(err, "group "+g.Name)
		}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO rollouts (group_id) VALUES (?)`), g.ID)
		return err
	})
}

func (s *sqlStore) UpdateGroup(ctx context.Context, g *fleet.Group) error {
	pol, err := json.Marshal(g.Policy)
	if err != nil {
		return err
	}
	return s.adminTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE rollout_groups SET name = ?, track = ?, arch = ?, channel_id = ?, policy = ? WHERE id = ?`),
			g.Name, g.Track, g.Arch, nullable(g.ChannelID), string(pol), g.ID)
		if err != nil {
			return conflict(err, "group "+g.Name)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("group %s: %w", g.ID, ErrNotFound)
		}
		return nil
	})
}

func (s *sqlStore) ListGroups(ctx context.Context, appID string) ([]*fleet.Group, error) {
	query, args := byApp(`SELECT id, app_id, name, track, arch, COALESCE(channel_id, ''), policy, created FROM rollout_groups`, appID)
	return queryAll(ctx, s.read, s.q(query+` ORDER BY name`), args, func(rows *sql.Rows) (*fleet.Group, error) {
		g := &fleet.Group{}
		var pol string
		var created int64
		if err := rows.Scan(&g.ID, &g.AppID, &g.Name, &g.Track, &g.Arch, &g.ChannelID, &pol, &created); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(pol), &g.Policy); err != nil {
			return nil, fmt.Errorf("group %s: stored policy: %w", g.Name, err)
		}
		g.Created = fromMS(created)
		return g, nil
	})
}

// byApp adds the optional application filter to a listing query.
func byApp(query, appID string) (string, []any) {
	if appID == "" {
		return query, nil
	}
	return query + ` WHERE app_id = ?`, []any{appID}
}

// queryAll runs query (already in the dialect's placeholders) and scans
// every row with scan.
func queryAll[T any](ctx context.Context, db *sql.DB, query string, args []any, scan func(*sql.Rows) (T, error)) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func (s *sqlStore) AddActivity(ctx context.Context, a fleet.Activity) error {
	return s.insertActivity(ctx, s.write, a)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (s *sqlStore) insertActivity(ctx context.Context, tx execer, a fleet.Activity) error {
	if a.Created.IsZero() {
		a.Created = time.Now().UTC()
	}
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO activity (app_id, group_id, machine_id, version, severity, message, created) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		a.AppID, a.GroupID, a.MachineID, a.Version, string(a.Severity), a.Message, ms(a.Created))
	return err
}

func (s *sqlStore) Generation(ctx context.Context) (int64, error) {
	var g int64
	err := s.read.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'generation'`).Scan(&g)
	return g, err
}

func (s *sqlStore) LoadConfig(ctx context.Context) (*fleet.Config, error) {
	gen, err := s.Generation(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: loading configuration: %w", err)
	}
	apps, err := s.ListApps(ctx)
	if err != nil {
		return nil, err
	}
	groups, err := s.ListGroups(ctx, "")
	if err != nil {
		return nil, err
	}
	chans, err := s.ListChannels(ctx, "")
	if err != nil {
		return nil, err
	}
	pkgs, err := s.ListPackages(ctx, "")
	if err != nil {
		return nil, err
	}
	return fleet.NewConfig(gen, apps, groups, chans, pkgs), nil
}

func (s *sqlStore) CreateToken(ctx context.Context, name, hash string) (string, error) {
	id := newID()
	_, err := s.write.ExecContext(ctx, s.q(`INSERT INTO tokens (id, name, hash, created) VALUES (?, ?, ?, ?)`), id, name, hash, ms(time.Now()))
	return id, conflict(err, "token "+name)
}

func (s *sqlStore) HasToken(ctx context.Context, hash string) (bool, error) {
	var n int
	err := s.read.QueryRowContext(ctx, s.q(`SELECT count(*) FROM tokens WHERE hash = ?`), hash).Scan(&n)
	return n > 0, err
}
