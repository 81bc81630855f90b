-- Last outcome of each worker schedule, as reported by the workers through the API
-- (`powernodectl worker status`, GET /api/v1/system/worker/status).
CREATE TABLE worker_schedule_status (
    schedule text PRIMARY KEY CHECK (schedule ~ '^[a-z0-9_]{1,64}$'),
    job text NOT NULL CHECK (length(job) BETWEEN 1 AND 64),
    last_outcome text NOT NULL CHECK (last_outcome IN ('succeeded', 'failed')),
    last_tick bigint NOT NULL,
    last_worker text NOT NULL,
    last_success_at timestamptz,
    last_failure_at timestamptz,
    last_error text,
    runs bigint NOT NULL DEFAULT 0,
    failures bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
