-- Each worker tick applied once (SPEC §11 scale-out): apalis may re-run an orphaned task and two
-- workers may both offer a tick whose Redis key expired, so the API keys every scheduled call
-- by `<schedule>:<tick>`. A running row whose lease lapsed (its replica died) may be taken
-- over; a done row replays its answer.
CREATE TABLE worker_ticks (
    key text PRIMARY KEY,
    state text NOT NULL CHECK (state IN ('running', 'done')),
    response jsonb,
    started_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz NOT NULL,
    finished_at timestamptz,
    replays integer NOT NULL DEFAULT 0
);
CREATE INDEX worker_ticks_started_at ON worker_ticks (started_at);
