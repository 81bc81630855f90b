-- This instance's identity and internal CA (SPEC §1, §4): one row, shared by every API replica.
-- The CA private key is sealed with AES-256-GCM under the master key; never stored in clear.
CREATE TABLE instance_identity (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    instance_id uuid NOT NULL,
    ca_cert_pem text NOT NULL,
    ca_sha256 text NOT NULL CHECK (ca_sha256 ~ '^[0-9a-f]{64}$'),
    ca_key_sealed bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
