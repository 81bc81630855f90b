-- The resource-call lookup answers with `json` (text) instead of `jsonb`: the answer is only
-- ever sent to the API as text, and building jsonb first (binary values, keys sorted and
-- de-duplicated, then printed) was most of PostgreSQL's time in a resource read (issue 18's
-- profile). Same shape, same values, same order.
CREATE OR REPLACE FUNCTION federation_resource_lookup_batch(text[], text[], text[], text[]) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT coalesce(json_agg(json_build_object(
            'now', now(),
            'certificate', (
                SELECT json_build_object(
                           'peer_id', c.peer_id,
                           'direction', c.direction,
                           'revoked', c.revoked_at IS NOT NULL,
                           'peer_status', p.status,
                           'last_used_at', c.last_used_at)
                  FROM peer_certificates c
                  LEFT JOIN peers p ON p.id = c.peer_id
                 WHERE c.fingerprint_sha256 = q.fingerprint),
            'grant', (SELECT row_to_json(g) FROM grants g WHERE g.token_digest = q.digest),
            'resource', (SELECT row_to_json(r) FROM shared_resources r
                          WHERE r.kind = q.kind AND r.id = q.resource_id)) ORDER BY q.n), '[]'::json)
          FROM unnest($1, $2, $3, $4) WITH ORDINALITY AS q(fingerprint, digest, kind, resource_id, n)
    )::text;
END
$$;
