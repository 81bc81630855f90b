-- Each instance's registry row about one other instance (SPEC §2). Nothing is replicated.
CREATE TABLE peers (
    id uuid PRIMARY KEY,
    origin text NOT NULL CHECK (origin IN ('proposed_here', 'accepted_here')),
    remote_instance_url text NOT NULL CHECK (remote_instance_url LIKE 'https://%' AND remote_instance_url NOT LIKE '%/'),
    remote_instance_id uuid,
    remote_ca_pem text,
    remote_ca_sha256 text CHECK (remote_ca_sha256 ~ '^[0-9a-f]{64}$'),
    contract_version_agreed integer,
    last_outbound_heartbeat_at timestamptz,
    last_outbound_error text,
    -- AES-256-GCM ciphertext of our private key for talking to this peer, until the handshake.
    pending_outbound_key bytea,
    peer_kind text NOT NULL CHECK (peer_kind IN ('platform', 'sdwan_only')),
    spawn_role text CHECK (spawn_role IN ('parent', 'child', 'symmetric')),
    spawn_mode text CHECK (spawn_mode IN ('managed_child', 'autonomous_peer', 'cluster_member', 'out_of_band')),
    remote_prefix_advertisement text,
    endpoints jsonb NOT NULL DEFAULT '[]'::jsonb,
    extension_slugs jsonb NOT NULL DEFAULT '[]'::jsonb,
    capabilities jsonb NOT NULL DEFAULT '[]'::jsonb,
    sync_cursor jsonb,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    status text NOT NULL CHECK (status IN ('proposed', 'accepted', 'enrolled', 'active', 'degraded', 'suspended', 'revoked')),
    signed_at timestamptz,
    last_handshake_at timestamptz,
    last_heartbeat_at timestamptz,
    -- Lower-case hex SHA-256 of the whole acceptance token; the token itself is never stored.
    acceptance_token_digest text CHECK (acceptance_token_digest ~ '^[0-9a-f]{64}$'),
    acceptance_token_expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT platform_peers_have_a_spawn_role CHECK (peer_kind <> 'platform' OR spawn_role IS NOT NULL),
    CONSTRAINT token_digest_and_expiry_together CHECK ((acceptance_token_digest IS NULL) = (acceptance_token_expires_at IS NULL))
);

-- "Revoke and re-propose" works: an instance id is unique only among non-revoked peers.
CREATE UNIQUE INDEX peers_remote_instance_id_live
    ON peers (remote_instance_id)
    WHERE remote_instance_id IS NOT NULL AND status <> 'revoked';

CREATE INDEX peers_status ON peers (status);

-- The sweep reads only active peers by heartbeat age (a missing heartbeat counts as oldest);
-- the idle case every minute must stay one index range probe, not a table scan.
CREATE INDEX peers_active_heartbeat_age
    ON peers ((COALESCE(last_heartbeat_at, '-infinity'::timestamptz)))
    WHERE status = 'active';
