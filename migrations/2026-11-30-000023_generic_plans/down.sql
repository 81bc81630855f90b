ALTER FUNCTION federation_resource_lookup_batch(text[], text[], text[], text[]) RESET plan_cache_mode;
