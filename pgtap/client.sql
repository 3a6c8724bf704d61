-- client.sql: what a client does from outside (mirrors sql/client.sql):
-- outcome, describe, history, list, cancel, interrupt.
\ir include/fixtures.psql
BEGIN;
SELECT plan(79);

-- ---------------------------------------------------------------------------
-- workflow_outcome_v1
-- ---------------------------------------------------------------------------
SELECT is_empty($$SELECT * FROM durable.workflow_outcome_v1('o', 'nope')$$, 'an unknown workflow id has no outcome row');
SELECT pg_temp.start('o', 'w') AS ignored \gset
SELECT results_eq($$SELECT run_id, status, result, error FROM durable.workflow_outcome_v1('o', 'w')$$,
                  $$VALUES (1, 'running', NULL::text, NULL::jsonb)$$, 'a running workflow has no result yet');
SELECT pg_temp.step('o', 'w', '[{"type": "complete", "result": "{\"total\": 3}"}]') AS ignored \gset
SELECT results_eq($$SELECT run_id, status, result, error FROM durable.workflow_outcome_v1('o', 'w')$$,
                  $$VALUES (1, 'completed', '{"total": 3}'::text, NULL::jsonb)$$, 'a completed workflow has its result');
SELECT pg_temp.start('o', 'f') AS ignored \gset
SELECT pg_temp.step('o', 'f', '[{"type": "fail", "error": {"type": "Boom", "message": "no"}}]') AS ignored \gset
SELECT results_eq($$SELECT status, error FROM durable.workflow_outcome_v1('o', 'f')$$,
                  $$VALUES ('failed', '{"type": "Boom", "message": "no"}'::jsonb)$$, 'a failed workflow has its error');
SELECT pg_temp.start('o', 'can') AS ignored \gset
SELECT pg_temp.step('o', 'can', '[{"type": "continue_as_new", "args": "[]"}]') AS ignored \gset
SELECT results_eq($$SELECT run_id, status FROM durable.workflow_outcome_v1('o', 'can')$$, $$VALUES (2, 'running')$$,
                  'the outcome is that of the latest run');
SELECT is_empty($$SELECT * FROM durable.workflow_outcome_v1('o2', 'w')$$, 'outcomes are per namespace');

-- ---------------------------------------------------------------------------
-- workflow_outcomes_v1
-- ---------------------------------------------------------------------------
SELECT results_eq($$SELECT workflow_id, run_id, status, result, error FROM durable.workflow_outcomes_v1('o', ARRAY['w', 'nope', 'f', 'can', 'w', NULL])
                    ORDER BY workflow_id$$,
                  $$VALUES ('can', 2, 'running', NULL::text, NULL::jsonb),
                           ('f', 1, 'failed', NULL, '{"type": "Boom", "message": "no"}'::jsonb),
                           ('w', 1, 'completed', '{"total": 3}', NULL)$$,
                  'workflow_outcomes_v1 gives the latest run of each known id once, and nothing for an unknown one');
SELECT results_eq($$SELECT workflow_name, task_queue FROM durable.workflow_outcomes_v1('o', ARRAY['w'])$$,
                  $$SELECT workflow_name, task_queue FROM durable.workflow_outcome_v1('o', 'w')$$,
                  'each row names the workflow and task queue as workflow_outcome_v1 does');
SELECT is_empty($$SELECT * FROM durable.workflow_outcomes_v1('o2', ARRAY['w', 'f'])$$, 'outcomes of many are per namespace');
SELECT is_empty($$SELECT * FROM durable.workflow_outcomes_v1('o', '{}')$$, 'no ids, no rows');

-- ---------------------------------------------------------------------------
-- describe_workflow_v1
-- ---------------------------------------------------------------------------
SELECT is(durable.describe_workflow_v1('d', 'nope'), NULL, 'describing an unknown workflow gives NULL');
SELECT pg_temp.start('d', 'w', p_args => '[42]') AS ignored \gset
SELECT is(durable.describe_workflow_v1('d', 'w') - '{created_at,updated_at,pending}'::text[],
          '{"workflow_id": "w", "run_id": 1, "namespace": "d", "status": "running", "result": null, "error": null,
            "workflow_name": "w", "task_queue": "q", "attempt": 1, "parent_workflow_id": null, "parent_run_id": null,
            "cancel_requested": false, "closed_at": null, "last_task_failure": null, "task_failures": 0,
            "priority": 0, "partition_key": null, "dedup_id": null,
            "children": [], "waiting_for": "a worker serving workflow ''w'' on task queue ''q'' (no live worker serves workflow ''w'' there)"}'::jsonb,
          'describe gives the run''s state');
SELECT is(durable.describe_workflow_v1('d', 'w')->'pending' #- '{0,since}',
          '[{"type": "workflow_task", "workflow_name": "w", "task_queue": "q", "attempt": 0, "running": false,
             "waiting_for": "a worker serving workflow ''w'' on task queue ''q'' (no live worker serves workflow ''w'' there)"}]'::jsonb,
          'a workflow task no worker has claimed says which worker it waits for');
CREATE TEMP TABLE d1 AS SELECT * FROM durable.claim_workflow_tasks_v1('d', ARRAY['q'], ARRAY['w']);
SELECT is((durable.describe_workflow_v1('d', 'w')->'pending'->0) - 'since',
          '{"type": "workflow_task", "workflow_name": "w", "task_queue": "q", "attempt": 1, "running": true,
            "waiting_for": null}'::jsonb, 'a claimed workflow task shows as running, waiting for nobody');
SELECT status AS ignored FROM durable.complete_workflow_task_v1((SELECT message_id FROM d1), (SELECT lease_token FROM d1), 1, $$[
    {"type": "activity", "seq": 1, "name": "charge", "args": "[]"},
    {"type": "timer", "seq": 2, "seconds": 60},
    {"type": "condition", "seq": 3, "signal_id": "approve"},
    {"type": "child", "seq": 4, "workflow_id": "kid", "workflow_name": "kid", "args": "[]", "awaited": true},
    {"type": "child", "seq": 5, "workflow_id": "bg", "workflow_name": "bg", "args": "[]", "awaited": false},
    {"type": "patch", "patch_id": "p1"}]$$) \gset
CREATE TEMP TABLE dp AS SELECT p FROM jsonb_array_elements(durable.describe_workflow_v1('d', 'w')->'pending') p;
SELECT is((SELECT jsonb_agg(p->'seq') FROM dp), '[1, 2, 3, 4]'::jsonb,
          'pending lists the activity, timer, condition and awaited child, in seq order (no task is queued)');
SELECT is((SELECT p - 'since' FROM dp WHERE p->>'seq' = '1'),
          '{"seq": 1, "type": "activity", "activity_name": "charge", "task_queue": "q", "attempt": 0, "running": false}'::jsonb,
          'a pending activity shows its name, queue and attempt');
SELECT is((SELECT (p->>'type', (p->>'due_at')::timestamptz - (p->>'since')::timestamptz BETWEEN interval '60 s' AND interval '61 s')::text
           FROM dp WHERE p->>'seq' = '2'), '(timer,t)', 'a pending timer shows when it is due');
SELECT is((SELECT p - 'since' FROM dp WHERE p->>'seq' = '3'), '{"seq": 3, "type": "condition", "signal_id": "approve", "running": false}'::jsonb,
          'a pending condition shows the signal it waits for');
SELECT is((SELECT p - 'since' FROM dp WHERE p->>'seq' = '4'),
          '{"seq": 4, "type": "child", "workflow_id": "kid", "task_queue": "q", "running": false}'::jsonb, 'a pending child shows its workflow id');
SELECT is(durable.describe_workflow_v1('d', 'w')->'children' #- '{0,run_id}' #- '{1,run_id}',
          '[{"workflow_id": "kid", "workflow_name": "kid", "status": "running"},
            {"workflow_id": "bg", "workflow_name": "bg", "status": "running"}]'::jsonb,
          'describe lists every child with its status');
SELECT is((SELECT (durable.describe_workflow_v1('d', 'kid')->>'parent_workflow_id', durable.describe_workflow_v1('d', 'kid')->>'parent_run_id')::text),
          '(w,1)', 'a child''s description names its parent');
CREATE TEMP TABLE da AS SELECT * FROM durable.claim_activity_tasks_v1('d', ARRAY['q-activity'], ARRAY['charge']);
SELECT is((SELECT p->>'attempt' || '/' || (p->>'running') FROM jsonb_array_elements(durable.describe_workflow_v1('d', 'w')->'pending') p
           WHERE p->>'seq' = '1'), '1/true', 'a claimed activity shows as running, with its attempt');
SELECT recorded AS ignored FROM durable.complete_activity_v1((SELECT message_id FROM da), (SELECT lease_token FROM da), '1') \gset
SELECT is((SELECT jsonb_agg(p->'type') FROM jsonb_array_elements(durable.describe_workflow_v1('d', 'w')->'pending') p),
          '["timer", "condition", "child", "workflow_task"]'::jsonb,
          'a resolved call leaves pending; the workflow task it queued appears');
CREATE TEMP TABLE d2 AS SELECT * FROM durable.claim_workflow_tasks_v1('d', ARRAY['q'], ARRAY['w']);
SELECT durable._cancel_timer(w, 2) AS ignored FROM durable.workflows w WHERE namespace = 'd' AND workflow_id = 'w' \gset
SELECT is((SELECT jsonb_agg(p->'type') FROM jsonb_array_elements(durable.describe_workflow_v1('d', 'w')->'pending') p),
          '["condition", "child", "workflow_task"]'::jsonb, 'a cancelled timer leaves pending');
SELECT durable.fail_workflow_task_v1((SELECT message_id FROM d2), (SELECT lease_token FROM d2),
                                     '{"type": "NonDeterminismError", "message": "seq 2 was a timer"}') AS ignored \gset
SELECT is((SELECT (d->>'task_failures', d->'last_task_failure'->>'message')::text FROM durable.describe_workflow_v1('d', 'w') d),
          '(1,"seq 2 was a timer")', 'describe shows the last workflow task failure');
SELECT is((SELECT p->'waiting_for' FROM jsonb_array_elements(durable.describe_workflow_v1('d', 'w')->'pending') p
           WHERE p->>'type' = 'workflow_task'), 'null'::jsonb, 'a task waiting out its backoff is not waiting for a worker');
SELECT durable.interrupt_workflow_v1('d', 'w') AS ignored \gset
SELECT is(durable.describe_workflow_v1('d', 'w')->'pending', '[]'::jsonb, 'a closed run has nothing pending');
SELECT pg_temp.start('d', 'r') AS ignored \gset
SELECT pg_temp.step('d', 'r', '[{"type": "continue_as_new", "args": "[]"}]') AS ignored \gset
SELECT is((SELECT (d->>'run_id', d->>'status')::text FROM durable.describe_workflow_v1('d', 'r') d), '(2,running)',
          'describe shows the latest run by default');
SELECT is((SELECT (d->>'run_id', d->>'status')::text FROM durable.describe_workflow_v1('d', 'r', 1) d), '(1,continued)',
          'or the run asked for');

-- ---------------------------------------------------------------------------
-- workflow_history_v1, run_history_v1
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('h', 'w') AS ignored \gset
SELECT pg_temp.step('h', 'w', '[{"type": "timer", "seq": 1, "seconds": 1}, {"type": "continue_as_new", "args": "[]"}]') AS ignored \gset
SELECT pg_temp.step('h', 'w', '[{"type": "patch", "patch_id": "x"}]') AS ignored \gset
SELECT results_eq($$SELECT run_id, event_id, event_type FROM durable.workflow_history_v1('h', 'w')$$,
                  $$VALUES (2, 1, 'workflow_started'), (2, 2, 'patch_marker')$$,
                  'workflow_history_v1 gives the latest run''s history by default');
SELECT results_eq($$SELECT run_id, event_id, event_type FROM durable.workflow_history_v1('h', 'w', true)$$,
                  $$VALUES (1, 1, 'workflow_started'), (1, 2, 'timer_started'), (1, 3, 'workflow_continued_as_new'),
                           (2, 1, 'workflow_started'), (2, 2, 'patch_marker')$$,
                  'with p_all_runs it gives every run''s history, run by run, in order');
SELECT results_eq($$SELECT event_id, event_type, seq, inbound FROM durable.run_history_v1('h', 'w', 1)$$,
                  $$VALUES (1, 'workflow_started', NULL::int, true), (2, 'timer_started', 1, false),
                           (3, 'workflow_continued_as_new', NULL, false)$$,
                  'run_history_v1 gives one run''s whole history, outbound events included');
SELECT is_empty($$SELECT * FROM durable.workflow_history_v1('h', 'nope', true)$$, 'an unknown workflow has no history');
SELECT is_empty($$SELECT * FROM durable.workflow_history_v1('h2', 'w')$$, 'histories are per namespace');

-- workflow_runs_v1 (with workflow_history_v1: an exported history)
SELECT results_eq($$SELECT run_id, workflow_name, task_queue, attempt, args, status
                    FROM durable.workflow_runs_v1('h', 'w')$$,
                  $$VALUES (2, 'w', 'q', 1, '[]', 'running')$$,
                  'workflow_runs_v1 gives the latest run and what it was started with by default');
SELECT results_eq($$SELECT run_id, status FROM durable.workflow_runs_v1('h', 'w', true)$$,
                  $$VALUES (1, 'continued'), (2, 'running')$$,
                  'with p_all_runs it gives every run, in order');
SELECT is_empty($$SELECT * FROM durable.workflow_runs_v1('h', 'nope', true)$$, 'an unknown workflow has no runs');

-- ---------------------------------------------------------------------------
-- list_workflows_v1
-- ---------------------------------------------------------------------------
SELECT s.run_id AS ignored FROM durable.start_workflow_v1('li', 'a', 'order', 'q', '[]') s \gset
SELECT s.run_id AS ignored FROM durable.start_workflow_v1('li', 'b', 'order', 'q', '[]') s \gset
SELECT s.run_id AS ignored FROM durable.start_workflow_v1('li', 'c', 'refund', 'q', '[]') s \gset
SELECT s.run_id AS ignored FROM durable.start_workflow_v1('li2', 'z', 'order', 'q', '[]') s \gset
CREATE TEMP TABLE li AS SELECT * FROM durable.claim_workflow_tasks_v1('li', ARRAY['q'], ARRAY['order'], 1);
SELECT c.status AS ignored FROM li, durable.complete_workflow_task_v1(li.message_id, li.lease_token, 1, '[{"type": "complete", "result": "1"}]') c \gset
SELECT results_eq($$SELECT workflow_id FROM durable.list_workflows_v1('li')$$, $$VALUES ('a'), ('c'), ('b')$$,
                  'list_workflows_v1 lists a namespace''s runs, most recently updated first');
SELECT results_eq($$SELECT workflow_id, status FROM durable.list_workflows_v1('li', p_status => 'completed')$$,
                  $$VALUES ('a', 'completed')$$, 'it filters by status');
SELECT set_eq($$SELECT workflow_id FROM durable.list_workflows_v1('li', p_workflow_name => 'order')$$, ARRAY['a', 'b'],
              'it filters by workflow name');
SELECT results_eq($$SELECT workflow_id FROM durable.list_workflows_v1('li', 'running', 'order')$$, $$VALUES ('b')$$,
                  'filters combine');
SELECT is((SELECT count(*)::int FROM durable.list_workflows_v1('li', p_limit => 2)), 2, 'it returns at most p_limit runs');
SELECT is((SELECT count(*)::int FROM durable.list_workflows_v1('li', p_limit => -1)), 0, 'a negative limit returns nothing');
SELECT results_eq($$SELECT workflow_id, run_id, workflow_name, task_queue, status FROM durable.list_workflows_v1('li2')$$,
                  $$VALUES ('z', 1, 'order', 'q', 'running')$$, 'another namespace lists only its own runs');

-- ---------------------------------------------------------------------------
-- search_workflows_v1
-- ---------------------------------------------------------------------------
-- Runs created at known times (set by hand: the engine clock moves on), one completed.
SELECT s.run_id AS ignored FROM durable.start_workflow_v1('se', 'ord-1', 'order', 'q', '[]') s \gset
SELECT s.run_id AS ignored FROM durable.start_workflow_v1('se', 'ord-2', 'order', 'q', '[]') s \gset
SELECT s.run_id AS ignored FROM durable.start_workflow_v1('se', 'ref-1', 'refund', 'q2', '[]') s \gset
SELECT s.run_id AS ignored FROM durable.start_workflow_v1('se', 'ord-3', 'order', 'q', '[]') s \gset
SELECT s.run_id AS ignored FROM durable.start_workflow_v1('se2', 'ord-9', 'order', 'q', '[]') s \gset
UPDATE durable.workflows SET created_at = CASE workflow_id WHEN 'ord-1' THEN '2030-01-01 10:00:00+00'
    WHEN 'ord-3' THEN '2030-01-01 12:00:00+00' ELSE '2030-01-01 11:00:00+00' END::timestamptz
WHERE namespace IN ('se', 'se2');
CREATE TEMP TABLE se AS SELECT * FROM durable.claim_workflow_tasks_v1('se', ARRAY['q'], ARRAY['order'], 1);
SELECT c.status AS ignored FROM se, durable.complete_workflow_task_v1(se.message_id, se.lease_token, 1, '[{"type": "complete", "result": "1"}]') c \gset
SELECT results_eq($$SELECT workflow_id FROM durable.search_workflows_v1('se')$$,
                  $$VALUES ('ord-3'), ('ref-1'), ('ord-2'), ('ord-1')$$,
                  'search_workflows_v1 lists a namespace''s runs, newest created first (ties by id, descending)');
SELECT results_eq($$SELECT workflow_id FROM durable.search_workflows_v1('se', p_limit => 2)$$,
                  $$VALUES ('ord-3'), ('ref-1')$$, 'a page holds at most p_limit runs');
SELECT results_eq($$SELECT s.workflow_id FROM durable.search_workflows_v1('se', p_limit => 2) l,
                    durable.search_workflows_v1('se', p_before_created_at => l.created_at,
                                                p_before_workflow_id => l.workflow_id,
                                                p_before_run_id => l.run_id, p_limit => 2) s
                    WHERE l.workflow_id = 'ref-1'$$,
                  $$VALUES ('ord-2'), ('ord-1')$$,
                  'the next page starts right after the cursor (the previous page''s last row), ties included');
SELECT results_eq($$SELECT workflow_id, status FROM durable.search_workflows_v1('se', p_status => 'completed')$$,
                  $$VALUES ('ord-1', 'completed')$$, 'it filters by status');
SELECT results_eq($$SELECT workflow_id FROM durable.search_workflows_v1('se', p_workflow_name => 'refund')$$,
                  $$VALUES ('ref-1')$$, 'it filters by workflow name');
SELECT results_eq($$SELECT workflow_id FROM durable.search_workflows_v1('se', p_task_queue => 'q2')$$,
                  $$VALUES ('ref-1')$$, 'it filters by task queue');
SELECT results_eq($$SELECT workflow_id FROM durable.search_workflows_v1('se', p_created_after => '2030-01-01 10:30:00+00',
                                                                            p_created_before => '2030-01-01 12:00:00+00')$$,
                  $$VALUES ('ref-1'), ('ord-2')$$, 'it filters by a creation time range, its end excluded');
SELECT results_eq($$SELECT workflow_id FROM durable.search_workflows_v1('se', p_created_before => '2030-01-01 12:00:00+00',
                                                                            p_before_created_at => '2030-01-01 11:00:00+00',
                                                                            p_before_workflow_id => 'ref-1', p_before_run_id => 1)$$,
                  $$VALUES ('ord-2'), ('ord-1')$$, 'a page below the cursor stays below it within a time range');
SELECT results_eq($$SELECT workflow_id FROM durable.search_workflows_v1('se', p_created_before => '2030-01-01 11:00:00+00',
                                                                            p_before_created_at => '2030-01-01 12:00:00+00',
                                                                            p_before_workflow_id => 'ord-3', p_before_run_id => 1)$$,
                  $$VALUES ('ord-1')$$, 'and below the time range''s end when that is lower than the cursor');
SELECT results_eq($$SELECT workflow_id FROM durable.search_workflows_v1('se', p_id_prefix => 'ord-')$$,
                  $$VALUES ('ord-3'), ('ord-2'), ('ord-1')$$, 'it finds workflow ids by prefix');
SELECT results_eq($$SELECT workflow_id FROM durable.search_workflows_v1('se', 'running', 'order', 'q', p_id_prefix => 'ord')$$,
                  $$VALUES ('ord-3'), ('ord-2')$$, 'filters combine');
SELECT is((SELECT count(*)::int FROM durable.search_workflows_v1('se', p_limit => -1)), 0,
          'a negative limit returns nothing');
SELECT results_eq($$SELECT workflow_id FROM durable.search_workflows_v1('se2')$$, $$VALUES ('ord-9')$$,
                  'another namespace lists only its own runs');

-- ---------------------------------------------------------------------------
-- cancel_workflow_v1
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('cx', 'p') AS ignored \gset
SELECT pg_temp.step('cx', 'p', '[{"type": "child", "seq": 1, "workflow_id": "kid", "workflow_name": "kid", "args": "[]", "awaited": true},
                                 {"type": "child", "seq": 2, "workflow_id": "bg", "workflow_name": "bg", "args": "[]", "awaited": false},
                                 {"type": "condition", "seq": 3, "signal_id": "s"}]') AS ignored \gset
SELECT pg_temp.step('cx', 'kid', '[{"type": "child", "seq": 1, "workflow_id": "grandkid", "workflow_name": "grandkid", "args": "[]", "awaited": true}]') AS ignored \gset
SELECT ok(durable.cancel_workflow_v1('cx', 'p'), 'cancel_workflow_v1 returns true for a running workflow');
SELECT is((SELECT (status, cancel_requested)::text FROM durable.workflows WHERE namespace = 'cx' AND workflow_id = 'p'),
          '(running,t)', 'cancelling is cooperative: the run keeps running, marked cancel_requested');
SELECT is(pg_temp.inbound('cx', 'p'), '{workflow_started,cancel_requested}'::text[],
          'the workflow code is told through an inbound cancel_requested event');
SELECT isnt_empty($$SELECT 1 FROM durable.messages WHERE namespace = 'cx' AND workflow_id = 'p' AND kind = 'workflow'$$,
                  'and woken by a workflow task');
SELECT is((SELECT array_agg(workflow_id || ':' || cancel_requested ORDER BY workflow_id) FROM durable.workflows WHERE namespace = 'cx'),
          '{bg:false,grandkid:true,kid:true,p:true}'::text[],
          'the cancel cascades to awaited children (and theirs), not to children nobody awaits');
SELECT is(pg_temp.inbound('cx', 'kid'), '{workflow_started,cancel_requested}'::text[], 'an awaited child gets cancel_requested too');
SELECT is(durable.cancel_workflow_v1('cx', 'p'), false, 'a second cancel returns false');
SELECT is((SELECT count(*)::int FROM durable.history WHERE namespace = 'cx' AND workflow_id = 'p' AND event_type = 'cancel_requested'), 1,
          'and delivers nothing more');
SELECT throws_ok($$SELECT durable.cancel_workflow_v1('cx', 'nope')$$, 'PD003', NULL, 'cancelling an unknown workflow fails with PD003');
SELECT pg_temp.step('cx', 'bg', '[{"type": "complete", "result": "1"}]') AS ignored \gset
SELECT is(durable.cancel_workflow_v1('cx', 'bg'), false, 'cancelling a closed workflow returns false');

-- ---------------------------------------------------------------------------
-- interrupt_workflow_v1
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('ix', 'p') AS ignored \gset
SELECT pg_temp.step('ix', 'p', '[{"type": "child", "seq": 1, "workflow_id": "w", "workflow_name": "w", "args": "[]", "awaited": true}]') AS ignored \gset
SELECT pg_temp.step('ix', 'w', '[{"type": "activity", "seq": 1, "name": "charge", "args": "[]"},
                                 {"type": "timer", "seq": 2, "seconds": 60},
                                 {"type": "condition", "seq": 3, "signal_id": "go", "timeout": 30}]') AS ignored \gset
SELECT durable.send_signal_v1('ix', 'other', '"buffered"') AS ignored \gset
SELECT ok(durable.interrupt_workflow_v1('ix', 'w', 'operator stopped it'), 'interrupt_workflow_v1 returns true for a running workflow');
SELECT is((SELECT (status, error, closed_at IS NOT NULL)::text FROM durable.workflows WHERE namespace = 'ix' AND workflow_id = 'w'),
          '(interrupted,"{""type"": ""WorkflowInterruptedError"", ""detail"": ""operator stopped it""}",t)',
          'the run is interrupted at once, with a WorkflowInterruptedError naming the reason');
SELECT is(pg_temp.last_event('ix', 'w', 'workflow_interrupted')->>'reason', 'operator stopped it', 'history records the reason');
SELECT is_empty($$SELECT 1 FROM durable.messages WHERE namespace = 'ix' AND workflow_id = 'w'$$,
                'the run''s activity, timers and workflow task are deleted');
SELECT is_empty($$SELECT 1 FROM durable.signal_waits WHERE namespace = 'ix' AND workflow_id = 'w'$$, 'its signal waits are deleted');
SELECT is((SELECT count(*)::int FROM durable.signals WHERE namespace = 'ix'), 1, 'buffered signals of the namespace are left alone');
SELECT is(durable.send_signal_v1('ix', 'go', '"x"'), 'buffered', 'a signal for the interrupted run''s condition is buffered');
SELECT is((SELECT data->>'status' FROM durable.history WHERE namespace = 'ix' AND workflow_id = 'p' AND event_type = 'child_failed'),
          'interrupted', 'an awaiting parent gets child_failed with status interrupted');
SELECT is(durable.interrupt_workflow_v1('ix', 'w'), false, 'interrupting it again returns false');
SELECT throws_ok($$SELECT durable.interrupt_workflow_v1('ix', 'nope')$$, 'PD003', NULL,
                 'interrupting an unknown workflow fails with PD003');
SELECT ok(durable.interrupt_workflow_v1('ix', 'p'), 'an interrupt without a reason works too');
SELECT is((SELECT error->>'detail' FROM durable.workflows WHERE namespace = 'ix' AND workflow_id = 'p'), 'interrupted',
          'its error detail defaults to interrupted');

SELECT * FROM finish();
ROLLBACK;
