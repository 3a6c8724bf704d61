-- grants.sql: loaded last. Nothing in schema durable is callable by PUBLIC:
-- the owner (and roles it grants to) run the engine; worker roles get
-- EXECUTE on their SECURITY DEFINER functions only (roles.sql). Writes no
-- table: only privileges.
--
-- Postgres gives PUBLIC EXECUTE on every new function, and a per-schema
-- ALTER DEFAULT PRIVILEGES cannot take that back. So every migration run
-- ends with durable._reassert_grants() (migrations/env.py): a function a
-- later revision adds is never executable by PUBLIC, and worker roles hold
-- EXECUTE on exactly durable.worker_functions() of that version.

CREATE FUNCTION durable._reassert_grants() RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_role text;
BEGIN
    REVOKE ALL ON SCHEMA durable FROM PUBLIC;
    REVOKE ALL ON ALL TABLES IN SCHEMA durable FROM PUBLIC;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA durable FROM PUBLIC;
    REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA durable FROM PUBLIC;
    FOR v_role IN SELECT c.role_name FROM durable.worker_credentials c
                  WHERE c.database_name = pg_catalog.current_database()
                    AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = c.role_name)
                  ORDER BY c.role_name LOOP
        PERFORM durable._revoke_grants(v_role);
        IF (SELECT c.revoked_at IS NULL FROM durable.worker_credentials c WHERE c.role_name = v_role) THEN
            PERFORM durable._grant_worker(v_role);
        END IF;
    END LOOP;
END $$;
COMMENT ON FUNCTION durable._reassert_grants() IS
    'Owner: takes PUBLIC''s privileges off everything in schema durable (functions added later included) '
    'and gives each live worker role EXECUTE on exactly worker_functions(). Every migration run ends with it.';

SELECT durable._reassert_grants();
