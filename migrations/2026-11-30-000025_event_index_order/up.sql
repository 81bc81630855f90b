-- SPEC §8's event queries order by (emitted_at DESC, id DESC). The filtered indexes now carry
-- both, so a page of 50 by source, kind or peer reads 50 index entries: before, the index gave
-- emitted_at alone and PostgreSQL sorted every event sharing a timestamp (one sweep's
-- thousands of events share its transaction's time) — 10,001 rows read for 50 (issue 18).
DROP INDEX fleet_events_source;
CREATE INDEX fleet_events_source ON fleet_events (source, emitted_at DESC, id DESC);
DROP INDEX fleet_events_kind;
CREATE INDEX fleet_events_kind ON fleet_events (kind, emitted_at DESC, id DESC);
DROP INDEX fleet_events_peer;
CREATE INDEX fleet_events_peer ON fleet_events (peer_id, emitted_at DESC, id DESC) WHERE peer_id IS NOT NULL;
