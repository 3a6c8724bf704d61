-- workers.sql: the registry of workers (mirrors sql/workers.sql). A worker
-- registers and heartbeats with heartbeat_worker_v1 and is live until it
-- stops or misses 3 heartbeats; list_workers shows them; describe says when
-- no live worker serves a waiting workflow task. A worker role registers
-- only its own scope and its own worker ids, and cannot read the registry.
\ir include/fixtures.psql
BEGIN;
SELECT plan(35);

CREATE FUNCTION pg_temp.beat(p_ns text, p_id text, p_queue text DEFAULT 'q', p_workflows text[] DEFAULT '{w}',
                             p_activities text[] DEFAULT '{a}', p_stopped boolean DEFAULT false)
RETURNS void LANGUAGE sql AS $$
    SELECT durable.heartbeat_worker_v1(p_ns, p_id, 'host-1', 4242, p_queue, p_workflows, p_activities,
                                       interval '10 seconds', p_stopped)
$$;
CREATE FUNCTION pg_temp.live(p_id text) RETURNS boolean LANGUAGE sql AS $$
    SELECT l.live FROM durable.list_workers() l WHERE l.worker_id = p_id
$$;
CREATE FUNCTION pg_temp.waiting(p_ns text, p_id text) RETURNS text LANGUAGE sql AS $$
    SELECT durable.describe_workflow_v1(p_ns, p_id)->>'waiting_for'
$$;

-- ---------------------------------------------------------------------------
-- heartbeat_worker_v1, list_workers
-- ---------------------------------------------------------------------------
SELECT ok((SELECT p.prosecdef FROM pg_proc p
           WHERE p.oid = 'durable.heartbeat_worker_v1(text, text, text, integer, text, text[], text[], interval, boolean)'::regprocedure),
          'heartbeat_worker_v1 is SECURITY DEFINER');
SELECT ok('durable.heartbeat_worker_v1(text, text, text, integer, text, text[], text[], interval, boolean)'::regprocedure
          IN (SELECT f FROM durable.worker_functions() f), 'heartbeat_worker_v1 is a worker function');
SELECT ok(NOT ('durable.list_workers(text)'::regprocedure IN (SELECT f FROM durable.worker_functions() f)),
          'list_workers is not a worker function (owner and DBA only)');
SELECT pg_temp.beat('k', 'h:1:a') AS ignored \gset
SELECT is((SELECT (namespace, host, pid, task_queue, workflow_names, activity_names, role_name = session_user, stopped_at, live)::text
           FROM durable.list_workers('k')), '(k,host-1,4242,q,{w},{a},t,,t)',
          'a registered worker is listed, live, with what it serves and the role that registered it');
CREATE TEMP TABLE first_start AS SELECT started_at AS at FROM durable.list_workers('k');
SELECT durable.advance_clock('25 seconds') IS NOT NULL AS moved \gset
SELECT pg_temp.beat('k', 'h:1:a') AS ignored \gset
SELECT results_eq($$SELECT started_at = f.at, last_seen_at > started_at FROM durable.list_workers('k'), first_start f$$,
                  $$VALUES (true, true)$$, 'a heartbeat moves last_seen_at and keeps started_at');
SELECT durable.advance_clock('29 seconds') IS NOT NULL AS moved \gset
SELECT is(pg_temp.live('h:1:a'), true, 'a worker that missed fewer than 3 heartbeats is live');
SELECT durable.advance_clock('2 seconds') IS NOT NULL AS moved \gset
SELECT is(pg_temp.live('h:1:a'), false, 'a worker not seen for 3 heartbeat intervals is not live');
SELECT pg_temp.beat('k', 'h:1:a') AS ignored \gset
SELECT is(pg_temp.live('h:1:a'), true, 'its next heartbeat makes it live again');
SELECT pg_temp.beat('k', 'h:1:a', p_stopped => true) AS ignored \gset
SELECT results_eq($$SELECT live, stopped_at IS NOT NULL FROM durable.list_workers('k')$$, $$VALUES (false, true)$$,
                  'a worker that said it stopped is not live');
SELECT durable.advance_clock('1 second') IS NOT NULL AS moved \gset
SELECT pg_temp.beat('k', 'h:1:a') AS ignored \gset
SELECT results_eq($$SELECT live, started_at > f.at FROM durable.list_workers('k'), first_start f$$,
                  $$VALUES (true, true)$$, 'a stopped worker id that registers again starts afresh');
SELECT pg_temp.beat('k2', 'h:2:b') AS ignored \gset
SELECT is((SELECT array_agg(worker_id ORDER BY worker_id) FROM durable.list_workers()), '{h:1:a,h:2:b}'::text[],
          'list_workers without a namespace lists every namespace');
SELECT is((SELECT array_agg(worker_id) FROM durable.list_workers('k2')), '{h:2:b}'::text[],
          'list_workers of a namespace lists only its workers');
SELECT throws_ok($$SELECT durable.heartbeat_worker_v1('k', 'h:3', NULL, 1, 'q', '{w}', '{}', '10 s')$$, 'PD004', NULL,
                 'a registration without a host is refused with PD004');
SELECT throws_ok($$SELECT durable.heartbeat_worker_v1('k', 'h:3', 'h', 1, 'q', '{w}', '{}', '2 hours')$$, 'PD004', NULL,
                 'a heartbeat interval over an hour is refused with PD004');
SELECT throws_ok($$SELECT durable.heartbeat_worker_v1('k', 'h:3', 'h', 1, 'q', '{NULL}', '{}', '10 s')$$, 'PD004', NULL,
                 'a NULL workflow name is refused with PD004');
SELECT throws_ok($$SELECT durable.heartbeat_worker_v1('k', '', 'h', 1, 'q', '{w}', '{}', '10 s')$$, 'PD004', NULL,
                 'an empty worker id is refused with PD004');

-- ---------------------------------------------------------------------------
-- describe_workflow_v1: no live worker serves it
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('dw', 'w') AS ignored \gset
SELECT is(pg_temp.waiting('dw', 'w'),
          'a worker serving workflow ''w'' on task queue ''q'' (no live worker serves workflow ''w'' there)',
          'a waiting workflow task nobody serves says no live worker serves it');
SELECT pg_temp.beat('dw', 'other-name', p_workflows => '{v}') AS ignored \gset
SELECT pg_temp.beat('dw', 'other-queue', p_queue => 'q2') AS ignored \gset
SELECT pg_temp.beat('dw-elsewhere', 'other-ns') AS ignored \gset
SELECT ok(pg_temp.waiting('dw', 'w') LIKE '%no live worker serves workflow ''w''%',
          'workers of another name, task queue or namespace do not serve it');
SELECT pg_temp.beat('dw', 'server') AS ignored \gset
SELECT is(pg_temp.waiting('dw', 'w'), 'a worker serving workflow ''w'' on task queue ''q''',
          'once a live worker serves it, it waits for that worker only');
SELECT is(durable.describe_workflow_v1('dw', 'w')->'pending'->0->>'waiting_for', pg_temp.waiting('dw', 'w'),
          'the top-level waiting_for is the workflow task''s');
SELECT durable.advance_clock('31 seconds') IS NOT NULL AS moved \gset
SELECT ok(pg_temp.waiting('dw', 'w') LIKE '%no live worker serves workflow ''w''%',
          'a worker that stopped heartbeating no longer counts');

-- ---------------------------------------------------------------------------
-- As a worker role
-- ---------------------------------------------------------------------------
SELECT role_name AS wrk FROM durable.provision_worker_role(ARRAY['q', 'q-activity'], 'kr') \gset
SELECT pg_temp.beat('kr', 'owner-made') AS ignored \gset
SET SESSION AUTHORIZATION :'wrk';
SELECT lives_ok($$SELECT durable.heartbeat_worker_v1('kr', 'role-1', 'h', 1, 'q', '{w}', '{a}', '10 s')$$,
                'a worker role registers a worker of its own streams');
SELECT throws_ok($$SELECT durable.heartbeat_worker_v1('k', 'role-2', 'h', 1, 'q', '{w}', '{a}', '10 s')$$, 'PD005', NULL,
                 'a worker role cannot register a worker in another namespace');
SELECT throws_ok($$SELECT durable.heartbeat_worker_v1('kr', 'role-3', 'h', 1, 'q2', '{w}', '{}', '10 s')$$, 'PD005', NULL,
                 'a worker role cannot register a worker of a task queue it may not consume');
SELECT throws_ok($$SELECT durable.heartbeat_worker_v1('kr', 'role-4', 'h', 1, 'q2', '{}', '{}', '10 s')$$, 'PD005', NULL,
                 '... not even one that serves no name yet');
SELECT lives_ok($$SELECT durable.heartbeat_worker_v1('kr', 'role-5', 'h', 1, 'q', '{}', '{}', '10 s', true)$$,
                'one of its own task queue that serves no name yet is fine');
SELECT throws_ok($$SELECT durable.heartbeat_worker_v1('kr', 'owner-made', 'h', 1, 'q', '{w}', '{}', '10 s', true)$$,
                 'PD005', NULL, 'a worker role cannot overwrite (or stop) a worker another role registered');
SELECT throws_ok($$SELECT * FROM durable.list_workers()$$, '42501', NULL, 'a worker role cannot list workers');
SELECT throws_ok($$SELECT * FROM durable.workers$$, '42501', NULL, 'a worker role cannot read the workers table');
SELECT durable.worker_channel_v1('kr', 'role-1') AS role_channel \gset
SELECT throws_ok($$SELECT durable.worker_channel_v1('kr', 'owner-made')$$, 'PD005', NULL,
                 'a worker role cannot get the channel of a worker another role registered');
SELECT throws_ok($$SELECT durable.worker_channel_v1('kr', 'role-5')$$, 'PD005', NULL,
                 '... nor of its own stopped worker');
SELECT throws_ok($$SELECT durable.worker_channel_v1('kr', 'never-registered')$$, 'PD005', NULL,
                 '... nor of a worker id nobody registered');
SELECT throws_ok($$SELECT durable.worker_channel('kr', 'role-1')$$, '42501', NULL,
                 'a worker role cannot compute a worker channel itself');
RESET SESSION AUTHORIZATION;
SELECT is(:'role_channel', durable.worker_channel('kr', 'role-1'),
          'a worker role gets the salted channel of its own live worker');
SELECT is((SELECT array_agg((worker_id, role_name = session_user, role_name = :'wrk', live)::text ORDER BY worker_id)
           FROM durable.list_workers('kr')), '{"(owner-made,t,f,t)","(role-1,f,t,t)","(role-5,f,t,f)"}'::text[],
          'the registry names the role that registered each worker; refused calls changed nothing');

SELECT * FROM finish();
ROLLBACK;
