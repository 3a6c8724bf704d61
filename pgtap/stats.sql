-- stats.sql: durable.stream_stats (mirrors sql/stats.sql). Per stream, what
-- waits now (queued, delayed, running, the oldest queued age) and what
-- started and failed in the last minute; owner-only; history read through
-- the BRIN index history_by_time.
\ir include/fixtures.psql
BEGIN;
SELECT plan(12);

CREATE FUNCTION pg_temp.stats(p_ns text, p_stream text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT to_jsonb(s) - 'namespace' - 'stream' - 'oldest_queued_age'
    FROM durable.stream_stats(p_ns) s WHERE s.stream = p_stream
$$;

SELECT durable.set_clock_offset(interval '0') AS ignored \gset

-- A plain stream: two visible messages, one delayed; one of the visible is claimed.
SELECT durable.enqueue_v1('st', 'plain', 'm') AS ignored \gset
SELECT durable.enqueue_v1('st', 'plain', 'm') AS ignored \gset
SELECT durable.enqueue_v1('st', 'plain', 'm', p_delay => interval '1 hour') AS ignored \gset
SELECT count(*) AS ignored FROM durable.claim_v1('st', ARRAY['plain'], ARRAY['m'], 1) \gset
SELECT is(pg_temp.stats('st', 'plain'),
          '{"queued": 1, "delayed": 1, "running": 1, "started_last_minute": 0, "failed_last_minute": 0}',
          'a visible message is queued, a delayed one delayed, a leased one running');

-- A workflow: started on q, its first task runs, schedules an activity that fails once and retries.
SELECT pg_temp.start('st', 'w') AS ignored \gset
SELECT is(pg_temp.stats('st', 'q'),
          '{"queued": 1, "delayed": 0, "running": 0, "started_last_minute": 1, "failed_last_minute": 0}',
          'a started run counts as started on its task queue, and its first task as queued');
SELECT pg_temp.step('st', 'w', '[{"type": "activity", "seq": 1, "name": "charge", "args": "[]",
                                 "retry": {"maximum_attempts": 3, "initial_interval": 30}}]') AS ignored \gset
CREATE TEMP TABLE act AS SELECT * FROM durable.claim_activity_tasks_v1('st', ARRAY['q-activity'], ARRAY['charge']);
SELECT is(pg_temp.stats('st', 'q-activity'),
          '{"queued": 0, "delayed": 0, "running": 1, "started_last_minute": 1, "failed_last_minute": 0}',
          'a scheduled activity counts as started on <task_queue>-activity, and running while leased');
SELECT is((SELECT outcome FROM durable.fail_activity_v1((SELECT message_id FROM act), (SELECT lease_token FROM act),
                                                        '{"types": ["IOError"]}')), 'retrying', 'the attempt fails');
SELECT is(pg_temp.stats('st', 'q-activity'),
          '{"queued": 0, "delayed": 1, "running": 0, "started_last_minute": 1, "failed_last_minute": 1}',
          'a failed attempt counts as failed on its activity stream, its retry as delayed while it backs off');

SELECT is((SELECT s.oldest_queued_age FROM durable.stream_stats('st') s WHERE s.stream = 'q-activity'), NULL,
          'a stream with nothing queued has no oldest_queued_age');

-- A workflow task that fails counts on the run's task queue.
SELECT pg_temp.start('st', 'w2') AS ignored \gset
CREATE TEMP TABLE wt AS SELECT * FROM durable.claim_workflow_tasks_v1('st', ARRAY['q'], ARRAY['w2'], 1);
SELECT durable.fail_workflow_task_v1((SELECT message_id FROM wt), (SELECT lease_token FROM wt),
                                     '{"type": "Boom", "message": "boom"}') AS ignored \gset
SELECT is((pg_temp.stats('st', 'q')->>'failed_last_minute')::int, 1,
          'a failed workflow task counts as failed on its task queue');

-- Ages and the one-minute window follow the engine clock.
SELECT durable.advance_clock(interval '2 minutes') AS ignored \gset
SELECT ok((SELECT s.oldest_queued_age >= interval '2 minutes' FROM durable.stream_stats('st') s
           WHERE s.stream = 'plain'), 'oldest_queued_age is how long the oldest visible message has waited');
SELECT is((SELECT sum(s.started_last_minute + s.failed_last_minute)::int FROM durable.stream_stats('st') s), 0,
          'what started or failed more than a minute ago is no longer counted');
SELECT durable.set_clock_offset(interval '0') AS ignored \gset

-- Scope and access.
SELECT durable.enqueue_v1('other', 'plain', 'm') AS ignored \gset
SELECT is((SELECT array_agg(DISTINCT s.namespace ORDER BY s.namespace) FROM durable.stream_stats('st') s), '{st}',
          'stream_stats(namespace) shows that namespace only');
SELECT is((SELECT array_agg(DISTINCT s.namespace ORDER BY s.namespace) FROM durable.stream_stats() s),
          '{other,st}', 'stream_stats() shows every namespace');
SELECT ok('durable.stream_stats(text)'::regprocedure NOT IN (SELECT f FROM durable.worker_functions() f),
          'stream_stats is owner-only: not a worker function');

SELECT * FROM finish();
ROLLBACK;
