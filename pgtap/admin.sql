-- admin.sql: retention (mirrors sql/admin.sql): prune deletes closed runs
-- older than the retention with their history, and expired signals.
\ir include/fixtures.psql
BEGIN;
SELECT plan(24);

-- Closes workflow p_id (started with pg_temp.start) as completed.
CREATE FUNCTION pg_temp.finish_run(p_ns text, p_id text) RETURNS text LANGUAGE sql AS $$
    SELECT pg_temp.step(p_ns, p_id, '[{"type": "complete", "result": "1"}]')
$$;

-- 40 days ago: two runs close, one keeps running, a continued run hands over.
SELECT pg_temp.start('p', 'old-done') AS ignored \gset
SELECT pg_temp.start('p', 'old-failed') AS ignored \gset
SELECT pg_temp.start('p', 'still-running') AS ignored \gset
SELECT pg_temp.start('p', 'recent') AS ignored \gset
SELECT pg_temp.start('p', 'can') AS ignored \gset
SELECT pg_temp.start('p-other', 'old-elsewhere') AS ignored \gset
SELECT pg_temp.finish_run('p', 'old-done') AS ignored \gset
SELECT pg_temp.step('p', 'old-failed', '[{"type": "fail", "error": {"type": "E"}}]') AS ignored \gset
SELECT pg_temp.step('p', 'can', '[{"type": "continue_as_new", "args": "[]"}]') AS ignored \gset
SELECT pg_temp.finish_run('p-other', 'old-elsewhere') AS ignored \gset
SELECT pg_temp.step('p', 'still-running', '[{"type": "timer", "seq": 1, "seconds": 86400000}]') AS ignored \gset
SELECT durable.send_signal_v1('p', 'short', '"s"', interval '1 hour') AS ignored \gset
SELECT durable.send_signal_v1('p', 'long', '"l"', interval '90 days') AS ignored \gset
SELECT durable.advance_clock('39 days') IS NOT NULL AS moved \gset
-- 1 day ago: another run closes.
SELECT pg_temp.finish_run('p', 'recent') AS ignored \gset
SELECT durable.advance_clock('1 day') IS NOT NULL AS moved \gset

SELECT throws_ok($$SELECT durable.prune(interval '-1 day')$$, 'PD004', NULL, 'a negative retention is rejected with PD004');
SELECT throws_ok($$SELECT durable.prune(NULL)$$, 'PD004', NULL, 'a NULL retention is rejected with PD004');
SELECT is(durable.prune(interval '30 days', 'p'), 3, 'prune deletes the runs closed before the retention (and returns how many)');
SELECT set_eq($$SELECT workflow_id || '/' || run_id FROM durable.workflows WHERE namespace = 'p'$$,
              ARRAY['still-running/1', 'recent/1', 'can/2'],
              'runs still running and runs closed within the retention are kept; a continued run goes, its successor stays');
SELECT is_empty($$SELECT 1 FROM durable.history WHERE namespace = 'p' AND (workflow_id IN ('old-done', 'old-failed')
                                                                             OR (workflow_id = 'can' AND run_id = 1))$$,
                'the history of the pruned runs is deleted with them');
SELECT is((SELECT count(*)::int FROM durable.history WHERE namespace = 'p' AND workflow_id = 'recent'), 2,
          'the history of a kept closed run is intact');
SELECT is((SELECT count(*)::int FROM durable.history WHERE namespace = 'p' AND workflow_id = 'still-running'), 2,
          'the history of a running run is intact');
SELECT isnt_empty($$SELECT 1 FROM durable.messages WHERE namespace = 'p' AND workflow_id = 'still-running'$$,
                  'a running run keeps its pending timer');
SELECT is((SELECT array_agg(signal_id) FROM durable.signals WHERE namespace = 'p'), '{long}'::text[],
          'expired buffered signals are deleted; live ones stay');
SELECT is((SELECT count(*)::int FROM durable.workflows WHERE namespace = 'p-other'), 1,
          'pruning one namespace leaves the others alone');
SELECT is(durable.prune(interval '30 days', 'p'), 0, 'pruning again finds nothing more');
SELECT is(durable.prune(interval '30 days'), 1, 'without a namespace prune covers every namespace');
SELECT is(durable.prune(interval '0', 'p'), 1, 'a zero retention prunes every closed run');
SELECT is((SELECT array_agg(workflow_id ORDER BY workflow_id) FROM durable.workflows WHERE namespace = 'p'),
          '{can,still-running}'::text[], 'and still never a running one');

-- Batches: the oldest closed runs go first, p_batch at a time.
SELECT count(pg_temp.start('pb', 'w' || i)) AS ignored FROM generate_series(1, 5) i \gset
SELECT pg_temp.finish_run('pb', 'w1') AS ignored \gset
SELECT durable.advance_clock('1 hour') IS NOT NULL AS moved \gset
SELECT pg_temp.finish_run('pb', 'w2') AS ignored \gset
SELECT durable.advance_clock('1 hour') IS NOT NULL AS moved \gset
SELECT pg_temp.finish_run('pb', 'w3') AS ignored \gset
SELECT durable.advance_clock('1 hour') IS NOT NULL AS moved \gset
SELECT pg_temp.finish_run('pb', 'w4') AS ignored \gset
SELECT durable.advance_clock('1 day') IS NOT NULL AS moved \gset
SELECT is(durable.prune(interval '1 minute', 'pb', 2), 2, 'prune deletes at most p_batch runs per call');
SELECT is((SELECT array_agg(workflow_id ORDER BY workflow_id) FROM durable.workflows WHERE namespace = 'pb'),
          '{w3,w4,w5}'::text[], 'the oldest closed runs go first');
SELECT is(durable.prune(interval '1 minute', 'pb', 2), 2, 'the next call deletes the rest');
SELECT is(durable.prune(interval '1 minute', 'pb', 2), 0, 'and then prune returns 0');
SELECT is((SELECT array_agg(workflow_id) FROM durable.workflows WHERE namespace = 'pb'), '{w5}'::text[],
          'only the running run is left');
SELECT is(durable.prune(interval '1 minute', 'pb', 0), 0, 'a batch below 1 still works (one run at a time)');
SELECT pg_temp.finish_run('pb', 'w5') AS ignored \gset
SELECT durable.advance_clock('1 hour') IS NOT NULL AS moved \gset
SELECT is(durable.prune(interval '1 minute', 'pb', 0), 1, 'a batch below 1 prunes one run');
SELECT is_empty($$SELECT 1 FROM durable.history WHERE namespace = 'pb'$$, 'no history is left behind');

-- Workers not seen for the retention period go.
SELECT durable.heartbeat_worker_v1('pw', 'gone', 'h', 1, 'q', '{w}', '{}', '10 s', true) AS ignored \gset
SELECT durable.heartbeat_worker_v1('pw-other', 'gone-elsewhere', 'h', 1, 'q', '{w}', '{}', '10 s') AS ignored \gset
SELECT durable.advance_clock('2 days') IS NOT NULL AS moved \gset
SELECT durable.heartbeat_worker_v1('pw', 'alive', 'h', 1, 'q', '{w}', '{}', '10 s') AS ignored \gset
SELECT durable.prune(interval '1 day', 'pw') AS ignored \gset
SELECT is((SELECT array_agg(worker_id ORDER BY worker_id) FROM durable.workers),
          '{alive,gone-elsewhere}'::text[], 'prune deletes the workers of its namespace not seen within the retention');
SELECT durable.prune(interval '1 day') AS ignored \gset
SELECT is((SELECT array_agg(worker_id) FROM durable.workers), '{alive}'::text[],
          'and a worker seen within it stays');

SELECT * FROM finish();
ROLLBACK;
