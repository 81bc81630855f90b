DROP FUNCTION powernode_uuid_v7(timestamptz);
