DROP TABLE governance_reports;
ALTER TABLE worker_schedule_status DROP COLUMN interval_secs;
ALTER TABLE grants DROP COLUMN last_denial, DROP COLUMN last_denied_at;
DROP FUNCTION powernode_prefix(text);
ALTER TABLE peers DROP COLUMN outbound_failing_since;
DROP TRIGGER peers_status_changed_at ON peers;
DROP FUNCTION peers_status_changed_at();
ALTER TABLE peers DROP COLUMN status_changed_at;
