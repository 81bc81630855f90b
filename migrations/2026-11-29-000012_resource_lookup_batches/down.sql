DROP FUNCTION federation_resource_lookup_batch(text[], text[], text[], text[]);

CREATE FUNCTION federation_resource_lookup(text, text, text, text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    answer jsonb;
BEGIN
    SELECT jsonb_build_object(
        'now', now(),
        'certificate', (
            SELECT jsonb_build_object(
                       'peer_id', c.peer_id,
                       'direction', c.direction,
                       'revoked', c.revoked_at IS NOT NULL,
                       'peer_status', p.status)
              FROM peer_certificates c
              LEFT JOIN peers p ON p.id = c.peer_id
             WHERE c.fingerprint_sha256 = $1),
        'grant', (SELECT to_jsonb(g) FROM grants g WHERE g.token_digest = $2),
        'resource', (SELECT to_jsonb(r) FROM shared_resources r WHERE r.kind = $3 AND r.id = $4))
      INTO answer;
    RETURN answer;
END
$$;
