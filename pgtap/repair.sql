-- repair.sql: reset and fork (mirrors sql/repair.sql).
\ir include/fixtures.psql
BEGIN;
SELECT plan(38);

-- A workflow 'w' that ran two activities and waits on a third:
-- 1 workflow_started, 2 scheduled a, 3 completed a, 4 scheduled b, 5 completed b, 6 scheduled c.
CREATE FUNCTION pg_temp.finish_activity(p_ns text, p_name text) RETURNS boolean LANGUAGE sql AS $$
    SELECT c.recorded FROM durable.claim_activity_tasks_v1(p_ns, ARRAY['q-activity'], ARRAY[p_name]) t,
         LATERAL durable.complete_activity_v1(t.message_id, t.lease_token, '"done"') c
$$;
SELECT pg_temp.start('r', 'w') AS ignored \gset
SELECT pg_temp.step('r', 'w', '[{"type": "activity", "seq": 1, "name": "a", "args": "[]"}]') AS ignored \gset
SELECT pg_temp.finish_activity('r', 'a') AS ignored \gset
SELECT pg_temp.step('r', 'w', '[{"type": "activity", "seq": 2, "name": "b", "args": "[]"}]') AS ignored \gset
SELECT pg_temp.finish_activity('r', 'b') AS ignored \gset
SELECT pg_temp.step('r', 'w', '[{"type": "activity", "seq": 3, "name": "c", "args": "[]"}]') AS ignored \gset
SELECT is(pg_temp.events('r', 'w'), ARRAY['workflow_started', 'activity_scheduled', 'activity_completed',
          'activity_scheduled', 'activity_completed', 'activity_scheduled'], 'fixture: the run has the six events');

-- ---------------------------------------------------------------------------
-- the reset point
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT durable.reset_workflow('r', 'w', 3)$$, 'PD004',
    'event 3 of workflow ''w'' run 1 is a activity_completed event: reset or fork from an activity_scheduled, '
    'timer_started, child_started or signal_wait_started event (see its history)',
    'a reset to an activity_completed event is refused, naming the valid event types');
SELECT throws_ok($$SELECT durable.reset_workflow('r', 'w', 99)$$, 'PD004', NULL,
                 'a reset to an event the run does not have is refused with PD004');
SELECT throws_ok($$SELECT durable.reset_workflow('r', 'w', 1)$$, 'PD004', NULL,
                 'a reset to workflow_started is refused with PD004');
SELECT throws_ok($$SELECT durable.reset_workflow('r', 'nope', 2)$$, 'PD003', NULL,
                 'a reset of an unknown workflow fails with PD003');
SELECT throws_ok($$SELECT durable.fork_workflow('r', 'w', 5)$$, 'PD004', NULL,
                 'a fork from an activity_completed event is refused with PD004');
SELECT is(pg_temp.status('r', 'w'), 'running', 'a refused reset changes nothing');

-- A call made before the point and resolved after it: the new run would wait on it forever.
SELECT pg_temp.start('r', 'p') AS ignored \gset
SELECT pg_temp.step('r', 'p', '[{"type": "activity", "seq": 1, "name": "p1", "args": "[]"},
                                {"type": "activity", "seq": 2, "name": "p2", "args": "[]"}]') AS ignored \gset
SELECT pg_temp.finish_activity('r', 'p1') AS ignored \gset
SELECT throws_ok($$SELECT durable.reset_workflow('r', 'p', 3)$$, 'PD004',
    'event 3 of workflow ''p'' run 1 follows event 2, a durable call whose outcome came after it: reset or fork '
    'from event 2 or earlier',
    'a point after a call resolved only after it is refused, naming the event to reset to instead');
SELECT lives_ok($$SELECT durable.reset_workflow('r', 'p', 2)$$, 'a reset to that earlier event is taken');

-- ---------------------------------------------------------------------------
-- reset_workflow of a running run
-- ---------------------------------------------------------------------------
SELECT is(durable.reset_workflow('r', 'w', 6, 'step c had a bug'), 2, 'reset_workflow returns the new run id');
SELECT is((SELECT status FROM durable.workflows WHERE namespace = 'r' AND workflow_id = 'w' AND run_id = 1),
          'continued', 'the running run it reset ends as continued');
SELECT is((SELECT h.event_type FROM durable.workflow_history_v1('r', 'w', true) h WHERE h.run_id = 1
           ORDER BY h.event_id DESC LIMIT 1), 'workflow_reset', 'the old run''s last event is workflow_reset');
SELECT is_empty($$SELECT 1 FROM durable.messages WHERE namespace = 'r' AND workflow_id = 'w' AND run_id = 1$$,
                'the old run''s pending activity is dropped');
SELECT is(pg_temp.events('r', 'w'), ARRAY['workflow_started', 'activity_scheduled', 'activity_completed',
          'activity_scheduled', 'activity_completed', 'workflow_reset'],
          'the new run''s history is the events below the point, then workflow_reset');
SELECT is(pg_temp.last_event('r', 'w', 'workflow_reset'),
          '{"reason": "step c had a bug", "event_id": 6, "from_workflow_id": "w", "from_run_id": 1, "new_run_id": 2}'::jsonb,
          'workflow_reset says where the run came from and why');
SELECT results_eq($$SELECT h.event_id, h.seq, h.inbound, h.data FROM durable.workflow_history_v1('r', 'w') h
                    WHERE h.event_id < 6 ORDER BY h.event_id$$,
                  $$SELECT h.event_id, h.seq, h.inbound, h.data FROM durable.workflow_history_v1('r', 'w', true) h
                    WHERE h.run_id = 1 AND h.event_id < 6 ORDER BY h.event_id$$,
                  'the copied events keep their ids, seqs, inbound flags and data');
SELECT is(pg_temp.status('r', 'w'), 'running', 'the workflow runs again, as run 2');
SELECT is((SELECT run_id FROM durable.claim_workflow_tasks_v1('r', ARRAY['q'], ARRAY['w'], 1)), 2,
          'a worker claims the new run''s workflow task');
SELECT is((SELECT count(*)::integer FROM durable.messages WHERE namespace = 'r' AND kind = 'activity'
           AND workflow_id = 'w'), 0, 'no activity is queued again by the reset itself');

-- ---------------------------------------------------------------------------
-- reset_workflow of a failed run
-- ---------------------------------------------------------------------------
UPDATE durable.messages SET visible_at = durable.now(), lease_token = NULL WHERE namespace = 'r' AND workflow_id = 'w';
SELECT pg_temp.step('r', 'w', '[{"type": "fail", "error": {"type": "Bug", "message": "step c"}}]') AS ignored \gset
SELECT is(pg_temp.status('r', 'w'), 'failed', 'fixture: run 2 failed');
SELECT is(durable.reset_workflow('r', 'w', 4), 3, 'a failed workflow is reset into a new run');
SELECT is((SELECT status FROM durable.workflows WHERE namespace = 'r' AND workflow_id = 'w' AND run_id = 2),
          'failed', 'a closed run keeps its status');
SELECT is(pg_temp.events('r', 'w'), ARRAY['workflow_started', 'activity_scheduled', 'activity_completed',
          'workflow_reset'], 'the new run keeps the events below event 4');
SELECT is((SELECT last_event_id FROM durable.workflows WHERE namespace = 'r' AND workflow_id = 'w' AND run_id = 3), 4,
          'the new run appends after its copied events');

-- A timer point: the old run's pending timer goes with it.
SELECT pg_temp.start('r', 't') AS ignored \gset
SELECT pg_temp.step('r', 't', '[{"type": "timer", "seq": 1, "seconds": 3600}]') AS ignored \gset
SELECT is(durable.reset_workflow('r', 't', 2), 2, 'a workflow is reset to a timer_started event');
SELECT results_eq($$SELECT run_id, kind FROM durable.messages WHERE namespace = 'r' AND workflow_id = 't'$$,
                  $$VALUES (2, 'workflow')$$, 'the old run''s timer is dropped; the new run has only its workflow task');
SELECT is(pg_temp.events('r', 't'), ARRAY['workflow_started', 'workflow_reset'],
          'the new run starts before the timer: the code starts it again');

-- A child point: a child still running is not touched; the new run's start of it is refused as
-- any start of a running id is (the parent sees the child fail), until the child has closed.
SELECT pg_temp.start('rc', 'c') AS ignored \gset
SELECT pg_temp.step('rc', 'c', '[{"type": "child", "seq": 1, "workflow_id": "kid", "workflow_name": "kid",
                                  "args": "[]", "awaited": true}]') AS ignored \gset
SELECT is(durable.reset_workflow('rc', 'c', 2), 2, 'a workflow is reset to a child_started event');
SELECT results_eq($$SELECT status, parent_run_id FROM durable.workflows WHERE namespace = 'rc' AND workflow_id = 'kid'$$,
                  $$VALUES ('running', 1)$$, 'the old run''s running child keeps running');
SELECT pg_temp.step('rc', 'c', '[{"type": "child", "seq": 1, "workflow_id": "kid", "workflow_name": "kid",
                                  "args": "[]", "awaited": true}]') AS ignored \gset
SELECT is(pg_temp.last_event('rc', 'c', 'child_failed')->'error'->>'type', 'DuplicateWorkflowError',
          'the new run''s start of the still running child fails as a duplicate');

-- ---------------------------------------------------------------------------
-- fork_workflow
-- ---------------------------------------------------------------------------
SELECT is(durable.fork_workflow('r', 'w', 2, 'w-copy'), 'w-copy', 'fork_workflow returns the new workflow id');
SELECT is(pg_temp.events('r', 'w-copy'), ARRAY['workflow_started', 'workflow_reset'],
          'the fork''s history is the events below the point, then workflow_reset');
SELECT is(pg_temp.last_event('r', 'w-copy', 'workflow_reset'),
          '{"event_id": 2, "from_workflow_id": "w", "from_run_id": 3, "fork": true}'::jsonb,
          'the fork''s workflow_reset names the workflow it was forked from');
SELECT results_eq($$SELECT max(run_id), count(*)::integer FROM durable.workflows WHERE namespace = 'r' AND workflow_id = 'w'$$,
                  $$VALUES (3, 3)$$, 'a fork leaves the original alone');
SELECT throws_ok($$SELECT durable.fork_workflow('r', 'w', 2, 'w-copy')$$, 'PD002', NULL,
                 'a fork into a taken id fails with PD002');
SELECT matches(durable.fork_workflow('r', 'w', 2), '^[0-9a-f-]{36}$', 'a fork without an id gets a new uuid');

-- ---------------------------------------------------------------------------
-- owner only
-- ---------------------------------------------------------------------------
SELECT role_name AS wrk FROM durable.provision_worker_role(ARRAY['q', 'q-activity'], 'r') \gset
SELECT ok(NOT has_function_privilege(:'wrk', 'durable.reset_workflow(text, text, integer, text)', 'EXECUTE')
          AND NOT has_function_privilege(:'wrk', 'durable.fork_workflow(text, text, integer, text)', 'EXECUTE'),
          'a worker role may not execute reset_workflow or fork_workflow');
SET LOCAL ROLE :'wrk';
SELECT throws_ok($$SELECT durable.reset_workflow('r', 'w', 2)$$, '42501', 'permission denied for function reset_workflow',
                 'a worker role cannot reset a workflow');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
