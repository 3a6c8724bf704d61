-- grants.sql: catalog checks (mirrors sql/grants.sql): nothing in schema
-- durable is usable by PUBLIC, and every SECURITY DEFINER function pins
-- its search_path.
BEGIN;
SELECT plan(21);

SELECT cmp_ok((SELECT count(*)::int FROM pg_proc WHERE pronamespace = 'durable'::regnamespace), '>', 40,
              'schema durable holds the engine''s functions (so the checks below are not vacuous)');
SELECT ok(has_function_privilege('public', 'pg_catalog.now()'::regprocedure, 'EXECUTE'),
          'has_function_privilege(''public'', ...) sees a function PUBLIC may run');
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p
                  WHERE p.pronamespace = 'durable'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
                'no function in schema durable is executable by PUBLIC');
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p
                  WHERE p.pronamespace = 'durable'::regnamespace
                    AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c = 'search_path=pg_catalog, pg_temp')$$,
                'every function in schema durable, present and future, pins search_path = pg_catalog, pg_temp');
-- Every call of a built-in in an engine function is written pg_catalog.name(...): with the pinned
-- search_path nothing could shadow it today, but a qualified call stays right whatever a later
-- migration or a DBA does to search paths. Comments and literals are ignored; syntax that looks
-- like a call (COALESCE, EXTRACT, ...) and type casts are not calls.
CREATE FUNCTION pg_temp.unqualified_builtin_calls() RETURNS SETOF text LANGUAGE sql AS $q$
    WITH src AS (
        SELECT p.oid::pg_catalog.regprocedure::text AS fn,
               pg_catalog.regexp_replace(pg_catalog.regexp_replace(pg_catalog.regexp_replace(p.prosrc,
                   '--[^\n]*', '', 'g'), '''([^'']|'''')*''', '''''', 'g'), '"([^"]|"")*"', '""', 'g') AS body
        FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = 'durable'::pg_catalog.regnamespace
    ), calls AS (
        SELECT s.fn, pg_catalog.lower(m[1]) AS name
        FROM src s, pg_catalog.regexp_matches(s.body, '(?<![.\w$])([A-Za-z_][A-Za-z0-9_]*)\s*\(', 'g') m
    )
    SELECT DISTINCT c.fn || ' calls ' || c.name || '() without pg_catalog.'
    FROM calls c
    WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_proc b
                  WHERE b.pronamespace = 'pg_catalog'::pg_catalog.regnamespace AND b.proname = c.name)
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type t
                      WHERE t.typnamespace = 'pg_catalog'::pg_catalog.regnamespace AND t.typname = c.name)
      AND c.name <> ALL (ARRAY['coalesce', 'nullif', 'greatest', 'least', 'exists', 'any', 'all', 'array', 'row',
                               'cast', 'extract', 'position', 'substring', 'overlay', 'trim', 'in', 'values', 'some',
                               'interval', 'numeric', 'varchar', 'char', 'timestamp', 'time', 'decimal', 'float',
                               'if', 'while', 'and', 'or', 'not', 'case', 'when', 'then', 'else', 'over', 'filter',
                               'within', 'using', 'returning', 'select', 'from', 'where', 'on', 'as', 'into',
                               'perform', 'return', 'raise', 'exception', 'left', 'right'])
$q$;
CREATE FUNCTION durable.pgtap_planted() RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp
    AS $$ SELECT format('%s', 'x') -- a comment: lower(x)
          || pg_catalog.lower('UPPER(y)') $$;
SELECT is(ARRAY(SELECT c FROM pg_temp.unqualified_builtin_calls() c WHERE c LIKE 'durable.pgtap_planted%'),
          ARRAY['durable.pgtap_planted() calls format() without pg_catalog.'],
          'the built-in call check finds an unqualified call, and not one in a comment, a literal or a qualified call');
DROP FUNCTION durable.pgtap_planted();
SELECT is_empty('SELECT * FROM pg_temp.unqualified_builtin_calls()',
                'every call of a built-in in schema durable is qualified with pg_catalog.');

SELECT cmp_ok((SELECT count(*)::int FROM pg_proc WHERE pronamespace = 'durable'::regnamespace AND prosecdef), '>', 0,
              'schema durable has SECURITY DEFINER functions (the worker functions), so the checks below bite');
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p, unnest(p.proconfig) c
                  WHERE p.pronamespace = 'durable'::regnamespace AND p.prosecdef AND c LIKE 'search_path=%'
                    AND c !~ 'pg_temp\s*$'$$,
                'every pinned search_path names pg_temp last (else temporary objects would be searched first)');
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p, unnest(p.proconfig) c
                  WHERE p.pronamespace = 'durable'::regnamespace AND p.prosecdef AND c LIKE 'search_path=%'
                    AND (c ~ '\mpublic\M' OR c LIKE '%$user%')$$,
                'no pinned search_path names a schema callers can create objects in (public, $user)');
SELECT is_empty($$SELECT c.oid::regclass::text FROM pg_class c
                  WHERE c.relnamespace = 'durable'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
                    AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege('public', c.oid, 'USAGE,SELECT,UPDATE')
                             ELSE has_table_privilege('public', c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER')
                        END$$,
                'no table or sequence in schema durable is accessible to PUBLIC');
SELECT ok(NOT has_schema_privilege('public', 'durable', 'USAGE') AND NOT has_schema_privilege('public', 'durable', 'CREATE'),
          'PUBLIC may neither use nor create objects in schema durable');
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p
                  WHERE p.pronamespace = 'durable'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL$$,
                'every function in schema durable has a COMMENT a DBA can read in \df+');

-- A role nobody granted anything: even with USAGE on the schema it runs nothing.
CREATE ROLE pgdurable_tap_nobody NOLOGIN;
SELECT throws_ok($sql$DO $x$ BEGIN SET LOCAL ROLE pgdurable_tap_nobody; PERFORM durable.now(); END $x$$sql$, '42501', NULL,
                 'a role without grants cannot reach schema durable');
GRANT USAGE ON SCHEMA durable TO pgdurable_tap_nobody;
SELECT throws_ok($sql$DO $x$ BEGIN SET LOCAL ROLE pgdurable_tap_nobody;
                   PERFORM * FROM durable.claim_v1('n', ARRAY['s'], ARRAY['m']); END $x$$sql$, '42501', NULL,
                 'with USAGE on the schema it still cannot execute an engine function');
SELECT throws_ok($sql$DO $x$ BEGIN SET LOCAL ROLE pgdurable_tap_nobody; PERFORM durable.advance_clock('1 day'); END $x$$sql$,
                 '42501', NULL, 'nor move the engine clock');

-- A function a later migration adds: PUBLIC gets EXECUTE on it by default ...
CREATE FUNCTION durable.added_later() RETURNS integer LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$ SELECT 1 $$;
SELECT ok(has_function_privilege('public', 'durable.added_later()', 'EXECUTE'),
          'a function created in schema durable is executable by PUBLIC at first (Postgres'' default)');
SELECT lives_ok('SELECT durable._reassert_grants()', '_reassert_grants runs (every migration run ends with it)');
SELECT ok(NOT has_function_privilege('public', 'durable.added_later()', 'EXECUTE'),
          '... and after it, not any more');
SELECT role_name AS wr FROM durable.provision_worker_role(ARRAY['g']) \gset
SELECT format('GRANT EXECUTE ON FUNCTION durable.added_later() TO %I', :'wr') \gexec
SELECT durable._reassert_grants() IS NULL AS ignored \gset
SELECT bag_eq(format($$SELECT p.oid::regprocedure FROM pg_proc p
                       WHERE p.pronamespace = 'durable'::regnamespace
                         AND has_function_privilege(%L, p.oid, 'EXECUTE')$$, :'wr'),
              'SELECT f FROM durable.worker_functions() f',
              '_reassert_grants leaves a worker role EXECUTE on exactly worker_functions()');
SELECT is_empty($$SELECT p.oid::regprocedure, a.grantee::regrole FROM pg_proc p, aclexplode(p.proacl) a
                  WHERE p.pronamespace = 'durable'::regnamespace AND a.grantee <> p.proowner
                    AND NOT (p.oid IN (SELECT f FROM durable.worker_functions() f)
                             AND a.grantee IN (SELECT c.role_name::regrole FROM durable.worker_credentials c
                                               WHERE c.revoked_at IS NULL))$$,
                'every function''s ACL names only its owner, and worker roles on worker functions');

-- SECURITY DEFINER is exactly the worker functions' (schema_version() needs no rights): no other
-- function runs with the owner's rights, so nothing else a caller reaches can do more than it may.
SELECT set_eq($$SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'durable'::regnamespace AND p.prosecdef$$,
              $$SELECT f FROM durable.worker_functions() f WHERE f <> 'durable.schema_version()'::regprocedure$$,
              'the SECURITY DEFINER functions of schema durable are exactly the worker functions');

SELECT * FROM finish();
ROLLBACK;
