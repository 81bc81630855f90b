-- Time-ordered ids (the UUIDv7 layout: 48 bits of unix milliseconds, version 7, random bits)
-- for events written by SQL, as the API writes its own (`Uuid::now_v7`): the heartbeat sweep's
-- events land at the right edge of the primary key instead of on random pages of it.
CREATE FUNCTION powernode_uuid_v7(at timestamptz) RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM at) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;
