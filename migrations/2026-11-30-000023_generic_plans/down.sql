ALTER FUNCTION federation_resource_lookup_batch(text[], text[], text[], text[]) RESET plan_cache_mode;
ALTER FUNCTION federation_heartbeat_active_batch(text[]) RESET plan_cache_mode;
