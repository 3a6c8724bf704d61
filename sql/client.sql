-- client.sql: what a client does to workflows from outside: read their
-- outcome, state and history, list them, cancel and interrupt them.
-- (Starting is start_workflow_v1 in workflows.sql; signals are
-- send_signal_v1 and signal_workflow_v1 in signals.sql.) Writes durable.workflows.cancel_requested;
-- everything else only through _deliver/_close_run.

CREATE FUNCTION durable.workflow_outcome_v1(p_namespace text, p_workflow_id text)
RETURNS TABLE (run_id integer, status text, result text, error jsonb, workflow_name text, task_queue text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT w.run_id, w.status, w.result, w.error, w.workflow_name, w.task_queue
    FROM durable.workflows w
    WHERE w.namespace = p_namespace AND w.workflow_id = p_workflow_id
    ORDER BY w.run_id DESC LIMIT 1
$$;
COMMENT ON FUNCTION durable.workflow_outcome_v1(text, text) IS
    'Status, result, error, workflow name and task queue of the latest run of a workflow id (no row: '
    'unknown id).';

CREATE FUNCTION durable.workflow_outcomes_v1(p_namespace text, p_workflow_ids text[])
RETURNS TABLE (workflow_id text, run_id integer, status text, result text, error jsonb, workflow_name text,
               task_queue text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT i.id, w.run_id, w.status, w.result, w.error, w.workflow_name, w.task_queue
    FROM (SELECT DISTINCT u.id FROM pg_catalog.unnest(p_workflow_ids) u(id) WHERE u.id IS NOT NULL) i
    CROSS JOIN LATERAL (
        SELECT l.run_id, l.status, l.result, l.error, l.workflow_name, l.task_queue
        FROM durable.workflows l
        WHERE l.namespace = p_namespace AND l.workflow_id = i.id
        ORDER BY l.run_id DESC LIMIT 1) w
$$;
COMMENT ON FUNCTION durable.workflow_outcomes_v1(text, text[]) IS
    'workflow_outcome_v1 of many workflow ids in one query (handles woken together read at once): one row per '
    'distinct known id, with its latest run; an unknown id has no row.';

CREATE FUNCTION durable.describe_workflow_v1(p_namespace text, p_workflow_id text, p_run_id integer DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_wf durable.workflows;
    v_pending jsonb;
    v_task durable.messages;
    v_now timestamptz := durable.now();
BEGIN
    SELECT * INTO v_wf FROM durable.workflows w
    WHERE w.namespace = p_namespace AND w.workflow_id = p_workflow_id
      AND (p_run_id IS NULL OR w.run_id = p_run_id)
    ORDER BY w.run_id DESC LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- Durable calls still waiting for their outcome.
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
               'seq', s.seq,
               'type', CASE s.event_type WHEN 'activity_scheduled' THEN 'activity' WHEN 'timer_started' THEN 'timer'
                                         WHEN 'signal_wait_started' THEN 'condition' ELSE 'child' END,
               'activity_name', s.data->>'activity_name', 'signal_id', s.data->>'signal_id',
               'workflow_id', CASE WHEN s.event_type = 'child_started' THEN s.data->>'workflow_id' END,
               'task_queue', s.data->>'task_queue', 'since', s.created_at,
               'attempt', m.attempt, 'running', m.lease_token IS NOT NULL AND m.visible_at > v_now,
               'due_at', CASE WHEN m.kind = 'timer' THEN m.visible_at END))
           ORDER BY s.seq), '[]'::jsonb)
    INTO v_pending
    FROM durable.history s
    LEFT JOIN LATERAL (
        SELECT x.* FROM durable.messages x
        WHERE x.namespace = s.namespace AND x.workflow_id = s.workflow_id AND x.run_id = s.run_id
          AND x.kind IN ('activity', 'timer') AND (x.payload->>'seq')::integer = s.seq
        LIMIT 1) m ON true
    WHERE s.namespace = v_wf.namespace AND s.workflow_id = v_wf.workflow_id AND s.run_id = v_wf.run_id
      AND v_wf.status = 'running'
      AND (s.event_type IN ('activity_scheduled', 'timer_started', 'signal_wait_started')
           OR (s.event_type = 'child_started' AND (s.data->>'awaited')::boolean))
      AND NOT EXISTS (SELECT 1 FROM durable.history r
                      WHERE r.namespace = s.namespace AND r.workflow_id = s.workflow_id
                        AND r.run_id = s.run_id AND r.seq = s.seq
                        -- (an activity the workflow cancelled ends with a late, non-inbound event)
                        AND (r.inbound OR r.event_type = 'timer_cancelled' OR r.data ? 'late'));
    -- A workflow task nobody has claimed: say which worker it waits for.
    SELECT * INTO v_task FROM durable.messages m
    WHERE m.namespace = v_wf.namespace AND m.workflow_id = v_wf.workflow_id AND m.run_id = v_wf.run_id
      AND m.kind = 'workflow';
    IF FOUND AND v_wf.status = 'running' THEN
        v_pending := v_pending || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
            'type', 'workflow_task', 'workflow_name', v_task.name, 'task_queue', v_task.stream,
            'since', v_task.created_at, 'attempt', v_task.attempt,
            'running', v_task.lease_token IS NOT NULL AND v_task.visible_at > v_now,
            'waiting_for', CASE WHEN v_task.lease_token IS NULL AND v_task.visible_at = durable.held_back()
                                THEN pg_catalog.format('its turn in partition %L (workflow %L runs in it now)',
                                    v_wf.partition_key,
                                    (SELECT p.holder_workflow_id FROM durable.partitions p
                                     WHERE p.namespace = v_wf.namespace AND p.partition_key = v_wf.partition_key))
                                WHEN v_task.lease_token IS NULL AND v_task.visible_at > v_now
                                     AND v_task.attempt = 0 AND v_wf.last_event_id = 1
                                THEN pg_catalog.format('its start delay (due at %s)', v_task.visible_at)
                                WHEN v_task.lease_token IS NULL AND v_task.visible_at <= v_now
                                THEN pg_catalog.format('a worker serving workflow %L on task queue %L',
                                            v_task.name, v_task.stream)
                                     || CASE WHEN NOT durable._live_worker_serves(v_wf.namespace, v_task.stream,
                                                                                  v_task.name, v_now)
                                             THEN pg_catalog.format(' (no live worker serves workflow %L there)',
                                                         v_task.name) ELSE '' END END));
    END IF;
    RETURN pg_catalog.jsonb_build_object(
        'workflow_id', v_wf.workflow_id, 'run_id', v_wf.run_id, 'namespace', v_wf.namespace,
        'status', v_wf.status, 'result', v_wf.result, 'error', v_wf.error,
        'workflow_name', v_wf.workflow_name, 'task_queue', v_wf.task_queue, 'attempt', v_wf.attempt,
        'parent_workflow_id', v_wf.parent_workflow_id, 'parent_run_id', v_wf.parent_run_id,
        'cancel_requested', v_wf.cancel_requested,
        'priority', v_wf.priority, 'partition_key', v_wf.partition_key, 'dedup_id', v_wf.dedup_id,
        'created_at', v_wf.created_at, 'updated_at', v_wf.updated_at, 'closed_at', v_wf.closed_at,
        'pending', v_pending,
        'waiting_for', (SELECT p->>'waiting_for' FROM pg_catalog.jsonb_array_elements(v_pending) p
                        WHERE p->>'type' = 'workflow_task'),
        'last_task_failure', v_wf.last_task_failure,
        'task_failures', v_wf.task_failures,
        'children', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('workflow_id', c.workflow_id, 'run_id', c.run_id,
                                                                  'workflow_name', c.workflow_name, 'status', c.status)
                                               ORDER BY c.created_at), '[]'::jsonb)
                     FROM durable.workflows c
                     WHERE c.namespace = v_wf.namespace AND c.parent_workflow_id = v_wf.workflow_id
                       AND c.parent_run_id = v_wf.run_id));
END $$;
COMMENT ON FUNCTION durable.describe_workflow_v1(text, text, integer) IS
    'The state of a run (latest by default) as JSON: status, result, error, lineage, the durable calls it '
    'waits on (pending), what its unclaimed workflow task waits for (waiting_for: the worker it needs, and '
    '"no live worker serves workflow ..." when no live registered worker serves it; its turn in its partition; '
    'its start delay), its flow control options (priority, partition_key, dedup_id) and its last workflow '
    'task failure. NULL for an unknown workflow id.';

CREATE FUNCTION durable.workflow_history_v1(p_namespace text, p_workflow_id text, p_all_runs boolean DEFAULT false)
RETURNS TABLE (run_id integer, event_id integer, event_type text, seq integer, inbound boolean, data jsonb,
               created_at timestamptz)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT h.run_id, h.event_id, h.event_type, h.seq, h.inbound, h.data, h.created_at
    FROM durable.history h
    WHERE h.namespace = p_namespace AND h.workflow_id = p_workflow_id
      AND (p_all_runs OR h.run_id = (SELECT pg_catalog.max(w.run_id) FROM durable.workflows w
                                     WHERE w.namespace = p_namespace AND w.workflow_id = p_workflow_id))
    ORDER BY h.run_id, h.event_id
$$;
COMMENT ON FUNCTION durable.workflow_history_v1(text, text, boolean) IS
    'The history of the latest run of a workflow id (or of every run), in order.';

CREATE FUNCTION durable.workflow_runs_v1(p_namespace text, p_workflow_id text, p_all_runs boolean DEFAULT false)
RETURNS TABLE (run_id integer, workflow_name text, task_queue text, attempt integer, parent_workflow_id text,
               args text, status text, created_at timestamptz)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT w.run_id, w.workflow_name, w.task_queue, w.attempt, w.parent_workflow_id, w.args, w.status,
           w.created_at
    FROM durable.workflows w
    WHERE w.namespace = p_namespace AND w.workflow_id = p_workflow_id
      AND (p_all_runs OR w.run_id = (SELECT pg_catalog.max(x.run_id) FROM durable.workflows x
                                     WHERE x.namespace = p_namespace AND x.workflow_id = p_workflow_id))
    ORDER BY w.run_id
$$;
COMMENT ON FUNCTION durable.workflow_runs_v1(text, text, boolean) IS
    'The latest run of a workflow id (or every run), in order, with what its code was started with '
    '(name, task queue, attempt, parent, encoded args): with workflow_history_v1, what an exported history holds.';

CREATE FUNCTION durable.run_history_v1(p_namespace text, p_workflow_id text, p_run_id integer,
                                       p_lease_token uuid DEFAULT NULL)
RETURNS TABLE (event_id integer, event_type text, seq integer, inbound boolean, data jsonb, created_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_task durable.messages;
BEGIN
    PERFORM durable._authorize(p_namespace, '{}'::text[]);
    IF NOT durable._is_engine_admin() THEN
        -- A worker role reads only the history of a run whose workflow task it
        -- holds itself: p_lease_token must be that task's live lease.
        SELECT * INTO v_task FROM durable.messages m
        WHERE m.namespace = p_namespace AND m.workflow_id = p_workflow_id AND m.run_id = p_run_id
          AND m.kind = 'workflow' AND m.lease_token = p_lease_token AND m.visible_at > durable.now();
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'PD005',
                MESSAGE = pg_catalog.format('role %s holds no lease on a workflow task of %L run %s: it may not read that '
                                 'history', session_user, p_workflow_id, p_run_id);
        END IF;
        PERFORM durable._authorize(p_namespace, ARRAY[v_task.stream]);
    END IF;
    RETURN QUERY
    SELECT h.event_id, h.event_type, h.seq, h.inbound, h.data, h.created_at
    FROM durable.history h
    WHERE h.namespace = p_namespace AND h.workflow_id = p_workflow_id AND h.run_id = p_run_id
    ORDER BY h.event_id;
END $$;
COMMENT ON FUNCTION durable.run_history_v1(text, text, integer, uuid) IS
    'The whole history of one run, in order: what a worker replays after a cache miss. A worker role '
    'passes the lease token of the run''s workflow task it holds.';

CREATE FUNCTION durable.list_workflows_v1(p_namespace text, p_status text DEFAULT NULL,
                                          p_workflow_name text DEFAULT NULL, p_limit integer DEFAULT 100)
RETURNS TABLE (workflow_id text, run_id integer, workflow_name text, task_queue text, status text,
               created_at timestamptz, updated_at timestamptz)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT w.workflow_id, w.run_id, w.workflow_name, w.task_queue, w.status, w.created_at, w.updated_at
    FROM durable.workflows w
    WHERE w.namespace = p_namespace
      AND (p_status IS NULL OR w.status = p_status)
      AND (p_workflow_name IS NULL OR w.workflow_name = p_workflow_name)
    ORDER BY w.updated_at DESC, w.workflow_id, w.run_id DESC
    LIMIT greatest(coalesce(p_limit, 100), 0)
$$;
COMMENT ON FUNCTION durable.list_workflows_v1(text, text, text, integer) IS
    'Workflow runs of a namespace, newest activity first, optionally by status and name.';

CREATE FUNCTION durable.search_workflows_v1(
    p_namespace text, p_status text DEFAULT NULL, p_workflow_name text DEFAULT NULL,
    p_task_queue text DEFAULT NULL, p_created_after timestamptz DEFAULT NULL,
    p_created_before timestamptz DEFAULT NULL, p_id_prefix text DEFAULT NULL,
    p_before_created_at timestamptz DEFAULT NULL, p_before_workflow_id text DEFAULT NULL,
    p_before_run_id integer DEFAULT NULL, p_limit integer DEFAULT 50)
RETURNS TABLE (workflow_id text, run_id integer, workflow_name text, task_queue text, status text,
               created_at timestamptz, updated_at timestamptz, closed_at timestamptz)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    -- Where the page starts: below the cursor and below the time range's end,
    -- whichever is lower (one bound, so the index scan starts there).
    v_at timestamptz := coalesce(p_before_created_at, 'infinity'::timestamptz);
    v_id text := coalesce(p_before_workflow_id, '');
    v_run integer := coalesce(p_before_run_id, 0);
BEGIN
    IF p_created_before IS NOT NULL AND p_created_before <= v_at THEN
        -- (created_at, id, run) < (t, '', 0) is created_at < t: no id sorts below ''.
        v_at := p_created_before;
        v_id := '';
        v_run := 0;
    END IF;
    -- Keyset pagination: a page holds the runs strictly older than the cursor
    -- (p_before_*: the last row of the previous page), newest first, read
    -- through workflows_by_created whatever the table's size. The bounds are
    -- index conditions (never an OR), the other filters are checked per row.
    RETURN QUERY
    SELECT w.workflow_id, w.run_id, w.workflow_name, w.task_queue, w.status, w.created_at, w.updated_at,
           w.closed_at
    FROM durable.workflows w
    WHERE w.namespace = p_namespace
      AND (w.created_at, w.workflow_id, w.run_id) < (v_at, v_id, v_run)
      AND w.created_at >= coalesce(p_created_after, '-infinity'::timestamptz)
      AND (p_status IS NULL OR w.status = p_status)
      AND (p_workflow_name IS NULL OR w.workflow_name = p_workflow_name)
      AND (p_task_queue IS NULL OR w.task_queue = p_task_queue)
      AND (p_id_prefix IS NULL OR pg_catalog.starts_with(w.workflow_id, p_id_prefix))
    ORDER BY w.created_at DESC, w.workflow_id DESC, w.run_id DESC
    LIMIT LEAST(GREATEST(coalesce(p_limit, 50), 0), 1000);
END $$;
COMMENT ON FUNCTION durable.search_workflows_v1(text, text, text, text, timestamptz, timestamptz, text,
                                                timestamptz, text, integer, integer) IS
    'Workflow runs of a namespace, newest created first, a page (at most 1000) at a time: optionally by '
    'status, workflow name, task queue, creation time range [p_created_after, p_created_before) and workflow '
    'id prefix. The next page passes the last row''s created_at, workflow_id and run_id as p_before_* '
    '(keyset pagination through the index workflows_by_created: as fast on page 1000 as on page 1).';

-- The running run of a workflow id, locked; NULLs when the workflow has
-- ended; PD003 when the id is unknown.
CREATE FUNCTION durable._running_run(p_namespace text, p_workflow_id text) RETURNS durable.workflows
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_wf durable.workflows;
BEGIN
    SELECT * INTO v_wf FROM durable.workflows
    WHERE namespace = p_namespace AND workflow_id = p_workflow_id AND status = 'running'
    FOR UPDATE;
    IF NOT FOUND AND NOT EXISTS (SELECT 1 FROM durable.workflows
                                 WHERE namespace = p_namespace AND workflow_id = p_workflow_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'PD003',
            MESSAGE = pg_catalog.format('workflow %L not found in namespace %L', p_workflow_id, p_namespace);
    END IF;
    RETURN v_wf;
END $$;
COMMENT ON FUNCTION durable._running_run(text, text) IS
    'Internal: the running run of a workflow id, locked (NULLs if it ended; PD003 for an unknown id).';

CREATE FUNCTION durable.cancel_workflow_v1(p_namespace text, p_workflow_id text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_wf durable.workflows;
    v_child durable.workflows;
BEGIN
    v_wf := durable._running_run(p_namespace, p_workflow_id);
    IF v_wf.run_id IS NULL THEN
        RETURN false;
    END IF;
    IF v_wf.cancel_requested THEN
        RETURN false;
    END IF;
    UPDATE durable.workflows SET cancel_requested = true
    WHERE namespace = p_namespace AND workflow_id = p_workflow_id AND run_id = v_wf.run_id;
    PERFORM durable._deliver(p_namespace, p_workflow_id, v_wf.run_id, 'cancel_requested', NULL, '{}'::jsonb);
    -- Awaited children are cancelled too.
    FOR v_child IN SELECT * FROM durable.workflows c
                   WHERE c.namespace = p_namespace AND c.parent_workflow_id = p_workflow_id
                     AND c.parent_run_id = v_wf.run_id AND c.parent_seq IS NOT NULL AND c.status = 'running'
    LOOP
        PERFORM durable.cancel_workflow_v1(p_namespace, v_child.workflow_id);
    END LOOP;
    RETURN true;
END $$;
COMMENT ON FUNCTION durable.cancel_workflow_v1(text, text) IS
    'Requests cooperative cancellation: wakes the workflow with cancel_requested and cancels its awaited '
    'children. Returns false if it is not running or already cancelling; PD003 for an unknown id.';

CREATE FUNCTION durable.interrupt_workflow_v1(p_namespace text, p_workflow_id text, p_reason text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_wf durable.workflows;
BEGIN
    v_wf := durable._running_run(p_namespace, p_workflow_id);
    IF v_wf.run_id IS NULL THEN
        RETURN false;
    END IF;
    PERFORM durable._close_run(v_wf, pg_catalog.jsonb_build_object('type', 'interrupted', 'reason', p_reason,
        'error', pg_catalog.jsonb_build_object('type', 'WorkflowInterruptedError', 'detail', coalesce(p_reason, 'interrupted'))));
    RETURN true;
END $$;
COMMENT ON FUNCTION durable.interrupt_workflow_v1(text, text, text) IS
    'Stops a running workflow hard: status interrupted, its queued work dropped, late activity results '
    'refused. Returns false if it was not running; PD003 for an unknown id.';
