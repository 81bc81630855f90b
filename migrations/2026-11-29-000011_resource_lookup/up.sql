-- Everything a peer's resource call needs, in one prepared statement: the certificate (with its
-- peer's status) by fingerprint, the grant by token digest ($2 NULL: none presented), the
-- database clock, and the resource ($4 NULL: not needed, e.g. a write). The API applies SPEC
-- §4's and §6's checks to the answer in order, exactly as before; only the round trips go.
-- PL/pgSQL, not SQL: a SQL function with sub-selects is not inlined and would be planned on
-- every call; PL/pgSQL keeps its statement's plan for the session.
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
