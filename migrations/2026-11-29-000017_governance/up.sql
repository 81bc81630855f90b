-- Governance and diagnosis (SPEC §9).

-- When a peer's status last changed: what "accepted for longer than 1 h" and "degraded for
-- 24 h" measure. A trigger sets it on every status change, whichever statement makes it (the
-- domain's transitions, the set-based sweep, the batched heartbeat function), so no path can
-- forget it. Existing rows take the time of their newest transition event, else creation.
ALTER TABLE peers ADD COLUMN status_changed_at timestamptz;
UPDATE peers p
   SET status_changed_at = COALESCE(
       (SELECT max(e.emitted_at)
          FROM fleet_events e
         WHERE e.peer_id = p.id
           AND e.kind LIKE 'federation.peer.%'
           AND e.kind NOT IN ('federation.peer.deleted', 'federation.peer.token_regenerated')),
       p.created_at);
ALTER TABLE peers
    ALTER COLUMN status_changed_at SET NOT NULL,
    ALTER COLUMN status_changed_at SET DEFAULT now();

CREATE FUNCTION peers_status_changed_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        NEW.status_changed_at := now();
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER peers_status_changed_at
    BEFORE INSERT OR UPDATE OF status ON peers
    FOR EACH ROW EXECUTE FUNCTION peers_status_changed_at();

-- What our outbound PeerClient saw: since when its calls to this peer fail (NULL = the last
-- call succeeded). `last_outbound_heartbeat_at` / `last_outbound_error` already exist.
ALTER TABLE peers ADD COLUMN outbound_failing_since timestamptz;

-- Advertised prefixes as cidr, NULL for an absent or unreadable value (the API validates the
-- field; a legacy row must not break a scan).
CREATE FUNCTION powernode_prefix(value text) RETURNS cidr
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN value::cidr;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

-- The last denial of each grant (the doctor's "last denial" evidence).
ALTER TABLE grants
    ADD COLUMN last_denied_at timestamptz,
    ADD COLUMN last_denial text;

-- The interval each worker schedule runs at, as the worker reports it (the doctor's "within
-- 2 intervals").
ALTER TABLE worker_schedule_status ADD COLUMN interval_secs integer CHECK (interval_secs > 0);

-- Governance reports: the findings of one scan, with what is new and what resolved since the
-- previous report. Deleted after 30 days by the retention job.
CREATE TABLE governance_reports (
    id uuid PRIMARY KEY,
    trigger text NOT NULL CHECK (trigger IN ('schedule', 'operator', 'mcp')),
    requested_by uuid,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    counts jsonb NOT NULL,
    findings jsonb NOT NULL,
    new_fingerprints text[] NOT NULL,
    resolved_findings jsonb NOT NULL
);
CREATE INDEX governance_reports_finished_at ON governance_reports (finished_at DESC, id DESC);
