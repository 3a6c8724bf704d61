-- flow_control.sql: flow control (mirrors sql/flow_control.sql): per-stream
-- limits set, read and cleared, and enforced inside the claims (max_running,
-- a sliding-window rate, pause), exactly under two concurrent claimers
-- (dblink); no eager hand-off on a limited stream; priorities; ordered
-- partitions; dedup ids; start delays; bad input refused with nothing
-- changed; owner only.
--
-- The dblink part needs committed fixtures, so it runs first, outside any
-- transaction (this database is a throwaway clone); the rest runs in one
-- transaction that is rolled back. Every part uses its own namespace.
\ir include/fixtures.psql
SET client_min_messages = warning;  -- dblink_get_result(.., false) reports remote errors as NOTICEs
SELECT plan(85);

-- ---------------------------------------------------------------------------
-- Two claimers at once: the second waits for the first's admission (the
-- limits row lock), then sees its leases: max_running holds exactly.
-- ---------------------------------------------------------------------------
SELECT count(*) AS ignored FROM durable.enqueue_batch_v1('dbl', 's',
    '[{"name": "job"}, {"name": "job"}, {"name": "job"}, {"name": "job"}, {"name": "job"}]') \gset
SELECT durable.set_stream_limits('s', 'dbl', 3);
DO $$ BEGIN
    PERFORM dblink_connect('b', pg_temp.self_dsn());
    PERFORM dblink_connect('c', pg_temp.self_dsn());
END $$;
SELECT pid AS c_pid FROM dblink('c', 'SELECT pg_backend_pid()') AS t(pid int) \gset
SET lock_timeout = '5s';
DO $$ BEGIN PERFORM dblink_exec('b', 'BEGIN'); END $$;
SELECT is((SELECT count(*)::int FROM dblink('b', $$SELECT id FROM durable.claim_v1('dbl', ARRAY['s'], ARRAY['job'], 2)$$)
           AS t(id bigint)), 2, 'session B claims two of max_running 3 in a transaction it keeps open');
SELECT is(dblink_send_query('c', $$SELECT id FROM durable.claim_v1('dbl', ARRAY['s'], ARRAY['job'], 5)$$), 1,
          'session C asks for five meanwhile');
SELECT ok(pg_temp.wait_until_blocked(:c_pid), 'C waits for B''s admission (the stream''s limits row)');
DO $$ BEGIN PERFORM dblink_exec('b', 'COMMIT'); END $$;
SELECT is((SELECT count(*)::int FROM dblink_get_result('c') AS t(id bigint)), 1,
          'once B commits, C gets only the one task left under the limit');
SELECT is((SELECT count(*)::int FROM durable.messages WHERE namespace = 'dbl' AND lease_token IS NOT NULL), 3,
          'three tasks are leased, never four');
SELECT is_empty($$SELECT * FROM dblink_get_result('c') AS t(id bigint)$$, 'session C is done');
DO $$ BEGIN PERFORM dblink_disconnect('b'); PERFORM dblink_disconnect('c'); END $$;
RESET lock_timeout;

BEGIN;

-- ---------------------------------------------------------------------------
-- Set, read, clear
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT durable.set_stream_limits('pay-activity', 'fc', 3, 20, '1 second')$$,
                'set_stream_limits sets both limits of a stream');
SELECT results_eq($$SELECT * FROM durable.stream_limits('fc')$$,
                  $$VALUES ('fc', 'pay-activity', 3, 20, interval '1 second')$$,
                  'stream_limits(namespace) shows them');
SELECT durable.set_stream_limits('other', 'fc2', 1);
SELECT is((SELECT count(*)::int FROM durable.stream_limits() WHERE namespace IN ('fc', 'fc2')), 2,
          'stream_limits() without a namespace lists every namespace''s');
SELECT results_eq($$SELECT stream, max_running, rate_limit FROM durable.stream_limits('fc2')$$,
                  $$VALUES ('other', 1, NULL::integer)$$, 'a limit not given is NULL (none of that kind)');
SELECT is((SELECT count(*)::int FROM durable.flow_rate_slots WHERE namespace = 'fc'), 20,
          'a rate limit of 20 keeps a ring of 20 claim times (bounded)');
SELECT durable.set_stream_limits('pay-activity', 'fc', NULL, 20, '1 second');
SELECT results_eq($$SELECT max_running, rate_limit FROM durable.stream_limits('fc')$$,
                  $$VALUES (NULL::integer, 20)$$, 'a NULL clears that limit only');
SELECT durable.set_stream_limits('pay-activity', 'fc');
SELECT is_empty($$SELECT * FROM durable.stream_limits('fc')$$, 'all NULL clears the stream''s limits');
SELECT is((SELECT count(*)::int FROM durable.flow_rate_slots WHERE namespace = 'fc'), 0, 'and its rate ring');
SELECT ok(NOT durable._flow_limited('fc', 'pay-activity') AND durable._flow_limited('fc2', 'other'),
          '_flow_limited says which streams have limits');

-- Bad input: a clear PD004, nothing changed.
SELECT durable.set_stream_limits('bad', 'fcb', 2);
SELECT throws_ok($$SELECT durable.set_stream_limits('bad', 'fcb', -1)$$, 'PD004',
                 'max_running -1 is negative: give 0 (pause the stream) or more, or NULL for no limit',
                 'a negative max_running is refused');
SELECT throws_ok($$SELECT durable.set_stream_limits('bad', 'fcb', NULL, 5)$$, 'PD004', NULL,
                 'a rate limit without its period is refused');
SELECT throws_ok($$SELECT durable.set_stream_limits('bad', 'fcb', NULL, 0, '1 second')$$, 'PD004',
                 'rate_limit 0 is out of range: give 1 to 100000 claims per period', 'a rate limit of 0 is refused');
SELECT throws_ok($$SELECT durable.set_stream_limits('bad', 'fcb', NULL, -4, '1 second')$$, 'PD004', NULL,
                 'a negative rate limit is refused');
SELECT throws_ok($$SELECT durable.set_stream_limits('bad', 'fcb', NULL, 5, '-1 second')$$, 'PD004', NULL,
                 'a negative rate period is refused');
SELECT throws_ok($$SELECT durable.set_stream_limits('', 'fcb', 1)$$, 'PD004', NULL, 'an empty stream name is refused');
SELECT results_eq($$SELECT * FROM durable.stream_limits('fcb')$$,
                  $$VALUES ('fcb', 'bad', 2, NULL::integer, NULL::interval)$$,
                  'after the refusals the stream''s limits are unchanged');

-- ---------------------------------------------------------------------------
-- max_running
-- ---------------------------------------------------------------------------
SELECT count(*) AS ignored FROM durable.enqueue_batch_v1('mr', 's',
    '[{"name": "j"}, {"name": "j"}, {"name": "j"}, {"name": "j"}, {"name": "j"}]') \gset
SELECT durable.set_stream_limits('s', 'mr', 2);
CREATE TEMP TABLE mr1 AS SELECT * FROM durable.claim_v1('mr', ARRAY['s'], ARRAY['j'], 5);
SELECT is((SELECT count(*)::int FROM mr1), 2, 'a claim of five on a stream with max_running 2 leases two');
SELECT is_empty($$SELECT * FROM durable.claim_v1('mr', ARRAY['s'], ARRAY['j'], 5)$$,
                'while both are held, the next claim gets none');
SELECT durable.ack_v1(id, lease_token) FROM mr1 ORDER BY id LIMIT 1;
SELECT is((SELECT count(*)::int FROM durable.claim_v1('mr', ARRAY['s'], ARRAY['j'], 5)), 1,
          'one acked frees one running slot');
SELECT cmp_ok(durable.next_wakeup_v1('mr', ARRAY['s'], ARRAY['j']), '>', 25::float8,
              'at the limit, next_wakeup says: when the first lease ends (or a completion NOTIFYs)');
SELECT durable.advance_clock('31 seconds');
SELECT is((SELECT count(*)::int FROM durable.claim_v1('mr', ARRAY['s'], ARRAY['j'], 5)), 2,
          'an expired lease is not running: its task and another are claimed');
SELECT durable.set_stream_limits('s', 'mr', 0);
SELECT durable.advance_clock('31 seconds');
SELECT is_empty($$SELECT * FROM durable.claim_v1('mr', ARRAY['s'], ARRAY['j'], 5)$$, 'max_running 0 pauses a stream');
SELECT is(durable.next_wakeup_v1('mr', ARRAY['s'], ARRAY['j']), NULL::float8,
          'a paused stream has no wake-up time (workers poll, and set_stream_limits NOTIFYs)');
SELECT durable.enqueue_v1('mr', 'free', 'j') AS ignored \gset
SELECT is((SELECT count(*)::int FROM durable.claim_v1('mr', ARRAY['s', 'free'], ARRAY['j'], 5)), 1,
          'a claim of a paused and an unlimited stream takes the unlimited one''s task');
SELECT is((SELECT admitted FROM durable._flow_admit('mr', 'free', 7)), 7,
          '_flow_admit admits all of a stream without limits');

-- ---------------------------------------------------------------------------
-- Rate: at most rate_limit claims in any window of rate_period (sliding)
-- ---------------------------------------------------------------------------
SELECT count(*) AS ignored FROM durable.enqueue_batch_v1('rt', 's',
    (SELECT jsonb_agg(jsonb_build_object('name', 'j')) FROM generate_series(1, 20))) \gset
SELECT durable.set_stream_limits('s', 'rt', NULL, 3, '10 seconds');
SELECT is((SELECT count(*)::int FROM durable.claim_v1('rt', ARRAY['s'], ARRAY['j'], 2)), 2,
          'a claim of two under a rate of 3 per 10 s gets two');
SELECT durable.advance_clock('5 seconds');
SELECT is((SELECT count(*)::int FROM durable.claim_v1('rt', ARRAY['s'], ARRAY['j'], 10)), 1,
          '5 s later a claim of ten gets the one left in the window');
SELECT is_empty($$SELECT * FROM durable.claim_v1('rt', ARRAY['s'], ARRAY['j'], 10)$$, 'then none');
SELECT cmp_ok(abs(durable.next_wakeup_v1('rt', ARRAY['s'], ARRAY['j']) - 5), '<', 0.5::float8,
              'next_wakeup: when the oldest claim leaves the window (5 s)');
SELECT durable.advance_clock('5 seconds');
SELECT is((SELECT count(*)::int FROM durable.claim_v1('rt', ARRAY['s'], ARRAY['j'], 10)), 2,
          'the window slides: 10 s after the first two, two more');
SELECT is((SELECT count(*)::int FROM durable.flow_rate_slots WHERE namespace = 'rt'), 3, 'the ring stays 3 slots');
SELECT durable.set_stream_limits('s', 'rt', NULL, 5, '10 seconds');
SELECT is((SELECT count(*)::int FROM durable.claim_v1('rt', ARRAY['s'], ARRAY['j'], 10)), 2,
          'a larger ring keeps the recent claims: 5 per 10 s with 3 in the window admits two');
SELECT durable.set_stream_limits('s', 'rt', NULL, 2, '10 seconds');
SELECT durable.advance_clock('6 seconds');
SELECT is_empty($$SELECT * FROM durable.claim_v1('rt', ARRAY['s'], ARRAY['j'], 10)$$,
                'a smaller ring keeps the newest claims: 2 per 10 s with 4 claimed 6 s ago admits none');
SELECT is((SELECT (admitted, at IS NOT NULL)::text FROM durable._flow_admit('rt', 's', 10)), '(0,t)',
          '_flow_admit says none, and the time it read');
SELECT durable.advance_clock('5 seconds');
SELECT is((SELECT admitted FROM durable._flow_admit('rt', 's', 10)), 2, '11 s later it admits two');
SELECT durable._flow_took('rt', 's', 2, durable.now());
SELECT is((SELECT admitted FROM durable._flow_admit('rt', 's', 10)), 0, '_flow_took fills the ring''s oldest slots');
SELECT cmp_ok(extract(epoch FROM durable._flow_next_admit('rt', 's', durable.now()) - durable.now())::float8, '>', 9.5::float8,
              '_flow_next_admit: the oldest slot''s claim time plus the period');

-- ---------------------------------------------------------------------------
-- Workflow task queues and activity streams
-- ---------------------------------------------------------------------------
SELECT durable.set_stream_limits('q', 'wq', 1);
SELECT pg_temp.start('wq', 'a') AS ignored \gset
SELECT pg_temp.start('wq', 'b') AS ignored \gset
CREATE TEMP TABLE wq1 AS SELECT * FROM durable.claim_workflow_tasks_v1('wq', ARRAY['q'], ARRAY['a', 'b'], 10);
SELECT is((SELECT count(*)::int FROM wq1), 1, 'max_running 1 on a task queue: one workflow task leased');
SELECT is_empty($$SELECT * FROM durable.claim_workflow_task_v1('wq', 'q', 'b', ARRAY['b'])$$,
                'the take by id (claim_workflow_task_v1) is held to the limit too');
SELECT is((SELECT c.status FROM wq1, durable.complete_workflow_task_v1(wq1.message_id, wq1.lease_token, 1,
               '[{"type": "activity", "seq": 1, "name": "charge", "args": "[]"}]',
               '{"owner": "wk", "lease_seconds": 30, "activity_stream": "q-activity", "activity_names": ["charge"]}') c),
          'ok', 'the first completes');
SELECT is((SELECT count(*)::int FROM durable.claim_workflow_task_v1('wq', 'q', 'b', ARRAY['b'])), 1,
          'then the second may be taken');
SELECT durable.set_stream_limits('q-activity', 'ea', 1, 10, '1 minute');
SELECT pg_temp.start('ea', 'w') AS ignored \gset
CREATE TEMP TABLE ea1 AS SELECT * FROM durable.claim_workflow_tasks_v1('ea', ARRAY['q'], ARRAY['w']);
SELECT is((SELECT jsonb_array_length(c.activities) FROM ea1, durable.complete_workflow_task_v1(ea1.message_id,
               ea1.lease_token, 1, '[{"type": "activity", "seq": 1, "name": "charge", "args": "[]"},
                                     {"type": "activity", "seq": 2, "name": "charge", "args": "[]"}]',
               '{"owner": "wk", "lease_seconds": 30, "activity_stream": "q-activity", "activity_names": ["charge"]}') c),
          1, 'eager dispatch on a stream with max_running 1 hands over one activity (admitted like a claim); '
             'the other is queued');
SELECT is_empty($$SELECT * FROM durable.claim_activity_tasks_v1('ea', ARRAY['q-activity'], ARRAY['charge'])$$,
                'and is not claimable while the handed one runs');
SELECT is((SELECT rate_next FROM durable.flow_limits WHERE namespace = 'ea'), 1,
          'the hand-over took a slot of the rate window');
-- ---------------------------------------------------------------------------
-- Priorities
-- ---------------------------------------------------------------------------
SELECT workflow_id AS ignored FROM durable.start_workflow_v2('pr', 'low', 'w', 'q', '[]') \gset
SELECT workflow_id AS ignored FROM durable.start_workflow_v2('pr', 'high', 'w', 'q', '[]', p_priority => 7) \gset
SELECT workflow_id AS ignored FROM durable.start_workflow_v2('pr', 'mid1', 'w', 'q', '[]', p_priority => 3) \gset
SELECT workflow_id AS ignored FROM durable.start_workflow_v2('pr', 'mid2', 'w', 'q', '[]', p_priority => 3) \gset
SELECT results_eq($$SELECT workflow_id FROM durable.claim_workflow_tasks_v1('pr', ARRAY['q'], ARRAY['w'], 1)$$,
                  $$VALUES ('high')$$, 'the highest priority is claimed first');
SELECT results_eq($$SELECT workflow_id FROM durable.claim_workflow_tasks_v1('pr', ARRAY['q'], ARRAY['w'], 3)$$,
                  $$VALUES ('mid1'), ('mid2'), ('low')$$, 'then by priority, FIFO within a priority');
SELECT is((SELECT priority FROM durable.workflows WHERE namespace = 'pr' AND workflow_id = 'high'), 7::smallint,
          'the run keeps its priority');
SELECT workflow_id AS ignored FROM durable.start_workflow_v2('pr', 'act', 'a', 'q', '[]', p_priority => -2) \gset
SELECT pg_temp.step('pr', 'a', '[{"type": "activity", "seq": 1, "name": "charge", "args": "[]"}]') AS ignored \gset
SELECT is((SELECT priority FROM durable.messages WHERE namespace = 'pr' AND kind = 'activity'), -2::smallint,
          'its activities have its priority');
SELECT throws_ok($$SELECT * FROM durable.start_workflow_v2('pr', 'x', 'w', 'q', '[]', p_priority => 40000)$$, 'PD004',
                 'priority 40000 is out of range: give an integer from -32768 to 32767 (higher runs first; 0 is the default)',
                 'a priority out of range is refused');
SELECT results_eq($$SELECT error_sqlstate FROM durable.start_workflows_v2('pr',
                      '[{"workflow_id": "y", "workflow_name": "w", "task_queue": "q", "args": "[]", "priority": "high"}]')$$,
                  $$VALUES ('PD004')$$, 'a priority that is not a number fails its item with PD004');
SELECT is((SELECT count(*)::int FROM durable.workflows WHERE namespace = 'pr' AND workflow_id IN ('x', 'y')), 0,
          'and nothing of those starts is recorded');

-- The claim's pick stays an index scan of messages_ready, priorities and all.
CREATE FUNCTION pg_temp.plan_of(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_line text;
    v_plan text := '';
BEGIN
    FOR v_line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || p_sql LOOP
        v_plan := v_plan || v_line || E'\n';
    END LOOP;
    RETURN v_plan;
END $$;
SELECT count(*) AS ignored FROM durable.enqueue_batch_v1('ix', 'big',
    (SELECT jsonb_agg(jsonb_build_object('name', 'j', 'priority', g % 3)) FROM generate_series(1, 5000) g)) \gset
ANALYZE durable.messages;
SELECT matches(pg_temp.plan_of($$SELECT m.id FROM durable.messages m
                   WHERE m.namespace = 'ix' AND m.stream = (ARRAY['big'])[1] AND m.kind = 'message'
                     AND m.name = ANY (ARRAY['j']) AND m.visible_at <= durable.now()
                   ORDER BY m.priority DESC, m.visible_at, m.id LIMIT 10 FOR UPDATE SKIP LOCKED$$),
               'Index Scan using messages_ready', 'the claim''s pick (priority first) is an index scan of messages_ready');
SELECT results_eq($$SELECT (message).priority FROM durable._claim_ready('ix', ARRAY['big'], ARRAY['j'], 'message', 3,
                        '30 seconds', 'me', durable.now())$$,
                  $$VALUES (2::smallint), (2::smallint), (2::smallint)$$,
                  '_claim_ready takes the highest priority first');

-- ---------------------------------------------------------------------------
-- Partitions: one run per key at a time, in start order
-- ---------------------------------------------------------------------------
SELECT workflow_id AS ignored FROM durable.start_workflow_v2('pt', 'p1', 'w', 'q', '[]', p_partition_key => 'acct-1') \gset
SELECT workflow_id AS ignored FROM durable.start_workflow_v2('pt', 'p2', 'w', 'q', '[]', p_partition_key => 'acct-1',
                                                             p_priority => 9) \gset
SELECT workflow_id AS ignored FROM durable.start_workflow_v2('pt', 'p3', 'w', 'q', '[]', p_partition_key => 'acct-1') \gset
SELECT workflow_id AS ignored FROM durable.start_workflow_v2('pt', 'o1', 'w', 'q', '[]', p_partition_key => 'acct-2') \gset
SELECT is((SELECT visible_at FROM durable.messages WHERE namespace = 'pt' AND workflow_id = 'p2'), durable.held_back(),
          'a run whose key is held waits with its workflow task held back');
SELECT results_eq($$SELECT workflow_id FROM durable.claim_workflow_tasks_v1('pt', ARRAY['q'], ARRAY['w'], 10)
                    ORDER BY workflow_id$$,
                  $$VALUES ('o1'), ('p1')$$, 'only the first run of each key is claimable (priority does not jump the line)');
SELECT is(durable.describe_workflow_v1('pt', 'p3')->>'waiting_for',
          'its turn in partition ''acct-1'' (workflow ''p1'' runs in it now)',
          'describe says what a waiting run waits for, and its partition key'
          || CASE WHEN durable.describe_workflow_v1('pt', 'p3')->>'partition_key' = 'acct-1' THEN '' ELSE ' (MISSING)' END);
SELECT durable.interrupt_workflow_v1('pt', 'p2', 'not needed');
SELECT results_eq($$SELECT workflow_id FROM durable.partition_waiters WHERE namespace = 'pt'$$, $$VALUES ('p3')$$,
                  'a waiting run that is interrupted leaves the line');
SELECT is((SELECT holder_workflow_id FROM durable.partitions WHERE namespace = 'pt' AND partition_key = 'acct-1'), 'p1',
          'and the key stays with its holder');
SELECT durable.interrupt_workflow_v1('pt', 'p1', 'done');
SELECT results_eq($$SELECT workflow_id FROM durable.claim_workflow_tasks_v1('pt', ARRAY['q'], ARRAY['w'], 10)$$,
                  $$VALUES ('p3')$$, 'when the holder closes, the next run in line becomes claimable');
SELECT durable.interrupt_workflow_v1('pt', 'p3', 'done');
SELECT is_empty($$SELECT * FROM durable.partitions WHERE namespace = 'pt' AND partition_key = 'acct-1'$$,
                'the last run to close frees the key');
SELECT ok(durable._partition_join('pt', 'acct-3', 'z', 1, durable.now()), '_partition_join: a free key is taken at once');
-- A reset of a running run is the same workflow going on: it keeps its key, its dedup id and its priority.
SELECT workflow_id AS ignored FROM durable.start_workflow_v2('rs', 'a', 'a', 'q', '[]', p_partition_key => 'rk',
                                                             p_dedup_id => 'da', p_priority => 4) \gset
SELECT workflow_id AS ignored FROM durable.start_workflow_v2('rs', 'b', 'b', 'q', '[]', p_partition_key => 'rk') \gset
SELECT pg_temp.step('rs', 'a', '[{"type": "activity", "seq": 1, "name": "charge", "args": "[]"}]') AS ignored \gset
SELECT is(durable.reset_workflow('rs', 'a', 2, 'retry it'), 2, 'a partitioned run is reset');
SELECT results_eq($$SELECT partition_key, dedup_id, priority FROM durable.workflows
                    WHERE namespace = 'rs' AND workflow_id = 'a' AND run_id = 2$$,
                  $$VALUES ('rk', 'da', 4::smallint)$$, 'its new run keeps the partition key, dedup id and priority');
SELECT results_eq($$SELECT workflow_id FROM durable.partition_waiters WHERE namespace = 'rs'$$, $$VALUES ('b')$$,
                  'the next run of the key still waits');
SELECT durable.interrupt_workflow_v1('rs', 'a', 'done');
SELECT results_eq($$SELECT workflow_id FROM durable.claim_workflow_tasks_v1('rs', ARRAY['q'], ARRAY['b'])$$,
                  $$VALUES ('b')$$, 'when the reset run closes, the next one runs');

-- ---------------------------------------------------------------------------
-- Dedup ids and start delays
-- ---------------------------------------------------------------------------
SELECT workflow_id AS ignored FROM durable.start_workflow_v2('dd', 'd1', 'w', 'q', '[]', p_dedup_id => 'order-9') \gset
SELECT throws_ok($$SELECT * FROM durable.start_workflow_v2('dd', 'd2', 'w', 'q', '[]', p_dedup_id => 'order-9')$$,
                 'PD002', NULL, 'a second start with a running run''s dedup id is refused');
SELECT results_eq($$SELECT workflow_id, run_id, started FROM durable.start_workflow_v2('dd', 'd2', 'w', 'q', '[]',
                        p_id_reuse => 'return_existing', p_dedup_id => 'order-9')$$,
                  $$VALUES ('d1', 1, false)$$, 'with return_existing it returns that run');
SELECT durable.interrupt_workflow_v1('dd', 'd1', 'done');
SELECT results_eq($$SELECT workflow_id, started FROM durable.start_workflow_v2('dd', 'd2', 'w', 'q', '[]',
                        p_dedup_id => 'order-9')$$,
                  $$VALUES ('d2', true)$$, 'once that run closed, the dedup id is free again');
SELECT results_eq($$SELECT error_sqlstate FROM durable.start_workflows_v2('dd',
                      '[{"workflow_id": "d3", "workflow_name": "w", "task_queue": "q", "args": "[]", "dedup_id": "order-9"}]')$$,
                  $$VALUES ('PD002')$$, 'a batch start with a taken dedup id fails that item with PD002');
SELECT workflow_id AS ignored FROM durable.start_workflow_v2('sd', 's1', 'w', 'q', '[]', p_start_delay => '1 hour') \gset
SELECT is_empty($$SELECT * FROM durable.claim_workflow_tasks_v1('sd', ARRAY['q'], ARRAY['w'])$$,
                'a run started with a delay is not claimable before it');
SELECT matches(durable.describe_workflow_v1('sd', 's1')->>'waiting_for', '^its start delay \(due at ',
               'describe says a delayed run waits for its start delay');
SELECT cmp_ok(durable.next_wakeup_v1('sd', ARRAY['q'], ARRAY['w']), '>', 3590::float8, 'workers wake when it is due');
SELECT durable.advance_clock('1 hour');
SELECT is((SELECT count(*)::int FROM durable.claim_workflow_tasks_v1('sd', ARRAY['q'], ARRAY['w'])), 1,
          'and claimable after it');
SELECT throws_ok($$SELECT * FROM durable.start_workflow_v2('sd', 's2', 'w', 'q', '[]', p_start_delay => '-1 second')$$,
                 'PD004', NULL, 'a negative start delay is refused');
SELECT results_eq($$SELECT run_workflow_id, run_id, started FROM durable._start_run('sd', 's3', 'w', 'q', '[]', NULL,
                        'reject', NULL, NULL, NULL)$$,
                  $$VALUES ('s3', 1, true)$$, '_start_run without flow control options starts a plain run');
SELECT is(durable.held_back(), '9999-12-31 00:00:00+00'::timestamptz, 'held_back() is year 9999');

-- ---------------------------------------------------------------------------
-- Owner only
-- ---------------------------------------------------------------------------
SELECT role_name AS wrk FROM durable.provision_worker_role(ARRAY['q', 'q-activity'], 'fc') \gset
SELECT ok(NOT has_function_privilege(:'wrk', 'durable.set_stream_limits(text, text, integer, integer, interval)', 'EXECUTE')
          AND NOT has_function_privilege(:'wrk', 'durable.stream_limits(text)', 'EXECUTE'),
          'a worker role may not execute set_stream_limits or stream_limits');
SET LOCAL ROLE :'wrk';
SELECT throws_ok($$SELECT durable.set_stream_limits('q-activity', 'fc', 1000)$$, '42501',
                 'permission denied for function set_stream_limits', 'a worker role cannot lift its stream''s limits');
RESET ROLE;
SELECT ok((SELECT p.prosecdef = false FROM pg_proc p WHERE p.oid = 'durable._claim_ready(text, text[], text[], text, integer, interval, text, timestamptz)'::regprocedure),
          '_claim_ready is internal (runs with its caller''s rights)');

SELECT * FROM finish();
ROLLBACK;
