-- Fills a database (engine loaded, nothing else in it) for the stream_stats measurement of
-- README "Observability": psql "$DSN" -f bench/stream_stats_fill.sql, then time
-- SELECT * FROM durable.stream_stats();
-- 1M messages over 10 streams (80% queued, 10% delayed, 10% leased); 1M history rows of 100k runs
-- spread over the 10 minutes before the fill (100k a minute).
INSERT INTO durable.workflows (namespace, workflow_id, run_id, workflow_name, task_queue, status, args, created_at, updated_at)
SELECT 'durable', 'wf-' || i, 1, 'order', 'q' || (i % 10), 'running', '[]', now(), now()
FROM generate_series(1, 100000) i;
INSERT INTO durable.history (namespace, workflow_id, run_id, event_id, event_type, seq, inbound, data, created_at)
SELECT 'durable', 'wf-' || (i % 100000), 1, i / 100000 + 1,
       (ARRAY['workflow_started','activity_scheduled','activity_completed','activity_failed','timer_started'])[1 + i % 5],
       i % 7, false,
       jsonb_build_object('task_queue', 'q' || (i % 10), 'activity_name', 'charge'),
       now() - interval '10 minutes' + (i * interval '600 milliseconds' / 1000)
FROM generate_series(0, 999999) i;
INSERT INTO durable.messages (namespace, stream, kind, name, workflow_id, run_id, visible_at, lease_token, created_at)
SELECT 'durable', 'q' || (i % 10) || CASE WHEN i % 2 = 0 THEN '-activity' ELSE '' END, 'activity', 'charge',
       'wf-' || i, 1,
       CASE WHEN i % 10 = 0 THEN now() + interval '1 hour' WHEN i % 10 = 1 THEN now() + interval '30 seconds'
            ELSE now() - interval '5 minutes' END,
       CASE WHEN i % 10 = 1 THEN gen_random_uuid() END, now()
FROM generate_series(1, 1000000) i;
VACUUM ANALYZE durable.history;
VACUUM ANALYZE durable.messages;
VACUUM ANALYZE durable.workflows;
