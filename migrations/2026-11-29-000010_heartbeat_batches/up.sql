-- Concurrent heartbeats of active peers, applied as one statement per batch: the API's batcher
-- (one thread, so batches never run concurrently and cannot deadlock on each other) collects
-- what arrived while the previous batch ran. Same rule as federation_heartbeat_active: only a
-- live certificate we issued to an active peer moves its clocks; anything else is left to the
-- full chain. Returns {"at": <now>, "fingerprints": [<those that were applied>]}.
CREATE FUNCTION federation_heartbeat_active_batch(fingerprints text[]) RETURNS jsonb
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

-- Superseded by the batch form.
DROP FUNCTION federation_heartbeat_active(text);
