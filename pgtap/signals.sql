-- signals.sql: the signal mailbox (mirrors sql/signals.sql): buffering
-- (FIFO, expiry), delivery to waiting conditions (oldest first, exactly
-- once), the race of a condition's timeout with its signal, in one
-- session and between two sessions (dblink), and signals sent to one
-- workflow (signal_workflow_v1): only its conditions take them.
--
-- The dblink part needs committed fixtures, so it runs first, outside any
-- transaction (this database is a throwaway clone); the rest runs in one
-- transaction that is rolled back. Every part uses its own namespace.
\ir include/fixtures.psql
SET client_min_messages = warning;  -- dblink_get_result(.., false) reports remote errors as NOTICEs
SELECT plan(144);

DO $$ BEGIN
    PERFORM dblink_connect('b', pg_temp.self_dsn());
    PERFORM dblink_connect('c', pg_temp.self_dsn());
END $$;
SELECT pid AS b_pid FROM dblink('b', 'SELECT pg_backend_pid()') AS t(pid int) \gset
SELECT pid AS c_pid FROM dblink('c', 'SELECT pg_backend_pid()') AS t(pid int) \gset

-- ---------------------------------------------------------------------------
-- A signal that wins the lock before the timeout fires: the timeout loses.
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('r1', 'w') AS ignored \gset
SELECT pg_temp.step('r1', 'w', '[{"type": "condition", "seq": 1, "signal_id": "go", "timeout": 5}]') AS ignored \gset
SELECT durable.advance_clock('6 seconds') IS NOT NULL AS moved \gset
DO $$ BEGIN PERFORM dblink_exec('b', 'BEGIN'); END $$;
SELECT is((SELECT r FROM dblink('b', $$SELECT durable.send_signal_v1('r1', 'go', '"sig"')$$) AS t(r text)),
          'delivered', 'session B delivers the signal to the waiting condition and keeps its transaction open');
SELECT is(dblink_send_query('c', $$SELECT durable.fire_timers_v1('r1', ARRAY['q'])$$), 1,
          'session C fires the due condition timeout meanwhile');
SELECT ok(pg_temp.wait_until_blocked(:c_pid), 'the timeout waits for the signal''s transaction');
DO $$ BEGIN PERFORM dblink_exec('b', 'COMMIT'); END $$;
SELECT is((SELECT n FROM dblink_get_result('c') AS t(n int)), 1, 'the timer is consumed once B commits');
SELECT is_empty($$SELECT * FROM dblink_get_result('c') AS t(n int)$$, 'session C is done');
SELECT is(pg_temp.inbound('r1', 'w'), '{workflow_started,signal_received}'::text[],
          'the signal won: the condition resolved once, with no signal_timed_out');

-- ---------------------------------------------------------------------------
-- A timeout that wins the lock before the signal: the signal is buffered.
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('r2', 'w') AS ignored \gset
SELECT pg_temp.step('r2', 'w', '[{"type": "condition", "seq": 1, "signal_id": "go", "timeout": 5}]') AS ignored \gset
SELECT durable.advance_clock('6 seconds') IS NOT NULL AS moved \gset
DO $$ BEGIN PERFORM dblink_exec('b', 'BEGIN'); END $$;
SELECT is((SELECT n FROM dblink('b', $$SELECT durable.fire_timers_v1('r2', ARRAY['q'])$$) AS t(n int)), 1,
          'session B fires the condition timeout and keeps its transaction open');
SELECT is(dblink_send_query('c', $$SELECT durable.send_signal_v1('r2', 'go', '"late"')$$), 1,
          'session C sends the signal meanwhile');
SELECT ok(pg_temp.wait_until_blocked(:c_pid), 'the signal waits for the timeout''s transaction');
DO $$ BEGIN PERFORM dblink_exec('b', 'COMMIT'); END $$;
SELECT is((SELECT r FROM dblink_get_result('c') AS t(r text)), 'buffered',
          'the timeout won: the late signal is buffered, not delivered');
SELECT is_empty($$SELECT * FROM dblink_get_result('c') AS t(r text)$$, 'session C is done');
SELECT is(pg_temp.inbound('r2', 'w'), '{workflow_started,signal_timed_out}'::text[],
          'the condition resolved once, as timed out');
SELECT is((SELECT array_agg(data) FROM durable.signals WHERE namespace = 'r2'), '{"\"late\""}'::text[],
          'the losing signal stays in the mailbox for the next condition');

-- ---------------------------------------------------------------------------
-- A signal sent while its waiter's run is being closed (a worker completing
-- it as cancelled, or an interrupt): no deadlock, the signal is buffered.
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('r3', 'w') AS ignored \gset
SELECT pg_temp.step('r3', 'w', '[{"type": "condition", "seq": 1, "signal_id": "go"}]') AS ignored \gset
DO $do$ BEGIN
    PERFORM dblink_exec('b', 'BEGIN');
    -- What complete_workflow_task_v1 and interrupt_workflow_v1 do first: lock the run.
    PERFORM * FROM dblink('b', $$SELECT 1 FROM durable.workflows WHERE namespace = 'r3' FOR UPDATE$$) AS t(x int);
END $do$;
SELECT is(dblink_send_query('c', $$SELECT durable.send_signal_v1('r3', 'go', '"x"')$$), 1,
          'session C sends the signal the closing run waits for');
SELECT ok(pg_temp.wait_until_blocked(:c_pid), 'the signal waits for the run''s lock');
SELECT is(dblink_send_query('b', $$SELECT durable.interrupt_workflow_v1('r3', 'w')$$), 1,
          'session B closes the run (its waits go with it)');
CREATE TEMP TABLE b_res AS SELECT * FROM dblink_get_result('b', false) AS t(ok boolean);
SELECT is(dblink_error_message('b'), 'OK', 'closing the run succeeds');
SELECT is_empty($$SELECT * FROM dblink_get_result('b') AS t(ok boolean)$$, 'session B is done');
DO $$ BEGIN PERFORM dblink_exec('b', 'COMMIT'); END $$;
CREATE TEMP TABLE c_res AS SELECT * FROM dblink_get_result('c', false) AS t(r text);
SELECT is(dblink_error_message('c'), 'OK', 'the concurrent signal does not fail (no deadlock)');
SELECT is((SELECT r FROM c_res), 'buffered', 'the signal is buffered: its waiter is gone');
SELECT is_empty($$SELECT * FROM dblink_get_result('c') AS t(r text)$$, 'session C is done');
SELECT is(pg_temp.status('r3', 'w'), 'interrupted', 'the run is interrupted');
SELECT is(pg_temp.inbound('r3', 'w'), '{workflow_started}'::text[],
          'the closed run never received the signal');

-- The same with the condition's timeout firing while the run is being closed.
SELECT pg_temp.start('r4', 'w') AS ignored \gset
SELECT pg_temp.step('r4', 'w', '[{"type": "condition", "seq": 1, "signal_id": "go", "timeout": 5}]') AS ignored \gset
SELECT durable.advance_clock('6 seconds') IS NOT NULL AS moved \gset
DO $do$ BEGIN
    PERFORM dblink_exec('b', 'BEGIN');
    PERFORM * FROM dblink('b', $$SELECT 1 FROM durable.workflows WHERE namespace = 'r4' FOR UPDATE$$) AS t(x int);
END $do$;
SELECT is(dblink_send_query('c', $$SELECT durable.fire_timers_v1('r4', ARRAY['q'])$$), 1,
          'session C fires the timeout of a condition whose run is being closed');
SELECT ok(pg_temp.wait_until_blocked(:c_pid), 'the timeout waits for the run''s lock');
SELECT is(dblink_send_query('b', $$SELECT durable.interrupt_workflow_v1('r4', 'w')$$), 1,
          'session B closes the run');
CREATE TEMP TABLE b_res4 AS SELECT * FROM dblink_get_result('b', false) AS t(ok boolean);
SELECT is(dblink_error_message('b'), 'OK', 'closing the run succeeds');
SELECT is_empty($$SELECT * FROM dblink_get_result('b') AS t(ok boolean)$$, 'session B is done');
DO $$ BEGIN PERFORM dblink_exec('b', 'COMMIT'); END $$;
CREATE TEMP TABLE c_res4 AS SELECT * FROM dblink_get_result('c', false) AS t(n int);
SELECT is(dblink_error_message('c'), 'OK', 'the concurrent timeout does not fail (no deadlock)');
SELECT is_empty($$SELECT * FROM dblink_get_result('c') AS t(n int)$$, 'session C is done');
SELECT is(pg_temp.inbound('r4', 'w'), '{workflow_started}'::text[],
          'the closed run records no timeout');
-- ---------------------------------------------------------------------------
-- A targeted signal sent while its workflow continues as new: it waits for
-- the run's lock, then reaches the new run (not "not found"); sent while the
-- workflow closes for good, it is refused with PD003 and nothing is buffered.
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('r5', 'w') AS ignored \gset
SELECT pg_temp.step('r5', 'w', '[{"type": "condition", "seq": 1, "signal_id": "other"}]') AS ignored \gset
DO $do$ BEGIN
    PERFORM dblink_exec('b', 'BEGIN');
    PERFORM * FROM dblink('b', $$SELECT 1 FROM durable.workflows WHERE namespace = 'r5' FOR UPDATE$$) AS t(x int);
END $do$;
SELECT is(dblink_send_query('c', $$SELECT durable.signal_workflow_v1('r5', 'w', 'go', '"t"')$$), 1,
          'session C signals the workflow while session B holds its run');
SELECT ok(pg_temp.wait_until_blocked(:c_pid), 'the targeted signal waits for the run''s lock');
DO $do$ BEGIN
    PERFORM * FROM dblink('b', $$SELECT 1 FROM (SELECT durable._close_run(w, '{"type": "continue_as_new", "args": "[]"}')
                                  FROM durable.workflows w WHERE namespace = 'r5') x$$) AS t(x int);
    PERFORM dblink_exec('b', 'COMMIT');
END $do$;
CREATE TEMP TABLE c_res5 AS SELECT * FROM dblink_get_result('c', false) AS t(r text);
SELECT is(dblink_error_message('c'), 'OK', 'the signal is not refused: the workflow runs on in a new run');
SELECT is((SELECT r FROM c_res5), 'buffered', 'it is buffered (the new run does not wait yet)');
SELECT is_empty($$SELECT * FROM dblink_get_result('c') AS t(r text)$$, 'session C is done');
SELECT results_eq($$SELECT target_workflow_id, data FROM durable.signals WHERE namespace = 'r5'$$,
                  $$VALUES ('w', '"t"')$$, 'buffered for that workflow');

SELECT pg_temp.start('r6', 'w') AS ignored \gset
DO $do$ BEGIN
    PERFORM dblink_exec('b', 'BEGIN');
    PERFORM * FROM dblink('b', $$SELECT 1 FROM durable.workflows WHERE namespace = 'r6' FOR UPDATE$$) AS t(x int);
END $do$;
SELECT is(dblink_send_query('c', $$SELECT durable.signal_workflow_v1('r6', 'w', 'go', '"t"')$$), 1,
          'session C signals a workflow that session B is about to interrupt');
SELECT ok(pg_temp.wait_until_blocked(:c_pid), 'the targeted signal waits for the run''s lock');
DO $do$ BEGIN
    PERFORM * FROM dblink('b', $$SELECT durable.interrupt_workflow_v1('r6', 'w')$$) AS t(x boolean);
    PERFORM dblink_exec('b', 'COMMIT');
END $do$;
CREATE TEMP TABLE c_res6 AS SELECT * FROM dblink_get_result('c', false) AS t(r text);
SELECT is(dblink_error_message('c') ~ 'not running', true,
          'the signal to the workflow closed meanwhile is refused (not running)');
SELECT is_empty($$SELECT * FROM dblink_get_result('c') AS t(r text)$$, 'session C is done');
SELECT is_empty($$SELECT 1 FROM durable.signals WHERE namespace = 'r6'$$, 'and nothing is buffered');
DO $$ BEGIN PERFORM dblink_disconnect('b'); PERFORM dblink_disconnect('c'); END $$;

BEGIN;
-- ---------------------------------------------------------------------------
-- Buffering: FIFO, expiry, validation
-- ---------------------------------------------------------------------------
SELECT is(durable.send_signal_v1('s', 'a', '"1"'), 'buffered', 'a signal nobody waits for is buffered');
SELECT is(durable.send_signal_v1('s', 'a', '"2"'), 'buffered', 'a second one is buffered too');
SELECT is(durable.send_signal_v1('s', 'a', '"3"', interval '1 hour'), 'buffered', 'and a third, with a 1 hour expiry');
SELECT is((SELECT array_agg(data ORDER BY id) FROM durable.signals WHERE namespace = 's' AND signal_id = 'a'),
          ARRAY['"1"', '"2"', '"3"'], 'buffered signals are kept in sending order');
SELECT is((SELECT array_agg(expires_at - created_at ORDER BY id) FROM durable.signals WHERE namespace = 's'),
          ARRAY[interval '7 days', interval '7 days', interval '1 hour'],
          'a buffered signal expires after 7 days by default, or after p_ttl');
SELECT throws_ok($$SELECT durable.send_signal_v1('s', '', '"x"')$$, 'PD004', NULL,
                 'an empty signal id is rejected with PD004');
SELECT throws_ok($$SELECT durable.send_signal_v1('s', repeat('a', 1001), '"x"')$$, 'PD004', NULL,
                 'a signal id over 1000 characters is rejected with PD004');
SELECT throws_ok($$SELECT durable.send_signal_v1('s', 'a', NULL)$$, 'PD004', NULL,
                 'NULL signal data is rejected with PD004');
SELECT throws_ok($$SELECT durable.send_signal_v1('s', 'a', '"x"', interval '0')$$, 'PD004', NULL,
                 'a zero expiry is rejected with PD004');

-- A condition consumes the oldest buffered signal at once.
SELECT pg_temp.start('s', 'w1') AS ignored \gset
SELECT is(pg_temp.step('s', 'w1', '[{"type": "condition", "seq": 1, "signal_id": "a", "timeout": 30}]'), 'requeued',
          'a condition that finds a buffered signal resolves at once (its task is handed out again)');
SELECT is(pg_temp.inbound('s', 'w1'), '{workflow_started,signal_received}'::text[],
          'the condition received the buffered signal');
SELECT is(pg_temp.last_event('s', 'w1', 'signal_received'), '{"signal_id": "a", "data": "\"1\"", "delivery": "mailbox"}'::jsonb,
          'it got the oldest buffered signal, with its data');
SELECT is((SELECT seq FROM durable.history WHERE namespace = 's' AND workflow_id = 'w1' AND event_type = 'signal_received'),
          1, 'the signal resolves the condition''s durable call (its seq)');
SELECT is((SELECT array_agg(data ORDER BY id) FROM durable.signals WHERE namespace = 's' AND signal_id = 'a'),
          ARRAY['"2"', '"3"'], 'the consumed signal left the mailbox; the others keep their order');
SELECT is_empty($$SELECT 1 FROM durable.signal_waits WHERE namespace = 's' AND workflow_id = 'w1'$$,
                'a condition satisfied at once leaves no wait behind');
SELECT is_empty($$SELECT 1 FROM durable.messages WHERE namespace = 's' AND workflow_id = 'w1' AND kind = 'timer'$$,
                'nor a timeout timer');

-- Expiry: an expired buffered signal is not consumed.
SELECT durable.send_signal_v1('s', 'exp', '"old"') AS ignored \gset
SELECT durable.advance_clock('7 days 1 second') IS NOT NULL AS moved \gset
SELECT pg_temp.start('s', 'w2') AS ignored \gset
SELECT is(pg_temp.step('s', 'w2', '[{"type": "condition", "seq": 1, "signal_id": "exp"}]'), 'ok',
          'a condition finds no live signal once the buffered one expired');
SELECT is(pg_temp.inbound('s', 'w2'), '{workflow_started}'::text[], 'the expired signal was not delivered');
SELECT isnt_empty($$SELECT 1 FROM durable.signal_waits WHERE namespace = 's' AND workflow_id = 'w2' AND signal_id = 'exp'$$,
                  'the condition waits instead');
SELECT is(durable.send_signal_v1('s', 'exp', '"new"'), 'delivered', 'a fresh signal goes to the waiting condition');
SELECT is(pg_temp.last_event('s', 'w2', 'signal_received')->>'data', '"new"', 'with the fresh signal''s data');

-- ---------------------------------------------------------------------------
-- Delivery to waiting conditions
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('s', 'w3') AS ignored \gset
SELECT is(pg_temp.step('s', 'w3', '[{"type": "condition", "seq": 4, "signal_id": "b"}]'), 'ok',
          'a condition with no buffered signal completes its task and waits');
SELECT is((SELECT (signal_id, workflow_id, run_id, seq)::text FROM durable.signal_waits WHERE namespace = 's' AND workflow_id = 'w3'),
          '(b,w3,1,4)', 'the wait names the signal, the run and the durable call');
SELECT is(pg_temp.events('s', 'w3'), '{workflow_started,signal_wait_started}'::text[],
          'history records that the condition started waiting');
SELECT is(durable.send_signal_v1('s', 'b', '{"ok": true}'), 'delivered', 'a signal for a waiting condition is delivered');
SELECT is(pg_temp.last_event('s', 'w3', 'signal_received'), '{"signal_id": "b", "data": "{\"ok\": true}", "delivery": "mailbox"}'::jsonb,
          'the run''s history gets signal_received with the data');
SELECT is_empty($$SELECT 1 FROM durable.signal_waits WHERE namespace = 's' AND workflow_id = 'w3'$$,
                'the wait is consumed');
SELECT is_empty($$SELECT 1 FROM durable.signals WHERE namespace = 's' AND signal_id = 'b'$$,
                'a delivered signal is not buffered as well');
SELECT isnt_empty($$SELECT 1 FROM durable.messages WHERE namespace = 's' AND workflow_id = 'w3' AND kind = 'workflow'$$,
                  'the run gets a workflow task to see the signal');
SELECT is(durable.send_signal_v1('s', 'b', '"again"'), 'buffered', 'the next signal of that id is buffered');

-- Several waiters: oldest first, each signal consumed exactly once.
SELECT pg_temp.start('s', 'w4') AS ignored \gset
SELECT pg_temp.start('s', 'w5') AS ignored \gset
SELECT pg_temp.start('s', 'w6') AS ignored \gset
SELECT pg_temp.step('s', 'w4', '[{"type": "condition", "seq": 1, "signal_id": "c"}]') AS ignored \gset
SELECT pg_temp.step('s', 'w5', '[{"type": "condition", "seq": 1, "signal_id": "c"}]') AS ignored \gset
SELECT pg_temp.step('s', 'w6', '[{"type": "condition", "seq": 1, "signal_id": "c"}]') AS ignored \gset
SELECT is(ARRAY[durable.send_signal_v1('s', 'c', '"x"'), durable.send_signal_v1('s', 'c', '"y"'),
                durable.send_signal_v1('s', 'c', '"z"'), durable.send_signal_v1('s', 'c', '"extra"')],
          '{delivered,delivered,delivered,buffered}'::text[],
          'three waiters take three signals; the fourth is buffered');
SELECT is(ARRAY[pg_temp.last_event('s', 'w4', 'signal_received')->>'data',
                pg_temp.last_event('s', 'w5', 'signal_received')->>'data',
                pg_temp.last_event('s', 'w6', 'signal_received')->>'data'],
          ARRAY['"x"', '"y"', '"z"'], 'the oldest waiter gets the first signal, and so on');
SELECT is((SELECT count(*)::int FROM durable.history
           WHERE namespace = 's' AND workflow_id IN ('w4', 'w5', 'w6') AND event_type = 'signal_received'), 3,
          'each waiter received exactly one signal');

-- A waiter whose run no longer runs is skipped.
SELECT pg_temp.start('s', 'w7') AS ignored \gset
SELECT pg_temp.start('s', 'w8') AS ignored \gset
SELECT pg_temp.step('s', 'w7', '[{"type": "condition", "seq": 1, "signal_id": "d"}]') AS ignored \gset
SELECT pg_temp.step('s', 'w8', '[{"type": "condition", "seq": 1, "signal_id": "d"}]') AS ignored \gset
UPDATE durable.workflows SET status = 'completed' WHERE namespace = 's' AND workflow_id = 'w7';
SELECT is(durable.send_signal_v1('s', 'd', '"d1"'), 'delivered', 'a signal skips a waiter whose run has ended');
SELECT is(pg_temp.inbound('s', 'w8'), '{workflow_started,signal_received}'::text[], 'the next waiter gets it');
SELECT is_empty($$SELECT 1 FROM durable.signal_waits WHERE namespace = 's' AND signal_id = 'd'$$,
                'the dead waiter''s wait is removed on the way');

-- ---------------------------------------------------------------------------
-- Condition timeout vs signal, in one session
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('t1', 'w') AS ignored \gset
SELECT pg_temp.step('t1', 'w', '[{"type": "condition", "seq": 2, "signal_id": "e", "timeout": 10}]') AS ignored \gset
SELECT is((SELECT payload->>'timer' FROM durable.messages WHERE namespace = 't1' AND kind = 'timer'), 'condition_timeout',
          'a condition with a timeout that has to wait starts a timeout timer');
SELECT is(durable.send_signal_v1('t1', 'e', '"won"'), 'delivered', 'the signal arrives before the timeout');
SELECT is(durable._condition_timeout('t1', 'e', 'w', 1, 2), false,
          '_condition_timeout returns false once the signal won');
SELECT durable.advance_clock('11 seconds') IS NOT NULL AS moved \gset
SELECT is(durable.fire_timers_v1('t1', ARRAY['q']), 1, 'the timeout timer still fires (and is consumed)');
SELECT is(pg_temp.inbound('t1', 'w'), '{workflow_started,signal_received}'::text[],
          'the condition is resolved once, by the signal: no signal_timed_out');

SELECT pg_temp.start('t2', 'w') AS ignored \gset
SELECT pg_temp.step('t2', 'w', '[{"type": "condition", "seq": 2, "signal_id": "f", "timeout": 10}]') AS ignored \gset
SELECT durable.advance_clock('11 seconds') IS NOT NULL AS moved \gset
SELECT is(durable.fire_timers_v1('t2', ARRAY['q']), 1, 'the timeout fires first');
SELECT is(pg_temp.last_event('t2', 'w', 'signal_timed_out'), '{"signal_id": "f"}'::jsonb,
          'the condition times out: history gets signal_timed_out');
SELECT is((SELECT seq FROM durable.history WHERE namespace = 't2' AND event_type = 'signal_timed_out'), 2,
          'the timeout resolves the condition''s durable call');
SELECT is_empty($$SELECT 1 FROM durable.signal_waits WHERE namespace = 't2'$$, 'the timed-out wait is gone');
SELECT is(durable.send_signal_v1('t2', 'f', '"late"'), 'buffered', 'a signal after the timeout won is buffered');
SELECT is(pg_temp.inbound('t2', 'w'), '{workflow_started,signal_timed_out}'::text[],
          'and the timed-out condition does not receive it');
SELECT is(durable._condition_timeout('t2', 'f', 'w', 1, 2), false, 'a second timeout of the same condition does nothing');

-- ---------------------------------------------------------------------------
-- Scoped signals (a worker role's): they reach only runs on allowed queues
-- ---------------------------------------------------------------------------
SELECT durable.start_workflow_v1('sc', 'mine', 'mine', 'q', '[]') IS NOT NULL AS ok \gset
SELECT durable.start_workflow_v1('sc', 'theirs', 'theirs', 'other', '[]') IS NOT NULL AS ok \gset
SELECT pg_temp.step('sc', 'theirs', '[{"type": "condition", "seq": 1, "signal_id": "x"}]', 'other') AS ignored \gset
SELECT is(durable._oldest_wait('sc', 'x', ARRAY['q']), NULL::durable.signal_waits,
          '_oldest_wait finds no wait among the allowed queues when only another queue''s run waits');
SELECT is((durable._oldest_wait('sc', 'x', NULL)).workflow_id, 'theirs', '...and finds it when unrestricted');
SELECT is(durable._send_signal('sc', 'x', '"forged"', '7 days', false, ARRAY['q']), 'buffered',
          'a signal limited to queue q does not reach a run of queue other: it is buffered');
SELECT is(pg_temp.inbound('sc', 'theirs'), '{workflow_started}'::text[], 'the other queue''s run received nothing');
SELECT is((SELECT allowed_queues FROM durable.signals WHERE namespace = 'sc'), ARRAY['q'],
          'the buffered signal keeps the queues it may reach');
SELECT pg_temp.step('sc', 'mine', '[{"type": "condition", "seq": 1, "signal_id": "x"}]') AS ignored \gset
SELECT is(pg_temp.inbound('sc', 'mine'), '{workflow_started,signal_received}'::text[],
          'a condition of a run on an allowed queue takes it');
SELECT is(durable.send_signal_v1('sc', 'x', '"client"'), 'delivered',
          'a client''s signal (unrestricted) reaches the other queue''s waiting run');
SELECT is(pg_temp.last_event('sc', 'mine', 'signal_received'), '{"signal_id": "x", "data": "\"forged\"", "delivery": "mailbox", "allowed_queues": ["q"]}'::jsonb,
          'the delivery records the queues the scoped signal may reach');
SELECT pg_temp.step('sc', 'mine', '[{"type": "cancel_wait", "seq": 1, "signal_id": "elsewhere"}]') AS ignored \gset
SELECT results_eq($$SELECT signal_id, data, allowed_queues FROM durable.signals WHERE namespace = 'sc'$$,
                  $$VALUES ('x', '"forged"', ARRAY['q'])$$,
                  'an abandoned condition gives its signal back to the mailbox it came from (not the id the command '
                  'names), with the reach it had');

-- Back to the head of the mailbox: per signal id
SELECT durable.send_signal_v1('hd', 'a', '"a1"') IS NOT NULL AS ok \gset
SELECT durable.send_signal_v1('hd', 'b', '"b1"') IS NOT NULL AS ok \gset
SELECT durable._send_signal('hd', 'a', '"a0"', '7 days', true) IS NOT NULL AS ok \gset
SELECT durable._send_signal('hd', 'b', '"b0"', '7 days', true) IS NOT NULL AS ok \gset
SELECT durable._send_signal('hd', 'a', '"a-1"', '7 days', true) IS NOT NULL AS ok \gset
SELECT is((SELECT array_agg(data ORDER BY position, id) FROM durable.signals WHERE namespace = 'hd' AND signal_id = 'a'),
          ARRAY['"a-1"', '"a0"', '"a1"'], 'signals put back go to the head of their own mailbox, latest first');
SELECT is((SELECT array_agg(data ORDER BY position, id) FROM durable.signals WHERE namespace = 'hd' AND signal_id = 'b'),
          ARRAY['"b0"', '"b1"'], '...whatever happens in another mailbox (no shared id arithmetic)');

-- ---------------------------------------------------------------------------
-- Targeted signals (signal_workflow_v1, handle.signal): one workflow only
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('tg', 'wa') AS ignored \gset
SELECT pg_temp.start('tg', 'wb') AS ignored \gset
SELECT pg_temp.step('tg', 'wa', '[{"type": "condition", "seq": 1, "signal_id": "approve-same"}]') AS ignored \gset
SELECT pg_temp.step('tg', 'wb', '[{"type": "condition", "seq": 1, "signal_id": "approve-same"}]') AS ignored \gset
SELECT is(durable.signal_workflow_v1('tg', 'wb', 'approve-same', '"for b"'), 'delivered',
          'a targeted signal is delivered to its workflow''s waiting condition');
SELECT is(pg_temp.last_event('tg', 'wb', 'signal_received'),
          '{"signal_id": "approve-same", "data": "\"for b\"", "delivery": "workflow"}'::jsonb,
          'its signal_received says delivery workflow');
SELECT is(pg_temp.inbound('tg', 'wa'), '{workflow_started}'::text[],
          'the older waiter of another workflow on the same id does not get it');
SELECT isnt_empty($$SELECT 1 FROM durable.signal_waits WHERE namespace = 'tg' AND workflow_id = 'wa'$$,
                  'and still waits');
SELECT is(durable.send_signal_v1('tg', 'approve-same', '"anyone"'), 'delivered', 'a mailbox signal still reaches it');
SELECT is(pg_temp.last_event('tg', 'wa', 'signal_received')->>'delivery', 'mailbox',
          'with delivery mailbox');

-- Buffered for its workflow only; one FIFO with the mailbox
SELECT pg_temp.start('tg', 'wc') AS ignored \gset
SELECT pg_temp.start('tg', 'wd') AS ignored \gset
SELECT is(durable.signal_workflow_v1('tg', 'wc', 'go', '"t1"'), 'buffered',
          'a targeted signal for a running workflow that does not wait is buffered');
SELECT is(durable.send_signal_v1('tg', 'go', '"m2"'), 'buffered', 'a mailbox signal of the same id is buffered');
SELECT is(durable.signal_workflow_v1('tg', 'wc', 'go', '"t3"', interval '1 hour'), 'buffered',
          'and a second targeted one');
SELECT results_eq($$SELECT data, target_workflow_id, expires_at - created_at FROM durable.signals
                    WHERE namespace = 'tg' AND signal_id = 'go' ORDER BY position, id$$,
                  $$VALUES ('"t1"', 'wc', interval '7 days'), ('"m2"', NULL, interval '7 days'),
                           ('"t3"', 'wc', interval '1 hour')$$,
                  'buffered targeted signals name their workflow (the mailbox''s do not) and keep their expiry');
SELECT pg_temp.step('tg', 'wd', '[{"type": "condition", "seq": 1, "signal_id": "go"}, {"type": "condition", "seq": 2, "signal_id": "go"}]') AS ignored \gset
SELECT is((SELECT array_agg(h.data->>'data' ORDER BY h.event_id) FROM durable.workflow_history_v1('tg', 'wd') h
           WHERE h.event_type = 'signal_received'), ARRAY['"m2"'],
          'another workflow''s condition takes only the mailbox signal, never one buffered for wc');
SELECT pg_temp.step('tg', 'wc', '[{"type": "condition", "seq": 1, "signal_id": "go"}, {"type": "condition", "seq": 2, "signal_id": "go"}]') AS ignored \gset
SELECT is((SELECT array_agg((h.data->>'data') || '/' || (h.data->>'delivery') ORDER BY h.event_id)
           FROM durable.workflow_history_v1('tg', 'wc') h WHERE h.event_type = 'signal_received'),
          ARRAY['"t1"/workflow', '"t3"/workflow'],
          'the workflow''s own conditions take its buffered signals in sending order');
SELECT is_empty($$SELECT 1 FROM durable.signals WHERE namespace = 'tg' AND signal_id = 'go'$$,
                'each buffered signal was taken exactly once');
SELECT pg_temp.start('tg', 'wfifo') AS ignored \gset
SELECT durable.signal_workflow_v1('tg', 'wfifo', 'f', '"t1"') IS NOT NULL AS ok \gset
SELECT durable.send_signal_v1('tg', 'f', '"m2"') IS NOT NULL AS ok \gset
SELECT durable.signal_workflow_v1('tg', 'wfifo', 'f', '"t3"') IS NOT NULL AS ok \gset
SELECT pg_temp.step('tg', 'wfifo', '[{"type": "condition", "seq": 1, "signal_id": "f"}, {"type": "condition", "seq": 2, "signal_id": "f"}, {"type": "condition", "seq": 3, "signal_id": "f"}]') AS ignored \gset
SELECT is((SELECT array_agg(h.data->>'data' ORDER BY h.seq) FROM durable.workflow_history_v1('tg', 'wfifo') h
           WHERE h.event_type = 'signal_received'), ARRAY['"t1"', '"m2"', '"t3"'],
          'targeted and mailbox signals of one id share one FIFO');

-- Unknown or closed: PD003, nothing buffered
SELECT throws_ok($$SELECT durable.signal_workflow_v1('tg', 'nobody', 'go', '"x"')$$, 'PD003', NULL,
                 'a targeted signal to an unknown workflow is refused with PD003');
SELECT pg_temp.start('tg', 'we') AS ignored \gset
SELECT durable.interrupt_workflow_v1('tg', 'we') AS ignored \gset
SELECT throws_ok($$SELECT durable.signal_workflow_v1('tg', 'we', 'go', '"x"')$$, 'PD003',
                 'workflow ''we'' is not running in namespace ''tg'' (unknown or closed): signal ''go'' was not sent',
                 'a targeted signal to a closed workflow is refused with PD003 naming it');
SELECT is_empty($$SELECT 1 FROM durable.signals WHERE namespace = 'tg' AND target_workflow_id IN ('nobody', 'we')$$,
                'a refused targeted signal buffers nothing');
SELECT throws_ok($$SELECT durable.signal_workflow_v1('tg', 'wc', '', '"x"')$$, 'PD004', NULL,
                 'an empty signal id is rejected with PD004');
SELECT throws_ok($$SELECT durable.signal_workflow_v1('tg', 'wc', 'go', NULL)$$, 'PD004', NULL,
                 'NULL signal data is rejected with PD004');

-- Closing for good drops its buffered signals; continue-as-new keeps them
SELECT pg_temp.start('tg', 'wk') AS ignored \gset
SELECT durable.signal_workflow_v1('tg', 'wk', 'k', '"for the next run"') IS NOT NULL AS ok \gset
SELECT pg_temp.step('tg', 'wk', '[{"type": "continue_as_new", "args": "[]"}]') AS ignored \gset
SELECT pg_temp.step('tg', 'wk', '[{"type": "condition", "seq": 1, "signal_id": "k"}]') AS ignored \gset
SELECT is(pg_temp.last_event('tg', 'wk', 'signal_received')->>'data', '"for the next run"',
          'a signal buffered for a workflow that continues as new reaches its next run');
SELECT pg_temp.start('tg', 'wz') AS ignored \gset
SELECT durable.signal_workflow_v1('tg', 'wz', 'z', '"stale"') IS NOT NULL AS ok \gset
SELECT durable.send_signal_v1('tg', 'z', '"mailbox"') IS NOT NULL AS ok \gset
SELECT pg_temp.step('tg', 'wz', '[{"type": "complete", "result": "null"}]') AS ignored \gset
SELECT results_eq($$SELECT data, target_workflow_id FROM durable.signals WHERE namespace = 'tg' AND signal_id = 'z'$$,
                  $$VALUES ('"mailbox"', NULL::text)$$,
                  'a workflow that completes drops the signals buffered for it (not the mailbox''s)');
SELECT pg_temp.start('tg', 'wz') AS ignored \gset
SELECT pg_temp.step('tg', 'wz', '[{"type": "condition", "seq": 1, "signal_id": "z"}, {"type": "condition", "seq": 2, "signal_id": "z"}]') AS ignored \gset
SELECT is((SELECT array_agg(h.data->>'data') FROM durable.workflow_history_v1('tg', 'wz') h
           WHERE h.event_type = 'signal_received'), ARRAY['"mailbox"'],
          'a later workflow reusing the id never gets a signal sent to the closed one');

-- Give-back of an abandoned condition: a targeted signal stays targeted
SELECT pg_temp.start('tg', 'wg') AS ignored \gset
SELECT pg_temp.start('tg', 'wh') AS ignored \gset
SELECT durable.send_signal_v1('tg', 'gb', '"m-old"') IS NOT NULL AS ok \gset
SELECT pg_temp.step('tg', 'wh', '[{"type": "condition", "seq": 1, "signal_id": "gb"}, {"type": "condition", "seq": 2, "signal_id": "gb"}]') AS ignored \gset
SELECT pg_temp.step('tg', 'wg', '[{"type": "condition", "seq": 1, "signal_id": "gb"}, {"type": "condition", "seq": 3, "signal_id": "poke"}]') AS ignored \gset
SELECT is(durable.signal_workflow_v1('tg', 'wg', 'gb', '"t"'), 'delivered', 'wg''s condition takes a targeted signal');
SELECT pg_temp.step('tg', 'wg', '[{"type": "cancel_wait", "seq": 1, "signal_id": "gb"}]') AS ignored \gset
SELECT is((SELECT count(*)::int FROM durable.history WHERE namespace = 'tg' AND workflow_id = 'wh'
           AND event_type = 'signal_received'), 1,
          'given back, it does not reach the other workflow waiting on that id');
SELECT results_eq($$SELECT data, target_workflow_id, position < 0 FROM durable.signals
                    WHERE namespace = 'tg' AND signal_id = 'gb'$$,
                  $$VALUES ('"t"', 'wg', true)$$,
                  'an abandoned condition gives its targeted signal back to the head of its mailbox, still targeted');
SELECT durable.send_signal_v1('tg', 'gb', '"m-new"') IS NOT NULL AS ok \gset
SELECT durable.signal_workflow_v1('tg', 'wg', 'poke', '"wake up"') IS NOT NULL AS ok \gset
SELECT pg_temp.step('tg', 'wg', '[{"type": "condition", "seq": 2, "signal_id": "gb"}]') AS ignored \gset
SELECT is(pg_temp.last_event('tg', 'wg', 'signal_received'),
          '{"signal_id": "gb", "data": "\"t\"", "delivery": "workflow"}'::jsonb,
          'the workflow''s next condition takes it first (FIFO), as a targeted signal');
SELECT pg_temp.start('tg', 'wi') AS ignored \gset
SELECT pg_temp.step('tg', 'wi', '[{"type": "condition", "seq": 1, "signal_id": "gi"}, {"type": "condition", "seq": 2, "signal_id": "gi"}]') AS ignored \gset
SELECT durable.signal_workflow_v1('tg', 'wi', 'gi', '"i"') IS NOT NULL AS ok \gset
SELECT pg_temp.step('tg', 'wi', '[{"type": "cancel_wait", "seq": 1, "signal_id": "gi"}]') AS ignored \gset
SELECT is((SELECT h.seq FROM durable.workflow_history_v1('tg', 'wi') h
           WHERE h.event_type = 'signal_received' ORDER BY h.event_id DESC LIMIT 1), 2,
          'given back while the workflow has another condition on the id, it goes to that condition');

-- Headers (a traced sender's trace context) travel with the signal
SELECT pg_temp.start('th', 'wa') AS ignored \gset
SELECT pg_temp.step('th', 'wa', '[{"type": "condition", "seq": 1, "signal_id": "ha"}]') AS ignored \gset
SELECT is(durable.send_signal_v1('th', 'ha', '"x"', interval '1 hour', '{"traceparent": "00-a-b-01"}'),
          'delivered', 'a mailbox signal with headers is delivered to a waiting condition');
SELECT is(pg_temp.last_event('th', 'wa', 'signal_received'),
          '{"signal_id": "ha", "data": "\"x\"", "delivery": "mailbox", "headers": {"traceparent": "00-a-b-01"}}'::jsonb,
          'its signal_received event carries the sender''s headers');
SELECT is(durable.signal_workflow_v1('th', 'wa', 'hb', '"y"', interval '1 hour', '{"traceparent": "00-c-d-01"}'),
          'buffered', 'a targeted signal with headers nobody waits for is buffered');
SELECT is((SELECT headers FROM durable.signals WHERE namespace = 'th' AND signal_id = 'hb'),
          '{"traceparent": "00-c-d-01"}'::jsonb, 'buffered, it keeps its headers');
SELECT pg_temp.step('th', 'wa', '[{"type": "condition", "seq": 2, "signal_id": "hb"}]') AS ignored \gset
SELECT is(pg_temp.last_event('th', 'wa', 'signal_received')->'headers', '{"traceparent": "00-c-d-01"}'::jsonb,
          'a condition taking the buffered signal receives its headers');
SELECT pg_temp.step('th', 'wa', '[{"type": "condition", "seq": 3, "signal_id": "hc"}]') AS ignored \gset
SELECT is(durable.send_signal_v1('th', 'hc', '"z"'), 'delivered', 'a signal without headers is delivered');
SELECT ok(NOT pg_temp.last_event('th', 'wa', 'signal_received') ? 'headers',
          'and its event stores no headers at all');
SELECT pg_temp.start('th', 'wb') AS ignored \gset
SELECT pg_temp.step('th', 'wb', '[{"type": "signal", "seq": 1, "signal_id": "hd", "data": "\"w\"", "headers": {"traceparent": "00-e-f-01"}}]') AS ignored \gset
SELECT is((SELECT headers FROM durable.signals WHERE namespace = 'th' AND signal_id = 'hd'),
          '{"traceparent": "00-e-f-01"}'::jsonb, 'a workflow''s signal command sends its headers with the signal');
SELECT pg_temp.start('th', 'wd') AS ignored \gset
SELECT pg_temp.step('th', 'wd', '[{"type": "signal", "seq": 1, "signal_id": "he", "data": "\"v\""}]') AS ignored \gset
SELECT ok((SELECT headers IS NULL FROM durable.signals WHERE namespace = 'th' AND signal_id = 'he'),
          'a signal command without headers stores none');
SELECT throws_ok($$SELECT durable.send_signal_v1('th', 'hf', '"x"', interval '1 hour', '["not", "an object"]')$$,
                 'PD004', 'signal headers must be a JSON object of strings (a trace context), or NULL',
                 'send_signal_v1 refuses headers that are not a JSON object');
SELECT throws_ok(format('SELECT durable.send_signal_v1(%L, %L, %L, interval %L, %L)', 'th', 'hg', '"x"', '1 hour',
                        jsonb_build_object('tracestate', repeat('x', 9000))::text),
                 'PD004', 'signal headers of 9018 bytes exceed the 8192 byte limit: headers carry a trace context, '
                          'not data (put data in the args or the signal''s payload)',
                 'headers over 8 KiB are refused: they carry a trace context, not data');
SELECT throws_ok(format('SELECT * FROM durable.start_workflow_v1(%L, %L, %L, %L, %L, NULL, %L, %L)', 'th', 'hh', 'n',
                        'q', '[]', 'reject', jsonb_build_object('tracestate', repeat('x', 9000))::text),
                 'PD004', NULL, 'and so are a start''s');
SELECT throws_ok($$SELECT durable.signal_workflow_v1('th', 'wa', 'hf', '"x"', interval '1 hour', '"text"')$$,
                 'PD004', NULL, 'and so does signal_workflow_v1');
SELECT pg_temp.start('th', 'wc') AS ignored \gset
SELECT pg_temp.step('th', 'wc', '[{"type": "condition", "seq": 1, "signal_id": "hg"}]') AS ignored \gset
SELECT durable.send_signal_v1('th', 'hg', '"g"', interval '1 hour', '{"traceparent": "00-g-h-01"}') IS NOT NULL AS ok \gset
SELECT pg_temp.step('th', 'wc', '[{"type": "cancel_wait", "seq": 1, "signal_id": "hg"}]') AS ignored \gset
SELECT is((SELECT headers FROM durable.signals WHERE namespace = 'th' AND signal_id = 'hg'),
          '{"traceparent": "00-g-h-01"}'::jsonb, 'a signal given back by an abandoned condition keeps its headers');

-- Owner and clients only
SELECT is_empty($$SELECT 1 FROM durable.worker_functions() f
                  WHERE f = 'durable.signal_workflow_v1(text, text, text, text, interval, jsonb)'::regprocedure$$,
                'worker roles are not granted signal_workflow_v1');
SELECT ok(NOT has_function_privilege('public', 'durable.signal_workflow_v1(text, text, text, text, interval, jsonb)',
                                     'EXECUTE'), 'nor is PUBLIC');

SELECT * FROM finish();
ROLLBACK;
