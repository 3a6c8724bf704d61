-- stats.sql: what an operator scrapes (dashboards, `pgdurable worker
-- --metrics-port`). stream_stats: per stream, the messages waiting, delayed
-- and leased now, the age of the oldest waiting one, and what started and
-- failed in the last minute (read from history through its BRIN index
-- history_by_time, so the cost follows the last minute's events, not the
-- table). Writes nothing.

CREATE FUNCTION durable.stream_stats(p_namespace text DEFAULT NULL)
RETURNS TABLE (namespace text, stream text, queued bigint, delayed bigint, running bigint,
               oldest_queued_age interval, started_last_minute bigint, failed_last_minute bigint)
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp SET jit = off AS $$
    WITH clock AS (SELECT durable.now() AS now),
    -- Messages: visible now (never leased, released, or a lease that expired) is queued; not yet
    -- visible and not leased (a delayed start, a retry's backoff, a timer) is delayed; leased is running.
    waiting AS (
        SELECT m.namespace, m.stream,
               pg_catalog.count(*) FILTER (WHERE m.visible_at <= c.now) AS queued,
               pg_catalog.count(*) FILTER (WHERE m.visible_at > c.now AND m.lease_token IS NULL) AS delayed,
               pg_catalog.count(*) FILTER (WHERE m.visible_at > c.now AND m.lease_token IS NOT NULL) AS running,
               c.now - pg_catalog.min(m.visible_at) FILTER (WHERE m.visible_at <= c.now) AS oldest_queued_age
        FROM durable.messages m, clock c
        WHERE p_namespace IS NULL OR m.namespace = p_namespace
        GROUP BY m.namespace, m.stream, c.now
    ),
    -- The last minute's history: runs started (on their task queue), activities scheduled (on
    -- <task_queue>-activity), and failures: activity attempts failed or lost, workflow tasks failed,
    -- runs failed. (Materialized: each event's stream is worked out once.)
    recent AS MATERIALIZED (
        SELECT h.namespace,
               CASE h.event_type
                   WHEN 'workflow_started' THEN h.data->>'task_queue'
                   WHEN 'activity_scheduled' THEN (h.data->>'task_queue') || '-activity'
                   WHEN 'activity_failed' THEN
                       (SELECT (s.data->>'task_queue') || '-activity' FROM durable.history s
                        WHERE s.namespace = h.namespace AND s.workflow_id = h.workflow_id
                          AND s.run_id = h.run_id AND s.seq = h.seq AND s.event_type = 'activity_scheduled'
                        LIMIT 1)
                   ELSE (SELECT w.task_queue FROM durable.workflows w
                         WHERE w.namespace = h.namespace AND w.workflow_id = h.workflow_id
                           AND w.run_id = h.run_id)
               END AS stream,
               h.event_type IN ('workflow_started', 'activity_scheduled') AS started
        FROM durable.history h, clock c
        WHERE h.created_at > c.now - interval '1 minute'
          AND h.event_type IN ('workflow_started', 'activity_scheduled', 'activity_failed',
                               'workflow_task_failed', 'workflow_failed')
          AND (p_namespace IS NULL OR h.namespace = p_namespace)
    ),
    recent_by_stream AS (
        SELECT r.namespace, r.stream,
               pg_catalog.count(*) FILTER (WHERE r.started) AS started,
               pg_catalog.count(*) FILTER (WHERE NOT r.started) AS failed
        FROM recent r
        WHERE r.stream IS NOT NULL
        GROUP BY r.namespace, r.stream
    )
    SELECT COALESCE(w.namespace, r.namespace), COALESCE(w.stream, r.stream),
           COALESCE(w.queued, 0), COALESCE(w.delayed, 0), COALESCE(w.running, 0), w.oldest_queued_age,
           COALESCE(r.started, 0), COALESCE(r.failed, 0)
    FROM waiting w
    FULL JOIN recent_by_stream r ON r.namespace = w.namespace AND r.stream = w.stream
    ORDER BY 1, 2
$$;
COMMENT ON FUNCTION durable.stream_stats(text) IS
    'Owner/DBA: per stream (of one namespace, or all): queued (visible now, an expired lease included), '
    'delayed (not yet visible: delayed starts, retry backoffs, timers), running (leased), the age of the oldest '
    'queued message, and in the last minute: started (runs started on a workflow task queue, activities '
    'scheduled on an activity stream) and failed (activity attempts failed or lost, workflow tasks and runs '
    'failed). One scan of durable.messages; history is read through the BRIN index history_by_time. No JIT: '
    'its compile time would exceed the query''s.';
