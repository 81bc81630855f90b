-- Handshakes and renewals lease the peer row (SPEC §4): one short statement sets
-- claimed_until when no live lease holds it; no row lock is held across the remote call,
-- so the remote side's writes on its own row (and ours) never wait on it. claim_token lets only
-- the holder clear its lease; an abandoned lease simply expires.
ALTER TABLE peers
    ADD COLUMN claimed_until timestamptz,
    ADD COLUMN claim_token uuid;

-- When a certificate last authenticated a request (SPEC §4): a re-handshake uses the newest
-- inbound certificate the peer has been seen using, so a renewal whose answer was lost never
-- strands the pair.
ALTER TABLE peer_certificates
    ADD COLUMN last_used_at timestamptz;

-- The batched heartbeat stamps the certificates it applied (at most once a minute each).
CREATE OR REPLACE FUNCTION federation_heartbeat_active_batch(fingerprints text[]) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    applied text[];
BEGIN
    WITH beat AS (
        UPDATE peers p
           SET last_heartbeat_at = now(), updated_at = now()
          FROM peer_certificates c
         WHERE c.fingerprint_sha256 = ANY (fingerprints)
           AND c.direction = 'inbound'
           AND c.revoked_at IS NULL
           AND p.id = c.peer_id
           AND p.status = 'active'
        RETURNING c.fingerprint_sha256
    )
    SELECT coalesce(array_agg(fingerprint_sha256), '{}') INTO applied FROM beat;
    UPDATE peer_certificates
       SET last_used_at = now()
     WHERE fingerprint_sha256 = ANY (applied)
       AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds');
    RETURN jsonb_build_object('at', now(), 'fingerprints', to_jsonb(applied));
END
$$;

-- Resource lookups report when the presented certificate was last stamped, so the API stamps
-- it (a separate write) only when that is over a minute old by this same clock.
CREATE OR REPLACE FUNCTION federation_resource_lookup_batch(text[], text[], text[], text[]) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    answer jsonb;
BEGIN
    SELECT coalesce(jsonb_agg(jsonb_build_object(
        'now', now(),
        'certificate', (
            SELECT jsonb_build_object(
                       'peer_id', c.peer_id,
                       'direction', c.direction,
                       'revoked', c.revoked_at IS NOT NULL,
                       'peer_status', p.status,
                       'last_used_at', c.last_used_at)
              FROM peer_certificates c
              LEFT JOIN peers p ON p.id = c.peer_id
             WHERE c.fingerprint_sha256 = q.fingerprint),
        'grant', (SELECT to_jsonb(g) FROM grants g WHERE g.token_digest = q.digest),
        'resource', (SELECT to_jsonb(r) FROM shared_resources r
                      WHERE r.kind = q.kind AND r.id = q.resource_id)) ORDER BY q.n), '[]'::jsonb)
      INTO answer
      FROM unnest($1, $2, $3, $4) WITH ORDINALITY AS q(fingerprint, digest, kind, resource_id, n);
    -- Text, not jsonb: the API parses it straight into its row structs.
    RETURN answer::text;
END
$$;
