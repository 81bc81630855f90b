-- Grants (SPEC §6): scoped access for one peer to shared resources. The bearer token
-- (`fg-<uuid v4>`) is shown once and stored only as its SHA-256; allowlists are immutable
-- (change = revoke + issue). Empty lists leave that axis unrestricted.
CREATE TABLE grants (
    id uuid PRIMARY KEY,
    peer_id uuid NOT NULL REFERENCES peers (id) ON DELETE CASCADE,
    token_digest text NOT NULL UNIQUE CHECK (token_digest ~ '^[0-9a-f]{64}$'),
    resource_kind text NOT NULL CHECK (length(resource_kind) BETWEEN 1 AND 64),
    resource_id text CHECK (length(resource_id) BETWEEN 1 AND 64),
    permission_scopes text[] NOT NULL CHECK (
        cardinality(permission_scopes) > 0
        AND array_position(permission_scopes, NULL) IS NULL
        AND permission_scopes <@ ARRAY['read', 'write']::text[]
    ),
    node_instance_ids text[] NOT NULL DEFAULT '{}' CHECK (array_position(node_instance_ids, NULL) IS NULL),
    sdwan_network_ids text[] NOT NULL DEFAULT '{}' CHECK (array_position(sdwan_network_ids, NULL) IS NULL),
    source_cidrs text[] NOT NULL DEFAULT '{}' CHECK (array_position(source_cidrs, NULL) IS NULL),
    expires_at timestamptz NOT NULL,
    auto_renew boolean NOT NULL DEFAULT false,
    revoked_at timestamptz,
    revocation_reason text,
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX grants_peer ON grants (peer_id, created_at DESC);
-- The hourly auto-renewal reads only live auto-renewing grants by expiry.
CREATE INDEX grants_auto_renew ON grants (expires_at) WHERE auto_renew AND revoked_at IS NULL;

-- JSON documents an operator publishes under declared kinds for peers to read or write.
CREATE TABLE shared_resources (
    kind text NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    id text NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    document jsonb NOT NULL,
    version integer NOT NULL DEFAULT 1,
    updated_by_peer uuid,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, id)
);
