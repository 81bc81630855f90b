-- Idempotency-Key on mutating operator calls (SPEC §10): one row per (operator, key) for 24 h.
-- `request_sha256` is the digest of the action and its request, so the same key with another
-- request is refused; `response_sealed` is the first outcome, sealed with the master key (it may
-- carry a once-only secret such as an acceptance token) and replayed only to this operator.
CREATE TABLE idempotency_keys (
    operator_id uuid NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    key text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    request_sha256 text NOT NULL,
    state text NOT NULL CHECK (state IN ('running', 'done')),
    response_sealed bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (operator_id, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
