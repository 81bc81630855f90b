-- Approval queue (SPEC §7): intervention policies per action, approval requests, the agents
-- that act on them (the SDWAN Manager) and the execution attempts that make a crashed
-- execution re-run exactly once.
CREATE TABLE intervention_policies (
    action text PRIMARY KEY CHECK (length(action) BETWEEN 1 AND 128),
    policy text NOT NULL CHECK (policy IN ('auto_approve', 'notify_and_proceed', 'require_approval', 'blocked')),
    timeout_secs integer NOT NULL CHECK (timeout_secs > 0),
    timeout_action text NOT NULL CHECK (timeout_action IN ('reject', 'approve')),
    -- The federation actions never allow auto-approval or approval on timeout.
    auto_approve_allowed boolean NOT NULL DEFAULT false,
    timeout_approve_allowed boolean NOT NULL DEFAULT false,
    -- An emergency lowering in force until lowered_until (restored, with an event, once past).
    lowered_policy text CHECK (lowered_policy IN ('auto_approve', 'notify_and_proceed', 'require_approval', 'blocked')),
    lowered_until timestamptz,
    lowered_by uuid,
    lowered_reason text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (policy <> 'auto_approve' OR auto_approve_allowed),
    CHECK (lowered_policy IS DISTINCT FROM 'auto_approve' OR auto_approve_allowed),
    CHECK (timeout_action = 'reject' OR timeout_approve_allowed),
    CHECK ((lowered_policy IS NULL) = (lowered_until IS NULL))
);

INSERT INTO intervention_policies (action, policy, timeout_secs, timeout_action) VALUES
    ('system.federation_peer_propose', 'require_approval', 14400, 'reject'),
    ('system.federation_peer_accept', 'require_approval', 14400, 'reject'),
    ('system.federation_peer_revoke', 'require_approval', 14400, 'reject');

CREATE TABLE approval_requests (
    id uuid PRIMARY KEY,
    action text NOT NULL REFERENCES intervention_policies (action),
    -- What the approver sees; never a secret.
    params jsonb NOT NULL DEFAULT '{}',
    -- Secrets the execution needs (an acceptance token), sealed with the master key; wiped
    -- once the request is executed or closed.
    params_sealed bytea,
    requested_by uuid NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected', 'expired', 'cancelled')),
    expires_at timestamptz NOT NULL,
    -- An operator id, or `sdwan_manager` for timeouts.
    decided_by text,
    decided_at timestamptz,
    comments text CHECK (length(comments) <= 2000),
    execution_status text NOT NULL DEFAULT 'pending' CHECK (execution_status IN ('pending', 'succeeded', 'failed')),
    execution_error text,
    executed_at timestamptz,
    -- What the execution produced that can be shown (e.g. the proposed peer's id)...
    result jsonb,
    -- ...and what must be shown once (a minted acceptance token), sealed until claimed.
    result_sealed bytea,
    result_claimed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'pending') = (decided_at IS NULL)),
    CHECK (execution_status = 'pending' OR status = 'approved')
);

CREATE INDEX approval_requests_by_status ON approval_requests (status, created_at DESC);
-- The tick's two reads: pending past expiry, approved but not executed.
CREATE INDEX approval_requests_pending_expiry ON approval_requests (expires_at) WHERE status = 'pending';
CREATE INDEX approval_requests_executable ON approval_requests (decided_at) WHERE status = 'approved' AND execution_status = 'pending';

-- One row per started execution, written (and committed) before the action runs, so a crash
-- between the claim and its record is visible to the next tick. No foreign key: the claim holds
-- the request FOR UPDATE, which a key-share lock from this insert would wait on.
CREATE TABLE approval_execution_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id uuid NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX approval_execution_attempts_request ON approval_execution_attempts (request_id);

CREATE TABLE agents (
    id uuid PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
    status text NOT NULL CHECK (status IN ('active', 'paused')),
    interval_secs integer NOT NULL CHECK (interval_secs > 0),
    status_reason text,
    status_changed_by uuid,
    updated_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO agents (id, name, status, interval_secs)
VALUES ('6a1c3f60-0b5e-4f5b-9d7e-5d0a2f1e0001', 'SDWAN Manager', 'active', 60);
