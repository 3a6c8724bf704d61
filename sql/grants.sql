-- grants.sql: loaded last. Nothing in schema durable is callable by PUBLIC:
-- the owner (and roles it grants to) run the engine; worker roles get
-- EXECUTE on their SECURITY DEFINER functions only (roles.sql).
REVOKE ALL ON SCHEMA durable FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA durable FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA durable FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA durable FROM PUBLIC;
