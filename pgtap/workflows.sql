-- workflows.sql: workflow runs, history and workflow tasks (mirrors
-- sql/workflows.sql): start, claim, complete with every command type,
-- requeue, fencing, task failure backoff, workflow retry, children
-- (timers: pgtap/timers.sql).
--
-- The dblink part needs committed fixtures, so it runs first, outside any
-- transaction (this database is a throwaway clone); the rest runs in one
-- transaction that is rolled back. Every part uses its own namespace.
\ir include/fixtures.psql
SELECT plan(188);

-- ---------------------------------------------------------------------------
-- A run closed while a claim held its workflow task (the close skips locked
-- messages): the task left behind must not starve the next run.
-- ---------------------------------------------------------------------------
DO $$ BEGIN
    PERFORM dblink_connect('b', pg_temp.self_dsn());
    PERFORM dblink_connect('c', pg_temp.self_dsn());
END $$;
SET lock_timeout = '5s';
SELECT pg_temp.start('dbl', 'w') AS ignored \gset
DO $$ BEGIN PERFORM dblink_exec('b', 'BEGIN'); END $$;
CREATE TEMP TABLE b_task AS
SELECT * FROM dblink('b', $$SELECT message_id, lease_token FROM durable.claim_workflow_tasks_v1('dbl', ARRAY['q'], ARRAY['w'])$$)
    AS t(message_id bigint, lease_token uuid);
SELECT is((SELECT count(*)::int FROM b_task), 1, 'session B claims run 1''s workflow task in an open transaction');
SELECT ok(durable.interrupt_workflow_v1('dbl', 'w'), 'session A interrupts run 1 meanwhile');
DO $$ BEGIN PERFORM dblink_exec('b', 'COMMIT'); END $$;
SELECT is((SELECT s.run_id FROM durable.start_workflow_v1('dbl', 'w', 'w', 'q', '[]') s), 2,
          'the workflow id is started again as run 2');
SELECT is((SELECT run_id FROM durable.messages WHERE namespace = 'dbl' AND kind = 'workflow'), 2,
          'run 2 has a workflow task of its own');
SELECT is((SELECT (run_id, jsonb_array_length(events), events->0->>'event_type')::text
           FROM durable.claim_workflow_tasks_v1('dbl', ARRAY['q'], ARRAY['w'])),
          '(2,1,workflow_started)', 'a worker claims run 2''s first task');
SELECT throws_ok(format('SELECT status FROM durable.complete_workflow_task_v1(%s, %L, 1, ''[]'')',
                        (SELECT message_id FROM b_task), (SELECT lease_token FROM b_task)), 'PD001', NULL,
                 'the worker still holding run 1''s task cannot complete it (PD001)');

-- A workflow task whose run closed under it is discarded on completion.
SELECT pg_temp.start('dbl2', 'w') AS ignored \gset
CREATE TEMP TABLE a_task AS SELECT * FROM durable.claim_workflow_tasks_v1('dbl2', ARRAY['q'], ARRAY['w']);
DO $do$ BEGIN
    PERFORM dblink_exec('b', 'BEGIN');
    PERFORM * FROM dblink('b', $$SELECT 1 FROM durable.messages WHERE namespace = 'dbl2' FOR UPDATE$$) AS t(x int);
END $do$;
SELECT ok(durable.interrupt_workflow_v1('dbl2', 'w'), 'a run is interrupted while its task row is locked');
DO $$ BEGIN PERFORM dblink_exec('b', 'ROLLBACK'); END $$;
SELECT is((SELECT status FROM durable.complete_workflow_task_v1((SELECT message_id FROM a_task), (SELECT lease_token FROM a_task), 1,
                                            '[{"type": "complete", "result": "1"}]')),
          'discarded', 'completing the task of a run that no longer runs returns discarded');
SELECT is(pg_temp.status('dbl2', 'w'), 'interrupted', 'and changes nothing: the run stays interrupted');
SELECT is_empty($$SELECT 1 FROM durable.messages WHERE namespace = 'dbl2'$$, 'the discarded task is deleted');

-- Two workers claiming workflow tasks at once never share one.
CREATE TEMP TABLE dbl3 AS SELECT pg_temp.start('dbl3', 'w' || i) AS run, 'w' || i AS id FROM generate_series(1, 4) i;
DO $$ BEGIN PERFORM dblink_exec('b', 'BEGIN'); END $$;
CREATE TEMP TABLE b_tasks AS
SELECT * FROM dblink('b', $$SELECT workflow_id FROM durable.claim_workflow_tasks_v1('dbl3', ARRAY['q'], ARRAY['w1','w2','w3','w4'], 2)$$)
    AS t(workflow_id text);
CREATE TEMP TABLE a_tasks AS
SELECT workflow_id FROM durable.claim_workflow_tasks_v1('dbl3', ARRAY['q'], ARRAY['w1','w2','w3','w4'], 4);
DO $$ BEGIN PERFORM dblink_exec('b', 'COMMIT'); END $$;
SELECT is((SELECT count(*)::int FROM a_tasks JOIN b_tasks USING (workflow_id)), 0,
          'two sessions claiming workflow tasks concurrently never get the same one');
SELECT set_eq('SELECT workflow_id FROM a_tasks UNION ALL SELECT workflow_id FROM b_tasks', 'SELECT id FROM dbl3',
              'between them they claim every task exactly once');

-- Wakeups: the task queue, the activity stream and the namespace's closed channel.
DO $$ BEGIN
    PERFORM dblink_exec('b', format('LISTEN %I', durable.stream_channel('dbln', 'q')));
    PERFORM dblink_exec('b', format('LISTEN %I', durable.stream_channel('dbln', 'q-activity')));
    PERFORM dblink_exec('b', format('LISTEN %I', durable.closed_channel('dbln')));
END $$;
SELECT pg_temp.start('dbln', 'w') AS ignored \gset
SELECT results_eq($$SELECT * FROM pg_temp.received('b')$$,
                  format('VALUES (%L, %L)', durable.stream_channel('dbln', 'q'), ''),
                  'starting a workflow NOTIFYs its task queue');
SELECT pg_temp.step('dbln', 'w', '[{"type": "activity", "seq": 1, "name": "a", "args": "[]"}]') AS ignored \gset
SELECT results_eq($$SELECT * FROM pg_temp.received('b')$$,
                  format('VALUES (%L, %L)', durable.stream_channel('dbln', 'q-activity'), ''),
                  'scheduling an activity NOTIFYs the activity stream');
SELECT c.recorded AS ignored FROM durable.claim_activity_tasks_v1('dbln', ARRAY['q-activity'], ARRAY['a']) a,
    durable.complete_activity_v1(a.message_id, a.lease_token, '1') c \gset
SELECT results_eq($$SELECT * FROM pg_temp.received('b')$$,
                  format('VALUES (%L, %L)', durable.stream_channel('dbln', 'q'), ''),
                  'an activity result NOTIFYs the task queue (the workflow has a new task)');
SELECT pg_temp.step('dbln', 'w', '[{"type": "complete", "result": "1"}]') AS ignored \gset
SELECT results_eq($$SELECT * FROM pg_temp.received('b')$$,
                  format('VALUES (%L, %L)', durable.closed_channel('dbln'), 'w'),
                  'closing a run NOTIFYs its namespace''s closed channel with the workflow id');
DO $$ BEGIN PERFORM dblink_disconnect('b'); PERFORM dblink_disconnect('c'); END $$;
RESET lock_timeout;

BEGIN;
-- A worker that fails the task it claims, then waits out the backoff; returns the delays.
CREATE FUNCTION pg_temp.fail_repeatedly(p_ns text, p_name text, p_times integer) RETURNS float8[]
LANGUAGE plpgsql AS $$
DECLARE
    t record;
    d interval;
    delays float8[] := '{}';
BEGIN
    FOR i IN 1..p_times LOOP
        SELECT * INTO t FROM durable.claim_workflow_tasks_v1(p_ns, ARRAY['q'], ARRAY[p_name], 1);
        IF NOT FOUND THEN
            RAISE EXCEPTION 'fixture: no task to fail at failure %', i;
        END IF;
        d := durable.fail_workflow_task_v1(t.message_id, t.lease_token,
                                           '{"type": "NonDeterminismError", "message": "replay diverged"}');
        delays := delays || extract(epoch FROM d)::float8;
        PERFORM durable.advance_clock(d);
    END LOOP;
    RETURN delays;
END $$;

-- ---------------------------------------------------------------------------
-- closed_channel
-- ---------------------------------------------------------------------------
SELECT is(durable.closed_channel('n'), 'pgd_c_' || md5((SELECT key FROM durable.secret) || '/closed/n'),
          'closed_channel is pgd_c_ followed by the md5 of the namespace salted with durable.secret');
SELECT is(octet_length(durable.closed_channel(repeat('é', 300))), 38,
          'a closed channel is 38 bytes whatever the namespace');

-- ---------------------------------------------------------------------------
-- start_workflow_v1
-- ---------------------------------------------------------------------------
SELECT results_eq($$SELECT * FROM durable.start_workflow_v1('st', 'w', 'w', 'q', '[1, 2]')$$,
                  $$VALUES (1, true)$$, 'start_workflow_v1 starts run 1 and says it started');
SELECT is((SELECT (status, attempt, args, task_queue, retry IS NULL, processed_event_id, closed_at IS NULL)::text
           FROM durable.workflows WHERE namespace = 'st' AND workflow_id = 'w'),
          '(running,1,"[1, 2]",q,t,0,t)', 'the run is running, attempt 1, with its args and task queue');
SELECT is((SELECT (event_id, event_type, inbound, data)::text FROM durable.history WHERE namespace = 'st'),
          '(1,workflow_started,t,"{""attempt"": 1, ""task_queue"": ""q"", ""workflow_name"": ""w"", ""parent_workflow_id"": null}")',
          'its history opens with an inbound workflow_started event');
SELECT is((SELECT (stream, name, run_id, lease_token IS NULL, visible_at <= durable.now())::text
           FROM durable.messages WHERE namespace = 'st' AND kind = 'workflow'),
          '(q,w,1,t,t)', 'a workflow task for the run is queued on the task queue, visible now');
SELECT throws_ok($$SELECT * FROM durable.start_workflow_v1('st', 'w', 'w', 'q', '[]')$$, 'PD002', NULL,
                 'starting a running workflow id again fails with PD002');
SELECT results_eq($$SELECT * FROM durable.start_workflow_v1('st', 'w', 'w', 'q', '[]', p_id_reuse => 'return_existing')$$,
                  $$VALUES (1, false)$$, 'id_reuse return_existing returns the running run instead');
SELECT is((SELECT count(*)::int FROM durable.workflows WHERE namespace = 'st'), 1, 'no second run was created');
SELECT results_eq($$SELECT * FROM durable.start_workflow_v1('st2', 'w', 'w', 'q', '[]')$$, $$VALUES (1, true)$$,
                  'the same workflow id in another namespace is another workflow');
SELECT is(pg_temp.step('st', 'w', '[{"type": "complete", "result": "\"done\""}]'), 'closed', 'run 1 completes');
SELECT results_eq($$SELECT * FROM durable.start_workflow_v1('st', 'w', 'w', 'q', '["again"]')$$, $$VALUES (2, true)$$,
                  'a closed workflow id starts again as run 2');
SELECT is((SELECT array_agg(status ORDER BY run_id) FROM durable.workflows WHERE namespace = 'st'),
          '{completed,running}'::text[], 'run 1 keeps its outcome beside run 2');

-- Headers (a trace context) travel in workflow_started, to children and to the next run.
SELECT is(pg_temp.last_event('st', 'w', 'workflow_started') ? 'headers', false,
          'an untraced start stores no headers');
SELECT s.run_id AS ignored FROM durable.start_workflow_v1('hd', 'hw', 'hw', 'q', '[]',
                                                          p_headers => '{"traceparent": "00-abc-def-01"}') s \gset
SELECT is(pg_temp.last_event('hd', 'hw', 'workflow_started')->'headers', '{"traceparent": "00-abc-def-01"}',
          'start_workflow_v1(p_headers) keeps them in the run''s workflow_started event');
SELECT throws_ok($$SELECT * FROM durable.start_workflow_v1('hd', 'hx', 'hx', 'q', '[]', p_headers => '[1]')$$,
                 'PD004', NULL, 'headers that are not a JSON object are refused');
SELECT pg_temp.step('hd', 'hw', '[{"type": "child", "seq": 1, "workflow_id": "hkid", "workflow_name": "hkid",
                                   "args": "[]", "awaited": false, "headers": {"traceparent": "00-kid-x-01"}},
                                  {"type": "continue_as_new", "args": "[]"}]') AS ignored \gset
SELECT is(pg_temp.last_event('hd', 'hkid', 'workflow_started')->'headers', '{"traceparent": "00-kid-x-01"}',
          'a child command''s headers go into the child''s workflow_started event');
SELECT is(pg_temp.last_event('hd', 'hw', 'workflow_started')->'headers', '{"traceparent": "00-abc-def-01"}',
          'a run continued as new keeps the headers of the run before it');
SELECT is((SELECT run_id FROM durable.messages WHERE namespace = 'st' AND kind = 'workflow'), 2,
          'run 2 gets a workflow task');
SELECT is(pg_temp.step('st', 'w', '[{"type": "complete", "result": "2"}]'), 'closed', 'run 2 completes');
SELECT results_eq($$SELECT * FROM durable.start_workflow_v1('st', 'w', 'w', 'q', '[]', p_id_reuse => 'return_existing')$$,
                  $$VALUES (2, false)$$, 'return_existing returns the latest run even when it is closed');
SELECT throws_ok($$SELECT * FROM durable.start_workflow_v1('st', '', 'w', 'q', '[]')$$, 'PD004', NULL,
                 'an empty workflow id is rejected with PD004');
SELECT throws_ok($$SELECT * FROM durable.start_workflow_v1('st', 'x', '', 'q', '[]')$$, 'PD004', NULL,
                 'an empty workflow name is rejected with PD004');
SELECT throws_ok($$SELECT * FROM durable.start_workflow_v1('st', 'x', 'x', repeat('q', 1001), '[]')$$, 'PD004', NULL,
                 'a task queue over 1000 characters is rejected with PD004');
SELECT throws_ok($$SELECT * FROM durable.start_workflow_v1('st', 'x', 'x', 'q', NULL)$$, 'PD004', NULL,
                 'NULL args are rejected with PD004');
SELECT throws_ok($$SELECT * FROM durable.start_workflow_v1('st', 'x', 'x', 'q', '[]', p_id_reuse => 'replace')$$,
                 'PD004', NULL, 'an unknown id_reuse is rejected with PD004');

-- ---------------------------------------------------------------------------
-- claim_workflow_tasks_v1
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('cl', 'w', p_args => '["a"]') AS ignored \gset
SELECT pg_temp.start('cl', 'other') AS ignored \gset
CREATE TEMP TABLE cl1 AS SELECT * FROM durable.claim_workflow_tasks_v1('cl', ARRAY['q'], ARRAY['w'], 10, p_owner => 'wk');
SELECT is((SELECT count(*)::int FROM cl1), 1, 'claim_workflow_tasks_v1 only claims workflows of the names given');
SELECT is((SELECT (workflow_id, run_id, workflow_name, task_queue, attempt, task_attempt, args, processed_event_id,
                   cancel_requested, parent_workflow_id IS NULL, lease_token IS NOT NULL)::text FROM cl1),
          '(w,1,w,q,1,1,"[""a""]",0,f,t,t)', 'a claimed task carries the run, its args and a lease token');
SELECT is((SELECT jsonb_path_query_array(events, '$[*].event_type') FROM cl1), '["workflow_started"]'::jsonb,
          'the first task carries the workflow_started event');
SELECT is((SELECT (events->0->>'event_id')::int FROM cl1), 1, 'events carry their event ids');
SELECT is_empty($$SELECT * FROM durable.claim_workflow_tasks_v1('cl', ARRAY['q'], ARRAY['w'])$$,
                'a claimed task is not handed out twice');
SELECT is((SELECT status FROM durable.complete_workflow_task_v1((SELECT message_id FROM cl1), (SELECT lease_token FROM cl1), 1,
          '[{"type": "activity", "seq": 1, "name": "charge", "args": "[1]"}]')), 'ok',
          'completing the task with a new command returns ok');
SELECT is((SELECT processed_event_id FROM durable.workflows WHERE namespace = 'cl' AND workflow_id = 'w'), 1,
          'the run records how far its code has seen the history');
SELECT is_empty($$SELECT 1 FROM durable.messages WHERE namespace = 'cl' AND workflow_id = 'w' AND kind = 'workflow'$$,
                'the completed task is deleted');
CREATE TEMP TABLE cl_act AS SELECT * FROM durable.claim_activity_tasks_v1('cl', ARRAY['q-activity'], ARRAY['charge']);
SELECT recorded AS ignored FROM durable.complete_activity_v1((SELECT message_id FROM cl_act), (SELECT lease_token FROM cl_act), '"paid"') \gset
CREATE TEMP TABLE cl2 AS SELECT * FROM durable.claim_workflow_tasks_v1('cl', ARRAY['q'], ARRAY['w']);
SELECT is((SELECT jsonb_path_query_array(events, '$[*].event_type') FROM cl2), '["activity_completed"]'::jsonb,
          'the next task carries only the inbound events after processed_event_id');
SELECT is((SELECT (processed_event_id, (events->0->>'seq')::int, events->0->'data'->>'result')::text FROM cl2),
          '(1,1,"""paid""")', 'with the seq and data of the resolved call');

-- ---------------------------------------------------------------------------
-- complete_workflow_task_v1: one command of each type
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('cmd', 'w') AS ignored \gset
SELECT is(pg_temp.step('cmd', 'w', $$[
    {"type": "activity", "seq": 1, "name": "charge", "args": "[9]", "retry": {"maximum_attempts": 3},
     "headers": {"trace": "t1"}},
    {"type": "activity", "seq": 2, "name": "render", "args": "[]", "task_queue": "gpu"},
    {"type": "timer", "seq": 3, "seconds": 60},
    {"type": "condition", "seq": 4, "signal_id": "approve"},
    {"type": "condition", "seq": 5, "signal_id": "review", "timeout": 30},
    {"type": "signal", "seq": 6, "signal_id": "audit", "data": "\"started\""},
    {"type": "child", "seq": 7, "workflow_id": "kid-a", "workflow_name": "kid-a", "args": "[1]", "awaited": true},
    {"type": "child", "seq": 8, "workflow_id": "kid-b", "workflow_name": "kid-b", "args": "[2]", "awaited": false},
    {"type": "patch", "patch_id": "v2"}]$$), 'ok', 'a task with nine commands completes in one call');
SELECT is(pg_temp.events('cmd', 'w'),
          '{workflow_started,activity_scheduled,activity_scheduled,timer_started,signal_wait_started,signal_wait_started,signal_sent,child_started,child_started,patch_marker}'::text[],
          'each command appends its event, in command order');
SELECT is((SELECT count(*)::int FROM durable.history WHERE namespace = 'cmd' AND workflow_id = 'w' AND inbound), 1,
          'commands append outbound events only (nothing new for the workflow code to see)');
-- conditions
SELECT is((SELECT array_agg(seq ORDER BY seq) FROM durable.signal_waits WHERE namespace = 'cmd' AND workflow_id = 'w'),
          '{4,5}'::int[], 'both conditions wait for their signals');
SELECT is((SELECT array_agg((payload->>'seq')::int) FROM durable.messages
           WHERE namespace = 'cmd' AND kind = 'timer' AND payload->>'timer' = 'condition_timeout'),
          '{5}'::int[], 'only the condition with a timeout starts a timeout timer');
SELECT is((SELECT visible_at - created_at FROM durable.messages
           WHERE namespace = 'cmd' AND kind = 'timer' AND payload->>'timer' = 'condition_timeout'),
          interval '30 seconds', 'the timeout timer is due after the condition''s timeout');
-- signal
SELECT is(pg_temp.last_event('cmd', 'w', 'signal_sent'), '{"signal_id": "audit", "data": "\"started\""}'::jsonb,
          'signal_sent records the signal id and data');
SELECT is((SELECT data FROM durable.signals WHERE namespace = 'cmd' AND signal_id = 'audit'), '"started"',
          'a signal nobody waits for is buffered');
-- children
SELECT is((SELECT (parent_workflow_id, parent_run_id, parent_seq, status, args)::text
           FROM durable.workflows WHERE namespace = 'cmd' AND workflow_id = 'kid-a'),
          '(w,1,7,running,[1])', 'an awaited child runs with its parent and the parent''s seq');
SELECT is((SELECT (parent_workflow_id, parent_seq IS NULL)::text FROM durable.workflows
           WHERE namespace = 'cmd' AND workflow_id = 'kid-b'),
          '(w,t)', 'a child that is not awaited knows its parent but reports to no durable call');
SELECT is((SELECT array_agg(workflow_id ORDER BY workflow_id) FROM durable.messages WHERE namespace = 'cmd' AND kind = 'workflow'),
          '{kid-a,kid-b}'::text[], 'each child gets its first workflow task');
SELECT is((SELECT data FROM durable.history WHERE namespace = 'cmd' AND workflow_id = 'w' AND event_type = 'child_started' AND seq = 7),
          '{"workflow_id": "kid-a", "workflow_name": "kid-a", "task_queue": "q", "run_id": 1, "awaited": true,
            "already_running": false}'::jsonb, 'child_started records the child''s id, run and whether it is awaited');
-- patch
SELECT is((SELECT (seq, data)::text FROM durable.history WHERE namespace = 'cmd' AND event_type = 'patch_marker'),
          '(,"{""patch_id"": ""v2"", ""deprecated"": false}")', 'patch_marker records the patch id, with no seq');

-- A child reports to its awaiting parent; a non-awaited one does not.
SELECT is(pg_temp.step('cmd', 'kid-a', '[{"type": "complete", "result": "\"kid done\""}]'), 'closed', 'the awaited child completes');
SELECT is(pg_temp.last_event('cmd', 'w', 'child_completed'),
          '{"workflow_id": "kid-a", "status": "completed", "result": "\"kid done\""}'::jsonb,
          'the parent gets child_completed with the child''s result');
SELECT is((SELECT seq FROM durable.history WHERE namespace = 'cmd' AND event_type = 'child_completed'), 7,
          'child_completed resolves the parent''s child call (its seq)');
SELECT isnt_empty($$SELECT 1 FROM durable.messages WHERE namespace = 'cmd' AND workflow_id = 'w' AND kind = 'workflow'$$,
                  'the parent is woken by a workflow task');
SELECT is(pg_temp.step('cmd', 'kid-b', '[{"type": "complete", "result": "0"}]'), 'closed', 'the other child completes');
SELECT is((SELECT count(*)::int FROM durable.history WHERE namespace = 'cmd' AND workflow_id = 'w'
           AND event_type IN ('child_completed', 'child_failed')), 1,
          'a child that is not awaited reports nothing to its parent');

-- complete: the run closes and its pending work goes.
SELECT is(pg_temp.step('cmd', 'w', '[{"type": "patch", "patch_id": "v3", "deprecated": true}, {"type": "complete", "result": "\"ok\""}]'),
          'closed', 'a task ending with complete closes the run');
SELECT is((SELECT (status, result, error IS NULL, closed_at IS NOT NULL)::text FROM durable.workflows
           WHERE namespace = 'cmd' AND workflow_id = 'w'), '(completed,"""ok""",t,t)',
          'the run is completed with its result');
SELECT is(pg_temp.last_event('cmd', 'w', 'workflow_completed'), '{"result": "\"ok\"", "will_retry": false}'::jsonb,
          'history ends with workflow_completed and the result');
SELECT is(pg_temp.last_event('cmd', 'w', 'patch_marker')->'deprecated', 'true'::jsonb,
          'commands before the closing one still apply');
SELECT is_empty($$SELECT 1 FROM durable.messages WHERE namespace = 'cmd' AND workflow_id = 'w'$$,
                'the closed run''s queued activities, timers and task are gone');
SELECT is_empty($$SELECT 1 FROM durable.signal_waits WHERE namespace = 'cmd' AND workflow_id = 'w'$$,
                'the closed run''s condition waits are gone');

-- fail, cancelled
SELECT pg_temp.start('cmd', 'f') AS ignored \gset
SELECT is(pg_temp.step('cmd', 'f', '[{"type": "fail", "error": {"type": "KeyError", "message": "k"}}]'), 'closed',
          'a task ending with fail closes the run');
SELECT is((SELECT (status, error, result IS NULL)::text FROM durable.workflows WHERE namespace = 'cmd' AND workflow_id = 'f'),
          '(failed,"{""type"": ""KeyError"", ""message"": ""k""}",t)', 'the run is failed with its error');
SELECT is(pg_temp.last_event('cmd', 'f', 'workflow_failed'),
          '{"error": {"type": "KeyError", "message": "k"}, "will_retry": false}'::jsonb,
          'workflow_failed records the error and that no retry follows');
SELECT pg_temp.start('cmd', 'c') AS ignored \gset
SELECT is(pg_temp.step('cmd', 'c', '[{"type": "cancelled"}]'), 'closed', 'a task ending with cancelled closes the run');
SELECT is(pg_temp.status('cmd', 'c'), 'cancelled', 'the run is cancelled');
SELECT is(pg_temp.events('cmd', 'c'), '{workflow_started,workflow_cancelled}'::text[], 'history ends with workflow_cancelled');

-- A failing or cancelled child reports child_failed to its awaiting parent.
SELECT pg_temp.start('cmd', 'p2') AS ignored \gset
SELECT pg_temp.step('cmd', 'p2', '[{"type": "child", "seq": 1, "workflow_id": "kid-f", "workflow_name": "kid-f", "args": "[]", "awaited": true},
                                   {"type": "child", "seq": 2, "workflow_id": "kid-c", "workflow_name": "kid-c", "args": "[]", "awaited": true}]') AS ignored \gset
SELECT pg_temp.step('cmd', 'kid-f', '[{"type": "fail", "error": {"type": "Boom"}}]') AS ignored \gset
SELECT pg_temp.step('cmd', 'kid-c', '[{"type": "cancelled"}]') AS ignored \gset
SELECT is((SELECT data FROM durable.history WHERE namespace = 'cmd' AND workflow_id = 'p2' AND event_type = 'child_failed' AND seq = 1),
          '{"workflow_id": "kid-f", "status": "failed", "error": {"type": "Boom"}}'::jsonb,
          'a failed child reports child_failed with its error');
SELECT is((SELECT data->>'status' FROM durable.history WHERE namespace = 'cmd' AND workflow_id = 'p2' AND event_type = 'child_failed' AND seq = 2),
          'cancelled', 'a cancelled child reports child_failed with status cancelled');
-- A child id whose workflow closed gets a new run; one that is running is refused.
SELECT pg_temp.start('cmd', 'busy') AS ignored \gset
SELECT pg_temp.step('cmd', 'p2', '[{"type": "child", "seq": 3, "workflow_id": "kid-f", "workflow_name": "kid-f", "args": "[]", "awaited": false},
                                   {"type": "child", "seq": 4, "workflow_id": "busy", "workflow_name": "busy", "args": "[]", "awaited": true}]') AS ignored \gset
SELECT is((SELECT count(*)::int FROM durable.workflows WHERE namespace = 'cmd' AND workflow_id = 'kid-f'), 2,
          'a child id whose workflow closed gets a new run');
SELECT is((SELECT data->>'already_running' FROM durable.history WHERE namespace = 'cmd' AND workflow_id = 'p2'
           AND event_type = 'child_started' AND seq = 4), 'true',
          'a child id that is running is recorded as already running');
SELECT is((SELECT data->'error'->>'type' FROM durable.history WHERE namespace = 'cmd' AND workflow_id = 'p2'
           AND event_type = 'child_failed' AND seq = 4), 'DuplicateWorkflowError',
          'an awaited child whose id is running fails at once with DuplicateWorkflowError');

-- continue_as_new
SELECT pg_temp.start('cmd', 'can', p_args => '[1]') AS ignored \gset
SELECT is(pg_temp.step('cmd', 'can', '[{"type": "continue_as_new", "args": "[2]"}]'), 'closed',
          'continue_as_new closes the run');
SELECT is((SELECT array_agg((run_id, status, args, attempt)::text ORDER BY run_id) FROM durable.workflows
           WHERE namespace = 'cmd' AND workflow_id = 'can'),
          ARRAY['(1,continued,[1],1)', '(2,running,[2],1)'], 'run 1 is continued and run 2 runs with the new args');
SELECT is(pg_temp.events('cmd', 'can'), '{workflow_started}'::text[], 'run 2 starts a history of its own');
SELECT is((SELECT run_id FROM durable.messages WHERE namespace = 'cmd' AND workflow_id = 'can' AND kind = 'workflow'), 2,
          'run 2 has a workflow task');

-- invalid command lists
SELECT pg_temp.start('cmd', 'bad') AS ignored \gset
CREATE TEMP TABLE bad AS SELECT * FROM durable.claim_workflow_tasks_v1('cmd', ARRAY['q'], ARRAY['bad']);
SELECT throws_ok(format('SELECT status FROM durable.complete_workflow_task_v1(%s, %L, 1, %L)', (SELECT message_id FROM bad),
                        (SELECT lease_token FROM bad), '[{"type": "complete", "result": "1"}, {"type": "patch", "patch_id": "x"}]'),
                 'PD004', NULL, 'a command after the one that closed the run is rejected with PD004');
SELECT throws_ok(format('SELECT status FROM durable.complete_workflow_task_v1(%s, %L, 1, %L)', (SELECT message_id FROM bad),
                        (SELECT lease_token FROM bad), '[{"type": "teleport"}]'),
                 'PD004', NULL, 'an unknown command type is rejected with PD004');
SELECT throws_ok(format('SELECT status FROM durable.complete_workflow_task_v1(%s, %L, 1, %L)', (SELECT message_id FROM bad),
                        (SELECT lease_token FROM bad), '{"type": "complete"}'),
                 'PD004', NULL, 'commands that are not a JSON array are rejected with PD004');
SELECT is(pg_temp.status('cmd', 'bad'), 'running', 'a rejected completion changes nothing');

-- A durable call resolves once: a second outcome is refused, as is one for a closed run.
SELECT is(durable._deliver('cl', 'w', 1, 'activity_completed', 1, '{}'), false,
          '_deliver refuses a second outcome for an already resolved durable call');
SELECT is((SELECT count(*)::int FROM durable.history WHERE namespace = 'cl' AND workflow_id = 'w' AND seq = 1 AND inbound), 1,
          'the call keeps its single outcome');
SELECT is(durable._deliver('cl', 'w', 1, 'signal_received', NULL, '{}'), true,
          '_deliver records an event that resolves no call (seq NULL) on a running run');
SELECT is(durable._deliver('st', 'w', 1, 'signal_received', 9, '{}'), false, '_deliver records nothing on a closed run');

-- ---------------------------------------------------------------------------
-- Requeue when an inbound event arrives during the task
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('rq', 'w') AS ignored \gset
CREATE TEMP TABLE rq1 AS SELECT * FROM durable.claim_workflow_tasks_v1('rq', ARRAY['q'], ARRAY['w']);
SELECT ok(durable.cancel_workflow_v1('rq', 'w'), 'a cancel request arrives while the task is running');
SELECT is((SELECT status FROM durable.complete_workflow_task_v1((SELECT message_id FROM rq1), (SELECT lease_token FROM rq1), 1,
          '[{"type": "timer", "seq": 1, "seconds": 600}]')), 'requeued',
          'completing a task that did not see every event returns requeued');
SELECT is((SELECT (lease_token IS NULL, attempt, visible_at <= durable.now())::text FROM durable.messages
           WHERE namespace = 'rq' AND kind = 'workflow'), '(t,0,t)',
          'the requeued task is unleased, visible now and starts its attempts afresh');
SELECT is(pg_temp.events('rq', 'w'), '{workflow_started,cancel_requested,timer_started}'::text[],
          'the task''s commands were still applied');
CREATE TEMP TABLE rq2 AS SELECT * FROM durable.claim_workflow_tasks_v1('rq', ARRAY['q'], ARRAY['w']);
SELECT is((SELECT (processed_event_id, cancel_requested, jsonb_path_query_array(events, '$[*].event_type'))::text FROM rq2),
          '(1,t,"[""cancel_requested""]")', 'the next claim hands out just the event the first task missed');
SELECT is((SELECT status FROM durable.complete_workflow_task_v1((SELECT message_id FROM rq2), (SELECT lease_token FROM rq2), 2, '[]')), 'ok',
          'a task that saw every event completes ok');

-- ---------------------------------------------------------------------------
-- Eager continuation: events that arrive during an eager worker's task
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('eg', 'w') AS ignored \gset
CREATE TEMP TABLE eg2 AS SELECT * FROM durable.claim_workflow_tasks_v1('eg', ARRAY['q'], ARRAY['w']);
SELECT ok(durable._deliver('eg', 'w', 1, 'signal_received', NULL, '{"note": "late"}'), 'an event arrives during the next task');
CREATE TEMP TABLE eg2_done AS
SELECT * FROM durable.complete_workflow_task_v1((SELECT message_id FROM eg2), (SELECT lease_token FROM eg2),
    (SELECT max((e->>'event_id')::int) FROM eg2, jsonb_array_elements(events) e), '[]',
    '{"owner": "wk-e", "lease_seconds": 45, "activity_stream": "q-activity", "activity_names": []}');
SELECT is((SELECT (status, jsonb_path_query_array(events, '$[*].event_type'))::text FROM eg2_done),
          '(continue,"[""signal_received""]")', 'an eager completion that missed events returns continue with them');
SELECT is((SELECT (lease_token, visible_at > durable.now() + interval '40 seconds')::text FROM durable.messages
           WHERE namespace = 'eg' AND kind = 'workflow'),
          format('(%s,t)', (SELECT lease_token FROM eg2)), 'the caller keeps the task, same token, its lease renewed');
SELECT is((SELECT status FROM durable.complete_workflow_task_v1((SELECT message_id FROM eg2), (SELECT lease_token FROM eg2),
           (SELECT max((e->>'event_id')::int) FROM eg2_done, jsonb_array_elements(events) e), '[]')), 'ok',
          'once it has seen them the task completes ok');

-- ---------------------------------------------------------------------------
-- Fencing of workflow tasks
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('ll', 'w') AS ignored \gset
CREATE TEMP TABLE ll1 AS SELECT * FROM durable.claim_workflow_tasks_v1('ll', ARRAY['q'], ARRAY['w'], 1, interval '30 seconds');
SELECT durable.advance_clock('31 seconds') IS NOT NULL AS moved \gset
CREATE TEMP TABLE ll2 AS SELECT * FROM durable.claim_workflow_tasks_v1('ll', ARRAY['q'], ARRAY['w']);
SELECT is((SELECT task_attempt FROM ll2), 2, 'a workflow task whose lease expired is claimed again as attempt 2');
SELECT throws_ok(format('SELECT status FROM durable.complete_workflow_task_v1(%s, %L, 1, ''[{"type": "complete", "result": "1"}]'')',
                        (SELECT message_id FROM ll1), (SELECT lease_token FROM ll1)), 'PD001', NULL,
                 'the worker that lost the lease cannot complete the task (PD001)');
SELECT throws_ok(format('SELECT durable.fail_workflow_task_v1(%s, %L, ''{}'')',
                        (SELECT message_id FROM ll1), (SELECT lease_token FROM ll1)), 'PD001', NULL,
                 'nor fail it (PD001)');
SELECT is(pg_temp.events('ll', 'w'), '{workflow_started}'::text[], 'the refused completion recorded nothing');
SELECT is((SELECT status FROM durable.complete_workflow_task_v1((SELECT message_id FROM ll2), (SELECT lease_token FROM ll2), 1, '[]')), 'ok',
          'the current lease holder completes it');
SELECT pg_temp.start('ll', 'x') AS ignored \gset
CREATE TEMP TABLE ll3 AS SELECT * FROM durable.claim_workflow_tasks_v1('ll', ARRAY['q'], ARRAY['x']);
SELECT ok(durable.interrupt_workflow_v1('ll', 'x'), 'a run is interrupted while a worker holds its task');
SELECT throws_ok(format('SELECT status FROM durable.complete_workflow_task_v1(%s, %L, 1, ''[]'')',
                        (SELECT message_id FROM ll3), (SELECT lease_token FROM ll3)), 'PD001', NULL,
                 'that worker''s completion is refused (PD001)');

-- ---------------------------------------------------------------------------
-- fail_workflow_task_v1: capped backoff, forever, visibly
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('ft', 'w') AS ignored \gset
CREATE TEMP TABLE ft1 AS SELECT * FROM durable.claim_workflow_tasks_v1('ft', ARRAY['q'], ARRAY['w']);
SELECT is(durable.fail_workflow_task_v1((SELECT message_id FROM ft1), (SELECT lease_token FROM ft1),
                                        '{"type": "NonDeterminismError", "message": "diverged at seq 3"}'),
          interval '1 second', 'the first workflow task failure retries after 1 s');
SELECT is((SELECT (task_failures, last_task_failure->>'type', last_task_failure->>'message',
                   (last_task_failure->>'failures')::int, last_task_failure ? 'at')::text
           FROM durable.workflows WHERE namespace = 'ft'),
          '(1,NonDeterminismError,"diverged at seq 3",1,t)', 'the run shows the failure: count, error and time');
SELECT is((SELECT data - 'message' FROM durable.history WHERE namespace = 'ft' AND event_type = 'workflow_task_failed'),
          '{"type": "NonDeterminismError", "failures": 1, "retry_in_seconds": 1.000000}'::jsonb,
          'history records workflow_task_failed with the retry delay');
SELECT is((SELECT (lease_token IS NULL, attempt)::text FROM durable.messages WHERE namespace = 'ft' AND kind = 'workflow'),
          '(t,1)', 'the failed task is unleased (its attempt is kept)');
SELECT is_empty($$SELECT * FROM durable.claim_workflow_tasks_v1('ft', ARRAY['q'], ARRAY['w'])$$,
                'the failed task is not claimable before its backoff');
SELECT durable.advance_clock('1 second') IS NOT NULL AS moved \gset
SELECT is(pg_temp.fail_repeatedly('ft', 'w', 8), '{2,4,8,16,32,60,60,60}'::float8[],
          'later failures back off 2, 4, 8 ... and are capped at 60 s');
SELECT is((SELECT task_failures FROM durable.workflows WHERE namespace = 'ft'), 9, 'every failure is counted');
SELECT is(pg_temp.status('ft', 'w'), 'running', 'a failing workflow task never fails the workflow');
SELECT is(pg_temp.step('ft', 'w', '[]'), 'ok', 'a task that succeeds at last completes');
SELECT is((SELECT (task_failures, last_task_failure IS NULL)::text FROM durable.workflows WHERE namespace = 'ft'), '(0,t)',
          'and clears the failure count');

-- ---------------------------------------------------------------------------
-- Workflow-level retry
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('wr', 'w', '{"maximum_attempts": 2, "initial_interval": 5, "backoff_coefficient": 2, "maximum_interval": 60}',
                     '["x"]') AS ignored \gset
SELECT is(pg_temp.step('wr', 'w', '[{"type": "fail", "error": {"type": "Boom", "types": ["Boom"]}}]'), 'closed',
          'a workflow with a retry policy fails its first attempt');
SELECT is((SELECT array_agg((run_id, status, attempt, args)::text ORDER BY run_id) FROM durable.workflows WHERE namespace = 'wr'),
          ARRAY['(1,failed,1,"[""x""]")', '(2,running,2,"[""x""]")'], 'the failure starts run 2 as attempt 2 with the same args');
SELECT is((SELECT data->'will_retry' FROM durable.history WHERE namespace = 'wr' AND run_id = 1 AND event_type = 'workflow_failed'),
          'true'::jsonb, 'run 1''s workflow_failed says a retry follows');
SELECT is((SELECT retry->>'maximum_attempts' FROM durable.workflows WHERE namespace = 'wr' AND run_id = 2), '2',
          'run 2 keeps the retry policy');
SELECT is((SELECT visible_at - created_at FROM durable.messages WHERE namespace = 'wr' AND kind = 'workflow'), interval '5 seconds',
          'run 2''s first task waits the policy''s delay');
SELECT is(pg_temp.status('wr', 'w'), 'running', 'the workflow''s outcome is still open');
SELECT durable.advance_clock('6 seconds') IS NOT NULL AS moved \gset
SELECT is(pg_temp.step('wr', 'w', '[{"type": "fail", "error": {"type": "Boom", "types": ["Boom"]}}]'), 'closed',
          'the second attempt fails too');
SELECT is((SELECT count(*)::int FROM durable.workflows WHERE namespace = 'wr'), 2, 'with its attempts used up, no run 3 starts');
SELECT is((SELECT (run_id, status)::text FROM durable.workflow_outcome_v1('wr', 'w')), '(2,failed)', 'the workflow has failed');
SELECT pg_temp.start('wr', 'nr', '{"maximum_attempts": 5, "non_retryable_errors": ["Fatal"]}') AS ignored \gset
SELECT pg_temp.step('wr', 'nr', '[{"type": "fail", "error": {"type": "Fatal", "types": ["Fatal"]}}]') AS ignored \gset
SELECT is((SELECT count(*)::int FROM durable.workflows WHERE namespace = 'wr' AND workflow_id = 'nr'), 1,
          'a non-retryable workflow error is not retried');
-- A retried child reports only its final outcome to its parent.
SELECT pg_temp.start('wr', 'parent') AS ignored \gset
SELECT pg_temp.step('wr', 'parent', '[{"type": "child", "seq": 1, "workflow_id": "kid", "workflow_name": "kid", "args": "[]", "awaited": true}]') AS ignored \gset
SELECT is(pg_temp.step('wr', 'kid', '[{"type": "continue_as_new", "args": "[1]"}]'), 'closed', 'the child continues as new');
SELECT is(pg_temp.inbound('wr', 'parent'), '{workflow_started}'::text[], 'continuing as new reports nothing to the parent');
SELECT is((SELECT (parent_workflow_id, parent_seq)::text FROM durable.workflows WHERE namespace = 'wr' AND workflow_id = 'kid' AND run_id = 2),
          '(parent,1)', 'the child''s next run keeps its parent link');
SELECT pg_temp.step('wr', 'kid', '[{"type": "complete", "result": "7"}]') AS ignored \gset
SELECT is(pg_temp.last_event('wr', 'parent', 'child_completed')->>'result', '7', 'the final run reports to the parent');

-- Bounds on what one workflow task may do
SELECT pg_temp.start('bnd', 'w') AS ignored \gset
SELECT throws_like($$SELECT pg_temp.step('bnd', 'w', (SELECT jsonb_agg(jsonb_build_object('type', 'timer', 'seq', i,
                                                                                          'seconds', 60))
                                                       FROM generate_series(1, 2001) i))$$,
                   'a workflow task may complete with at most 2000 commands (got 2001)%',
                   'a completion with 2001 commands is refused (PD004)');
SELECT throws_like($$SELECT pg_temp.step('bnd', 'w', jsonb_build_array(jsonb_build_object(
                         'type', 'complete', 'result', repeat('x', 16777217))))$$,
                   'payload of 16777217 bytes exceeds the 16777216 byte limit%',
                   'a command carrying more than 16 MiB is refused (PD004)');
-- ---------------------------------------------------------------------------
-- start_workflows_v1
-- ---------------------------------------------------------------------------
SELECT results_eq($$SELECT ordinality, run_id, started, error_sqlstate, error_message
                    FROM durable.start_workflows_v1('sm', '[{"workflow_id": "b", "workflow_name": "n", "task_queue": "q", "args": "[1]"},
                                                            {"workflow_id": "a", "workflow_name": "n", "task_queue": "q2", "args": "[2]",
                                                             "retry": {"maximum_attempts": 3}}]')
                    ORDER BY ordinality$$,
                  $$VALUES (1, 1, true, NULL::text, NULL::text), (2, 1, true, NULL, NULL)$$,
                  'start_workflows_v1 starts each item of a batch as run 1 and says so, one row per item');
SELECT is((SELECT array_agg((workflow_id, task_queue, args, retry)::text ORDER BY workflow_id) FROM durable.workflows
           WHERE namespace = 'sm'),
          ARRAY['(a,q2,[2],"{""maximum_attempts"": 3}")', '(b,q,[1],)'], 'each run has its own args, task queue and retry');
SELECT is((SELECT count(*)::int FROM durable.start_workflows_v1('smh', '[{"workflow_id": "t", "workflow_name": "n",
               "task_queue": "q", "args": "[]", "headers": {"traceparent": "00-abc-def-01"}},
              {"workflow_id": "u", "workflow_name": "n", "task_queue": "q", "args": "[]", "headers": null}]')
           WHERE started), 2, 'a batch of starts with and without headers starts both');
SELECT is(ARRAY[pg_temp.last_event('smh', 't', 'workflow_started')->'headers',
                pg_temp.last_event('smh', 'u', 'workflow_started')->'headers'],
          ARRAY['{"traceparent": "00-abc-def-01"}'::jsonb, NULL],
          'a batched start keeps its headers (a trace context) in workflow_started, as start_workflow_v1 does');
SELECT is((SELECT count(*)::int FROM durable.messages WHERE namespace = 'sm' AND kind = 'workflow'), 2,
          'each started run has its workflow task');
SELECT is((SELECT count(*)::int FROM durable.history WHERE namespace = 'sm' AND event_type = 'workflow_started'), 2,
          'each started run has its workflow_started event');
SELECT results_eq($$SELECT ordinality, run_id, started, error_sqlstate FROM durable.start_workflows_v1('sm', '[
                        {"workflow_id": "c", "workflow_name": "n", "task_queue": "q", "args": "[]"},
                        {"workflow_id": "a", "workflow_name": "n", "task_queue": "q", "args": "[]"},
                        {"workflow_id": "", "workflow_name": "n", "task_queue": "q", "args": "[]"},
                        {"workflow_id": "d", "workflow_name": "n", "task_queue": "q"},
                        {"workflow_id": "e", "workflow_name": "n", "task_queue": "q", "args": "[]", "id_reuse": "replace"},
                        {"workflow_id": "f", "workflow_name": "n", "task_queue": "q", "args": [1]},
                        "g",
                        {"workflow_id": "h", "workflow_name": "n", "task_queue": "q", "args": "[]", "retry": 3},
                        {"workflow_id": "b", "workflow_name": "n", "task_queue": "q", "args": "[]", "id_reuse": "return_existing"}]')
                    ORDER BY ordinality$$,
                  $$VALUES (1, 1, true, NULL::text), (2, NULL, false, 'PD002'), (3, NULL, false, 'PD004'),
                           (4, NULL, false, 'PD004'), (5, NULL, false, 'PD004'), (6, NULL, false, 'PD004'),
                           (7, NULL, false, 'PD004'), (8, NULL, false, 'PD004'), (9, 1, false, NULL)$$,
                  'a duplicate or a bad item fails alone with its SQLSTATE; the others start (or return the existing run)');
SELECT is((SELECT array_agg(workflow_id ORDER BY workflow_id) FROM durable.workflows WHERE namespace = 'sm'),
          ARRAY['a', 'b', 'c'], 'a failed item left no run behind');
SELECT is((SELECT error_message FROM durable.start_workflows_v1('sm',
              '[{"workflow_id": "a", "workflow_name": "n", "task_queue": "q", "args": "[]"}]')),
          'workflow id ''a'' is already running in namespace ''sm'' (run 1); wait for it, pick another id, or start with id_reuse="return_existing"',
          'a failed item carries the message start_workflow_v1 would have raised');
SELECT is((SELECT error_message FROM durable.start_workflows_v1('sm', '["g"]')),
          'start 1 is not a JSON object: give {workflow_id, workflow_name, task_queue, args}',
          'an item that is not an object is named by its position');
SELECT results_eq($$SELECT ordinality, run_id, started, error_sqlstate FROM durable.start_workflows_v1('sm2', '[
                        {"workflow_id": "x", "workflow_name": "n", "task_queue": "q", "args": "[1]"},
                        {"workflow_id": "x", "workflow_name": "n", "task_queue": "q", "args": "[2]"},
                        {"workflow_id": "x", "workflow_name": "n", "task_queue": "q", "args": "[3]", "id_reuse": "return_existing"}]')
                    ORDER BY ordinality$$,
                  $$VALUES (1, 1, true, NULL::text), (2, NULL, false, 'PD002'), (3, 1, false, NULL)$$,
                  'starts of one id in one batch behave as starts made one after the other, in batch order');
SELECT is((SELECT args FROM durable.workflows WHERE namespace = 'sm2'), '[1]', 'the first start of the id won');
SELECT is_empty($$SELECT * FROM durable.start_workflows_v1('sm3', '[]')$$, 'an empty batch starts nothing');
SELECT throws_ok($$SELECT * FROM durable.start_workflows_v1('sm3', (SELECT jsonb_agg(jsonb_build_object(
                     'workflow_id', 'w' || i, 'workflow_name', 'n', 'task_queue', 'q', 'args', '[]'))
                     FROM generate_series(1, 1001) i))$$, 'PD004',
                 'a batch of 1001 starts is over the limit of 1000: split it into batches of at most 1000',
                 'a batch over 1000 starts is refused whole with PD004');
SELECT is((SELECT count(*)::int FROM durable.start_workflows_v1('sm3', (SELECT jsonb_agg(jsonb_build_object(
              'workflow_id', 'w' || i, 'workflow_name', 'n', 'task_queue', 'q', 'args', '[]'))
              FROM generate_series(1, 1000) i)) WHERE started), 1000, 'a batch of 1000 starts is allowed');
SELECT throws_ok($$SELECT * FROM durable.start_workflows_v1('sm3', '{"workflow_id": "x"}')$$, 'PD004', NULL,
                 'p_starts that is not an array is refused with PD004');
SELECT throws_ok($$SELECT * FROM durable.start_workflows_v1('sm3', NULL)$$, 'PD004', NULL,
                 'NULL p_starts is refused with PD004');

SELECT is(pg_temp.step('bnd', 'w', (SELECT jsonb_agg(jsonb_build_object('type', 'timer', 'seq', i, 'seconds', 60))
                                   FROM generate_series(1, 2000) i)), 'ok', '2000 commands are allowed');

-- Taking a cached run by id: wake_in, stickiness, claim_workflow_task_v1
SELECT pg_temp.start('tk', 'sleeper') AS ignored \gset
CREATE TEMP TABLE tk_task AS SELECT * FROM durable.claim_workflow_tasks_v1('tk', ARRAY['q'], ARRAY['sleeper'], 1);
CREATE TEMP TABLE tk_done AS
SELECT c.* FROM tk_task t, durable.complete_workflow_task_v1(t.message_id, t.lease_token, 1,
    '[{"type": "timer", "seq": 1, "seconds": 60}]',
    '{"owner": "wk-1", "lease_seconds": 30, "task_queue": "q", "workflow_names": ["sleeper"]}') c;
SELECT ok((SELECT status = 'ok' AND wake_in BETWEEN 59 AND 60 FROM tk_done),
          'a completion that parks the run on a timer says in how many seconds it is due (wake_in)');
SELECT is((SELECT sticky_worker FROM durable.workflows WHERE namespace = 'tk' AND workflow_id = 'sleeper'), 'wk-1',
          'the worker that completed the task (serving workflows) becomes the run''s sticky worker');
SELECT is((SELECT count(*)::int FROM durable.claim_workflow_task_v1('tk', 'q', 'sleeper', ARRAY['sleeper'])), 0,
          'claim_workflow_task_v1 takes nothing before the run''s timer is due');
SELECT durable.advance_clock('61 seconds') IS NOT NULL AS moved \gset
CREATE TEMP TABLE tk_again AS
SELECT * FROM durable.claim_workflow_task_v1('tk', 'q', 'sleeper', ARRAY['sleeper'], interval '30 seconds', 'wk-1');
SELECT ok((SELECT workflow_id = 'sleeper' AND events @> '[{"event_type": "timer_fired", "seq": 1}]'
           FROM tk_again),
          'once it is due, claim_workflow_task_v1 fires the run''s timer and leases its task, with timer_fired');
SELECT is((SELECT lease_owner FROM durable.messages WHERE namespace = 'tk' AND workflow_id = 'sleeper' AND kind = 'workflow'),
          'wk-1', 'the task taken by id is leased to the caller');
SELECT is((SELECT count(*)::int FROM durable.claim_workflow_task_v1('tk', 'q', 'sleeper', ARRAY['sleeper'])), 0,
          'a task leased already is not taken by id again');
SELECT ok((SELECT c.status = 'ok' AND c.wake_in IS NULL
           FROM tk_again t, durable.complete_workflow_task_v1(t.message_id, t.lease_token, 3,
               '[{"type": "condition", "seq": 2, "signal_id": "tk-go"}]',
               '{"owner": "wk-1", "lease_seconds": 30, "task_queue": "q", "workflow_names": ["sleeper"]}') c),
          'a run parked on a condition without timeout has no wake_in');
SELECT pg_temp.start('tk', 'other') AS ignored \gset
SELECT pg_temp.step('tk', 'other', '[{"type": "timer", "seq": 1, "seconds": 0}]') AS ignored \gset
SELECT is((SELECT count(*)::int FROM durable.claim_workflow_task_v1('tk', 'q', 'other', ARRAY['sleeper'])), 0,
          'claim_workflow_task_v1 takes only tasks of the named workflows');
SELECT is((SELECT sticky_worker FROM durable.workflows WHERE namespace = 'tk' AND workflow_id = 'other'), NULL,
          'a completion without a workflow-serving p_eager leaves no sticky worker');
SELECT pg_temp.start('tk', 'early') AS ignored \gset
SELECT pg_temp.step('tk', 'early', '[{"type": "timer", "seq": 1, "seconds": 0.03}]') AS ignored \gset
SELECT is((SELECT count(*)::int FROM durable.claim_workflow_task_v1('tk', 'q', 'early', ARRAY['early'],
                                                                     interval '30 seconds', 'wk-0', interval '1 second')
           WHERE events @> '[{"event_type": "timer_fired", "seq": 1}]'), 1,
          'with p_wait it waits for a timer falling due within it (an early caller), then fires it and takes the task');
SELECT is((SELECT count(*)::int FROM durable.claim_workflow_task_v1('tk', 'q', 'early', ARRAY['early'])), 0,
          'the task it took is leased');
SELECT durable.start_workflow_v1('tk', 'elsewhere', 'elsewhere', 'q2', '[]') IS NOT NULL AS started \gset
SELECT role_name AS tkw FROM durable.provision_worker_role(ARRAY['q'], 'tk') \gset
SET SESSION AUTHORIZATION :'tkw';
SELECT throws_ok($$SELECT * FROM durable.claim_workflow_task_v1('tk', 'q2', 'elsewhere', ARRAY['elsewhere'])$$,
                 'PD005', NULL, 'a worker role cannot take by id a task on a task queue outside its scope');
SELECT is((SELECT count(*)::int FROM durable.claim_workflow_task_v1('tk', 'q', 'elsewhere', ARRAY['elsewhere'])), 0,
          '... nor name that workflow under a task queue of its own');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT lease_owner FROM durable.messages WHERE namespace = 'tk' AND workflow_id = 'elsewhere' AND kind = 'workflow'),
          NULL, 'the task outside its scope stays unleased');

-- ---------------------------------------------------------------------------
-- External handles: signal_external, cancel_external, interrupt_external
-- (_steer_external), each recorded with its outcome as one inbound event.
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('ex', 'steer') AS ignored \gset
SELECT pg_temp.start('ex', 'target') AS ignored \gset
SELECT is(pg_temp.step('ex', 'steer', '[{"type": "signal_external", "seq": 1, "workflow_id": "target",
                                          "signal_id": "go", "data": "\"hi\""}]'), 'requeued',
          'a signal_external command''s outcome is a new inbound event: the task is handed out again');
SELECT is((SELECT (data->>'outcome', data->>'workflow_id', data->>'signal_id', seq, inbound)::text FROM durable.history
           WHERE namespace = 'ex' AND workflow_id = 'steer' AND event_type = 'external_signal_sent'),
          '(buffered,target,go,1,t)', 'external_signal_sent records the outcome (buffered for the target)');
SELECT is((SELECT count(*)::int FROM durable.signals WHERE namespace = 'ex' AND target_workflow_id = 'target'), 1,
          'the signal waits for the target only');
SELECT is(pg_temp.step('ex', 'steer', '[{"type": "cancel_external", "seq": 2, "workflow_id": "target"},
                                        {"type": "cancel_external", "seq": 3, "workflow_id": "target"}]'), 'requeued',
          'cancel_external commands apply');
SELECT is((SELECT array_agg(data->>'outcome' ORDER BY seq) FROM durable.history
           WHERE namespace = 'ex' AND workflow_id = 'steer' AND event_type = 'external_cancel_sent'),
          ARRAY['requested', 'not_running'], 'the first requests the cancellation, the second finds it requested');
SELECT ok((SELECT cancel_requested FROM durable.workflows WHERE namespace = 'ex' AND workflow_id = 'target'),
          'the target is cancelling');
SELECT is(pg_temp.step('ex', 'steer', '[{"type": "interrupt_external", "seq": 4, "workflow_id": "target", "reason": "stop"},
                                        {"type": "signal_external", "seq": 5, "workflow_id": "nobody",
                                         "signal_id": "go", "data": "1"}]'), 'requeued',
          'interrupt_external and a signal to an unknown id apply');
SELECT is(pg_temp.status('ex', 'target'), 'interrupted', 'the target is interrupted');
SELECT is((SELECT data->>'outcome' FROM durable.history WHERE namespace = 'ex' AND workflow_id = 'steer'
           AND event_type = 'external_interrupt_sent'), 'interrupted', 'external_interrupt_sent says so');
SELECT is((SELECT data->>'outcome' FROM durable.history WHERE namespace = 'ex' AND workflow_id = 'steer' AND seq = 5),
          'not_found', 'a signal to an unknown workflow is not_found');
SELECT throws_ok($$SELECT pg_temp.step('ex', 'steer', '[{"type": "cancel_external", "seq": 6, "workflow_id": "steer"}]')$$,
                 'PD004', NULL, 'no workflow cancels itself through a command');
SELECT throws_ok($$SELECT pg_temp.step('ex', 'steer', '[{"type": "interrupt_external", "seq": 6, "workflow_id": ""}]')$$,
                 'PD004', NULL, 'an empty target id is refused');
SELECT throws_ok(format($$SELECT pg_temp.step('ex', 'steer', %L)$$,
                        jsonb_build_array(jsonb_build_object('type', 'interrupt_external', 'seq', 6, 'workflow_id', 'x',
                                                             'reason', repeat('r', 16777217)))),
                 'PD004', NULL, 'an interrupt reason over 16 MiB is refused');

SELECT * FROM finish();
ROLLBACK;
