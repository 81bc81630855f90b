-- The common heartbeat (an active peer's live certificate; SPEC §2: active + heartbeat → active,
-- no event) as one statement whose plan PostgreSQL keeps for the session: Diesel never prepares
-- UPDATE statements, and re-parsing and re-planning this one on every heartbeat cost more than
-- the update itself. Returns the new last_heartbeat_at, or NULL when the certificate is not a
-- live one we issued to an active peer (the API then runs the full chain, with its exact 401s,
-- and the state machine). Revocation is read in the same statement: effective on the next call.
CREATE FUNCTION federation_heartbeat_active(fingerprint text) RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    beat timestamptz;
BEGIN
    UPDATE peers p
       SET last_heartbeat_at = now(), updated_at = now()
      FROM peer_certificates c
     WHERE c.fingerprint_sha256 = fingerprint
       AND c.direction = 'inbound'
       AND c.revoked_at IS NULL
       AND p.id = c.peer_id
       AND p.status = 'active'
    RETURNING p.last_heartbeat_at INTO beat;
    RETURN beat;
END
$$;
