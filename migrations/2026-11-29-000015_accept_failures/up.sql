-- Failed accept attempts per (source address, peer_id) (SPEC §3): after
-- POWERNODE_ACCEPT_FAILURE_LIMIT failures within POWERNODE_ACCEPT_FAILURE_WINDOW_SECS, further
-- attempts for that pair answer 429 until the window passes. Kept in PostgreSQL so every API
-- replica counts the same failures. Rows older than the window are pruned as failures are
-- recorded.
CREATE TABLE accept_failures (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL CHECK (char_length(source) <= 64),
    peer_id uuid NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accept_failures_pair ON accept_failures (source, peer_id, failed_at);
CREATE INDEX accept_failures_age ON accept_failures (failed_at);
