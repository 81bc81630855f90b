-- Back to the jsonb answer of migration 000014.
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
