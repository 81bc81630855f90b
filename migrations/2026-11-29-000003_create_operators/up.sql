-- Operators authenticate with personal tokens; only the SHA-256 of a token is stored.
CREATE TABLE operators (
    id uuid PRIMARY KEY,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    token_digest text NOT NULL UNIQUE CHECK (token_digest ~ '^[0-9a-f]{64}$'),
    permissions text[] NOT NULL CHECK (
        array_position(permissions, NULL) IS NULL
        AND permissions <@ ARRAY['system.federation.read', 'system.federation.manage',
                                 'system.infra_tasks.control', 'system.operators.admin']::text[]
    ),
    created_by uuid REFERENCES operators (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz,
    last_used_at timestamptz
);

-- A name identifies one enabled operator; disabled ones keep their history.
CREATE UNIQUE INDEX operators_name_enabled ON operators (name) WHERE disabled_at IS NULL;
