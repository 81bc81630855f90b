-- Fleet events (SPEC §8): written in the same transaction as the change they record.
-- peer_id carries no foreign key: events outlive deleted peers.
CREATE TABLE fleet_events (
    id uuid PRIMARY KEY,
    kind text NOT NULL CHECK (kind <> ''),
    severity text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    source text NOT NULL CHECK (source <> ''),
    peer_id uuid,
    payload jsonb NOT NULL DEFAULT '{}'::jsonb,
    correlation_id uuid,
    emitted_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX fleet_events_emitted_at ON fleet_events (emitted_at DESC, id DESC);
CREATE INDEX fleet_events_source ON fleet_events (source, emitted_at DESC);
CREATE INDEX fleet_events_kind ON fleet_events (kind, emitted_at DESC);
CREATE INDEX fleet_events_peer ON fleet_events (peer_id, emitted_at DESC) WHERE peer_id IS NOT NULL;
