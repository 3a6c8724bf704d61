-- security.sql: the worker-role attack surface at the SQL level (issue 11;
-- tests/security/ does the same over real logins). Catalog: every function
-- pins search_path and has an ACL granting only the owner and, on exactly
-- worker_functions(), live worker roles; the lock/channel secret is the
-- owner's alone; channels are not md5 of public names. Attacks, acting as a
-- worker role with SET SESSION AUTHORIZATION (it changes session_user, which
-- the engine checks): commands outside the produce scope, stolen, forged and
-- laundered signals, a member of a worker role, another run's lease token,
-- unbounded inputs, pre-hashed passwords, squatted public lock keys.
--
-- Runs in one transaction that is rolled back (its roles go with it); a
-- dblink session back to this database squats lock keys.
\ir include/fixtures.psql
SET client_min_messages = warning;
BEGIN;
SELECT plan(51);

-- Roles: two live worker roles, one revoked, one plain role GRANTed a worker role.
SELECT role_name AS wrk FROM durable.provision_worker_role(ARRAY['orders', 'orders-activity'], 'sec',
                                                           p_signal_prefixes => ARRAY['orders.']) \gset
SELECT role_name AS pay FROM durable.provision_worker_role(ARRAY['payments'], 'sec') \gset
SELECT role_name AS gone FROM durable.provision_worker_role(ARRAY['gone'], 'sec') \gset
SELECT durable.revoke_worker_role(:'gone') IS NULL AS ignored \gset
CREATE ROLE pgdurable_tap_member LOGIN INHERIT;
SELECT format('GRANT %I TO pgdurable_tap_member', :'wrk') \gexec

-- ===========================================================================
-- Catalog
-- ===========================================================================
SELECT cmp_ok((SELECT count(*)::int FROM pg_proc WHERE pronamespace = 'durable'::regnamespace), '>', 50,
              'schema durable holds the engine''s functions (the checks below are not vacuous)');
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'durable'::regnamespace
                    AND NOT ('search_path=pg_catalog, pg_temp' = ANY (coalesce(p.proconfig, '{}')))$$,
                'every function in durable pins search_path = pg_catalog, pg_temp (a plant in public never runs)');
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p
                  WHERE p.pronamespace = 'durable'::regnamespace AND p.proacl IS NULL$$,
                'no function in durable has the default ACL (which grants EXECUTE to PUBLIC)');
SELECT is_empty($$SELECT p.oid::regprocedure, a.grantee::regrole FROM pg_proc p, aclexplode(p.proacl) a
                  WHERE p.pronamespace = 'durable'::regnamespace AND a.grantee <> p.proowner
                    AND NOT (p.oid IN (SELECT f FROM durable.worker_functions() f)
                             AND a.grantee IN (SELECT r.oid FROM pg_roles r JOIN durable.worker_credentials c
                                                 ON c.role_name = r.rolname WHERE c.revoked_at IS NULL))$$,
                'every function ACL grants only the owner, plus live worker roles on worker_functions()');
SELECT bag_eq(format($$SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'durable'::regnamespace
                         AND has_function_privilege(%L, p.oid, 'EXECUTE')$$, :'wrk'),
              'SELECT f FROM durable.worker_functions() f',
              'a live worker role executes exactly worker_functions()');
SELECT is_empty(format($$SELECT 'function', p.oid::regprocedure::text FROM pg_proc p, aclexplode(p.proacl) a
                           WHERE p.pronamespace = 'durable'::regnamespace AND a.grantee = %1$L::regrole
                         UNION ALL SELECT 'schema', n.nspname::text FROM pg_namespace n, aclexplode(n.nspacl) a
                           WHERE a.grantee = %1$L::regrole
                         UNION ALL SELECT 'database', d.datname::text FROM pg_database d, aclexplode(d.datacl) a
                           WHERE d.datname = current_database() AND a.grantee = %1$L::regrole$$, :'gone'),
                'a revoked worker role keeps no EXECUTE, no USAGE on durable, no CONNECT');
SELECT has_table('durable', 'secret', 'the per-database secret salting lock keys and channels exists');
SELECT is_empty($$SELECT a.grantee FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
                  WHERE c.oid = 'durable.secret'::regclass AND a.grantee <> c.relowner$$,
                'nobody but the owner holds any privilege on durable.secret');
SELECT ok(NOT has_table_privilege(:'wrk', 'durable.secret', 'SELECT'), 'a worker role cannot read the secret');
SELECT ok(NOT has_function_privilege(:'wrk', 'durable.stream_channel(text, text)', 'EXECUTE')
          AND NOT has_function_privilege(:'wrk', 'durable.closed_channel(text)', 'EXECUTE'),
          'a worker role cannot compute channels itself (stream_channel, closed_channel are the owner''s)');
SELECT ok(has_function_privilege(:'wrk', 'durable.stream_channels_v1(text, text[])', 'EXECUTE'),
          '...it gets its own from stream_channels_v1');
SELECT isnt(durable.closed_channel('sec'), 'pgd_c_' || md5('sec'), 'the run-closed channel is not md5(namespace)');
SELECT isnt(durable.stream_channel('sec', 'orders'), 'pgd_s_' || md5('sec/orders'),
            'a stream channel is not md5(namespace/stream)');
SELECT is((SELECT r.rolconnlimit || ' ' || (SELECT string_agg(split_part(c, '=', 1) || '='
                                                            || split_part(c, '=', 2)::interval, ' '
                                                            ORDER BY c COLLATE "C")
                                            FROM pg_db_role_setting s, unnest(s.setconfig) c
                                            WHERE s.setrole = r.oid AND s.setdatabase IN (0, d.oid))
           FROM pg_roles r, pg_database d WHERE r.rolname = :'wrk' AND d.datname = current_database()),
          '50 idle_in_transaction_session_timeout=00:01:00 lock_timeout=00:00:30 statement_timeout=00:01:00',
          'a provisioned role gets CONNECTION LIMIT 50 and its timeout defaults');

-- ===========================================================================
-- Owner-side checks (no worker session needed)
-- ===========================================================================
SELECT throws_like($$SELECT * FROM durable.provision_worker_role(ARRAY['x'], 'sec', 'md5' || md5('pw'))$$,
                   '%pre-hashed%', 'provisioning refuses an md5 hash as the password');
SELECT throws_ok(format($$SELECT * FROM durable.provision_worker_role(ARRAY['x'], 'sec', %L)$$,
                        (SELECT rolpassword FROM pg_authid WHERE rolname = :'wrk')),
                 'PD004', NULL, 'provisioning refuses a SCRAM verifier as the password');
SELECT throws_like(format($$SELECT durable.rotate_worker_password(%L, 'md5' || md5('pw'))$$, :'wrk'),
                   '%pre-hashed%', 'rotating refuses a pre-hashed password');
SELECT throws_ok($$SELECT * FROM durable.start_workflow_v1('sec', 'big', 'big', 'orders', repeat('x', 16777217))$$,
                 'PD004', 'payload of 16777217 bytes exceeds the 16777216 byte limit: store large data elsewhere '
                 'and pass a reference', 'a payload over 16 MiB is refused with the SDK''s message');

-- Lock keys from public source: a second session squats them, the engine does not wait.
SELECT dblink_connect('squat', pg_temp.self_dsn()) AS ignored \gset
SELECT n AS ignored FROM dblink('squat', format($$SELECT count(*)::int FROM (SELECT pg_advisory_lock(k)
                    FROM unnest(ARRAY[hashtextextended(%L, 0), hashtextextended(%L, 0), hashtextextended(%L, 0)]) k) x$$,
                    'durable.signal/sec/sq', 'durable.workflow/sec/sq',
                    'durable.worker_role/' || current_database() || '/sec')) AS t(n int) \gset
SET LOCAL lock_timeout = '1s';
SELECT lives_ok($$SELECT durable.send_signal_v1('sec', 'sq', '"x"')$$,
                'a squatted public signal key does not block a signal');
SELECT lives_ok($$SELECT * FROM durable.start_workflow_v1('sec', 'sq', 'sq', 'orders', '[]')$$,
                'a squatted public workflow key does not block a start');
SELECT lives_ok($$SELECT * FROM durable.provision_worker_role(ARRAY['sq'], 'sec')$$,
                'a squatted public worker_role key does not block provisioning');
RESET lock_timeout;
SELECT dblink_disconnect('squat') AS ignored \gset

-- Work for the attacks: an order, a payments run waiting on a signal, a
-- signal buffered for payments.
SELECT run_id AS ignored FROM durable.start_workflow_v1('sec', 'o-1', 'o-1', 'orders', '["o-1"]') \gset
SELECT run_id AS ignored FROM durable.start_workflow_v1('sec', 'p-1', 'p-1', 'payments', '[]') \gset
SELECT pg_temp.step('sec', 'p-1', '[{"type": "condition", "seq": 1, "signal_id": "payments.approved"}]',
                    'payments') AS ignored \gset
SELECT durable.send_signal_v1('sec', 'payments.buffered', '"for payments"') AS ignored \gset
SELECT message_id AS held_id, lease_token AS held_token
FROM durable.claim_workflow_tasks_v1('sec', ARRAY['orders'], ARRAY['o-1'], 1) \gset
-- A payments activity attempt, held (with its lease token) by the payments worker, and cancelled
-- by its workflow: what heartbeat_activity_v2 would tell its holder.
SELECT run_id AS ignored FROM durable.start_workflow_v1('sec', 'p-2', 'p-2', 'payments', '[]') \gset
SELECT pg_temp.step('sec', 'p-2', '[{"type": "activity", "seq": 1, "name": "refund", "args": "[]"}]',
                    'payments') AS ignored \gset
SELECT message_id AS pay_id, lease_token AS pay_token
FROM durable.claim_activity_tasks_v1('sec', ARRAY['payments-activity'], ARRAY['refund'], 1) \gset
SELECT visible_at AS pay_visible FROM durable.messages WHERE id = :pay_id \gset

-- ===========================================================================
-- As the worker role of orders
-- ===========================================================================
SET SESSION AUTHORIZATION :'wrk';
SELECT is(session_user::text, :'wrk', 'the attacks below run with session_user = the worker role');
SELECT throws_like(format($$SELECT * FROM durable.complete_workflow_task_v1(%s, %L, 1,
                     '[{"type": "activity", "seq": 1, "name": "refund", "task_queue": "payments", "args": "[]"}]')$$,
                     :held_id, :'held_token'),
                   '%may not schedule activity ''refund'' on task queue ''payments''%',
                   'an activity on another team''s task queue is refused naming it');
SELECT throws_like(format($$SELECT * FROM durable.complete_workflow_task_v1(%s, %L, 1,
                     '[{"type": "child", "seq": 1, "workflow_id": "k", "workflow_name": "payment_workflow",
                        "task_queue": "payments", "args": "[]", "awaited": true}]')$$, :held_id, :'held_token'),
                   '%may not start workflow ''payment_workflow'' on task queue ''payments''%',
                   'a child on another team''s task queue is refused naming it');
SELECT throws_like(format($$SELECT * FROM durable.complete_workflow_task_v1(%s, %L, 1,
                     '[{"type": "condition", "seq": 1, "signal_id": "payments.buffered"}]')$$, :held_id, :'held_token'),
                   '%may not wait on signal ''payments.buffered''%',
                   'a condition outside the role''s signal prefixes is refused');
SELECT throws_ok(format($$SELECT * FROM durable.complete_workflow_task_v1(%s, %L, 1, %L)$$, :held_id, :'held_token',
                        (SELECT jsonb_agg(jsonb_build_object('type', 'activity', 'seq', i, 'name', 'charge', 'args', '[]'))
                         FROM generate_series(1, 2001) i)),
                 'PD004', NULL, 'a completion with 2001 commands is refused');
SELECT throws_ok($$SELECT * FROM durable.claim_workflow_tasks_v1('sec', ARRAY['orders'], ARRAY['o-1'], 1,
                     '1000 years')$$, 'PD004', NULL, 'a 1000-year lease is refused');
SELECT throws_ok($$SELECT * FROM durable.claim_activity_tasks_v1('sec', ARRAY['orders-activity'], ARRAY['charge'],
                     1000000)$$, 'PD004', NULL, 'a batch of a million is refused');
SELECT throws_ok($$SELECT * FROM durable.run_history_v1('sec', 'p-1', 1)$$, 'PD005', NULL,
                 'run_history_v1 without a token of the run is refused');
SELECT throws_ok(format($$SELECT * FROM durable.run_history_v1('sec', 'p-1', 1, %L)$$, :'held_token'), 'PD005', NULL,
                 'run_history_v1 with the token of another run''s task is refused');
SELECT is((SELECT count(*)::int FROM durable.run_history_v1('sec', 'o-1', 1, :'held_token')), 1,
          'run_history_v1 with its own token reads its run');
SELECT throws_ok($$SELECT durable.stream_channels_v1('sec', ARRAY['payments'])$$, 'PD005', NULL,
                 'stream_channels_v1 outside the role''s scope is refused');
SELECT is(cardinality(durable.stream_channels_v1('sec', ARRAY['orders'])), 1,
          'stream_channels_v1 gives the channel of its own stream');
SELECT throws_ok($$SELECT * FROM durable.claim_workflow_tasks_v1('sec', ARRAY['payments'], ARRAY['x'])$$,
                 'PD005', NULL, 'claiming another team''s stream is still refused');
SELECT throws_ok(format($$SELECT * FROM durable.heartbeat_activity_v2(%s, %L, '"forged"', '1 hour')$$,
                        :pay_id, :'pay_token'),
                 'PD005', NULL,
                 'heartbeat_activity_v2 on another team''s activity is refused, even with its lease token');

-- Forging: the worker role's signal must not reach the payments run.
SELECT throws_like(format($$SELECT * FROM durable.complete_workflow_task_v1(%s, %L, 1,
                     '[{"type": "signal", "seq": 1, "signal_id": "payments.approved", "data": "\"forged\""}]')$$,
                     :held_id, :'held_token'),
                   '%may not wait on signal ''payments.approved'' nor send it%',
                   'a signal outside the role''s signal prefixes is refused (the prefixes cover sends too)');
SELECT is((SELECT status FROM durable.complete_workflow_task_v1(:held_id, :'held_token', 1,
              '[{"type": "signal", "seq": 2, "signal_id": "orders.x", "data": "\"forged\""},
                {"type": "condition", "seq": 3, "signal_id": "orders.x"}]')),
          'requeued', 'the worker role signals itself on orders.x (and takes that)');
SELECT message_id AS again_id, lease_token AS again_token
FROM durable.claim_workflow_tasks_v1('sec', ARRAY['orders'], ARRAY['o-1'], 1) \gset
SELECT is((SELECT count(*)::int FROM durable.complete_workflow_task_v1(:again_id, :'again_token', 1,
              '[{"type": "cancel_activity", "seq": 1}, {"type": "condition", "seq": 4, "signal_id": "orders.y"}]')), 1,
          'a cancel_activity command of the role''s own run (seq 1: a seq the payments run uses too) is applied');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT (visible_at = :'pay_visible'::timestamptz, payload ? 'heartbeat_details', payload ? 'cancelled')::text
           FROM durable.messages WHERE id = :pay_id), '(t,f,f)',
          'the payments attempt kept its lease, got no forged details and was not cancelled by the orders run');
SELECT is(pg_temp.inbound('sec', 'p-1'), '{workflow_started}'::text[],
          'nothing reached the waiting payments run');
SELECT is_empty($$SELECT 1 FROM durable.signals WHERE namespace = 'sec' AND signal_id = 'payments.approved'$$,
                'nor is anything buffered for it');

-- Laundering: abandoning the condition that took orders.x re-sends its data
-- under an id of the command's choosing.
SELECT message_id AS held_id, lease_token AS held_token
FROM durable.claim_workflow_tasks_v1('sec', ARRAY['orders'], ARRAY['o-1'], 1) \gset
SET SESSION AUTHORIZATION :'wrk';
SELECT lives_ok(format($$SELECT * FROM durable.complete_workflow_task_v1(%s, %L, 100,
                     '[{"type": "cancel_wait", "seq": 3, "signal_id": "payments.approved"}]')$$,
                     :held_id, :'held_token'), 'the worker role abandons its condition on orders.x ...');
RESET SESSION AUTHORIZATION;
SELECT is(pg_temp.inbound('sec', 'p-1'), '{workflow_started}'::text[],
          '... and that does not deliver its data to the payments run as payments.approved');

-- ===========================================================================
-- As a member of the worker role (logged in as itself)
-- ===========================================================================
SET SESSION AUTHORIZATION pgdurable_tap_member;
SELECT ok(has_function_privilege('durable.claim_workflow_tasks_v1(text, text[], text[], integer, interval, text)', 'EXECUTE'),
          'a member inherits the worker role''s EXECUTE grants');
SELECT throws_ok($$SELECT * FROM durable.claim_workflow_tasks_v1('sec', ARRAY['payments'], ARRAY['x'])$$, 'PD005', NULL,
                 'a member is refused on another team''s stream');
SELECT throws_ok($$SELECT * FROM durable.claim_workflow_tasks_v1('sec', ARRAY['orders'], ARRAY['x'])$$, 'PD005', NULL,
                 'a member is refused even on the worker role''s own stream');
SELECT format('SET ROLE %I', :'wrk') \gexec
SELECT throws_ok($$SELECT * FROM durable.claim_workflow_tasks_v1('sec', ARRAY['orders'], ARRAY['x'])$$, 'PD005', NULL,
                 'a member that SET ROLEs to the worker role is still refused (session_user is the member)');
RESET ROLE;
RESET SESSION AUTHORIZATION;

-- ===========================================================================
-- As the revoked role
-- ===========================================================================
SET SESSION AUTHORIZATION :'gone';
SELECT throws_ok($$SELECT * FROM durable.claim_workflow_tasks_v1('sec', ARRAY['gone'], ARRAY['x'])$$, '42501', NULL,
                 'a revoked role can no longer execute any worker function');
RESET SESSION AUTHORIZATION;

-- A function added later: PUBLIC may run it until the grants are re-asserted.
CREATE FUNCTION durable.later_fn() RETURNS integer LANGUAGE sql AS 'SELECT 1';
SELECT ok(has_function_privilege(:'wrk', 'durable.later_fn()', 'EXECUTE'),
          'a function created later is executable by a worker role at first (PUBLIC''s default)');
SELECT durable._reassert_grants() IS NULL AS ignored \gset
SELECT ok(NOT has_function_privilege(:'wrk', 'durable.later_fn()', 'EXECUTE'),
          'after the re-assertion every migration run ends with, it is not');
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'durable'::regnamespace
                    AND NOT ('search_path=pg_catalog, pg_temp' = ANY (coalesce(p.proconfig, '{}')))
                    AND p.proname <> 'later_fn'$$,
                'the catalog check of search_path still holds for every engine function');

SELECT * FROM finish();
ROLLBACK;
