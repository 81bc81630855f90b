DROP INDEX fleet_events_source;
CREATE INDEX fleet_events_source ON fleet_events (source, emitted_at DESC);
DROP INDEX fleet_events_kind;
CREATE INDEX fleet_events_kind ON fleet_events (kind, emitted_at DESC);
