-- Downgrade of 0001_initial: remove the engine and all its data.
-- Cluster-wide worker roles are not dropped here (roles outlive a database);
-- revoke or drop them with durable.revoke_worker_role / DROP ROLE first.
DROP SCHEMA IF EXISTS durable CASCADE;
