DROP FUNCTION federation_heartbeat_active_batch(text[]);

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
