-- Fleet schema. One file for SQLite and PostgreSQL: {{ID}} becomes the
-- dialect's auto-increment key; times are Unix milliseconds.
CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO meta (key, value) VALUES ('generation', 1);

CREATE TABLE apps (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	product_id TEXT UNIQUE,
	kind TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	created BIGINT NOT NULL
);

CREATE TABLE packages (
	id TEXT PRIMARY KEY,
	app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
	version TEXT NOT NULL,
	arch TEXT NOT NULL,
	url TEXT NOT NULL,
	filename TEXT NOT NULL,
	size BIGINT NOT NULL,
	sha1 TEXT NOT NULL,
	sha256 TEXT NOT NULL,
	extras TEXT NOT NULL DEFAULT '',
	blacklist TEXT NOT NULL DEFAULT '',
	created BIGINT NOT NULL,
	UNIQUE (app_id, version, arch)
);

CREATE TABLE channels (
	id TEXT PRIMARY KEY,
	app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	arch TEXT NOT NULL,
	package_id TEXT REFERENCES packages(id) ON DELETE SET NULL,
	floors TEXT NOT NULL DEFAULT '',
	created BIGINT NOT NULL,
	UNIQUE (app_id, name, arch)
);

CREATE TABLE rollout_groups (
	id TEXT PRIMARY KEY,
	app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	track TEXT NOT NULL,
	arch TEXT NOT NULL,
	channel_id TEXT REFERENCES channels(id) ON DELETE SET NULL,
	policy TEXT NOT NULL,
	created BIGINT NOT NULL,
	UNIQUE (app_id, name)
);

CREATE TABLE rollouts (
	group_id TEXT PRIMARY KEY REFERENCES rollout_groups(id) ON DELETE CASCADE,
	target TEXT NOT NULL DEFAULT '',
	period_start BIGINT NOT NULL DEFAULT 0,
	period_grants INTEGER NOT NULL DEFAULT 0,
	in_progress INTEGER NOT NULL DEFAULT 0,
	granted INTEGER NOT NULL DEFAULT 0,
	succeeded INTEGER NOT NULL DEFAULT 0,
	failed INTEGER NOT NULL DEFAULT 0,
	timed_out INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE instances (
	app_id TEXT NOT NULL,
	machine_id TEXT NOT NULL,
	group_id TEXT NOT NULL,
	version TEXT NOT NULL,
	status INTEGER NOT NULL,
	ip TEXT NOT NULL DEFAULT '',
	alias TEXT NOT NULL DEFAULT '',
	oem TEXT NOT NULL DEFAULT '',
	last_check BIGINT NOT NULL,
	granted_version TEXT NOT NULL DEFAULT '',
	granted_at BIGINT NOT NULL DEFAULT 0,
	in_progress INTEGER NOT NULL DEFAULT 0,
	pinned TEXT NOT NULL DEFAULT '',
	created BIGINT NOT NULL,
	PRIMARY KEY (app_id, machine_id)
);
-- Covering indexes: the breakdowns count alive instances per version and
-- status from the index alone (no table lookups at 100k instances).
CREATE INDEX instances_group_version ON instances (group_id, version, last_check);
CREATE INDEX instances_group_status ON instances (group_id, status, last_check);
CREATE INDEX instances_group_check ON instances (group_id, last_check);
CREATE INDEX instances_progress ON instances (group_id, in_progress, granted_at);
CREATE INDEX instances_last_check ON instances (last_check);

CREATE TABLE events (
	id {{ID}},
	app_id TEXT NOT NULL,
	machine_id TEXT NOT NULL,
	type INTEGER NOT NULL,
	result INTEGER NOT NULL,
	error_code TEXT NOT NULL DEFAULT '',
	previous_version TEXT NOT NULL DEFAULT '',
	version TEXT NOT NULL DEFAULT '',
	created BIGINT NOT NULL
);
CREATE INDEX events_instance ON events (app_id, machine_id, created);
CREATE INDEX events_created ON events (created);

CREATE TABLE activity (
	id {{ID}},
	app_id TEXT NOT NULL DEFAULT '',
	group_id TEXT NOT NULL DEFAULT '',
	machine_id TEXT NOT NULL DEFAULT '',
	version TEXT NOT NULL DEFAULT '',
	severity TEXT NOT NULL,
	message TEXT NOT NULL,
	created BIGINT NOT NULL
);
CREATE INDEX activity_created ON activity (created);
CREATE INDEX activity_group ON activity (group_id, created);

CREATE TABLE tokens (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	hash TEXT NOT NULL UNIQUE,
	created BIGINT NOT NULL
);
