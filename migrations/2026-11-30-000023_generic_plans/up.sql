-- The resource-lookup batch function plans its statement once per session (issue 18). The
-- statement takes arrays as parameters, so PostgreSQL's plan cache kept choosing a custom plan
-- per call, planning every batch again (`get_relation_info`, `expression_tree_walker` and
-- memory-context setup were most of PostgreSQL's time in a resource read; measured with
-- pgbench, one call cost ~200 µs planned each time and ~50 µs with the kept plan). Its generic
-- plan cannot go wrong with the tables' sizes: a scan of the arrays with one unique-index
-- probe per call for the certificate (and its peer), the grant and the resource.
--
-- The heartbeat batch keeps custom plans: its UPDATE joins peers and certificates, and a
-- generic plan chosen while the tables are small (or before statistics) would be kept for the
-- session.
ALTER FUNCTION federation_resource_lookup_batch(text[], text[], text[], text[])
    SET plan_cache_mode = force_generic_plan;
