-- Heartbeats as HOT updates (issue 18). An UPDATE that changes no indexed value can stay on its
-- page without touching any index (a heap-only tuple). The sweep's index was on
-- last_heartbeat_at itself, so every heartbeat inserted an entry into each of peers' four
-- indexes. The index now holds a 10-second bucket of it: within a bucket a heartbeat changes
-- no indexed value, and the sweep reads the bucket's range, then checks the exact time.
-- Free space on each page is what lets the new version stay on it.
ALTER TABLE peers SET (fillfactor = 85);

ALTER TABLE peers ADD COLUMN heartbeat_bucket timestamptz NOT NULL GENERATED ALWAYS AS (
    CASE WHEN last_heartbeat_at IS NULL THEN '-infinity'::timestamptz
         ELSE date_bin('10 seconds', last_heartbeat_at, '2000-01-01 00:00:00+00') END
) STORED;

DROP INDEX peers_active_heartbeat_age;
CREATE INDEX peers_active_heartbeat_age ON peers (heartbeat_bucket) WHERE status = 'active';
