-- Grant source allowlists as cidr[]: PostgreSQL itself refuses an entry that is not a network,
-- so an allowlist can never silently lose an entry and widen to "any source". Entries are
-- stored as networks (host bits cleared, a bare address as /32 or /128), which is how they
-- always matched. A stored entry that cannot be converted revokes its grant rather than being
-- dropped: denying is the only safe reading of an allowlist we cannot read.
CREATE OR REPLACE FUNCTION pg_temp.as_network(raw text) RETURNS cidr
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN network(trim(raw)::inet);
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION pg_temp.as_networks(raw text[]) RETURNS cidr[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(pg_temp.as_network(e) ORDER BY n), '{}')
      FROM unnest(raw) WITH ORDINALITY AS u(e, n)
$$;

UPDATE grants
   SET revoked_at = coalesce(revoked_at, now()),
       revocation_reason = coalesce(revocation_reason, 'source_cidrs unreadable at migration'),
       source_cidrs = '{}',
       updated_at = now()
 WHERE EXISTS (SELECT 1 FROM unnest(source_cidrs) e WHERE pg_temp.as_network(e) IS NULL);

ALTER TABLE grants ALTER COLUMN source_cidrs DROP DEFAULT;
ALTER TABLE grants DROP CONSTRAINT grants_source_cidrs_check;
ALTER TABLE grants ALTER COLUMN source_cidrs TYPE cidr[]
    USING pg_temp.as_networks(source_cidrs);
ALTER TABLE grants ALTER COLUMN source_cidrs SET DEFAULT '{}';
ALTER TABLE grants ADD CONSTRAINT grants_source_cidrs_check CHECK (array_position(source_cidrs, NULL) IS NULL);

DROP FUNCTION pg_temp.as_networks(text[]);
DROP FUNCTION pg_temp.as_network(text);
