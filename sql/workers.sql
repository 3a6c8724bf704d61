-- workers.sql: the registry of workers. A worker registers itself at start,
-- heartbeats (every 10 s by default) and says when it stops; owners and DBAs
-- list them, and describe_workflow_v1 says when no live worker serves a
-- waiting workflow task. Writes durable.workers (a table of schema.sql).

CREATE FUNCTION durable._worker_is_live(p_last_seen_at timestamptz, p_heartbeat_interval interval,
                                        p_stopped_at timestamptz, p_now timestamptz)
RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT p_stopped_at IS NULL AND p_last_seen_at > p_now - 3 * p_heartbeat_interval
$$;
COMMENT ON FUNCTION durable._worker_is_live(timestamptz, interval, timestamptz, timestamptz) IS
    'Internal: a worker is live until it stops or misses 3 heartbeats.';

CREATE FUNCTION durable.heartbeat_worker_v1(p_namespace text, p_worker_id text, p_host text, p_pid integer,
                                            p_task_queue text, p_workflow_names text[], p_activity_names text[],
                                            p_heartbeat_interval interval, p_stopped boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_now timestamptz := durable.now();
    v_streams text[] := '{}';
    v_owner text;
BEGIN
    PERFORM durable._check_name('namespace', p_namespace);
    PERFORM durable._check_name('worker id', p_worker_id);
    PERFORM durable._check_name('task queue', p_task_queue);
    IF p_host IS NULL OR pg_catalog.length(p_host) > 1000 OR p_pid IS NULL
       OR p_workflow_names IS NULL OR p_activity_names IS NULL
       OR pg_catalog.cardinality(p_workflow_names) + pg_catalog.cardinality(p_activity_names) > 10000
       OR EXISTS (SELECT 1 FROM pg_catalog.unnest(p_workflow_names || p_activity_names) n
                  WHERE n IS NULL OR n = '' OR pg_catalog.length(n) > 1000)
       OR p_heartbeat_interval IS NULL OR p_heartbeat_interval <= interval '0'
       OR p_heartbeat_interval > interval '1 hour' OR p_stopped IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('invalid registration of worker %L: give a host, a pid, at most 10000 workflow and '
                             'activity names (each 1 to 1000 characters) and a heartbeat interval of at most '
                             '1 hour', left(p_worker_id, 80));
    END IF;
    -- A worker registers only what it may consume: its workflows' task queue,
    -- its activities' stream.
    IF pg_catalog.cardinality(p_workflow_names) > 0 THEN
        v_streams := v_streams || p_task_queue;
    END IF;
    IF pg_catalog.cardinality(p_activity_names) > 0 THEN
        v_streams := v_streams || (p_task_queue || '-activity');
    END IF;
    -- One that serves no name yet must still be a worker of a stream the role may consume.
    IF pg_catalog.cardinality(v_streams) = 0 AND NOT (durable._may_consume(p_namespace, p_task_queue)
                                           OR durable._may_consume(p_namespace, p_task_queue || '-activity')) THEN
        v_streams := ARRAY[p_task_queue];
    END IF;
    PERFORM durable._authorize(p_namespace, v_streams);
    INSERT INTO durable.workers AS k (worker_id, namespace, host, pid, task_queue, workflow_names, activity_names,
                                      role_name, heartbeat_interval, started_at, last_seen_at, stopped_at)
    VALUES (p_worker_id, p_namespace, p_host, p_pid, p_task_queue, p_workflow_names, p_activity_names,
            session_user, p_heartbeat_interval, v_now, v_now, CASE WHEN p_stopped THEN v_now END)
    ON CONFLICT (worker_id) DO UPDATE
    SET namespace = excluded.namespace, host = excluded.host, pid = excluded.pid,
        task_queue = excluded.task_queue, workflow_names = excluded.workflow_names,
        activity_names = excluded.activity_names, heartbeat_interval = excluded.heartbeat_interval,
        last_seen_at = excluded.last_seen_at, stopped_at = excluded.stopped_at,
        started_at = CASE WHEN k.stopped_at IS NULL THEN k.started_at ELSE excluded.started_at END
    WHERE k.role_name = session_user OR durable._is_engine_admin()
    RETURNING k.role_name INTO v_owner;
    IF v_owner IS NULL THEN
        -- Say nothing of the row that is there: another role's workers stay unseen.
        RAISE EXCEPTION USING ERRCODE = 'PD005',
            MESSAGE = pg_catalog.format('role %s may not register worker %L: another role registered that worker id',
                             session_user, left(p_worker_id, 80));
    END IF;
END $$;
COMMENT ON FUNCTION durable.heartbeat_worker_v1(text, text, text, integer, text, text[], text[], interval, boolean) IS
    'Worker: registers (or refreshes) the calling worker: where it runs, the task queue and the workflow and '
    'activity names it serves, and its heartbeat interval (it is live until it misses 3). p_stopped marks it '
    'stopped. A worker role registers only streams it may consume, and only its own worker ids.';

CREATE FUNCTION durable.list_workers(p_namespace text DEFAULT NULL)
RETURNS TABLE (worker_id text, namespace text, host text, pid integer, task_queue text, workflow_names text[],
               activity_names text[], role_name text, started_at timestamptz, last_seen_at timestamptz,
               stopped_at timestamptz, live boolean)
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT k.worker_id, k.namespace, k.host, k.pid, k.task_queue, k.workflow_names, k.activity_names, k.role_name,
           k.started_at, k.last_seen_at, k.stopped_at,
           durable._worker_is_live(k.last_seen_at, k.heartbeat_interval, k.stopped_at, n.now)
    FROM durable.workers k, (SELECT durable.now() AS now) n
    WHERE p_namespace IS NULL OR k.namespace = p_namespace
    ORDER BY k.namespace, k.task_queue, k.started_at, k.worker_id
$$;
COMMENT ON FUNCTION durable.list_workers(text) IS
    'Owner/DBA: the workers that registered themselves (of one namespace, or all), live or not: where each '
    'runs, what it serves, the role it logged in as, when it started and was last seen. Pruned with '
    'durable.prune.';

CREATE FUNCTION durable._live_worker_serves(p_namespace text, p_task_queue text, p_workflow_name text,
                                            p_now timestamptz)
RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM durable.workers k
                   WHERE k.namespace = p_namespace AND k.task_queue = p_task_queue
                     AND p_workflow_name = ANY (k.workflow_names)
                     AND durable._worker_is_live(k.last_seen_at, k.heartbeat_interval, k.stopped_at, p_now))
$$;
COMMENT ON FUNCTION durable._live_worker_serves(text, text, text, timestamptz) IS
    'Internal: whether a live worker serves workflow p_workflow_name on p_task_queue.';

-- A worker's own NOTIFY channel (sticky wake-ups): salted like the stream
-- channels, handed out only to the role that registered that worker id
-- while the worker is live.
CREATE FUNCTION durable.worker_channel(p_namespace text, p_worker_id text) RETURNS text
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'pgd_w_' || durable._salted_md5('worker/' || p_namespace || '/' || p_worker_id)
$$;
COMMENT ON FUNCTION durable.worker_channel(text, text) IS
    'The LISTEN channel NOTIFYed (payload <run_id>:<workflow_id>) when a run this worker holds in its cache '
    'gets new events (salted: only the owner computes it).';

CREATE FUNCTION durable.worker_channel_v1(p_namespace text, p_worker_id text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_yours boolean;
BEGIN
    PERFORM durable._authorize(p_namespace, '{}'::text[]);
    SELECT (k.role_name = session_user OR durable._is_engine_admin())
           AND durable._worker_is_live(k.last_seen_at, k.heartbeat_interval, k.stopped_at, durable.now())
    INTO v_yours
    FROM durable.workers k WHERE k.worker_id = p_worker_id AND k.namespace = p_namespace;
    IF NOT coalesce(v_yours, false) THEN
        -- Say nothing of the row that may be there: another role's workers stay unseen.
        RAISE EXCEPTION USING ERRCODE = 'PD005',
            MESSAGE = pg_catalog.format('role %s has no live worker %L in namespace %L: register it (heartbeat_worker_v1) '
                             'before asking for its channel', session_user, pg_catalog.left(p_worker_id, 80), p_namespace);
    END IF;
    RETURN durable.worker_channel(p_namespace, p_worker_id);
END $$;
COMMENT ON FUNCTION durable.worker_channel_v1(text, text) IS
    'Worker: the LISTEN channel of one of the caller''s own live workers (registered by this role, not '
    'stopped), on which it is told of new events of the runs it caches (PD005 otherwise).';
