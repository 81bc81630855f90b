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
    RETURN jsonb_build_object('at', now(), 'fingerprints', to_jsonb(applied));
END
$$;


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
                       'peer_status', p.status)
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


ALTER TABLE peer_certificates DROP COLUMN last_used_at;
ALTER TABLE peers DROP COLUMN claim_token, DROP COLUMN claimed_until;
