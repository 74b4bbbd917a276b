-- FleetLock reboot semaphores (strata serve as a FleetLock server): one
-- row per group with its slots, one row per holder. group_name, not
-- group: GROUP is reserved in both dialects.
CREATE TABLE reboot_locks (
	group_name TEXT PRIMARY KEY,
	max_holders INTEGER NOT NULL DEFAULT 1,
	updated BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE reboot_lock_holders (
	group_name TEXT NOT NULL REFERENCES reboot_locks(group_name) ON DELETE CASCADE,
	holder_id TEXT NOT NULL,
	since BIGINT NOT NULL,
	PRIMARY KEY (group_name, holder_id)
);
