-- The group that granted an instance's update: its events and timeout
-- count against that group's counters even when the node has since
-- reported another track.
ALTER TABLE instances ADD COLUMN granted_group TEXT NOT NULL DEFAULT '';
UPDATE instances SET granted_group = group_id WHERE granted_version <> '';
-- Grant expiry looks grants up by the granting group (instances_progress
-- indexed the current group).
CREATE INDEX instances_granted ON instances (granted_group, in_progress, granted_at);
DROP INDEX instances_progress;
