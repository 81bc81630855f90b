-- SPEC §8's event queries order by (emitted_at DESC, id DESC). The source and kind indexes now
-- carry both, so a page of 50 by source or kind reads 50 index entries: before, the index gave
-- emitted_at alone and PostgreSQL sorted every event sharing a timestamp (one sweep's
-- thousands of events share its transaction's time: 10,001 rows read for 50, issue 18). The
-- peer index stays as it is: a peer has few events per timestamp, and it is the index a
-- sweep's inserts scatter over (one entry per degraded peer), so wider entries there cost
-- the sweep more than they save a query.
DROP INDEX fleet_events_source;
CREATE INDEX fleet_events_source ON fleet_events (source, emitted_at DESC, id DESC);
DROP INDEX fleet_events_kind;
CREATE INDEX fleet_events_kind ON fleet_events (kind, emitted_at DESC, id DESC);
