-- timers.sql: durable timers (mirrors sql/timers.sql): a timer command
-- enqueues a timer message, fire_timers_v1 fires the due ones (and only
-- those of its task queues, at most p_limit of them), a condition's timeout
-- timer times it out, and cancel_timer withdraws an abandoned timer.
-- One transaction, rolled back; every part uses its own namespace.
\ir include/fixtures.psql
BEGIN;
SELECT plan(33);

-- ---------------------------------------------------------------------------
-- A timer command enqueues a timer message
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('ts', 'w') AS ignored \gset
SELECT pg_temp.step('ts', 'w', '[{"type": "timer", "seq": 3, "seconds": 60}]') AS ignored \gset
SELECT is((SELECT (stream, kind, payload->>'timer', (payload->>'seq')::int,
                   visible_at - created_at, (payload->>'due_at')::timestamptz = visible_at)::text
           FROM durable.messages WHERE namespace = 'ts' AND kind = 'timer' AND payload->>'timer' = 'sleep'),
          '(q,timer,sleep,3,00:01:00,t)', 'a timer is a message due in its seconds on the run''s task queue');
SELECT is(pg_temp.last_event('ts', 'w', 'timer_started'), '{"seconds": 60}'::jsonb, 'timer_started records its duration');
SELECT pg_temp.start('ts', 'neg') AS ignored \gset
SELECT throws_ok($$SELECT pg_temp.step('ts', 'neg', '[{"type": "timer", "seq": 1, "seconds": -1}]')$$,
                 'PD004', NULL, 'a negative timer duration is rejected with PD004');

-- ---------------------------------------------------------------------------
-- Timers fire after their time
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('tm', 'w') AS ignored \gset
SELECT pg_temp.step('tm', 'w', '[{"type": "timer", "seq": 1, "seconds": 60}]') AS ignored \gset
SELECT is(durable.fire_timers_v1('tm', ARRAY['q']), 0, 'a timer does not fire before it is due');
SELECT durable.advance_clock('59 seconds') IS NOT NULL AS moved \gset
SELECT is(durable.fire_timers_v1('tm', ARRAY['q']), 0, 'nor a second before');
SELECT is(durable.fire_timers_v1('tm', ARRAY['other']), 0, 'fire_timers_v1 only fires timers of its task queues');
SELECT durable.advance_clock('2 seconds') IS NOT NULL AS moved \gset
SELECT is(durable.fire_timers_v1('tm', ARRAY['q']), 1, 'after advance_clock past its due time it fires');
SELECT is((SELECT (seq, inbound, data ? 'due_at')::text FROM durable.history WHERE namespace = 'tm' AND event_type = 'timer_fired'),
          '(1,t,t)', 'timer_fired is an inbound event resolving the sleep''s seq');
SELECT is_empty($$SELECT 1 FROM durable.messages WHERE namespace = 'tm' AND kind = 'timer'$$, 'a fired timer is gone');
SELECT is(durable.fire_timers_v1('tm', ARRAY['q']), 0, 'a timer fires once');
SELECT isnt_empty($$SELECT 1 FROM durable.messages WHERE namespace = 'tm' AND kind = 'workflow'$$,
                  'the run is woken by a workflow task');
SELECT pg_temp.step('tm', 'w', '[{"type": "timer", "seq": 2, "seconds": 1}, {"type": "timer", "seq": 3, "seconds": 1}]') AS ignored \gset
SELECT durable.advance_clock('2 seconds') IS NOT NULL AS moved \gset
SELECT is(durable.fire_timers_v1('tm', ARRAY['q'], 1), 1, 'fire_timers_v1 fires at most p_limit timers');
SELECT is((SELECT jsonb_path_query_array(events, '$[*].seq') FROM durable.claim_workflow_tasks_v1('tm', ARRAY['q'], ARRAY['w'])),
          '[2, 3]'::jsonb, 'claim_workflow_tasks_v1 fires the due timers first, so the task carries them all');
SELECT pg_temp.start('tm', 'cw') AS ignored \gset
SELECT pg_temp.step('tm', 'cw', '[{"type": "condition", "seq": 1, "signal_id": "never", "timeout": 5}]') AS ignored \gset
SELECT durable.advance_clock('6 seconds') IS NOT NULL AS moved \gset
SELECT is(durable.fire_timers_v1('tm', ARRAY['q']), 1, 'a condition''s timeout timer fires');
SELECT is(pg_temp.inbound('tm', 'cw'), '{workflow_started,signal_timed_out}'::text[], 'and times the condition out');

-- cancel_timer: a timer the workflow code abandoned is withdrawn.
SELECT pg_temp.start('tc', 'w') AS ignored \gset
SELECT pg_temp.step('tc', 'w', '[{"type": "timer", "seq": 1, "seconds": 3600}, {"type": "timer", "seq": 2, "seconds": 1}]') AS ignored \gset
SELECT durable.advance_clock('2 seconds') IS NOT NULL AS moved \gset
CREATE TEMP TABLE tc1 AS SELECT * FROM durable.claim_workflow_tasks_v1('tc', ARRAY['q'], ARRAY['w']);
SELECT is((SELECT status FROM durable.complete_workflow_task_v1((SELECT message_id FROM tc1), (SELECT lease_token FROM tc1),
           (SELECT max((e->>'event_id')::int) FROM tc1, jsonb_array_elements(events) e),
           '[{"type": "cancel_timer", "seq": 1}, {"type": "cancel_timer", "seq": 2}]')), 'ok',
          'complete_workflow_task_v1 takes cancel_timer commands');
SELECT is_empty($$SELECT 1 FROM durable.messages WHERE namespace = 'tc' AND kind = 'timer'$$,
                'the cancelled timer''s message is gone: it will not wake the run');
SELECT is((SELECT array_agg(seq || ':' || inbound || ':' || (data->>'withdrawn') ORDER BY event_id) FROM durable.history
           WHERE namespace = 'tc' AND event_type = 'timer_cancelled'), '{1:false:true,2:false:false}'::text[],
          'each cancel records a non-inbound timer_cancelled; withdrawn false for the timer that had fired already');
SELECT is((SELECT last_inbound_event_id < last_event_id FROM durable.workflows WHERE namespace = 'tc'), true,
          'a cancel wakes nobody (no inbound event)');
SELECT durable.advance_clock('1 hour') IS NOT NULL AS moved \gset
SELECT is(durable.fire_timers_v1('tc', ARRAY['q']), 0, 'past its due time the cancelled timer fires nothing');
SELECT pg_temp.start('tc', 'x') AS ignored \gset
CREATE TEMP TABLE tc2 AS SELECT * FROM durable.claim_workflow_tasks_v1('tc', ARRAY['q'], ARRAY['x']);
SELECT throws_ok(format('SELECT status FROM durable.complete_workflow_task_v1(%s, %L, 1, ''[{"type": "cancel_timer", "seq": 9}]'')',
                        (SELECT message_id FROM tc2), (SELECT lease_token FROM tc2)),
                 'PD004', NULL, 'cancel_timer of a seq that is no timer of the run is rejected with PD004');

-- ---------------------------------------------------------------------------
-- Bounds
-- ---------------------------------------------------------------------------
SELECT throws_like($$SELECT durable.fire_timers_v1('bnd', ARRAY['q'], 1001)$$,
                   'fire_timers_v1 limit 1001 is out of range%', 'fire_timers_v1 fires at most 1000 timers a call');

-- ---------------------------------------------------------------------------
-- skip_to_next_timer_v1: time skipping for tests
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('sk', 'w') AS ignored \gset
SELECT is(durable.skip_to_next_timer_v1('sk'), NULL, 'a runnable workflow task keeps the clock where it is');
CREATE TEMP TABLE sk_task AS SELECT * FROM durable.claim_workflow_tasks_v1('sk', ARRAY['q'], ARRAY['w'], 1);
SELECT is(durable.skip_to_next_timer_v1('sk'), NULL, 'so does a leased (running) task');
SELECT is(durable.complete_workflow_task_v1((SELECT message_id FROM sk_task), (SELECT lease_token FROM sk_task),
          (SELECT coalesce(max((e->>'event_id')::integer), 1) FROM sk_task, jsonb_array_elements(events) e),
          '[{"type": "timer", "seq": 1, "seconds": 2592000}]')::text IS NOT NULL, true, 'the run sleeps 30 days');
SELECT (SELECT visible_at FROM durable.messages WHERE namespace = 'sk' AND kind = 'timer') AS sk_due \gset
SELECT ok(durable.skip_to_next_timer_v1('sk') >= :'sk_due'::timestamptz,
          'with only a timer pending the clock jumps to its due time and the new now() is returned');
SELECT is(durable.fire_timers_v1('sk', ARRAY['q']), 1, 'after the jump the timer is due');
SELECT is(durable.skip_to_next_timer_v1('sk'), NULL, 'the woken run''s task is runnable: no second jump');
SELECT durable.enqueue_v1('sk2', 's', 'm', '{}', 0::smallint, '1 hour', NULL) IS NOT NULL AS queued \gset
SELECT ok(durable.skip_to_next_timer_v1('sk2') IS NULL
          AND 'durable.skip_to_next_timer_v1(text)'::regprocedure NOT IN (SELECT durable.worker_functions()),
          'a next due message that is no timer is not skipped to, and no worker role may skip time');

SELECT pg_temp.start('ad', 'w') AS ignored \gset
SELECT is(durable.advance_clock_when_idle_v1('ad', '1 day'), NULL,
          'advance_clock_when_idle_v1 leaves the clock alone while a task is runnable');
SELECT pg_temp.step('ad', 'w', '[{"type": "timer", "seq": 1, "seconds": 86400}]') AS ignored \gset
SELECT (SELECT visible_at FROM durable.messages WHERE namespace = 'ad' AND kind = 'timer') AS ad_due \gset
SELECT ok(durable.advance_clock_when_idle_v1('ad', '1 day') >= :'ad_due'::timestamptz,
          'once idle it moves the clock by the interval');
SELECT is(durable.fire_timers_v1('ad', ARRAY['q']), 1, 'and the timer due by then fires');
SELECT throws_ok($$SELECT durable.advance_clock_when_idle_v1('ad2', '-1 day')$$, 'PD004', NULL,
                 'the clock never moves back');

SELECT * FROM finish();
ROLLBACK;
