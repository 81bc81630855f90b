-- Certificates per peer (SPEC §4): `inbound` = we issued it to the peer (from its CSR);
-- `outbound` = our client certificate for talking to that peer, with its sealed private key.
-- A certificate and its key are written in one transaction; the columns stay nullable so a
-- partial row is representable (and reported by the outbound client).
CREATE TABLE peer_certificates (
    id uuid PRIMARY KEY,
    peer_id uuid NOT NULL REFERENCES peers (id) ON DELETE CASCADE,
    direction text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    serial text NOT NULL CHECK (serial ~ '^[0-9a-f]+$'),
    subject text NOT NULL,
    fingerprint_sha256 text CHECK (fingerprint_sha256 ~ '^[0-9a-f]{64}$'),
    cert_pem text,
    key_sealed bytea,
    not_before timestamptz,
    not_after timestamptz,
    revoked_at timestamptz,
    revocation_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT inbound_rows_hold_no_key CHECK (direction = 'outbound' OR key_sealed IS NULL)
);

-- mTLS authentication looks certificates up by fingerprint on every request.
CREATE UNIQUE INDEX peer_certificates_fingerprint ON peer_certificates (fingerprint_sha256)
    WHERE fingerprint_sha256 IS NOT NULL;
CREATE INDEX peer_certificates_peer ON peer_certificates (peer_id, direction, created_at DESC);

-- The federation listener's server certificate, issued by our CA and shared by replicas.
CREATE TABLE server_certificates (
    id uuid PRIMARY KEY,
    hosts text NOT NULL,
    cert_pem text NOT NULL,
    key_sealed bytea NOT NULL,
    not_before timestamptz NOT NULL,
    not_after timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX server_certificates_hosts ON server_certificates (hosts, not_after DESC);
