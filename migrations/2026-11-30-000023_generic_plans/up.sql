-- The two batch functions plan their statement once per session (issue 18). Their statements
-- take arrays as parameters, so PostgreSQL's plan cache kept choosing a custom plan per call,
-- planning every batch again (`get_relation_info`, `expression_tree_walker` and memory-context
-- setup were most of PostgreSQL's time in a resource read; one lookup call of any size cost
-- ~200 µs before and ~50 µs after, measured with pgbench). The generic plans are the same
-- index probes (EXPLAIN in docs/performance.md).
ALTER FUNCTION federation_resource_lookup_batch(text[], text[], text[], text[])
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION federation_heartbeat_active_batch(text[])
    SET plan_cache_mode = force_generic_plan;
