-- signals.sql: the signal mailbox (mirrors sql/signals.sql): buffering
-- (FIFO, expiry), delivery to waiting conditions (oldest first, exactly
-- once), and the race of a condition's timeout with its signal, in one
-- session and between two sessions (dblink).
--
-- The dblink part needs committed fixtures, so it runs first, outside any
-- transaction (this database is a throwaway clone); the rest runs in one
-- transaction that is rolled back. Every part uses its own namespace.
\ir include/fixtures.psql
SET client_min_messages = warning;  -- dblink_get_result(.., false) reports remote errors as NOTICEs
SELECT plan(90);

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
SELECT is(pg_temp.last_event('s', 'w1', 'signal_received'), '{"signal_id": "a", "data": "\"1\""}'::jsonb,
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
SELECT is(pg_temp.last_event('s', 'w3', 'signal_received'), '{"signal_id": "b", "data": "{\"ok\": true}"}'::jsonb,
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
SELECT is(pg_temp.last_event('sc', 'mine', 'signal_received'), '{"signal_id": "x", "data": "\"forged\"", "allowed_queues": ["q"]}'::jsonb,
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

SELECT * FROM finish();
ROLLBACK;
