-- completions.sql: group commits (mirrors sql/completions.sql): one call
-- records workflow-task completions, activity results and activity failures,
-- each with its own outcome; an item that fails (lost lease, refused
-- commands, unknown kind) fails alone and writes nothing; the batch is bounded.
\ir include/fixtures.psql
BEGIN;
SELECT plan(18);

-- Three runs: g1 has a workflow task to complete, g2 and g3 each an activity to record.
SELECT pg_temp.start('g', 'g1') AS ignored \gset
SELECT pg_temp.start('g', 'g2') AS ignored \gset
SELECT pg_temp.start('g', 'g3') AS ignored \gset
SELECT pg_temp.step('g', 'g2', '[{"type": "activity", "seq": 1, "name": "charge", "args": "[]"}]') AS ignored \gset
SELECT pg_temp.step('g', 'g3', '[{"type": "activity", "seq": 1, "name": "ship", "args": "[]",
                                  "retry": {"maximum_attempts": 1}}]') AS ignored \gset
CREATE TEMP TABLE t1 AS SELECT * FROM durable.claim_workflow_tasks_v1('g', ARRAY['q'], ARRAY['g1']);
CREATE TEMP TABLE a2 AS SELECT * FROM durable.claim_activity_tasks_v1('g', ARRAY['q-activity'], ARRAY['charge']);
CREATE TEMP TABLE a3 AS SELECT * FROM durable.claim_activity_tasks_v1('g', ARRAY['q-activity'], ARRAY['ship']);

CREATE TEMP TABLE r AS
SELECT * FROM durable.complete_tasks_v1(jsonb_build_array(
    jsonb_build_object('kind', 'workflow_task', 'message_id', (SELECT message_id FROM t1),
                       'lease_token', (SELECT lease_token FROM t1), 'processed_event_id', 2,
                       'commands', '[{"type": "complete", "result": "\"done\""}]'::jsonb),
    jsonb_build_object('kind', 'activity_completed', 'message_id', (SELECT message_id FROM a2),
                       'lease_token', (SELECT lease_token FROM a2), 'result', '"paid"', 'eager', NULL),
    jsonb_build_object('kind', 'activity_failed', 'message_id', (SELECT message_id FROM a3),
                       'lease_token', (SELECT lease_token FROM a3), 'error', '{"type": "IOError"}'::jsonb),
    jsonb_build_object('kind', 'activity_completed', 'message_id', (SELECT message_id FROM a2),
                       'lease_token', (SELECT lease_token FROM a2), 'result', '"twice"'),
    jsonb_build_object('kind', 'refund')));

SELECT is((SELECT array_agg(item ORDER BY item) FROM r), ARRAY[0, 1, 2, 3, 4], 'one row per item, numbered in order');
SELECT is((SELECT outcome->>'status' FROM r WHERE item = 0), 'closed',
          'a workflow task completes as complete_workflow_task_v1 would (its run closed)');
SELECT is(pg_temp.status('g', 'g1'), 'completed', 'and the run is completed');
SELECT is((SELECT outcome FROM r WHERE item = 1), '{"recorded": true, "workflow_task": null}'::jsonb,
          'an activity result is recorded as complete_activity_v1 would (a JSON null eager is no eager)');
SELECT is((SELECT outcome->>'outcome' FROM r WHERE item = 2), 'failed',
          'an activity failure is recorded as fail_activity_v1 would (its last attempt: failed)');
SELECT is(pg_temp.inbound('g', 'g3'), ARRAY['workflow_started', 'activity_failed'],
          'and the run hears of the failure');
SELECT is((SELECT (outcome IS NULL, error_code) FROM r WHERE item = 3)::text, '(t,PD001)',
          'a second result for the same attempt fails alone with PD001 (lease lost)');
SELECT is((SELECT count(*)::int FROM durable.history WHERE namespace = 'g' AND event_type = 'activity_completed'), 1,
          'the result is recorded once');
SELECT is((SELECT (error_code, error_message) FROM r WHERE item = 4)::text,
          '(PD004,"completion #4 has kind ''refund'': give workflow_task, activity_completed or activity_failed")',
          'an unknown kind fails alone with PD004 naming the item');

-- An item whose commands are refused half-way leaves nothing of itself behind.
SELECT pg_temp.start('h', 'h1') AS ignored \gset
SELECT pg_temp.start('h', 'h2') AS ignored \gset
CREATE TEMP TABLE h1 AS SELECT * FROM durable.claim_workflow_tasks_v1('h', ARRAY['q'], ARRAY['h1']);
CREATE TEMP TABLE h2 AS SELECT * FROM durable.claim_workflow_tasks_v1('h', ARRAY['q'], ARRAY['h2']);
CREATE TEMP TABLE hr AS
SELECT * FROM durable.complete_tasks_v1(jsonb_build_array(
    jsonb_build_object('kind', 'workflow_task', 'message_id', (SELECT message_id FROM h1),
                       'lease_token', (SELECT lease_token FROM h1), 'processed_event_id', 2,
                       'commands', '[{"type": "activity", "seq": 1, "name": "charge", "args": "[]"},
                                     {"type": "complete", "result": "1"}, {"type": "complete", "result": "2"}]'::jsonb),
    jsonb_build_object('kind', 'workflow_task', 'message_id', (SELECT message_id FROM h2),
                       'lease_token', (SELECT lease_token FROM h2), 'processed_event_id', 2,
                       'commands', '[{"type": "activity", "seq": 1, "name": "charge", "args": "[]"}]'::jsonb)));
SELECT is((SELECT error_code FROM hr WHERE item = 0), 'PD004', 'commands after the closing one are refused');
SELECT is(pg_temp.events('h', 'h1'), ARRAY['workflow_started'],
          'the refused item scheduled nothing: its subtransaction rolled back');
SELECT is((SELECT lease_token FROM durable.messages WHERE id = (SELECT message_id FROM h1)), (SELECT lease_token FROM h1),
          'its task is still held (the worker may record a failure for it)');
SELECT is((SELECT outcome->>'status' FROM hr WHERE item = 1), 'ok', 'the other item in the same call is recorded');
SELECT is(pg_temp.events('h', 'h2'), ARRAY['workflow_started', 'activity_scheduled'], 'with its activity scheduled');

-- A worker role: each item is authorized as its own function authorizes it.
SELECT durable.start_workflow_v1('gr', 'mine', 'mine', 'q', '[]') IS NOT NULL AS started \gset
SELECT durable.start_workflow_v1('gr', 'theirs', 'theirs', 'q2', '[]') IS NOT NULL AS started \gset
CREATE TEMP TABLE gm AS SELECT * FROM durable.claim_workflow_tasks_v1('gr', ARRAY['q'], ARRAY['mine']);
CREATE TEMP TABLE gt AS SELECT * FROM durable.claim_workflow_tasks_v1('gr', ARRAY['q2'], ARRAY['theirs']);
GRANT SELECT ON gm, gt TO PUBLIC;
SELECT role_name AS grw FROM durable.provision_worker_role(ARRAY['q'], 'gr') \gset
SET SESSION AUTHORIZATION :'grw';
CREATE TEMP TABLE grr AS
SELECT * FROM durable.complete_tasks_v1(jsonb_build_array(
    jsonb_build_object('kind', 'workflow_task', 'message_id', (SELECT message_id FROM gt),
                       'lease_token', (SELECT lease_token FROM gt), 'processed_event_id', 1,
                       'commands', '[{"type": "complete", "result": "1"}]'::jsonb),
    jsonb_build_object('kind', 'workflow_task', 'message_id', (SELECT message_id FROM gm),
                       'lease_token', (SELECT lease_token FROM gm), 'processed_event_id', 1,
                       'commands', '[{"type": "complete", "result": "1"}]'::jsonb)));
SELECT is((SELECT array_agg(COALESCE(error_code, outcome->>'status') ORDER BY item) FROM grr),
          ARRAY['PD005', 'closed'],
          'a worker role''s item on a task queue outside its scope is refused (PD005), its own is recorded');
RESET SESSION AUTHORIZATION;
SELECT is(pg_temp.status('gr', 'theirs'), 'running', 'the run outside its scope is untouched');

-- Bounds.
SELECT throws_ok($$SELECT * FROM durable.complete_tasks_v1('{"kind": "workflow_task"}')$$, 'PD004',
                 'p_items must be a JSON array of completions', 'a batch is a JSON array');
SELECT throws_ok(format('SELECT * FROM durable.complete_tasks_v1(%L)',
                        (SELECT jsonb_agg(jsonb_build_object('kind', 'refund')) FROM generate_series(1, 51))),
                 'PD004', 'complete_tasks_v1 takes at most 50 items (got 51): send several batches',
                 'a batch holds at most 50 items (64 subtransactions would overflow every snapshot)');

SELECT * FROM finish();
ROLLBACK;
