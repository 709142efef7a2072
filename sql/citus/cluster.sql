-- Wiring a throwaway Citus cluster: adk_sessions._pgcluster runs these for the test suite and the
-- benchmarks. Not a dialect of the library (the session service never runs them); an operator
-- does the same once per database with CREATE EXTENSION citus, citus_set_coordinator_host and
-- citus_add_node.

-- name: create_extension!
-- Citus in this database of this node (each node's database needs it before it joins).
CREATE EXTENSION IF NOT EXISTS citus

-- name: set_coordinator!
-- Tell the cluster how the workers reach the coordinator.
SELECT citus_set_coordinator_host(:host, :port)

-- name: add_node!
-- Register a worker (idempotent: an existing node keeps its id).
SELECT citus_add_node(:host, :port)

-- name: nodes
-- The active primary nodes as the coordinator reaches them; group 0 is the coordinator.
SELECT nodename, nodeport, groupid = 0 AS is_coordinator
FROM pg_dist_node
WHERE isactive AND noderole = 'primary'
ORDER BY groupid, nodeid
