DROP INDEX peers_active_heartbeat_age;
ALTER TABLE peers DROP COLUMN heartbeat_bucket;
ALTER TABLE peers RESET (fillfactor);
CREATE INDEX peers_active_heartbeat_age
    ON peers ((COALESCE(last_heartbeat_at, '-infinity'::timestamptz)))
    WHERE status = 'active';
