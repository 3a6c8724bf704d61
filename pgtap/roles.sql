-- roles.sql: scoped worker roles (mirrors sql/roles.sql). A provisioned role
-- has no table privileges and may only execute worker_functions(); it
-- consumes only its own streams (PD005 elsewhere), cannot widen its scope
-- with SET, cannot hijack the SECURITY DEFINER functions (nor the DBA
-- functions) through objects on a search_path, and names and passwords
-- pass through quoting untouched. Provisioning is idempotent; rotate and
-- revoke do what they say; the catalog has no PUBLIC EXECUTE and every
-- SECURITY DEFINER function pins search_path.
--
-- Part A needs a real login as a worker role (dblink back to this database),
-- so it runs first, outside any transaction, and drops its role at its end.
-- Part B runs in one transaction that is rolled back (its roles go with it)
-- and acts as the worker roles with SET SESSION AUTHORIZATION, which changes
-- session_user, the user the engine's scope check looks at.

-- Helpers (pg_temp: gone with the session).
-- A libpq value, quoted for a conninfo string.
CREATE FUNCTION pg_temp.conninfo_value(p_value text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT '''' || replace(replace(p_value, '\', '\\'), '''', '\''') || ''''
$$;
-- A DSN back to this database (over its Unix socket when it has one) as p_user.
CREATE FUNCTION pg_temp.login_dsn(p_user text, p_password text) RETURNS text LANGUAGE sql AS $$
    SELECT format('host=%s port=%s dbname=%s user=%s password=%s',
                  pg_temp.conninfo_value(coalesce(nullif(trim(split_part(
                      current_setting('unix_socket_directories'), ',', 1)), ''), '127.0.0.1')),
                  current_setting('port'), pg_temp.conninfo_value(current_database()),
                  pg_temp.conninfo_value(p_user), pg_temp.conninfo_value(p_password))
$$;
-- What logging in says: 'logged in', or the connection error with its detail.
CREATE FUNCTION pg_temp.login_error(p_dsn text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_message text;
    v_detail text;
BEGIN
    PERFORM dblink_connect('roles_probe', p_dsn);
    PERFORM dblink_disconnect('roles_probe');
    RETURN 'logged in';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
    RETURN v_message || ': ' || v_detail;
END $$;
-- Waits (up to 10 s) until role p_role has no session left; true once it has none.
CREATE FUNCTION pg_temp.no_sessions_of(p_role text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..500 LOOP
        PERFORM pg_stat_clear_snapshot();
        IF NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.usename = p_role) THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.02);
    END LOOP;
    RETURN false;
END $$;

-- Every privilege test a worker role must fail, built here as the superuser
-- (a worker role cannot even read worker_functions()).
CREATE TEMP TABLE forbidden (ord serial, sql text NOT NULL, descr text NOT NULL);
INSERT INTO forbidden (sql, descr)
SELECT format(op.sql, c.oid::regclass, col.attname), format(op.descr, c.oid::regclass)
FROM pg_class c
CROSS JOIN LATERAL (SELECT a.attname FROM pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                      AND a.attidentity = '' AND a.attgenerated = ''
                    ORDER BY a.attnum LIMIT 1) col
CROSS JOIN (VALUES (1, 'SELECT * FROM %s', 'a worker role cannot SELECT from %s'),
                   (2, 'INSERT INTO %s DEFAULT VALUES', 'a worker role cannot INSERT into %s'),
                   (3, 'UPDATE %s SET %I = %2$I', 'a worker role cannot UPDATE %s'),
                   (4, 'DELETE FROM %s', 'a worker role cannot DELETE from %s'),
                   (5, 'TRUNCATE %s', 'a worker role cannot TRUNCATE %s')) AS op(n, sql, descr)
WHERE c.relnamespace = 'durable'::regnamespace AND c.relkind IN ('r', 'p')
ORDER BY c.relname, op.n;
INSERT INTO forbidden (sql, descr)
SELECT format('SELECT nextval(%L)', c.oid::regclass), format('a worker role cannot use sequence %s', c.oid::regclass)
FROM pg_class c WHERE c.relnamespace = 'durable'::regnamespace AND c.relkind = 'S'
ORDER BY c.relname;
-- Every function outside worker_functions(), called with non-constant NULLs
-- (a constant NULL given to a STRICT function is folded away unexecuted).
INSERT INTO forbidden (sql, descr)
SELECT format('SELECT %I.%I(%s)', n.nspname, p.proname,
              (SELECT coalesce(string_agg(format('(SELECT NULL::%s)', format_type(t.oid, NULL)), ', '
                                          ORDER BY t.ord), '')
               FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS t(oid, ord))),
       format('a worker role cannot call %s', p.oid::regprocedure)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'durable' AND p.oid NOT IN (SELECT f FROM durable.worker_functions() f)
ORDER BY p.oid::regprocedure::text;
GRANT SELECT ON forbidden TO PUBLIC;

SELECT plan(154 + (SELECT count(*)::integer FROM forbidden));

-- ===========================================================================
-- Part A: a real login as a worker role (committed role, dblink).
-- ===========================================================================
CREATE TEMP TABLE login AS
SELECT * FROM durable.provision_worker_role(ARRAY['login-orders'], 'tap-login',
                                            $pw$x'; DROP TABLE durable.messages; --ä€$pw$);
GRANT SELECT ON login TO PUBLIC;
SELECT role_name AS login_role FROM login \gset
DO $$ BEGIN PERFORM dblink_connect('w', (SELECT pg_temp.login_dsn(role_name, password) FROM login)); END $$;

SELECT is((SELECT s FROM dblink('w', 'SELECT session_user::text') AS t(s text)), :'login_role',
          'a provisioned role logs in (password with quotes, a semicolon and unicode); session_user is the role');
SELECT throws_ok(format($$SELECT dblink_exec('w', 'SET SESSION AUTHORIZATION %I')$$, current_user),
                 '42501', NULL, 'a worker role cannot SET SESSION AUTHORIZATION to the superuser');
SELECT throws_ok(format($$SELECT dblink_exec('w', 'SET ROLE %I')$$, current_user),
                 '42501', NULL, 'a worker role cannot SET ROLE to a role it is not a member of (the superuser)');
SELECT throws_ok($$SELECT dblink_exec('w', 'SET ROLE pg_signal_backend')$$,
                 '42501', NULL, 'a worker role cannot SET ROLE to a predefined role (pg_signal_backend)');
SELECT throws_ok($$SELECT dblink_exec('w', 'ALTER ROLE CURRENT_USER SUPERUSER')$$,
                 '42501', NULL, 'a worker role cannot make itself a superuser');
SELECT throws_ok($$SELECT dblink_exec('w', 'CREATE TABLE durable.planted (i integer)')$$,
                 '42501', NULL, 'a worker role cannot create objects in schema durable');
SELECT throws_ok($$SELECT dblink_exec('w', 'CREATE SCHEMA planted')$$,
                 '42501', NULL, 'a worker role cannot create a schema');
SELECT lives_ok($$SELECT dblink_exec('w', 'SET durable.namespace = ''tap-other''; '
                                         'SET durable.role = ''postgres''; SET durable.streams = ''payments''; '
                                         'SET search_path = durable, public')$$,
                'a worker role may SET custom durable.* settings and its search_path...');
SELECT throws_ok($$SELECT * FROM dblink('w', 'SELECT message_id FROM durable.claim_workflow_tasks_v1(
                       ''tap-login'', ARRAY[''payments''], ARRAY[''order_workflow''])') AS t(id bigint)$$,
                 'PD005', NULL, '...but claiming a stream outside its scope still fails with PD005');
SELECT throws_like($$SELECT * FROM dblink('w', 'SELECT message_id FROM durable.claim_workflow_tasks_v1(
                         ''tap-login'', ARRAY[''payments''], ARRAY[''order_workflow''])') AS t(id bigint)$$,
                   '%may not consume stream(s) payments in namespace ''tap-login''%',
                   'the PD005 message names the stream it may not consume');
SELECT is((SELECT count(*)::integer FROM dblink('w', 'SELECT message_id FROM durable.claim_workflow_tasks_v1(
               ''tap-login'', ARRAY[''login-orders''], ARRAY[''order_workflow''])') AS t(id bigint)), 0,
          'claiming its own stream works over a real login (nothing queued: no rows)');

SELECT lives_ok(format('SELECT durable.revoke_worker_role(%L)', :'login_role'),
                'revoke_worker_role revokes a role that has a live session');
SELECT ok(pg_temp.no_sessions_of(:'login_role'), 'revoking ends the role''s live sessions');
SELECT throws_ok($$SELECT dblink_exec('w', 'SELECT 1')$$, NULL::char(5), NULL,
                 'the revoked role''s open connection is dead');
SELECT matches(pg_temp.login_error((SELECT pg_temp.login_dsn(role_name, password) FROM login)),
               'not permitted to log in', 'a revoked role cannot log in again');
SELECT is((SELECT rolcanlogin FROM pg_roles WHERE rolname = :'login_role'), false,
          'a revoked role is NOLOGIN');

DO $$ BEGIN PERFORM dblink_disconnect('w'); END $$;
SELECT format('DROP OWNED BY %1$I; DROP ROLE %1$I', :'login_role') \gexec

-- ===========================================================================
-- Part B: one transaction, rolled back.
-- ===========================================================================
BEGIN;
-- Forced to md5 for this session: worker passwords must still be SCRAM.
SET password_encryption = 'md5';
SELECT role_name AS wrk, password AS wrk_pw
FROM durable.provision_worker_role(ARRAY['orders', 'orders-activity']) \gset
RESET password_encryption;
SELECT role_name AS payer FROM durable.provision_worker_role(ARRAY['payments']) \gset
SELECT role_name AS biller FROM durable.provision_worker_role(ARRAY['invoices'], 'billing') \gset

-- Work inside and outside the worker's scope. The superuser (no worker row:
-- trusted) holds leases on payments tasks, whose tokens the worker will try.
SELECT run_id FROM durable.start_workflow_v1('durable', 'o-1', 'order_workflow', 'orders', '["o-1"]') \gset
SELECT run_id FROM durable.start_workflow_v1('durable', 'o-2', 'refund_workflow', 'orders', '["o-2"]') \gset
SELECT run_id FROM durable.start_workflow_v1('durable', 'p-1', 'order_workflow', 'payments', '["p-1"]') \gset
SELECT run_id FROM durable.start_workflow_v1('durable', 'p-2', 'order_workflow', 'payments', '["p-2"]') \gset
SELECT message_id AS p1_id, lease_token AS p1_token
FROM durable.claim_workflow_tasks_v1('durable', ARRAY['payments'], ARRAY['order_workflow'], 1) \gset
SELECT c.status AS p1_done FROM durable.complete_workflow_task_v1(:p1_id, :'p1_token', 1,
    '[{"type": "activity", "seq": 1, "name": "charge", "args": "[\"p-1\"]"}]') c \gset
SELECT message_id AS pw_id, lease_token AS pw_token, workflow_id AS pw_workflow
FROM durable.claim_workflow_tasks_v1('durable', ARRAY['payments'], ARRAY['order_workflow'], 1) \gset
SELECT message_id AS pa_id, lease_token AS pa_token
FROM durable.claim_activity_tasks_v1('durable', ARRAY['payments-activity'], ARRAY['charge'], 1) \gset
SELECT durable.enqueue_v1('durable', 'payments', 'job') AS pm_id \gset
SELECT id AS pm_id, lease_token AS pm_token FROM durable.claim_v1('durable', ARRAY['payments'], ARRAY['job']) \gset
CREATE TEMP TABLE held_before AS
SELECT id, lease_token, visible_at, attempt FROM durable.messages WHERE stream LIKE 'payments%';

-- ---------------------------------------------------------------------------
-- Catalog: what a provisioned role holds, and what PUBLIC holds.
-- ---------------------------------------------------------------------------
SELECT bag_eq(format($$SELECT p.oid::regprocedure FROM pg_proc p
                       WHERE p.pronamespace = 'durable'::regnamespace
                         AND has_function_privilege(%L, p.oid, 'EXECUTE')$$, :'wrk'),
              'SELECT f FROM durable.worker_functions() f',
              'a worker role may execute exactly worker_functions()');
SELECT is_empty(format($$SELECT c.oid::regclass FROM pg_class c
                         WHERE c.relnamespace = 'durable'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
                           AND has_table_privilege(%L, c.oid,
                               'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')$$, :'wrk'),
                'a worker role holds no privilege on any table of schema durable');
SELECT is_empty(format($$SELECT c.oid::regclass FROM pg_class c
                         WHERE c.relnamespace = 'durable'::regnamespace
                           AND CASE WHEN c.relkind = 'S'
                                    THEN has_sequence_privilege(%L, c.oid, 'USAGE, SELECT, UPDATE') END$$, :'wrk'),
                'a worker role holds no privilege on any sequence of schema durable');
SELECT ok(has_schema_privilege(:'wrk', 'durable', 'USAGE') AND NOT has_schema_privilege(:'wrk', 'durable', 'CREATE'),
          'a worker role may use schema durable but not create in it');
SELECT results_eq(format($$SELECT rolcanlogin, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolreplication,
                                  rolbypassrls FROM pg_roles WHERE rolname = %L$$, :'wrk'),
                  $$VALUES (true, false, false, false, false, false, false)$$,
                  'a worker role is LOGIN NOSUPERUSER NOINHERIT NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS');
SELECT is_empty(format($$SELECT m.roleid::regrole FROM pg_auth_members m WHERE m.member = %L::regrole$$, :'wrk'),
                'a worker role is a member of no role');
SELECT matches((SELECT rolpassword FROM pg_authid WHERE rolname = :'wrk'), '^SCRAM-SHA-256\$',
               'a worker password is stored as a SCRAM verifier even when the session asks for md5');
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p
                  WHERE p.pronamespace = 'durable'::regnamespace AND p.prosecdef
                    AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')$$,
                'every SECURITY DEFINER function in schema durable sets search_path');
SELECT is_empty($$SELECT p.oid::regprocedure, c FROM pg_proc p, unnest(p.proconfig) c
                  WHERE p.pronamespace = 'durable'::regnamespace AND c LIKE 'search_path=%'
                    AND (c !~ ', pg_temp$'
                         OR EXISTS (SELECT 1 FROM unnest(string_to_array(substr(c, 13), ', ')) s
                                    WHERE s NOT IN ('pg_catalog', 'durable', 'pg_temp')))$$,
                'every pinned search_path names only pg_catalog, durable and pg_temp, with pg_temp last');
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p
                  WHERE p.oid IN ('durable.provision_worker_role(text[], text, text, text[], text[], integer, interval, interval, interval)'::regprocedure,
                                  'durable.rotate_worker_password(text, text, text, boolean)'::regprocedure,
                                  'durable.revoke_worker_role(text, text)'::regprocedure,
                                  'durable.list_worker_roles(text)'::regprocedure)
                    AND NOT ('search_path=pg_catalog, pg_temp' = ANY (coalesce(p.proconfig, '{}')))$$,
                'the DBA functions (provision, rotate, revoke, list) pin search_path too');
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p
                  WHERE p.pronamespace = 'durable'::regnamespace
                    AND (p.proacl IS NULL
                         OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a
                                    WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))$$,
                'no function in schema durable is executable by PUBLIC');
SELECT ok(NOT has_schema_privilege('public', 'durable', 'USAGE'), 'PUBLIC may not use schema durable');

-- ---------------------------------------------------------------------------
-- As the worker role: no tables, no other functions.
-- ---------------------------------------------------------------------------
SET SESSION AUTHORIZATION :'wrk';
SELECT is(session_user::text, :'wrk', 'the tests below run with session_user = the worker role');
SELECT throws_ok(f.sql, '42501', NULL, f.descr) FROM forbidden f ORDER BY f.ord;
SELECT throws_ok($$SELECT * FROM durable.start_workflow_v1('durable', 'w-1', 'order_workflow', 'orders', '[]')$$,
                 '42501', NULL, 'a worker role cannot start workflows');
SELECT throws_ok($$SELECT durable.send_signal_v1('durable', 'sig', '"x"')$$,
                 '42501', NULL, 'a worker role cannot send signals through the client function');
SELECT throws_ok($$SELECT durable.set_clock_offset('1 year')$$,
                 '42501', NULL, 'a worker role cannot move the engine clock (set_clock_offset)');
SELECT throws_ok($$SELECT durable.advance_clock('1 year')$$,
                 '42501', NULL, 'a worker role cannot move the engine clock (advance_clock)');
SELECT throws_ok($$SELECT * FROM durable.provision_worker_role(ARRAY['payments', 'orders'])$$,
                 '42501', NULL, 'a worker role cannot provision roles (e.g. a wider one for itself)');
SELECT throws_ok(format($$SELECT durable.rotate_worker_password(%L)$$, :'payer'),
                 '42501', NULL, 'a worker role cannot rotate passwords');
SELECT throws_ok(format($$SELECT durable.revoke_worker_role(%L)$$, :'payer'),
                 '42501', NULL, 'a worker role cannot revoke roles');
SELECT throws_ok($$SELECT * FROM durable.list_worker_roles()$$,
                 '42501', NULL, 'a worker role cannot list worker roles');
SELECT throws_ok($$SELECT durable._authorize('durable', ARRAY['payments'])$$,
                 '42501', NULL, 'a worker role cannot call the internal scope check');

-- ---------------------------------------------------------------------------
-- As the worker role: its own streams work, others fail with PD005.
-- ---------------------------------------------------------------------------
SELECT results_eq($$SELECT role_name, namespace, stream_names, revoked FROM durable.worker_scope_v1()$$,
                  format($$VALUES (%L, 'durable', ARRAY['orders', 'orders-activity'], false)$$, :'wrk'),
                  'worker_scope_v1 tells the role its own scope');
SELECT is(durable.schema_version() >= 1, true, 'a worker role may read the schema version');
CREATE TEMP TABLE wf_task AS
SELECT * FROM durable.claim_workflow_tasks_v1('durable', ARRAY['orders'], ARRAY['order_workflow'], 1);
SELECT is((SELECT count(*)::integer FROM wf_task), 1, 'a worker role claims a workflow task of its own stream');
SELECT is((SELECT count(*)::integer FROM durable.run_history_v1('durable', (SELECT workflow_id FROM wf_task),
                                                                   (SELECT run_id FROM wf_task),
                                                                   (SELECT lease_token FROM wf_task))), 1,
          'a worker role reads the history of a run whose task it holds, giving that task''s lease token');
SELECT throws_ok(format($$SELECT durable.run_history_v1('durable', %L, %s, gen_random_uuid())$$,
                        (SELECT workflow_id FROM wf_task), (SELECT run_id FROM wf_task)),
                 'PD005', NULL, '...but not with another token: holding the task is not enough, the caller must');
SELECT is((SELECT c.status FROM durable.complete_workflow_task_v1(
               (SELECT message_id FROM wf_task), (SELECT lease_token FROM wf_task), 1,
               '[{"type": "activity", "seq": 1, "name": "charge", "args": "[\"o\"]"}]') c),
          'ok', 'a worker role completes its workflow task (scheduling an activity)');
CREATE TEMP TABLE act_task AS
SELECT * FROM durable.claim_activity_tasks_v1('durable', ARRAY['orders-activity'], ARRAY['charge'], 1);
SELECT is((SELECT count(*)::integer FROM act_task), 1, 'a worker role claims an activity task of its own stream');
SELECT is(durable.heartbeat_activity_v1((SELECT message_id FROM act_task), (SELECT lease_token FROM act_task),
                                        '"half way"'),
          true, 'a worker role heartbeats its activity');
SELECT is((SELECT c.recorded FROM durable.complete_activity_v1(
               (SELECT message_id FROM act_task), (SELECT lease_token FROM act_task), '"receipt-o"') c),
          true, 'a worker role records its activity''s result');
SELECT lives_ok($$SELECT durable.next_wakeup_v1('durable', ARRAY['orders'], ARRAY['order_workflow']),
                         durable.fire_timers_v1('durable', ARRAY['orders'])$$,
                'next_wakeup and fire_timers work on its own streams');

SELECT throws_ok($$SELECT * FROM durable.claim_workflow_tasks_v1('durable', ARRAY['payments'], ARRAY['order_workflow'])$$,
                 'PD005', NULL, 'claiming workflow tasks of another stream fails with PD005');
SELECT throws_like($$SELECT * FROM durable.claim_workflow_tasks_v1('durable', ARRAY['orders', 'payments'],
                                                                   ARRAY['order_workflow'])$$,
                   format('worker role %s may not consume stream(s) payments in namespace ''durable''%%', :'wrk'),
                   'asking for its own stream and another, the PD005 message names only the other one');
SELECT throws_ok($$SELECT * FROM durable.claim_activity_tasks_v1('durable', ARRAY['payments-activity'], ARRAY['charge'])$$,
                 'PD005', NULL, 'claiming activity tasks of another stream fails with PD005');
SELECT throws_ok($$SELECT * FROM durable.claim_v1('durable', ARRAY['orders'], ARRAY['job'])$$,
                 '42501', NULL, 'the plain-message queue is the owner''s API: a worker role may not claim, even on its streams');
SELECT throws_ok($$SELECT durable.next_wakeup_v1('durable', ARRAY['payments'], ARRAY['job'])$$,
                 'PD005', NULL, 'next_wakeup on another stream fails with PD005');
SELECT throws_ok($$SELECT durable.fire_timers_v1('durable', ARRAY['payments'])$$,
                 'PD005', NULL, 'firing the timers of another stream fails with PD005');
SELECT throws_like($$SELECT * FROM durable.claim_workflow_tasks_v1('billing', ARRAY['orders'], ARRAY['order_workflow'])$$,
                   '%may not consume stream(s) orders in namespace ''billing''%',
                   'its own stream names in another namespace fail with PD005 naming that namespace');
SELECT throws_ok(format($$SELECT durable.complete_workflow_task_v1(%s, %L, 1, '[]')$$, :pw_id, :'pw_token'),
                 'PD005', NULL, 'holding another stream''s lease token does not let it complete that workflow task');
SELECT throws_ok(format($$SELECT durable.fail_workflow_task_v1(%s, %L, '{}')$$, :pw_id, :'pw_token'),
                 'PD005', NULL, '...nor fail that workflow task');
SELECT throws_ok(format($$SELECT durable.run_history_v1('durable', %L, 1)$$, :'pw_workflow'),
                 'PD005', NULL, '...nor read that run''s history');
SELECT throws_ok($$SELECT durable.run_history_v1('durable', 'o-1', 1)$$,
                 'PD005', NULL, 'a worker role may not read the history of a run whose task it does not hold');
SELECT throws_ok(format($$SELECT durable.complete_activity_v1(%s, %L, '"forged"')$$, :pa_id, :'pa_token'),
                 'PD005', NULL, '...nor complete another stream''s activity');
SELECT throws_ok(format($$SELECT durable.fail_activity_v1(%s, %L, '{}')$$, :pa_id, :'pa_token'),
                 'PD005', NULL, '...nor fail it');
SELECT throws_ok(format($$SELECT durable.heartbeat_activity_v1(%s, %L, '"x"', '100 years')$$, :pa_id, :'pa_token'),
                 'PD005', NULL, '...nor extend its lease by heartbeat');
SELECT throws_ok(format($$SELECT durable.ack_v1(%s, %L)$$, :pm_id, :'pm_token'),
                 '42501', NULL, '...nor ack another stream''s message');
SELECT throws_ok(format($$SELECT durable.release_v1(%s, %L)$$, :pm_id, :'pm_token'),
                 'PD005', NULL, '...nor release it');
SELECT throws_ok(format($$SELECT durable.extend_lease_v1(ARRAY[%s, %s]::bigint[], ARRAY[%L, %L]::uuid[], '1 year')$$,
                        :pm_id, :pa_id, :'pm_token', :'pa_token'),
                 'PD005', NULL, '...nor extend leases of other streams');

-- SET cannot widen the scope: the check reads session_user and the
-- worker_credentials table, no setting.
SET durable.namespace = 'billing';
SET durable.role = 'postgres';
SET durable.stream_names = '{payments}';
SET search_path = durable, public;
SELECT throws_ok($$SELECT * FROM durable.claim_workflow_tasks_v1('durable', ARRAY['payments'], ARRAY['order_workflow'])$$,
                 'PD005', NULL, 'after SET durable.* and SET search_path, another stream still fails with PD005');
RESET search_path;
SELECT throws_ok(format('SET ROLE %I', :'payer'), '42501', NULL,
                 'a worker role cannot SET ROLE to another worker role (with a wider or other scope)');
SELECT throws_ok('SET ROLE pg_read_all_data', '42501', NULL, 'a worker role cannot SET ROLE pg_read_all_data');
SELECT is(current_user::text, :'wrk', 'the role is unchanged after the refused SET ROLEs');

RESET SESSION AUTHORIZATION;
SELECT is_empty($$SELECT b.id FROM held_before b JOIN durable.messages m USING (id)
                  WHERE (m.lease_token, m.visible_at, m.attempt) IS DISTINCT FROM (b.lease_token, b.visible_at, b.attempt)
                  UNION ALL SELECT b.id FROM held_before b WHERE b.id NOT IN (SELECT id FROM durable.messages)$$,
                'the refused calls left every message of the other stream as it was');
SELECT is((SELECT offset_by FROM durable.clock), interval '0', 'the engine clock did not move');

-- ---------------------------------------------------------------------------
-- Eager dispatch (work handed straight to the worker that completes a task)
-- stays inside the completing role's scope.
-- ---------------------------------------------------------------------------
SELECT role_name AS wf_only FROM durable.provision_worker_role(ARRAY['orders']) \gset
SELECT role_name AS act_only FROM durable.provision_worker_role(ARRAY['orders-activity']) \gset
SELECT run_id FROM durable.start_workflow_v1('durable', 'e-1', 'eager_workflow', 'orders', '[]') \gset
SELECT run_id FROM durable.start_workflow_v1('durable', 'e-2', 'eager_workflow_2', 'orders', '[]') \gset
SET SESSION AUTHORIZATION :'wf_only';
CREATE TEMP TABLE eager_claim AS
SELECT * FROM durable.claim_workflow_tasks_v1('durable', ARRAY['orders'], ARRAY['eager_workflow'], 1);
CREATE TEMP TABLE eager_done AS
SELECT c.* FROM eager_claim x, durable.complete_workflow_task_v1(x.message_id, x.lease_token, 1,
    '[{"type": "activity", "seq": 1, "name": "eager_charge", "args": "[]"}]',
    '{"owner": "w", "lease_seconds": 30, "activity_stream": "orders-activity", "activity_names": ["eager_charge"]}') c;
SELECT is((SELECT activities FROM eager_done), '[]'::jsonb,
          'eager dispatch does not hand a workflow-only role an activity of a stream outside its scope...');
SET SESSION AUTHORIZATION :'act_only';
CREATE TEMP TABLE eager_act AS
SELECT * FROM durable.claim_activity_tasks_v1('durable', ARRAY['orders-activity'], ARRAY['eager_charge'], 1);
CREATE TEMP TABLE eager_act_done AS
SELECT c.* FROM eager_act x, durable.complete_activity_v1(x.message_id, x.lease_token, '"r"',
    '{"owner": "a", "lease_seconds": 30, "task_queue": "orders", "workflow_names": ["eager_workflow"]}') c;
SELECT ok((SELECT recorded AND workflow_task IS NULL FROM eager_act_done),
          '...and eager continuation does not hand an activity-only role a workflow task outside its scope');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT count(*)::integer FROM durable.messages
           WHERE workflow_id = 'e-1' AND kind = 'workflow' AND lease_token IS NULL), 1,
          'the woken workflow task waits, unleased, for a worker that may consume its stream');
SET SESSION AUTHORIZATION :'wrk';
CREATE TEMP TABLE eager_claim2 AS
SELECT * FROM durable.claim_workflow_tasks_v1('durable', ARRAY['orders'], ARRAY['eager_workflow_2'], 1);
CREATE TEMP TABLE eager_done2 AS
SELECT c.* FROM eager_claim2 x, durable.complete_workflow_task_v1(x.message_id, x.lease_token, 1,
    '[{"type": "activity", "seq": 1, "name": "eager_charge", "args": "[]"}]',
    '{"owner": "w", "lease_seconds": 30, "activity_stream": "orders-activity", "activity_names": ["eager_charge"]}') c;
SELECT is(jsonb_array_length((SELECT activities FROM eager_done2)), 1,
          'a role that may consume the activity stream does get the activity eagerly (the checks above can fail)');
CREATE TEMP TABLE eager_act_done2 AS
SELECT c.* FROM durable.complete_activity_v1(
    (SELECT (e->>'message_id')::bigint FROM eager_done2, jsonb_array_elements(activities) e),
    (SELECT (e->>'lease_token')::uuid FROM eager_done2, jsonb_array_elements(activities) e), '"r"',
    '{"owner": "w", "lease_seconds": 30, "task_queue": "orders", "workflow_names": ["eager_workflow_2"]}') c;
SELECT ok((SELECT recorded AND workflow_task IS NOT NULL FROM eager_act_done2),
          '...and the woken workflow task too');
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------------------
-- Produce scope: what a role's workflows may target.
-- ---------------------------------------------------------------------------
SELECT role_name AS prod FROM durable.provision_worker_role(ARRAY['shop', 'shop-activity']) \gset
SELECT is((SELECT produce FROM durable.list_worker_roles() WHERE role_name = :'prod'), ARRAY['shop'],
          'by default a role produces to its own task queues (its streams less -activity)');
SELECT run_id FROM durable.start_workflow_v1('durable', 's-1', 'shop_wf', 'shop', '[]') \gset
SELECT run_id FROM durable.start_workflow_v1('durable', 'pay-done', 'pay_wf', 'payments', '["x"]') \gset
SELECT run_id FROM durable.start_workflow_v1('durable', 'pay-wait', 'pay_wait', 'payments', '[]') \gset
SELECT c.status AS ignored FROM durable.claim_workflow_tasks_v1('durable', ARRAY['payments'], ARRAY['pay_wf'], 1) t,
    durable.complete_workflow_task_v1(t.message_id, t.lease_token, 1, '[{"type": "complete", "result": "\"paid\""}]') c \gset
SELECT c.status AS ignored FROM durable.claim_workflow_tasks_v1('durable', ARRAY['payments'], ARRAY['pay_wait'], 1) t,
    durable.complete_workflow_task_v1(t.message_id, t.lease_token, 1,
        '[{"type": "condition", "seq": 1, "signal_id": "shop-paid"}]') c \gset
SET SESSION AUTHORIZATION :'prod';
CREATE TEMP TABLE shop_task AS
SELECT * FROM durable.claim_workflow_tasks_v1('durable', ARRAY['shop'], ARRAY['shop_wf'], 1);
SELECT throws_like(format($$SELECT durable.complete_workflow_task_v1(%s, %L, 1,
                              '[{"type": "activity", "seq": 1, "name": "refund", "task_queue": "payments", "args": "[]"}]')$$,
                          (SELECT message_id FROM shop_task), (SELECT lease_token FROM shop_task)),
                   format('worker role %s may not schedule activity ''refund'' on task queue ''payments''%%', :'prod'),
                   'an activity on a task queue outside the produce scope is refused, naming the target (PD005)');
SELECT throws_like(format($$SELECT durable.complete_workflow_task_v1(%s, %L, 1,
                              '[{"type": "child", "seq": 1, "workflow_id": "c-1", "workflow_name": "pay_wf",
                                 "task_queue": "payments", "args": "[]", "awaited": true}]')$$,
                          (SELECT message_id FROM shop_task), (SELECT lease_token FROM shop_task)),
                   format('worker role %s may not start workflow ''pay_wf'' on task queue ''payments''%%', :'prod'),
                   '...and so is a child workflow');
SELECT is((SELECT c.status FROM shop_task t, durable.complete_workflow_task_v1(t.message_id, t.lease_token, 1,
               '[{"type": "signal", "seq": 1, "signal_id": "shop-paid", "data": "\"forged\""}]') c), 'ok',
          'a signal command is accepted...');
RESET SESSION AUTHORIZATION;
SELECT is_empty($$SELECT 1 FROM durable.messages WHERE name IN ('refund', 'pay_wf') AND stream LIKE 'payments%'
                  UNION ALL SELECT 1 FROM durable.workflows WHERE workflow_id = 'c-1'$$,
                'the refused commands left nothing behind');
SELECT is((SELECT array_agg(event_type::text ORDER BY event_id) FROM durable.history
           WHERE workflow_id = 'pay-wait' AND inbound), ARRAY['workflow_started'],
          '...but it does not reach a waiting run of a task queue outside the sender''s produce scope');
SELECT is((SELECT allowed_queues FROM durable.signals WHERE signal_id = 'shop-paid'), ARRAY['shop'],
          'it is buffered for the sender''s own task queues only');
SELECT run_id FROM durable.start_workflow_v1('durable', 's-x', 'shop_wf', 'shop', '[]') \gset
SET SESSION AUTHORIZATION :'prod';
SELECT is((SELECT c.status FROM durable.claim_workflow_tasks_v1('durable', ARRAY['shop'], ARRAY['shop_wf'], 1) t,
               durable.complete_workflow_task_v1(t.message_id, t.lease_token, 1,
                   '[{"type": "cancel_external", "seq": 1, "workflow_id": "pay-wait"},
                     {"type": "interrupt_external", "seq": 2, "workflow_id": "no-such-workflow"}]') c), 'requeued',
          'external cancel and interrupt commands of workflows outside the produce scope complete...');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT array_agg(data->>'outcome' ORDER BY seq) FROM durable.history
           WHERE workflow_id = 's-x' AND event_type LIKE 'external_%'), ARRAY['refused', 'refused'],
          '...refused alike for a workflow of another task queue and an unknown id (_steer_external)');
SELECT is((SELECT cancel_requested::text || status FROM durable.workflows WHERE workflow_id = 'pay-wait'), 'falserunning',
          'the workflow outside the scope is untouched');
SELECT c.status AS ignored FROM durable.claim_workflow_tasks_v1('durable', ARRAY['shop'], ARRAY['shop_wf'], 1) t,
    durable.complete_workflow_task_v1(t.message_id, t.lease_token, 100, '[{"type": "complete", "result": "\"x\""}]') c \gset

SELECT ok((SELECT role_name = :'prod' FROM durable.provision_worker_role(ARRAY['shop', 'shop-activity'],
              p_produce => ARRAY['shop', 'payments'], p_signal_prefixes => ARRAY['shop-'],
              p_connection_limit => 3, p_lock_timeout => '5 seconds')),
          're-provisioning the same streams keeps the role and sets the new scopes and limits');
SELECT is((SELECT (produce, signal_prefixes)::text FROM durable.list_worker_roles() WHERE role_name = :'prod'),
          '("{payments,shop}",{shop-})', 'list_worker_roles shows the widened produce scope and the prefixes');
SELECT run_id FROM durable.start_workflow_v1('durable', 's-2', 'shop_wf', 'shop', '[]') \gset
SET SESSION AUTHORIZATION :'prod';
CREATE TEMP TABLE shop_task2 AS
SELECT * FROM durable.claim_workflow_tasks_v1('durable', ARRAY['shop'], ARRAY['shop_wf'], 1);
SELECT throws_like(format($$SELECT durable.complete_workflow_task_v1(%s, %L, 1,
                              '[{"type": "condition", "seq": 1, "signal_id": "hr-approve"}]')$$,
                          (SELECT message_id FROM shop_task2), (SELECT lease_token FROM shop_task2)),
                   format('worker role %s may not wait on signal ''hr-approve''%%', :'prod'),
                   'a condition on a signal id outside the role''s prefixes is refused (PD005)');
SELECT is((SELECT c.status FROM shop_task2 t, durable.complete_workflow_task_v1(t.message_id, t.lease_token, 1,
               '[{"type": "activity", "seq": 1, "name": "refund", "task_queue": "payments", "args": "[]"},
                 {"type": "child", "seq": 2, "workflow_id": "pay-done", "workflow_name": "shop_child",
                  "task_queue": "payments", "args": "[]", "awaited": true},
                 {"type": "condition", "seq": 3, "signal_id": "shop-ok"}]') c), 'requeued',
          'with payments in its produce scope, the activity, the child and the condition are accepted (requeued: '
          'the refused child''s failure came back at once)');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT count(*)::integer FROM durable.messages WHERE name = 'refund' AND stream = 'payments-activity'), 1,
          'the activity is scheduled on payments-activity');
DELETE FROM durable.messages WHERE name = 'refund';  -- the checks below count payments messages
SELECT results_eq($$SELECT run_id, workflow_name, status, result FROM durable.workflows WHERE workflow_id = 'pay-done'$$,
                  $$VALUES (1, 'pay_wf', 'completed', '"paid"')$$,
                  'a child never takes over the id of a closed workflow of another name: its result stays');
SELECT is((SELECT data->'error'->>'type' FROM durable.history WHERE workflow_id = 's-2' AND event_type = 'child_failed'),
          'DuplicateWorkflowError', 'the parent is told, as a child failure');

SELECT is((SELECT rolconnlimit FROM pg_roles WHERE rolname = :'prod'), 3, 'the connection limit given is set');
SELECT ok((SELECT s.setconfig @> ARRAY['statement_timeout=60000ms', 'idle_in_transaction_session_timeout=60000ms',
                                       'lock_timeout=5000ms']
           FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
           WHERE s.setrole = :'prod'::regrole AND d.datname = current_database()),
          'and the timeouts are the role''s session defaults in this database');
SELECT is((SELECT rolconnlimit FROM pg_roles WHERE rolname = :'wrk'), 50, 'the default connection limit is 50');
SELECT throws_ok($$SELECT * FROM durable.provision_worker_role(ARRAY['x'], p_connection_limit => 0)$$, 'PD004', NULL,
                 'a connection limit below 1 is refused');
SELECT throws_like($$SELECT * FROM durable.provision_worker_role(ARRAY['x'], p_password => 'md5' || md5('secretsecret'))$$,
                   '%pre-hashed passwords%', 'a pre-hashed md5 password is refused...');
SELECT throws_like(format($$SELECT durable.rotate_worker_password(%L, 'SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2VydmVy')$$,
                          :'prod'), '%pre-hashed passwords%', '...and so is a SCRAM verifier, when rotating too');
SELECT lives_ok(format($$SELECT durable.rotate_worker_password(%L, NULL, NULL, true)$$, :'prod'),
                'rotate_worker_password can end the role''s live sessions');

-- Membership is no way in: only a worker role's own login is.
CREATE ROLE pgdurable_tap_member LOGIN INHERIT;
SELECT format('GRANT %I TO pgdurable_tap_member', :'prod') \gexec
SET SESSION AUTHORIZATION pgdurable_tap_member;
SELECT throws_like($$SELECT * FROM durable.claim_workflow_tasks_v1('durable', ARRAY['shop'], ARRAY['shop_wf'])$$,
                   '%is not a pgdurable worker role of this database%',
                   'a member of a worker role, logged in as itself, may not use the worker functions');
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------------------
-- Search-path hijacking: objects planted in a schema the worker role owns
-- (first on its search_path) and in pg_temp never run inside the engine.
-- ---------------------------------------------------------------------------
CREATE SCHEMA evil AUTHORIZATION :"wrk";
CREATE TEMP TABLE hijack_outcomes (step text, outcome text);
GRANT ALL ON hijack_outcomes TO PUBLIC;
SET SESSION AUTHORIZATION :'wrk';
CREATE TABLE evil.hits (what text, ran_as name);
-- Records that it ran, and as whom; run with the rights to do so, it makes
-- the owner of schema evil (the worker role) a superuser.
CREATE FUNCTION evil.trap(p_what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO evil.hits VALUES (p_what, current_user);
    BEGIN
        EXECUTE pg_catalog.format('ALTER ROLE %s SUPERUSER',
            (SELECT n.nspowner::pg_catalog.regrole FROM pg_catalog.pg_namespace n
             WHERE n.nspname OPERATOR(pg_catalog.=) 'evil'));
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
END $$;
-- Look-alikes of what the engine calls; = on text says yes to everything
-- (a scope check fooled by it would pass any stream), the others pass through.
CREATE FUNCTION evil.texteq(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.trap('operator = (text, text)'); RETURN true; END $$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq);
CREATE FUNCTION evil.unnest(text[]) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.trap('unnest(text[])'); RETURN QUERY SELECT pg_catalog.unnest($1); END $$;
CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.trap('clock_timestamp()'); RETURN pg_catalog.clock_timestamp(); END $$;
CREATE FUNCTION evil.gen_random_uuid() RETURNS uuid LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.trap('gen_random_uuid()'); RETURN pg_catalog.gen_random_uuid(); END $$;
CREATE FUNCTION evil.md5(text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.trap('md5(text)'); RETURN pg_catalog.md5($1); END $$;
CREATE FUNCTION evil.pg_notify(text, text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.trap('pg_notify(text, text)'); PERFORM pg_catalog.pg_notify($1, $2); END $$;
CREATE FUNCTION evil.array_to_string(text[], text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.trap('array_to_string(text[], text)'); RETURN pg_catalog.array_to_string($1, $2); END $$;
CREATE FUNCTION evil.lower(name) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.trap('lower(name)'); RETURN pg_catalog.lower($1::text); END $$;
CREATE FUNCTION pg_temp.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.trap('pg_temp.now()'); RETURN 'infinity'; END $$;
CREATE FUNCTION pg_temp.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.trap('pg_temp.clock_timestamp()'); RETURN 'infinity'; END $$;
CREATE FUNCTION pg_temp.md5(text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.trap('pg_temp.md5(text)'); RETURN 'x'; END $$;
-- Tables the engine's unqualified names would find on pg_temp.
CREATE TEMP TABLE worker_credentials AS
SELECT session_user::text AS role_name, 'durable'::text AS namespace, ARRAY['payments', 'orders'] AS stream_names,
       NULL::timestamptz AS revoked_at;
CREATE TEMP TABLE messages (id bigint);

SET search_path = evil, pg_temp, pg_catalog, public;
DO $$
DECLARE
    t record;
    a record;
BEGIN
    BEGIN
        PERFORM durable.claim_workflow_tasks_v1('durable', ARRAY['payments'], ARRAY['order_workflow']);
        INSERT INTO hijack_outcomes VALUES ('claim another stream', 'claimed');
    EXCEPTION WHEN OTHERS THEN
        INSERT INTO hijack_outcomes VALUES ('claim another stream', SQLSTATE);
    END;
    BEGIN
        SELECT * INTO STRICT t
        FROM durable.claim_workflow_tasks_v1('durable', ARRAY['orders'], ARRAY['refund_workflow'], 1);
        INSERT INTO hijack_outcomes SELECT 'complete own workflow task', c.status
        FROM durable.complete_workflow_task_v1(t.message_id, t.lease_token, 1,
            '[{"type": "activity", "seq": 1, "name": "refund", "args": "[\"o-2\"]"}]') c;
        SELECT * INTO STRICT a
        FROM durable.claim_activity_tasks_v1('durable', ARRAY['orders-activity'], ARRAY['refund'], 1);
        INSERT INTO hijack_outcomes SELECT 'complete own activity', c.recorded::text
        FROM durable.complete_activity_v1(a.message_id, a.lease_token, '"receipt"') c;
        PERFORM durable.fire_timers_v1('durable', ARRAY['orders']);
        PERFORM durable.next_wakeup_v1('durable', ARRAY['orders'], ARRAY['refund_workflow']);
        PERFORM durable.worker_scope_v1();
        INSERT INTO hijack_outcomes VALUES ('other worker functions', 'ok');
    EXCEPTION WHEN OTHERS THEN
        INSERT INTO hijack_outcomes VALUES ('own work failed', SQLSTATE || ' ' || SQLERRM);
    END;
END $$;
RESET search_path;
SELECT results_eq('SELECT step, outcome FROM hijack_outcomes',
                  $$VALUES ('claim another stream', 'PD005'), ('complete own workflow task', 'ok'),
                           ('complete own activity', 'true'), ('other worker functions', 'ok')$$,
                  'with planted =, unnest, clock_timestamp, md5, pg_notify... first on its search_path, '
                  'the scope check still refuses another stream and its own work still works');
SELECT is_empty('SELECT * FROM evil.hits',
                'none of the planted functions, operators or pg_temp tables ran inside the engine');
SET search_path = evil, pg_temp, pg_catalog, public;
DO $$ BEGIN PERFORM 'a'::text = 'b'::text; END $$;
RESET search_path;
SELECT results_eq('SELECT what, ran_as::text COLLATE "default" FROM evil.hits', format($$VALUES ('operator = (text, text)', %L)$$, :'wrk'),
                  'the trap is live: the role''s own query on that search_path runs the planted operator, '
                  'with the role''s own rights');
TRUNCATE evil.hits;
RESET SESSION AUTHORIZATION;
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = :'wrk'), false, 'the worker role is still no superuser');

-- The DBA functions run with the DBA's rights: the same planted objects on
-- the DBA's search_path must not run either (they would, unpinned:
-- public.unnest(text[]) beats pg_catalog.unnest(anyarray)).
TRUNCATE hijack_outcomes;
SET search_path = evil, public;
DO $$
DECLARE
    v_role text;
BEGIN
    BEGIN
        SELECT r.role_name INTO v_role FROM durable.provision_worker_role(ARRAY['dba-trap', 'dba-trap-2'], 'dba') r;
        PERFORM durable.provision_worker_role(ARRAY['dba-trap-2', 'dba-trap'], 'dba');
        PERFORM durable.list_worker_roles('dba');
        PERFORM durable.rotate_worker_password(v_role);
        PERFORM durable.revoke_worker_role(v_role);
        INSERT INTO hijack_outcomes VALUES ('provision, list, rotate, revoke', 'ok');
    EXCEPTION WHEN OTHERS THEN
        INSERT INTO hijack_outcomes VALUES ('provision, list, rotate, revoke', SQLSTATE || ' ' || SQLERRM);
    END;
END $$;
RESET search_path;
SELECT results_eq('SELECT step, outcome FROM hijack_outcomes', $$VALUES ('provision, list, rotate, revoke', 'ok')$$,
                  'provision, list, rotate and revoke work with the planted objects first on the DBA''s search_path');
SELECT is_empty('SELECT * FROM evil.hits', '...and run none of them');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = :'wrk'), false, '...so the worker role is still no superuser');
TRUNCATE evil.hits;
SET search_path = evil, public;
DO $$ BEGIN PERFORM count(*) FROM unnest(ARRAY['x']::text[]); END $$;
RESET search_path;
SELECT results_eq('SELECT what FROM evil.hits', $$VALUES ('unnest(text[])')$$,
                  'the trap is live: the DBA''s own plain query on that search_path picks the planted unnest(text[])...');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = :'wrk'), true,
          '...and, run with the DBA''s rights, it made the worker role a superuser (what pinning prevents)');
ALTER ROLE :"wrk" NOSUPERUSER;

-- ---------------------------------------------------------------------------
-- Revoke.
-- ---------------------------------------------------------------------------
SELECT lives_ok(format('SELECT durable.revoke_worker_role(%L)', :'payer'), 'revoke_worker_role revokes a role');
SELECT is((SELECT rolcanlogin FROM pg_roles WHERE rolname = :'payer'), false, 'a revoked role is NOLOGIN');
SELECT isnt((SELECT revoked_at FROM durable.list_worker_roles() WHERE role_name = :'payer'), NULL,
            'its audit row is kept, with revoked_at');
SELECT lives_ok(format('SELECT durable.revoke_worker_role(%L)', :'payer'), 'revoking again is harmless');
SELECT throws_ok(format('SELECT durable.rotate_worker_password(%L)', :'payer'), 'PD005', NULL,
                 'a revoked role''s password cannot be rotated');
SELECT is_empty(format($$SELECT p.oid::regprocedure FROM pg_proc p
                         WHERE p.pronamespace = 'durable'::regnamespace
                           AND has_function_privilege(%L, p.oid, 'EXECUTE')$$, :'payer'),
                'a revoked role may execute no function of schema durable any more');
SELECT ok(NOT has_schema_privilege(:'payer', 'durable', 'USAGE'), '...nor use schema durable');
SELECT is_empty(format($$SELECT a.privilege_type FROM pg_database d, aclexplode(d.datacl) a
                         WHERE d.datname = current_database() AND a.grantee = %L::regrole$$, :'payer'),
                '...and the CONNECT grant provisioning gave it is gone (NOLOGIN keeps it out anyway)');
SET SESSION AUTHORIZATION :'payer';
SELECT throws_ok($$SELECT * FROM durable.claim_workflow_tasks_v1('durable', ARRAY['payments'], ARRAY['order_workflow'])$$,
                 '42501', NULL, 'a revoked role''s claims on its own stream are refused (no grants left)');
SELECT throws_ok(format($$SELECT durable.ack_v1(%s, %L)$$, :pm_id, :'pm_token'), '42501', NULL,
                 'a revoked role cannot ack either');
RESET SESSION AUTHORIZATION;
-- Defence in depth: grants handed back by mistake do not revive a revoked role.
SELECT format('GRANT USAGE ON SCHEMA durable TO %I', :'payer') \gexec
SELECT format('GRANT EXECUTE ON FUNCTION %s TO %I', f, :'payer') FROM durable.worker_functions() f \gexec
SET SESSION AUTHORIZATION :'payer';
SELECT throws_like($$SELECT * FROM durable.claim_workflow_tasks_v1('durable', ARRAY['payments'], ARRAY['order_workflow'])$$,
                   '%was revoked%', 'with its grants given back by mistake, a revoked role still fails with PD005 (was revoked)');
SELECT throws_ok($$SELECT durable.extend_lease_v1(ARRAY[-1]::bigint[], ARRAY[NULL]::uuid[], '1 minute')$$, 'PD005', NULL,
                 '...even for messages that do not exist');
SELECT is((SELECT revoked FROM durable.worker_scope_v1()), true, 'worker_scope_v1 tells a revoked role so');
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------------------
-- A copied database (CREATE DATABASE ... TEMPLATE) carries the original's
-- worker_credentials rows and grants: those roles are no workers of the copy.
-- ---------------------------------------------------------------------------
UPDATE durable.worker_credentials SET database_name = 'the_original' WHERE role_name = :'biller';
SET SESSION AUTHORIZATION :'biller';
SELECT throws_like($$SELECT * FROM durable.claim_workflow_tasks_v1('billing', ARRAY['invoices'], ARRAY['x'])$$,
                   '%belongs to database the_original, not to %',
                   'a role provisioned for another database (this one is a copy) may not consume here: PD005...');
SELECT throws_ok($$SELECT durable.next_wakeup_v1('billing', ARRAY['invoices'], ARRAY['x'])$$, 'PD005', NULL,
                 '...with SQLSTATE PD005');
RESET SESSION AUTHORIZATION;
SELECT throws_ok(format('SELECT durable.revoke_worker_role(%L)', :'biller'), 'PD003', NULL,
                 'the copy''s DBA cannot revoke (and so disable) the original database''s role by mistake');
UPDATE durable.worker_credentials SET database_name = current_database() WHERE role_name = :'biller';

-- ---------------------------------------------------------------------------
-- Idempotent provisioning, rotation, listing.
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE verifier AS SELECT rolpassword FROM pg_authid WHERE rolname = :'wrk';
SELECT role_name AS wrk_again, password AS wrk_pw_again
FROM durable.provision_worker_role(ARRAY['orders-activity', 'orders', 'orders']) \gset
SELECT is(:'wrk_again'::text, :'wrk'::text, 'provisioning the same streams again (any order, duplicates) gives the same role');
SELECT isnt(:'wrk_pw_again'::text, :'wrk_pw'::text, '...with a new password');
SELECT isnt((SELECT rolpassword FROM pg_authid WHERE rolname = :'wrk'), (SELECT rolpassword FROM verifier),
            '...that is the role''s password now');
SELECT isnt((SELECT rotated_at FROM durable.list_worker_roles() WHERE role_name = :'wrk'), NULL,
            '...and rotated_at records it');
SELECT isnt((SELECT role_name FROM durable.provision_worker_role(ARRAY['orders', 'orders-activity'], 'billing')),
            :'wrk', 'the same streams in another namespace get another role');
SELECT isnt((SELECT role_name FROM durable.provision_worker_role(ARRAY['orders'])), :'wrk',
            'a different set of streams gets another role');

TRUNCATE verifier;
INSERT INTO verifier SELECT rolpassword FROM pg_authid WHERE rolname = :'wrk';
SELECT durable.rotate_worker_password(:'wrk') AS rotated_pw \gset
SELECT matches(:'rotated_pw'::text, '^[0-9a-f]{64}$', 'rotate_worker_password returns a new random password');
SELECT isnt(:'rotated_pw'::text, :'wrk_pw_again'::text, '...different from the previous one');
SELECT isnt((SELECT rolpassword FROM pg_authid WHERE rolname = :'wrk'), (SELECT rolpassword FROM verifier),
            '...and sets it on the role');
SELECT is(durable.rotate_worker_password(:'wrk', $pw$"; DROP ROLE postgres; --'ä€$pw$, 'durable'),
          $pw$"; DROP ROLE postgres; --'ä€$pw$, 'rotating to a given password with quotes and unicode returns it as given');
SELECT matches((SELECT rolpassword FROM pg_authid WHERE rolname = :'wrk'), '^SCRAM-SHA-256\$',
               '...stored as a SCRAM verifier');
SELECT throws_ok(format('SELECT durable.rotate_worker_password(%L, NULL, %L)', :'wrk', 'billing'), 'PD003', NULL,
                 'rotating a role of another namespace fails with PD003');
SELECT throws_ok(format('SELECT durable.rotate_worker_password(%L, %L)', :'wrk', 'short'), 'PD004', NULL,
                 'a password shorter than 12 characters is refused (PD004)');

-- ---------------------------------------------------------------------------
-- Hostile names and passwords.
-- ---------------------------------------------------------------------------
SELECT role_name AS odd_role, password AS odd_pw FROM durable.provision_worker_role(
    ARRAY[$s$orders'; DROP TABLE durable.workflows; --$s$, 'zahlungen-€-ä', '"quoted"'],
    $ns$o'brien"; DROP SCHEMA durable CASCADE; --ä$ns$,
    $pw$x'; DROP TABLE durable.messages; --ä€$pw$) \gset
SELECT is(:'odd_pw'::text, $pw$x'; DROP TABLE durable.messages; --ä€$pw$,
          'provisioning with a password of quotes, a semicolon and unicode returns it as given');
SELECT matches(:'odd_role'::text, '^pgdw_[a-z0-9_]+$', 'the role name is plain lower-case ASCII, whatever the namespace');
SELECT is((SELECT namespace FROM durable.list_worker_roles() WHERE role_name = :'odd_role'),
          $ns$o'brien"; DROP SCHEMA durable CASCADE; --ä$ns$, 'a hostile namespace is stored verbatim');
SELECT is((SELECT stream_names FROM durable.list_worker_roles() WHERE role_name = :'odd_role'),
          ARRAY['"quoted"', $s$orders'; DROP TABLE durable.workflows; --$s$, 'zahlungen-€-ä'],
          'hostile stream names are stored verbatim (sorted)');
SELECT has_table('durable', 'messages', 'durable.messages still exists');
SELECT has_table('durable', 'workflows', 'durable.workflows still exists');
SELECT throws_ok($$SELECT durable.revoke_worker_role('"; DROP ROLE postgres; --')$$, 'PD003',
                 $$'"; DROP ROLE postgres; --' is not a worker role provisioned in any namespace of this database$$,
                 'revoking a role name with quotes and a semicolon fails with PD003 not found');
SELECT throws_ok($$SELECT durable.rotate_worker_password($r$x'; DROP TABLE durable.messages; --$r$)$$, 'PD003', NULL,
                 'rotating an unknown hostile role name fails with PD003');
SELECT throws_ok(format('SELECT durable.revoke_worker_role(%L)', current_user), 'PD003', NULL,
                 'revoke_worker_role refuses roles it did not provision (the superuser)');
SELECT ok((SELECT rolcanlogin AND rolsuper FROM pg_roles WHERE rolname = current_user),
          'the superuser is untouched');
SELECT is((SELECT count(*)::integer FROM durable.messages WHERE stream LIKE 'payments%'),
          (SELECT count(*)::integer FROM held_before), 'nothing was dropped or deleted');

-- ---------------------------------------------------------------------------
-- Listing.
-- ---------------------------------------------------------------------------
SELECT set_eq($$SELECT role_name, stream_names FROM durable.list_worker_roles('billing')$$,
              format($$SELECT role_name, stream_names FROM durable.worker_credentials WHERE namespace = 'billing'$$),
              'list_worker_roles(namespace) lists the roles of that namespace...');
SELECT ok((SELECT bool_and(namespace = 'billing') AND count(*) = 2 FROM durable.list_worker_roles('billing')),
          '...and only those');
SELECT ok(:'biller' IN (SELECT role_name FROM durable.list_worker_roles('billing'))
          AND :'biller' NOT IN (SELECT role_name FROM durable.list_worker_roles('durable')),
          'a role of namespace billing is listed under billing, not under durable');
SELECT is((SELECT count(DISTINCT namespace)::integer FROM durable.list_worker_roles()), 5,
          'list_worker_roles() without a namespace lists every namespace of this database');

RESET SESSION AUTHORIZATION;
SELECT * FROM finish();
ROLLBACK;
