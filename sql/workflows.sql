-- (Over 450 lines: a run's lifecycle and the workflow task protocol share one lock order.)
-- workflows.sql: workflow runs, their history and their workflow tasks.
-- Writes durable.workflows, durable.history and the 'workflow' messages
-- (and drops a closed run's pending messages). A workflow task is the
-- message that says "this run has new inbound events": at most one per
-- workflow, claimed by a worker that replays the run and answers with
-- complete_workflow_task_v1 — one call that appends the commands' events,
-- schedules activities (activities.sql), timers (timers.sql), waits
-- (signals.sql) and children, and closes or continues the run.
--
-- Lock order: the workflow row first, then its messages (the one exception,
-- a due timer being fired, is explained in timers.sql).

CREATE FUNCTION durable.closed_channel(p_namespace text) RETURNS text
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'pgd_c_' || durable._salted_md5('closed/' || p_namespace)
$$;
COMMENT ON FUNCTION durable.closed_channel(text) IS
    'The LISTEN channel NOTIFYed, with the workflow id as payload, when a run of the namespace closes '
    '(handle.result() waits on it: one LISTEN serves every handle). Salted: only the owner computes it.';

CREATE FUNCTION durable._append_event(p_namespace text, p_workflow_id text, p_run_id integer,
                                      p_event_type text, p_seq integer, p_inbound boolean,
                                      p_data jsonb DEFAULT '{}'::jsonb) RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_now timestamptz := durable.now();
    v_event_id integer;
BEGIN
    -- The row lock this UPDATE takes orders all appends of a run: event ids
    -- become visible in commit order, so "events after N" never skips one.
    UPDATE durable.workflows
    SET last_event_id = last_event_id + 1,
        last_inbound_event_id = CASE WHEN p_inbound THEN last_event_id + 1 ELSE last_inbound_event_id END,
        updated_at = v_now
    WHERE namespace = p_namespace AND workflow_id = p_workflow_id AND run_id = p_run_id
    RETURNING last_event_id INTO v_event_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'PD003',
            MESSAGE = pg_catalog.format('workflow %L run %s not found in namespace %L', p_workflow_id, p_run_id, p_namespace);
    END IF;
    INSERT INTO durable.history (namespace, workflow_id, run_id, event_id, event_type, seq, inbound, data, created_at)
    VALUES (p_namespace, p_workflow_id, p_run_id, v_event_id, p_event_type, p_seq, p_inbound,
            coalesce(p_data, '{}'::jsonb), v_now);
    RETURN v_event_id;
END $$;
COMMENT ON FUNCTION durable._append_event(text, text, integer, text, integer, boolean, jsonb) IS
    'Internal: appends one history event to a run (inbound events are replayed into workflow code).';

CREATE FUNCTION durable._ensure_workflow_task(p_namespace text, p_workflow_id text, p_run_id integer,
                                              p_task_queue text, p_workflow_name text,
                                              p_delay interval DEFAULT interval '0',
                                              p_notify boolean DEFAULT true,
                                              p_sticky text DEFAULT NULL,
                                              p_priority smallint DEFAULT 0) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_now timestamptz := durable.now();
BEGIN
    INSERT INTO durable.messages AS m (namespace, stream, kind, name, workflow_id, run_id, priority, visible_at,
                                       created_at)
    VALUES (p_namespace, p_task_queue, 'workflow', p_workflow_name, p_workflow_id, p_run_id,
            coalesce(p_priority, 0), v_now + p_delay, v_now)
    ON CONFLICT (namespace, workflow_id) WHERE kind = 'workflow' DO UPDATE
        -- A task an earlier run left behind (_close_run skips a task a claim
        -- holds locked) would starve this run: take it over, lease and all.
        SET run_id = EXCLUDED.run_id, stream = EXCLUDED.stream, name = EXCLUDED.name,
            attempt = 0, lease_owner = NULL, lease_token = NULL, priority = EXCLUDED.priority,
            visible_at = EXCLUDED.visible_at, created_at = EXCLUDED.created_at
        WHERE m.run_id IS DISTINCT FROM EXCLUDED.run_id;
    IF FOUND AND p_notify THEN
        -- The worker holding the run in its cache first (it takes the task by id), then the
        -- stream (the backstop when that worker is gone: a stale sticky_worker costs nothing).
        -- The stream's NOTIFY then names the run too, so that the sticky worker's claim loop
        -- can leave it to the take by id (other workers wake as ever).
        IF p_sticky IS NOT NULL THEN
            PERFORM durable._notify(durable.worker_channel(p_namespace, p_sticky), p_run_id || ':' || p_workflow_id);
            PERFORM durable._notify(durable.stream_channel(p_namespace, p_task_queue), p_run_id || ':' || p_workflow_id);
        ELSE
            PERFORM durable._notify_stream(p_namespace, p_task_queue);
        END IF;
    END IF;
END $$;
COMMENT ON FUNCTION durable._ensure_workflow_task(text, text, integer, text, text, interval, boolean, text, smallint) IS
    'Internal: makes sure the run has a pending workflow task (new events fold into an existing one; '
    'a task an earlier run of the id left behind is taken over). p_notify false: the caller leases it. '
    'p_sticky: the worker that holds the run in its cache, NOTIFYed on its own channel (payload '
    '<run_id>:<workflow_id>) before the stream (whose NOTIFY then carries the same payload). p_priority: the '
    'run''s (claims take higher priorities first).';

-- Appends an inbound event to a running run and wakes it. Returns false
-- (and records nothing) when the run is no longer running or the durable
-- call was already resolved.
CREATE FUNCTION durable._deliver(p_namespace text, p_workflow_id text, p_run_id integer,
                                 p_event_type text, p_seq integer, p_data jsonb,
                                 p_notify boolean DEFAULT true) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_wf durable.workflows;
BEGIN
    SELECT * INTO v_wf FROM durable.workflows
    WHERE namespace = p_namespace AND workflow_id = p_workflow_id AND run_id = p_run_id
    FOR UPDATE;
    IF NOT FOUND OR v_wf.status <> 'running' THEN
        RETURN false;
    END IF;
    IF p_seq IS NOT NULL AND EXISTS (
        SELECT 1 FROM durable.history h
        WHERE h.namespace = p_namespace AND h.workflow_id = p_workflow_id AND h.run_id = p_run_id
          AND h.seq = p_seq AND h.inbound) THEN
        RETURN false;
    END IF;
    PERFORM durable._append_event(p_namespace, p_workflow_id, p_run_id, p_event_type, p_seq, true, p_data);
    PERFORM durable._ensure_workflow_task(p_namespace, p_workflow_id, p_run_id,
                                          v_wf.task_queue, v_wf.workflow_name, interval '0', p_notify,
                                          v_wf.sticky_worker, v_wf.priority);
    RETURN true;
END $$;
COMMENT ON FUNCTION durable._deliver(text, text, integer, text, integer, jsonb, boolean) IS
    'Internal: records an inbound event (a durable call''s outcome, a signal, a cancel) and wakes the run.';

CREATE FUNCTION durable._new_run(p_namespace text, p_workflow_id text, p_run_id integer,
                                 p_workflow_name text, p_task_queue text, p_args text,
                                 p_attempt integer, p_retry jsonb, p_parent_workflow_id text,
                                 p_parent_run_id integer, p_parent_seq integer,
                                 p_delay interval DEFAULT interval '0', p_headers jsonb DEFAULT NULL,
                                 p_priority smallint DEFAULT 0, p_partition_key text DEFAULT NULL,
                                 p_dedup_id text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_now timestamptz := durable.now();
BEGIN
    PERFORM durable._check_headers('workflow', p_headers);
    -- A concurrent start of the same id (the run id, or a second running run)
    -- wins the unique index: this one then does nothing and says so.
    INSERT INTO durable.workflows (namespace, workflow_id, run_id, workflow_name, task_queue, status, args,
                                   attempt, retry, parent_workflow_id, parent_run_id, parent_seq,
                                   created_at, updated_at, priority, partition_key, dedup_id)
    VALUES (p_namespace, p_workflow_id, p_run_id, p_workflow_name, p_task_queue, 'running', p_args,
            p_attempt, p_retry, p_parent_workflow_id, p_parent_run_id, p_parent_seq, v_now, v_now,
            coalesce(p_priority, 0), p_partition_key, p_dedup_id)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM durable._append_event(p_namespace, p_workflow_id, p_run_id, 'workflow_started', NULL, true,
        pg_catalog.jsonb_build_object('workflow_name', p_workflow_name, 'task_queue', p_task_queue,
                           'attempt', p_attempt, 'parent_workflow_id', p_parent_workflow_id)
        -- Trace context (W3C traceparent, ...): only a traced start has it.
        || CASE WHEN p_headers IS NULL THEN '{}'::jsonb ELSE pg_catalog.jsonb_build_object('headers', p_headers) END);
    PERFORM durable._ensure_workflow_task(p_namespace, p_workflow_id, p_run_id, p_task_queue,
                                          p_workflow_name, p_delay, p_priority => coalesce(p_priority, 0::smallint));
    RETURN true;
END $$;
COMMENT ON FUNCTION durable._new_run(text, text, integer, text, text, text, integer, jsonb, text, integer, integer, interval, jsonb, smallint, text, text) IS
    'Internal: creates a running run with its workflow_started event (p_headers, the caller''s trace context, '
    'in its data when given) and first workflow task (due after p_delay, at p_priority); false (nothing done) '
    'when a concurrent start of the id (or of its dedup id) got there first.';

-- Starts a workflow. p_id_reuse: 'reject' (a running workflow with this id
-- is an error; a closed one gets a new run) or 'return_existing' (the
-- latest run, running or closed, is returned as is). Flow control
-- (flow_control.sql): p_dedup_id names at most one running run (a second
-- start is refused, or returns that run with 'return_existing'); a run with
-- a p_partition_key waits for the runs of its key started before it to
-- close; p_start_delay makes its first workflow task due later; p_priority
-- orders its tasks in the claims (higher first).
CREATE FUNCTION durable._start_run(p_namespace text, p_workflow_id text, p_workflow_name text,
                                   p_task_queue text, p_args text, p_retry jsonb, p_id_reuse text,
                                   p_parent_workflow_id text, p_parent_run_id integer,
                                   p_parent_seq integer, p_headers jsonb DEFAULT NULL,
                                   p_priority integer DEFAULT 0, p_partition_key text DEFAULT NULL,
                                   p_dedup_id text DEFAULT NULL, p_start_delay interval DEFAULT NULL)
RETURNS TABLE (run_workflow_id text, run_id integer, started boolean)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_latest durable.workflows;
    v_dup durable.workflows;
    v_delay interval := coalesce(p_start_delay, interval '0');
BEGIN
    PERFORM durable._check_name('workflow id', p_workflow_id);
    PERFORM durable._check_name('workflow name', p_workflow_name);
    PERFORM durable._check_name('task queue', p_task_queue);
    IF p_args IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004', MESSAGE = 'workflow args must not be NULL: pass a JSON payload';
    END IF;
    PERFORM durable._check_payload(p_args);
    IF p_id_reuse IS NULL OR p_id_reuse NOT IN ('reject', 'return_existing') THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('unknown id_reuse %L: use ''reject'' or ''return_existing''', p_id_reuse);
    END IF;
    IF p_priority IS NULL OR p_priority NOT BETWEEN -32768 AND 32767 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('priority %s is out of range: give an integer from -32768 to 32767 '
                                        '(higher runs first; 0 is the default)', coalesce(p_priority::text, 'NULL'));
    END IF;
    IF p_partition_key IS NOT NULL THEN
        PERFORM durable._check_name('partition key', p_partition_key);
    END IF;
    IF p_dedup_id IS NOT NULL THEN
        PERFORM durable._check_name('dedup id', p_dedup_id);
    END IF;
    IF v_delay < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('negative start delay %s: give a delay of zero or more', v_delay);
    END IF;
    -- No lock: two starts of one id (or of one dedup id) race on the unique indexes (_new_run),
    -- and the loser reads them again. (An advisory lock would be one a worker role could learn
    -- from pg_locks and hold.)
    LOOP
        IF p_dedup_id IS NOT NULL THEN
            SELECT * INTO v_dup FROM durable.workflows w
            WHERE w.namespace = p_namespace AND w.dedup_id = p_dedup_id AND w.status = 'running';
            IF FOUND AND p_id_reuse = 'return_existing' THEN
                RETURN QUERY SELECT v_dup.workflow_id, v_dup.run_id, false;
                RETURN;
            END IF;
            IF FOUND THEN
                RAISE EXCEPTION USING ERRCODE = 'PD002',
                    MESSAGE = pg_catalog.format('dedup id %L is taken by running workflow %L in namespace %L '
                                                '(run %s); wait for it to close, or start with '
                                                'id_reuse="return_existing" to get its handle',
                                                p_dedup_id, v_dup.workflow_id, p_namespace, v_dup.run_id);
            END IF;
        END IF;
        SELECT * INTO v_latest FROM durable.workflows w
        WHERE w.namespace = p_namespace AND w.workflow_id = p_workflow_id
        ORDER BY w.run_id DESC LIMIT 1;
        -- A child never takes over the id of another workflow (another name or
        -- task queue): a worker must not rewrite what that id's handle returns.
        IF FOUND AND p_parent_workflow_id IS NOT NULL
           AND (v_latest.workflow_name <> p_workflow_name OR v_latest.task_queue <> p_task_queue) THEN
            RAISE EXCEPTION USING ERRCODE = 'PD002',
                MESSAGE = pg_catalog.format('workflow id %L belongs to workflow %L on task queue %L: a child workflow %L on '
                                 'task queue %L cannot take it over; pick another id', p_workflow_id,
                                 v_latest.workflow_name, v_latest.task_queue, p_workflow_name, p_task_queue);
        END IF;
        IF FOUND AND p_id_reuse = 'return_existing' THEN
            RETURN QUERY SELECT v_latest.workflow_id, v_latest.run_id, false;
            RETURN;
        END IF;
        IF FOUND AND v_latest.status = 'running' THEN
            RAISE EXCEPTION USING ERRCODE = 'PD002',
                MESSAGE = pg_catalog.format('workflow id %L is already running in namespace %L (run %s); '
                                 'wait for it, pick another id, or start with id_reuse="return_existing"',
                                 p_workflow_id, p_namespace, v_latest.run_id);
        END IF;
        IF durable._new_run(p_namespace, p_workflow_id, coalesce(v_latest.run_id, 0) + 1, p_workflow_name,
                            p_task_queue, p_args, 1, p_retry, p_parent_workflow_id, p_parent_run_id,
                            p_parent_seq, v_delay, p_headers, p_priority::smallint, p_partition_key,
                            p_dedup_id) THEN
            IF p_partition_key IS NOT NULL THEN
                PERFORM durable._partition_join(p_namespace, p_partition_key, p_workflow_id,
                                                coalesce(v_latest.run_id, 0) + 1, durable.now() + v_delay);
            END IF;
            RETURN QUERY SELECT p_workflow_id, coalesce(v_latest.run_id, 0) + 1, true;
            RETURN;
        END IF;
    END LOOP;
END $$;
COMMENT ON FUNCTION durable._start_run(text, text, text, text, text, jsonb, text, text, integer, integer, jsonb, integer, text, text, interval) IS
    'Internal: starts a run (a workflow or a child) under the id_reuse and dedup rules, with its flow control '
    'options; p_headers (trace context) go into its workflow_started event. Returns the workflow id of the run '
    '(another one for a dedup id taken, with return_existing), its run id and whether it was started.';

CREATE FUNCTION durable._start_workflow(p_namespace text, p_workflow_id text, p_workflow_name text,
                                        p_task_queue text, p_args text, p_retry jsonb, p_id_reuse text,
                                        p_parent_workflow_id text, p_parent_run_id integer,
                                        p_parent_seq integer, p_headers jsonb DEFAULT NULL)
RETURNS TABLE (run_id integer, started boolean)
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.run_id, s.started
    FROM durable._start_run(p_namespace, p_workflow_id, p_workflow_name, p_task_queue, p_args, p_retry,
                            p_id_reuse, p_parent_workflow_id, p_parent_run_id, p_parent_seq, p_headers) s
$$;
COMMENT ON FUNCTION durable._start_workflow(text, text, text, text, text, jsonb, text, text, integer, integer, jsonb) IS
    'Internal: starts a run (a workflow or a child) under the id_reuse rule, without flow control options '
    '(durable._start_run); p_headers (trace context) go into its workflow_started event.';

CREATE FUNCTION durable.start_workflow_v1(p_namespace text, p_workflow_id text, p_workflow_name text,
                                          p_task_queue text, p_args text, p_retry jsonb DEFAULT NULL,
                                          p_id_reuse text DEFAULT 'reject', p_headers jsonb DEFAULT NULL)
RETURNS TABLE (run_id integer, started boolean)
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.run_id, s.started
    FROM durable._start_workflow(p_namespace, p_workflow_id, p_workflow_name, p_task_queue, p_args,
                                 p_retry, p_id_reuse, NULL, NULL, NULL, p_headers) s
$$;
COMMENT ON FUNCTION durable.start_workflow_v1(text, text, text, text, text, jsonb, text, jsonb) IS
    'Starts workflow p_workflow_id (PD002 if it is running and p_id_reuse = ''reject''). p_headers: string '
    'headers (a trace context) kept in the workflow_started event for the workers. '
    'Returns the run id and whether a new run was started.';

CREATE FUNCTION durable.start_workflow_v2(p_namespace text, p_workflow_id text, p_workflow_name text,
                                          p_task_queue text, p_args text, p_retry jsonb DEFAULT NULL,
                                          p_id_reuse text DEFAULT 'reject', p_headers jsonb DEFAULT NULL,
                                          p_priority integer DEFAULT 0, p_partition_key text DEFAULT NULL,
                                          p_dedup_id text DEFAULT NULL, p_start_delay interval DEFAULT NULL)
RETURNS TABLE (workflow_id text, run_id integer, started boolean)
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.run_workflow_id, s.run_id, s.started
    FROM durable._start_run(p_namespace, p_workflow_id, p_workflow_name, p_task_queue, p_args,
                            p_retry, p_id_reuse, NULL, NULL, NULL, p_headers, p_priority, p_partition_key,
                            p_dedup_id, p_start_delay) s
$$;
COMMENT ON FUNCTION durable.start_workflow_v2(text, text, text, text, text, jsonb, text, jsonb, integer, text, text, interval) IS
    'Starts workflow p_workflow_id as start_workflow_v1 does, with flow control options: p_priority (higher '
    'first, FIFO within a priority), p_partition_key (runs of one key run one at a time, in start order), '
    'p_dedup_id (PD002 while a run with it is running, or that run with p_id_reuse = ''return_existing''), '
    'p_start_delay (its first workflow task is due later). Returns the workflow id of the run (the dedup '
    'holder''s, when it was returned), its run id and whether a new run was started.';

-- Starts many workflows in one transaction: the client's group commit of
-- starts. Each item {workflow_id, workflow_name, task_queue, args (the
-- payload as a JSON string), retry, id_reuse} runs in a subtransaction of its
-- own, so a duplicate id or a bad argument fails that item only (its SQLSTATE
-- and message come back) and the others start. Items run in workflow id order
-- (then batch order): two batches starting the same ids take their locks in
-- one order and never deadlock, and two starts of one id in one batch behave
-- as two starts made one after the other. An error the whole transaction must
-- take (class 40: deadlock, serialization; 53, 57, 58, XX) is not caught:
-- the batch rolls back, nothing of it applied, and may be made again. A
-- batch with partition keys runs in batch order instead: that is its runs'
-- start order in their partitions.
CREATE FUNCTION durable.start_workflows_v2(p_namespace text, p_starts jsonb)
RETURNS TABLE (ordinality integer, workflow_id text, run_id integer, started boolean, error_sqlstate text,
               error_message text)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_item record;
    v_workflow_id text;
    v_run_id integer;
    v_partitioned boolean;
    v_started boolean;
    v_state text;
    v_message text;
BEGIN
    IF p_starts IS NULL OR pg_catalog.jsonb_typeof(p_starts) <> 'array' THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = 'p_starts must be a JSON array of starts ({workflow_id, workflow_name, task_queue, args, ...})';
    END IF;
    IF pg_catalog.jsonb_array_length(p_starts) > 1000 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('a batch of %s starts is over the limit of 1000: split it into batches of at most 1000',
                             pg_catalog.jsonb_array_length(p_starts));
    END IF;
    v_partitioned := EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(p_starts) e
                             WHERE pg_catalog.jsonb_typeof(e.value) = 'object' AND pg_catalog.jsonb_typeof(e.value->'partition_key') = 'string');
    FOR v_item IN SELECT e.value AS start, e.ord::integer AS ord
                  FROM pg_catalog.jsonb_array_elements(p_starts) WITH ORDINALITY e(value, ord)
                  ORDER BY (CASE WHEN pg_catalog.jsonb_typeof(e.value) = 'object' AND NOT v_partitioned
                                 THEN e.value->>'workflow_id' END) COLLATE "C",
                           e.ord LOOP
        BEGIN
            IF pg_catalog.jsonb_typeof(v_item.start) IS DISTINCT FROM 'object' THEN
                RAISE EXCEPTION USING ERRCODE = 'PD004',
                    MESSAGE = pg_catalog.format('start %s is not a JSON object: give {workflow_id, workflow_name, task_queue, '
                                     'args}', v_item.ord);
            END IF;
            IF pg_catalog.jsonb_typeof(v_item.start->'args') NOT IN ('string', 'null') THEN
                RAISE EXCEPTION USING ERRCODE = 'PD004',
                    MESSAGE = pg_catalog.format('the args of start %s must be the JSON payload as a string, not a JSON %s',
                                     v_item.ord, pg_catalog.jsonb_typeof(v_item.start->'args'));
            END IF;
            IF pg_catalog.jsonb_typeof(v_item.start->'retry') NOT IN ('object', 'null') THEN
                RAISE EXCEPTION USING ERRCODE = 'PD004',
                    MESSAGE = pg_catalog.format('the retry of start %s must be a JSON object or null, not a JSON %s',
                                     v_item.ord, pg_catalog.jsonb_typeof(v_item.start->'retry'));
            END IF;
            IF pg_catalog.jsonb_typeof(v_item.start->'priority') NOT IN ('number', 'null')
               OR pg_catalog.jsonb_typeof(v_item.start->'start_delay_seconds') NOT IN ('number', 'null')
               OR pg_catalog.jsonb_typeof(v_item.start->'partition_key') NOT IN ('string', 'null')
               OR pg_catalog.jsonb_typeof(v_item.start->'dedup_id') NOT IN ('string', 'null') THEN
                RAISE EXCEPTION USING ERRCODE = 'PD004',
                    MESSAGE = pg_catalog.format('start %s: priority and start_delay_seconds must be JSON numbers, '
                                     'partition_key and dedup_id JSON strings (or null)', v_item.ord);
            END IF;
            IF (v_item.start->>'priority')::numeric NOT BETWEEN -32768 AND 32767
               OR (v_item.start->>'priority')::numeric <> pg_catalog.trunc((v_item.start->>'priority')::numeric) THEN
                RAISE EXCEPTION USING ERRCODE = 'PD004',
                    MESSAGE = pg_catalog.format('priority %s is out of range: give an integer from -32768 to 32767 '
                                     '(higher runs first; 0 is the default)', v_item.start->>'priority');
            END IF;
            SELECT s.run_workflow_id, s.run_id, s.started INTO v_workflow_id, v_run_id, v_started
            FROM durable._start_run(p_namespace, v_item.start->>'workflow_id', v_item.start->>'workflow_name',
                                    v_item.start->>'task_queue', v_item.start->>'args',
                                    nullif(v_item.start->'retry', 'null'::jsonb),
                                    coalesce(v_item.start->>'id_reuse', 'reject'), NULL, NULL, NULL,
                                    nullif(v_item.start->'headers', 'null'::jsonb),
                                    coalesce((v_item.start->>'priority')::integer, 0),
                                    v_item.start->>'partition_key', v_item.start->>'dedup_id',
                                    pg_catalog.make_interval(secs => (v_item.start->>'start_delay_seconds')::float8)) s;
            ordinality := v_item.ord;
            workflow_id := v_workflow_id;
            run_id := v_run_id;
            started := v_started;
            error_sqlstate := NULL;
            error_message := NULL;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
            IF left(v_state, 2) IN ('40', '53', '57', '58', 'XX') THEN
                RAISE;
            END IF;
            ordinality := v_item.ord;
            workflow_id := NULL;
            run_id := NULL;
            started := false;
            error_sqlstate := v_state;
            error_message := v_message;
        END;
        RETURN NEXT;
    END LOOP;
END $$;
COMMENT ON FUNCTION durable.start_workflows_v2(text, jsonb) IS
    'Starts each item of p_starts (a JSON array of at most 1000 {workflow_id, workflow_name, task_queue, args, '
    'retry, id_reuse, headers, priority, partition_key, dedup_id, start_delay_seconds}) as start_workflow_v2 '
    'would, each in a subtransaction of its own: one row per item (ordinality = its 1-based position; rows in '
    'workflow id order, or batch order when some have a partition key) with its workflow id, run id and whether '
    'it started, or the SQLSTATE and message of the error that failed that item alone. Serialization failures and '
    'deadlocks roll the whole batch back.';

CREATE FUNCTION durable.start_workflows_v1(p_namespace text, p_starts jsonb)
RETURNS TABLE (ordinality integer, run_id integer, started boolean, error_sqlstate text, error_message text)
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.ordinality, s.run_id, s.started, s.error_sqlstate, s.error_message
    FROM durable.start_workflows_v2(p_namespace, p_starts) s
$$;
COMMENT ON FUNCTION durable.start_workflows_v1(text, jsonb) IS
    'Starts each item of p_starts (a JSON array of at most 1000 {workflow_id, workflow_name, task_queue, args, '
    'retry, id_reuse}) as start_workflow_v1 would, each in a subtransaction of its own: one row per item '
    '(ordinality = its 1-based position; rows in workflow id order) with its run id and whether it started, or '
    'the SQLSTATE and message of the error that failed that item alone. Serialization failures and deadlocks '
    'roll the whole batch back. (start_workflows_v2 also returns the workflow id and takes flow control options.)';

-- Closes a run. p_command: {"type": complete|fail|cancelled|continue_as_new,
-- "result"|"error"|"args"}. Continues, retries, or reports to the parent.
CREATE FUNCTION durable._close_run(p_wf durable.workflows, p_command jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_type text := p_command->>'type';
    v_status text;
    v_retrying boolean := false;
    v_now timestamptz := durable.now();
BEGIN
    v_status := CASE v_type WHEN 'complete' THEN 'completed' WHEN 'fail' THEN 'failed'
                            WHEN 'cancelled' THEN 'cancelled' WHEN 'continue_as_new' THEN 'continued'
                            WHEN 'interrupted' THEN 'interrupted' END;
    IF v_type = 'fail' AND p_wf.retry IS NOT NULL
       AND durable.should_retry_v1(p_wf.retry, p_wf.attempt, p_command->'error') THEN
        v_retrying := true;
    END IF;
    PERFORM durable._append_event(p_wf.namespace, p_wf.workflow_id, p_wf.run_id,
        CASE v_status WHEN 'completed' THEN 'workflow_completed' WHEN 'failed' THEN 'workflow_failed'
                      WHEN 'cancelled' THEN 'workflow_cancelled' WHEN 'interrupted' THEN 'workflow_interrupted'
                      ELSE 'workflow_continued_as_new' END,
        NULL, false,
        pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('result', p_command->'result', 'error', p_command->'error',
                                             'reason', p_command->'reason', 'will_retry', v_retrying)));
    UPDATE durable.workflows
    SET status = v_status, result = p_command->>'result', error = p_command->'error',
        closed_at = v_now, updated_at = v_now
    WHERE namespace = p_wf.namespace AND workflow_id = p_wf.workflow_id AND run_id = p_wf.run_id;
    -- A workflow closing for good hands its partition key to the next run in line (before its
    -- messages are locked below: lock order run, partition, messages).
    IF p_wf.partition_key IS NOT NULL AND NOT (v_type = 'continue_as_new' OR v_retrying) THEN
        PERFORM durable._partition_leave(p_wf);
    END IF;
    -- Nothing of a closed run runs again: its queued activities, timers and
    -- its workflow task go (a leased activity's late completion is refused).
    -- A running activity the workflow cancelled stays until its late outcome is recorded (unless
    -- the run is interrupted: then nothing of it is recorded).
    DELETE FROM durable.messages m
    WHERE m.id IN (SELECT x.id FROM durable.messages x
                   WHERE x.namespace = p_wf.namespace AND x.workflow_id = p_wf.workflow_id
                     AND x.run_id = p_wf.run_id
                     AND NOT (v_type <> 'interrupted' AND x.kind = 'activity' AND x.lease_token IS NOT NULL
                              AND x.payload ? 'cancelled')
                   FOR UPDATE SKIP LOCKED);
    DELETE FROM durable.signal_waits
    WHERE namespace = p_wf.namespace AND workflow_id = p_wf.workflow_id AND run_id = p_wf.run_id;
    -- Signals buffered for this workflow (handle.signal) follow it to its next
    -- run; a workflow closing for good drops them (a later run of the id is
    -- another workflow). Only holders of this run's lock touch them.
    IF NOT (v_type = 'continue_as_new' OR v_retrying) THEN
        DELETE FROM durable.signals
        WHERE namespace = p_wf.namespace AND target_workflow_id = p_wf.workflow_id;
    END IF;
    PERFORM durable._notify(durable.closed_channel(p_wf.namespace), p_wf.workflow_id);

    IF v_type = 'continue_as_new' OR v_retrying THEN
        PERFORM durable._new_run(p_wf.namespace, p_wf.workflow_id, p_wf.run_id + 1, p_wf.workflow_name,
            p_wf.task_queue,
            CASE WHEN v_retrying THEN p_wf.args ELSE p_command->>'args' END,
            CASE WHEN v_retrying THEN p_wf.attempt + 1 ELSE 1 END,
            p_wf.retry, p_wf.parent_workflow_id, p_wf.parent_run_id, p_wf.parent_seq,
            CASE WHEN v_retrying THEN durable.retry_delay_v1(p_wf.retry, p_wf.attempt) ELSE interval '0' END,
            -- The next run keeps the trace context of this one (its workflow_started is event 1).
            (SELECT h.data->'headers' FROM durable.history h
             WHERE h.namespace = p_wf.namespace AND h.workflow_id = p_wf.workflow_id AND h.run_id = p_wf.run_id
               AND h.event_id = 1),
            -- The same workflow: its priority, partition (it keeps holding it) and dedup id.
            p_wf.priority, p_wf.partition_key, p_wf.dedup_id);
    ELSIF p_wf.parent_seq IS NOT NULL THEN
        PERFORM durable._deliver(p_wf.namespace, p_wf.parent_workflow_id, p_wf.parent_run_id,
            CASE v_status WHEN 'completed' THEN 'child_completed' ELSE 'child_failed' END,
            p_wf.parent_seq,
            pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('workflow_id', p_wf.workflow_id, 'status', v_status,
                                                 'result', p_command->'result',
                                                 'error', p_command->'error')));
    END IF;
END $$;
COMMENT ON FUNCTION durable._close_run(durable.workflows, jsonb) IS
    'Internal: ends a run (completed, failed, cancelled, interrupted or continued), drops its pending work, '
    'NOTIFYs result() waiters, then continues as new, retries per the workflow policy, or tells the parent.';

CREATE FUNCTION durable._inbound_events(p_namespace text, p_workflow_id text, p_run_id integer,
                                        p_after integer) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('event_id', h.event_id, 'event_type', h.event_type,
                                                 'seq', h.seq, 'data', h.data, 'at', h.created_at)
                              ORDER BY h.event_id), '[]'::jsonb)
    FROM durable.history h
    WHERE h.namespace = p_namespace AND h.workflow_id = p_workflow_id AND h.run_id = p_run_id
      AND h.inbound AND h.event_id > p_after
$$;
COMMENT ON FUNCTION durable._inbound_events(text, text, integer, integer) IS
    'Internal: the inbound events of a run after event p_after, oldest first, as JSON.';

CREATE FUNCTION durable._workflow_task_json(p_msg durable.messages, p_wf durable.workflows) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object(
        'message_id', p_msg.id, 'lease_token', p_msg.lease_token, 'task_attempt', p_msg.attempt,
        'workflow_id', p_wf.workflow_id, 'run_id', p_wf.run_id, 'workflow_name', p_wf.workflow_name,
        'task_queue', p_wf.task_queue, 'attempt', p_wf.attempt, 'args', p_wf.args,
        'parent_workflow_id', p_wf.parent_workflow_id, 'started_at', p_wf.created_at,
        'processed_event_id', p_wf.processed_event_id, 'cancel_requested', p_wf.cancel_requested,
        'events', durable._inbound_events(p_wf.namespace, p_wf.workflow_id, p_wf.run_id, p_wf.processed_event_id))
$$;
COMMENT ON FUNCTION durable._workflow_task_json(durable.messages, durable.workflows) IS
    'Internal: a held workflow task as JSON, shaped like claim_workflow_tasks_v1 rows.';

CREATE FUNCTION durable._eager_serves(p_namespace text, p_workflow_id text, p_run_id integer,
                                      p_eager jsonb) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN p_eager IS NOT NULL AND coalesce((
        SELECT w.status = 'running' AND w.task_queue = p_eager->>'task_queue'
               AND (p_eager->'workflow_names') ? w.workflow_name
               AND durable._may_consume(p_namespace, w.task_queue)
        FROM durable.workflows w
        WHERE w.namespace = p_namespace AND w.workflow_id = p_workflow_id AND w.run_id = p_run_id), false);
END $$;
COMMENT ON FUNCTION durable._eager_serves(text, text, integer, jsonb) IS
    'Internal: whether the worker described by p_eager serves this run''s workflow tasks.';

-- Eager continuation: an outcome this worker just recorded woke a run it
-- serves; it takes that run's workflow task at once instead of claiming it.
CREATE FUNCTION durable._lease_workflow_task(p_namespace text, p_workflow_id text, p_run_id integer,
                                             p_eager jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_wf durable.workflows;
    v_msg durable.messages;
    v_now timestamptz := durable.now();
    v_limited boolean;
    v_admit record;
BEGIN
    IF p_eager IS NULL OR p_workflow_id IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT * INTO v_wf FROM durable.workflows w
    WHERE w.namespace = p_namespace AND w.workflow_id = p_workflow_id AND w.run_id = p_run_id;
    IF NOT FOUND OR v_wf.status <> 'running' OR v_wf.task_queue IS DISTINCT FROM p_eager->>'task_queue'
       OR NOT (p_eager->'workflow_names') ? v_wf.workflow_name
       OR NOT durable._may_consume(p_namespace, v_wf.task_queue) THEN
        RETURN NULL;
    END IF;
    -- A limited task queue admits it like a claim; refused, it stays queued and the queue is
    -- woken (the caller left the NOTIFY to this hand-off).
    v_limited := durable._flow_limited(p_namespace, v_wf.task_queue);
    IF v_limited THEN
        SELECT * INTO v_admit FROM durable._flow_admit(p_namespace, v_wf.task_queue, 1);
        IF v_admit.admitted < 1 THEN
            PERFORM durable._notify_stream(p_namespace, v_wf.task_queue);
            RETURN NULL;
        END IF;
        v_now := v_admit.at;
    END IF;
    UPDATE durable.messages m
    SET attempt = m.attempt + 1, lease_owner = p_eager->>'owner', lease_token = pg_catalog.gen_random_uuid(),
        visible_at = v_now + pg_catalog.make_interval(secs => (p_eager->>'lease_seconds')::float8)
    WHERE m.id = (SELECT x.id FROM durable.messages x
                  WHERE x.namespace = p_namespace AND x.workflow_id = p_workflow_id AND x.kind = 'workflow'
                    AND x.run_id = p_run_id AND x.visible_at <= v_now
                  FOR UPDATE SKIP LOCKED)
    RETURNING m.* INTO v_msg;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF v_limited THEN
        PERFORM durable._flow_took(p_namespace, v_wf.task_queue, 1, v_now);
    END IF;
    RETURN durable._workflow_task_json(v_msg, v_wf);
END $$;
COMMENT ON FUNCTION durable._lease_workflow_task(text, text, integer, jsonb) IS
    'Internal: leases a run''s visible workflow task to the worker described by p_eager, if it serves '
    'that workflow and its task queue''s limits admit it; returns it as JSON (NULL otherwise; refused by the '
    'limits, the queue is NOTIFYed).';

CREATE FUNCTION durable.claim_workflow_tasks_v1(
    p_namespace text,
    p_task_queues text[],
    p_workflow_names text[],
    p_batch integer DEFAULT 10,
    p_lease interval DEFAULT interval '30 seconds',
    p_owner text DEFAULT NULL
) RETURNS TABLE (message_id bigint, lease_token uuid, task_attempt integer, workflow_id text,
                 run_id integer, workflow_name text, task_queue text, attempt integer, args text,
                 parent_workflow_id text, started_at timestamptz, processed_event_id integer,
                 cancel_requested boolean, events jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_claimed durable.messages[];
BEGIN
    PERFORM durable._authorize(p_namespace, p_task_queues);
    PERFORM durable._relaxed_commit();
    -- Due timers become inbound events first, so their runs are claimable now.
    PERFORM durable.fire_timers_v1(p_namespace, p_task_queues);
    SELECT pg_catalog.array_agg(c.message) INTO v_claimed
    FROM durable._claim(p_namespace, p_task_queues, p_workflow_names, 'workflow', p_batch, p_lease, p_owner) c;
    -- A second statement, so its snapshot sees every run the claim may have
    -- leased (a run started after this function's first snapshot included).
    RETURN QUERY
    SELECT c.id, c.lease_token, c.attempt, w.workflow_id, w.run_id,
           w.workflow_name, w.task_queue, w.attempt, w.args, w.parent_workflow_id, w.created_at,
           w.processed_event_id, w.cancel_requested,
           durable._inbound_events(w.namespace, w.workflow_id, w.run_id, w.processed_event_id)
    FROM pg_catalog.unnest(v_claimed) c
    -- One primary-key lookup per claimed task, whatever the statistics say: a join the planner
    -- may hash would read every run of the namespace on each claim (stale statistics of a
    -- young, fast-growing table made it do so).
    CROSS JOIN LATERAL (
        SELECT x.* FROM durable.workflows x
        WHERE x.namespace = p_namespace AND x.workflow_id = c.workflow_id AND x.run_id = c.run_id
        LIMIT 1) w;
END $$;
COMMENT ON FUNCTION durable.claim_workflow_tasks_v1(text, text[], text[], integer, interval, text) IS
    'Fires due timers, then leases up to p_batch workflow tasks of the named workflows, each with the '
    'run''s inbound events the workflow code has not yet seen (events after processed_event_id).';

-- The targeted claim: the worker that holds a run in its cache takes that
-- run's task by id when its timer is due (an asyncio timer of its own) or
-- when it is told on its own channel that the run has new events. Nothing
-- else relies on it: claim_workflow_tasks_v1 still fires and claims it all.
CREATE FUNCTION durable.claim_workflow_task_v1(
    p_namespace text,
    p_task_queue text,
    p_workflow_id text,
    p_workflow_names text[],
    p_lease interval DEFAULT interval '30 seconds',
    p_owner text DEFAULT NULL,
    p_wait interval DEFAULT interval '0'
) RETURNS TABLE (message_id bigint, lease_token uuid, task_attempt integer, workflow_id text,
                 run_id integer, workflow_name text, task_queue text, attempt integer, args text,
                 parent_workflow_id text, started_at timestamptz, processed_event_id integer,
                 cancel_requested boolean, events jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_timer durable.messages;
    v_msg durable.messages;
    v_now timestamptz := durable.now();
    v_due timestamptz;
    v_limited boolean;
    v_admit record;
BEGIN
    -- Scoped like claim_workflow_tasks_v1: only the caller's own task queue is looked at, so a
    -- workflow id outside it is neither claimed nor told apart from one that does not exist.
    PERFORM durable._authorize(p_namespace, ARRAY[p_task_queue]);
    PERFORM durable._relaxed_commit();
    PERFORM durable._check_lease(p_lease);
    IF pg_catalog.length(p_owner) > 1000 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004', MESSAGE = 'a claim''s owner label has at most 1000 characters';
    END IF;
    -- A worker arms its own timer a little early (its clock reads the engine's through a round
    -- trip): it may ask to wait here, before any lock, for the run's first timer (50 ms at most).
    IF p_wait > interval '0' THEN
        SELECT pg_catalog.min(t.visible_at) INTO v_due FROM durable.messages t
        WHERE t.namespace = p_namespace AND t.workflow_id = p_workflow_id AND t.stream = p_task_queue
          AND t.kind = 'timer';
        IF v_due > v_now AND v_due <= v_now + least(p_wait, interval '50 milliseconds') THEN
            PERFORM pg_catalog.pg_sleep(extract(epoch FROM v_due - v_now)::float8);
            v_now := durable.now();
        END IF;
    END IF;
    -- The run's due timers become inbound events first (lock order: timer, then run).
    FOR v_timer IN
        DELETE FROM durable.messages d
        WHERE d.id IN (SELECT t.id FROM durable.messages t
                       WHERE t.namespace = p_namespace AND t.workflow_id = p_workflow_id
                         AND t.stream = p_task_queue AND t.kind = 'timer' AND t.visible_at <= v_now
                       ORDER BY t.visible_at, t.id
                       FOR UPDATE SKIP LOCKED)
        RETURNING d.*
    LOOP
        PERFORM durable._fire_timer(v_timer);
    END LOOP;
    v_now := durable.now();  -- a task the firing just made is visible from its own now
    -- A limited task queue admits this claim like any other (flow_control.sql).
    v_limited := durable._flow_limited(p_namespace, p_task_queue);
    IF v_limited THEN
        SELECT * INTO v_admit FROM durable._flow_admit(p_namespace, p_task_queue, 1);
        IF v_admit.admitted < 1 THEN
            RETURN;
        END IF;
        v_now := v_admit.at;
    END IF;
    UPDATE durable.messages m
    SET attempt = m.attempt + 1, lease_owner = p_owner, lease_token = pg_catalog.gen_random_uuid(),
        visible_at = v_now + p_lease
    WHERE m.id = (SELECT x.id FROM durable.messages x
                  WHERE x.namespace = p_namespace AND x.workflow_id = p_workflow_id AND x.kind = 'workflow'
                    AND x.stream = p_task_queue AND x.name = ANY (p_workflow_names) AND x.visible_at <= v_now
                  FOR UPDATE SKIP LOCKED)
    RETURNING m.* INTO v_msg;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v_limited THEN
        PERFORM durable._flow_took(p_namespace, p_task_queue, 1, v_now);
    END IF;
    RETURN QUERY
    SELECT v_msg.id, v_msg.lease_token, v_msg.attempt, w.workflow_id, w.run_id,
           w.workflow_name, w.task_queue, w.attempt, w.args, w.parent_workflow_id, w.created_at,
           w.processed_event_id, w.cancel_requested,
           durable._inbound_events(w.namespace, w.workflow_id, w.run_id, w.processed_event_id)
    FROM durable.workflows w
    WHERE w.namespace = p_namespace AND w.workflow_id = v_msg.workflow_id AND w.run_id = v_msg.run_id;
END $$;
COMMENT ON FUNCTION durable.claim_workflow_task_v1(text, text, text, text[], interval, text, interval) IS
    'Fires the due timers of workflow p_workflow_id on task queue p_task_queue, then leases its workflow '
    'task if one is visible (and of the named workflows); a row shaped like claim_workflow_tasks_v1''s, or '
    'none. The worker that caches the run calls it when its timer is due or its channel says it has events. '
    'p_wait: first wait for the run''s first timer if it falls due within it (capped at 50 ms). A task queue '
    'with limits (set_stream_limits) admits it as it admits any claim.';

-- Workflow code steering another workflow (Durable.workflow.get_external_handle): a signal, a
-- cancel or an interrupt, recorded as one inbound event (external_signal_sent, external_cancel_sent,
-- external_interrupt_sent) whose outcome resolves the call in the same workflow task. A worker role
-- steers only workflows on the task queues it may produce to: any other id, known or not, is
-- 'refused' alike (its workflow cannot tell one from the other).
CREATE FUNCTION durable._steer_external(p_wf durable.workflows, p_cmd jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_type text := p_cmd->>'type';
    v_target text := p_cmd->>'workflow_id';
    v_produce text[] := durable._produce_scope(p_wf.namespace);
    v_queue text;
    v_running boolean;
    v_outcome text;
    v_message text;
    v_event text := CASE v_type WHEN 'signal_external' THEN 'external_signal_sent'
                                WHEN 'cancel_external' THEN 'external_cancel_sent'
                                ELSE 'external_interrupt_sent' END;
BEGIN
    PERFORM durable._check_name('workflow id', v_target);
    PERFORM durable._check_payload(p_cmd->>'reason');
    IF v_type = 'signal_external' THEN
        PERFORM durable._check_signal_scope(p_cmd->>'signal_id');
        PERFORM durable._check_signal(p_cmd->>'signal_id', p_cmd->>'data', interval '7 days');
    ELSIF v_target = p_wf.workflow_id THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('workflow %L cannot %s itself through an external handle: raise or return instead',
                             v_target, CASE v_type WHEN 'cancel_external' THEN 'cancel' ELSE 'interrupt' END);
    END IF;
    -- Lock first, then check: the target's running run is locked before its task queue is read, so
    -- the run checked is the run steered (no new run on another queue can slip in between). With no
    -- running run, the latest run's queue decides the refusal and nothing is steered.
    SELECT w.task_queue, w.status = 'running' INTO v_queue, v_running FROM durable.workflows w
    WHERE w.namespace = p_wf.namespace AND w.workflow_id = v_target AND w.status = 'running'
    FOR UPDATE;
    IF NOT FOUND THEN
        SELECT w.task_queue, false INTO v_queue, v_running FROM durable.workflows w
        WHERE w.namespace = p_wf.namespace AND w.workflow_id = v_target
        ORDER BY w.run_id DESC LIMIT 1;
    END IF;
    IF v_produce IS NOT NULL AND (v_queue IS NULL OR NOT (v_queue = ANY (v_produce))) THEN
        v_outcome := 'refused';
        v_message := pg_catalog.format('worker role %s may not steer workflow %L: it is not a workflow on a task queue the '
                            'role may produce to (%s); the DBA widens that with provision_worker_role(..., '
                            'p_produce => ...)', session_user, v_target, pg_catalog.array_to_string(v_produce, ', '));
    ELSIF NOT coalesce(v_running, false) AND v_type = 'signal_external' THEN
        v_outcome := 'not_found';
        v_message := pg_catalog.format('workflow %L is not running in namespace %L (unknown or closed): signal %L '
                            'was not sent', v_target, p_wf.namespace, p_cmd->>'signal_id');
    ELSIF v_queue IS NULL THEN
        v_outcome := 'not_found';
        v_message := pg_catalog.format('workflow %L not found in namespace %L', v_target, p_wf.namespace);
    ELSIF NOT v_running THEN
        v_outcome := 'not_running';  -- nothing steered: a run started since may be on another task queue
    ELSE
        BEGIN
            CASE v_type
            WHEN 'signal_external' THEN
                v_outcome := durable.signal_workflow_v1(p_wf.namespace, v_target, p_cmd->>'signal_id',
                                                        p_cmd->>'data', interval '7 days',
                                                        nullif(p_cmd->'headers', 'null'::jsonb));
            WHEN 'cancel_external' THEN
                v_outcome := CASE WHEN durable.cancel_workflow_v1(p_wf.namespace, v_target)
                                  THEN 'requested' ELSE 'not_running' END;
            ELSE
                v_outcome := CASE WHEN durable.interrupt_workflow_v1(p_wf.namespace, v_target, p_cmd->>'reason')
                                  THEN 'interrupted' ELSE 'not_running' END;
            END CASE;
        EXCEPTION WHEN SQLSTATE 'PD003' THEN
            v_outcome := 'not_found';
            v_message := SQLERRM;
        END;
    END IF;
    PERFORM durable._deliver(p_wf.namespace, p_wf.workflow_id, p_wf.run_id, v_event, (p_cmd->>'seq')::integer,
        pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'workflow_id', v_target, 'outcome', v_outcome, 'message', v_message,
            'signal_id', p_cmd->>'signal_id', 'data', p_cmd->'data', 'reason', p_cmd->'reason')));
END $$;
COMMENT ON FUNCTION durable._steer_external(durable.workflows, jsonb) IS
    'Internal: applies a signal_external, cancel_external or interrupt_external command (a workflow '
    'steering workflow p_cmd.workflow_id) and records its outcome (delivered, buffered, requested, '
    'interrupted, not_running, not_found, refused) as an inbound external_*_sent event. A worker role '
    'steers only workflows on the task queues it may produce to (else refused); no workflow cancels or '
    'interrupts itself (PD004).';

CREATE FUNCTION durable._apply_command(p_wf durable.workflows, p_cmd jsonb) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_seq integer := (p_cmd->>'seq')::integer;
    v_child_run integer;
    v_refusal text;
BEGIN
    -- No 'activity' here: complete_workflow_task_v1 hands those to _schedule_activity
    -- itself (eager dispatch needs its count of activities leased so far).
    CASE p_cmd->>'type'
    WHEN 'timer' THEN
        PERFORM durable._append_event(p_wf.namespace, p_wf.workflow_id, p_wf.run_id, 'timer_started', v_seq,
                                      false, pg_catalog.jsonb_build_object('seconds', p_cmd->'seconds'));
        PERFORM durable._start_timer(p_wf, v_seq, (p_cmd->>'seconds')::float8, '{"timer": "sleep"}'::jsonb);
    WHEN 'condition' THEN
        PERFORM durable._check_signal_scope(p_cmd->>'signal_id');
        PERFORM durable._append_event(p_wf.namespace, p_wf.workflow_id, p_wf.run_id, 'signal_wait_started',
                                      v_seq, false,
                                      pg_catalog.jsonb_build_object('signal_id', p_cmd->>'signal_id', 'timeout', p_cmd->'timeout'));
        IF NOT durable._wait_signal(p_wf, v_seq, p_cmd->>'signal_id')
           AND pg_catalog.jsonb_typeof(p_cmd->'timeout') = 'number' THEN
            PERFORM durable._start_timer(p_wf, v_seq, (p_cmd->>'timeout')::float8,
                pg_catalog.jsonb_build_object('timer', 'condition_timeout', 'signal_id', p_cmd->>'signal_id'));
        END IF;
    WHEN 'signal' THEN
        PERFORM durable._check_signal_scope(p_cmd->>'signal_id');
        PERFORM durable._append_event(p_wf.namespace, p_wf.workflow_id, p_wf.run_id, 'signal_sent', v_seq, false,
                                      pg_catalog.jsonb_build_object('signal_id', p_cmd->>'signal_id', 'data', p_cmd->'data'));
        -- A worker role's signal reaches only runs on the task queues it may produce to.
        -- Its headers (the sending task's trace context) travel with it, when traced.
        PERFORM durable._send_signal(p_wf.namespace, p_cmd->>'signal_id', p_cmd->>'data', interval '7 days',
                                     false, durable._produce_scope(p_wf.namespace),
                                     nullif(p_cmd->'headers', 'null'::jsonb));
    WHEN 'child' THEN
        -- A child id that is running already is refused (the parent sees a
        -- child failure); a closed one gets a new run, as client starts do.
        PERFORM durable._check_produce(p_wf.namespace, 'start workflow', p_cmd->>'workflow_name',
                                       coalesce(p_cmd->>'task_queue', p_wf.task_queue));
        BEGIN
            SELECT c.run_id INTO v_child_run
            FROM durable._start_workflow(p_wf.namespace, p_cmd->>'workflow_id', p_cmd->>'workflow_name',
                                         coalesce(p_cmd->>'task_queue', p_wf.task_queue), p_cmd->>'args', NULL,
                                         'reject', p_wf.workflow_id, p_wf.run_id,
                                         CASE WHEN (p_cmd->>'awaited')::boolean THEN v_seq END,
                                         p_cmd->'headers') c;
        EXCEPTION WHEN SQLSTATE 'PD002' THEN
            v_child_run := NULL;
            v_refusal := SQLERRM;
        END;
        PERFORM durable._append_event(p_wf.namespace, p_wf.workflow_id, p_wf.run_id, 'child_started', v_seq, false,
            pg_catalog.jsonb_build_object('workflow_id', p_cmd->>'workflow_id', 'workflow_name', p_cmd->>'workflow_name',
                               'task_queue', coalesce(p_cmd->>'task_queue', p_wf.task_queue),
                               'run_id', v_child_run, 'awaited', (p_cmd->>'awaited')::boolean,
                               'already_running', v_child_run IS NULL));
        IF v_child_run IS NULL AND (p_cmd->>'awaited')::boolean THEN
            PERFORM durable._deliver(p_wf.namespace, p_wf.workflow_id, p_wf.run_id, 'child_failed', v_seq,
                pg_catalog.jsonb_build_object('workflow_id', p_cmd->>'workflow_id', 'status', 'failed',
                                   'error', pg_catalog.jsonb_build_object('type', 'DuplicateWorkflowError',
                                                               'detail', v_refusal)));
        END IF;
    WHEN 'cancel_activity' THEN
        PERFORM durable._cancel_activity(p_wf, v_seq);
    WHEN 'signal_external', 'cancel_external', 'interrupt_external' THEN
        PERFORM durable._steer_external(p_wf, p_cmd);
    WHEN 'cancel_wait' THEN
        PERFORM durable._cancel_wait(p_wf, v_seq);
    WHEN 'cancel_timer' THEN
        PERFORM durable._cancel_timer(p_wf, v_seq);
    WHEN 'patch' THEN
        PERFORM durable._append_event(p_wf.namespace, p_wf.workflow_id, p_wf.run_id, 'patch_marker', NULL, false,
                                      pg_catalog.jsonb_build_object('patch_id', p_cmd->>'patch_id',
                                                         'deprecated', coalesce(p_cmd->'deprecated', 'false')));
    WHEN 'complete', 'fail', 'cancelled', 'continue_as_new' THEN
        PERFORM durable._close_run(p_wf, p_cmd);
        RETURN true;
    ELSE
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('unknown workflow command type %L', p_cmd->>'type');
    END CASE;
    RETURN false;
END $$;
COMMENT ON FUNCTION durable._apply_command(durable.workflows, jsonb) IS
    'Internal: applies one command of a workflow task other than activity (complete_workflow_task_v1 '
    'schedules those); returns true when it closed the run.';

CREATE FUNCTION durable.complete_workflow_task_v1(
    p_message_id bigint,
    p_lease_token uuid,
    p_processed_event_id integer,
    p_commands jsonb,
    p_eager jsonb DEFAULT NULL
) RETURNS TABLE (status text, activities jsonb, events jsonb, wake_in double precision)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_peek durable.messages;
    v_wf durable.workflows;
    v_cmd jsonb;
    v_closed boolean := false;
    v_last_inbound integer;
    v_leased bigint[] := '{}';
    v_id bigint;
BEGIN
    PERFORM durable._authorize_messages(ARRAY[p_message_id]);
    PERFORM durable._check_eager(p_eager);
    SELECT * INTO v_peek FROM durable.messages m WHERE m.id = p_message_id AND m.kind = 'workflow';
    IF NOT FOUND THEN
        PERFORM durable._held_message(p_message_id, p_lease_token);  -- raises PD001
    END IF;
    SELECT * INTO v_wf FROM durable.workflows w
    WHERE w.namespace = v_peek.namespace AND w.workflow_id = v_peek.workflow_id AND w.run_id = v_peek.run_id
    FOR UPDATE;
    PERFORM durable._held_message(p_message_id, p_lease_token);
    IF v_wf.status <> 'running' THEN
        DELETE FROM durable.messages m WHERE m.id = p_message_id;
        RETURN QUERY SELECT 'discarded'::text, '[]'::jsonb, NULL::jsonb, NULL::float8;
        RETURN;
    END IF;
    IF pg_catalog.jsonb_typeof(p_commands) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004', MESSAGE = 'p_commands must be a JSON array of commands';
    END IF;
    IF pg_catalog.jsonb_array_length(p_commands) > 2000 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('a workflow task may complete with at most 2000 commands (got %s): start fewer '
                             'activities, timers or children per step', pg_catalog.jsonb_array_length(p_commands));
    END IF;
    FOR v_cmd IN SELECT value FROM pg_catalog.jsonb_array_elements(p_commands) LOOP
        PERFORM durable._check_payload(v_cmd->>k) FROM pg_catalog.unnest(ARRAY['args', 'result', 'data']) k
        WHERE pg_catalog.jsonb_typeof(v_cmd->k) = 'string';
        PERFORM durable._check_payload((v_cmd->'error')::text);
        IF v_closed THEN
            RAISE EXCEPTION USING ERRCODE = 'PD004',
                MESSAGE = pg_catalog.format('command %s follows the command that closed the run', v_cmd->>'type');
        END IF;
        IF v_cmd->>'type' = 'activity' THEN
            -- Eager dispatch stops at the caller's free capacity: the rest is queued (and NOTIFYed).
            v_id := durable._schedule_activity(v_wf, v_cmd,
                CASE WHEN pg_catalog.cardinality(v_leased) < coalesce((p_eager->>'capacity')::integer, 2147483647)
                     THEN p_eager END);
            IF v_id IS NOT NULL THEN
                v_leased := v_leased || v_id;
            END IF;
        ELSE
            v_closed := durable._apply_command(v_wf, v_cmd);
        END IF;
    END LOOP;
    IF v_closed THEN
        PERFORM durable._flow_slot_freed(v_wf.namespace, v_wf.task_queue);
        RETURN QUERY SELECT 'closed'::text, '[]'::jsonb, NULL::jsonb, NULL::float8;
        RETURN;
    END IF;
    UPDATE durable.workflows w
    SET processed_event_id = greatest(w.processed_event_id, p_processed_event_id),
        task_failures = 0, last_task_failure = NULL,
        -- A worker that serves workflows keeps the run in its cache: it is told first of new events.
        sticky_worker = CASE WHEN p_eager ? 'task_queue' THEN p_eager->>'owner' END
    WHERE w.namespace = v_wf.namespace AND w.workflow_id = v_wf.workflow_id AND w.run_id = v_wf.run_id
    RETURNING w.last_inbound_event_id INTO v_last_inbound;
    IF v_last_inbound > p_processed_event_id THEN
        IF p_eager IS NOT NULL THEN
            -- Events arrived while the task ran: this worker keeps the task and
            -- gets them now.
            UPDATE durable.messages m
            SET visible_at = durable.now() + pg_catalog.make_interval(secs => (p_eager->>'lease_seconds')::float8)
            WHERE m.id = p_message_id;
            RETURN QUERY SELECT 'continue'::text, durable._activity_tasks(v_leased),
                durable._inbound_events(v_wf.namespace, v_wf.workflow_id, v_wf.run_id, p_processed_event_id),
                NULL::float8;
            RETURN;
        END IF;
        -- Hand the task out again now.
        UPDATE durable.messages m
        SET lease_token = NULL, lease_owner = NULL, attempt = 0, visible_at = durable.now()
        WHERE m.id = p_message_id;
        PERFORM durable._notify_stream(v_wf.namespace, v_wf.task_queue);
        RETURN QUERY SELECT 'requeued'::text, durable._activity_tasks(v_leased), NULL::jsonb, NULL::float8;
        RETURN;
    END IF;
    DELETE FROM durable.messages m WHERE m.id = p_message_id;
    PERFORM durable._flow_slot_freed(v_wf.namespace, v_wf.task_queue);
    -- The run is parked: a worker that keeps it cached wakes it itself when its first timer is due.
    RETURN QUERY SELECT 'ok'::text, durable._activity_tasks(v_leased), NULL::jsonb,
        CASE WHEN p_eager ? 'task_queue' THEN durable._next_timer_in(v_wf.namespace, v_wf.workflow_id, v_wf.run_id) END;
END $$;
COMMENT ON FUNCTION durable.complete_workflow_task_v1(bigint, uuid, integer, jsonb, jsonb) IS
    'Completes a held workflow task in one transaction: applies its commands (activity, timer, condition, '
    'signal, child, patch, cancel_wait, cancel_timer, cancel_activity, signal_external, cancel_external, '
    'interrupt_external, complete, fail, cancelled, continue_as_new) and '
    'records that the workflow code '
    'has seen events up to p_processed_event_id. status: ok, requeued (new events wait), continue (the '
    'caller keeps the task: events holds the new ones), closed or discarded. With p_eager {owner, '
    'lease_seconds, activity_stream, activity_names, capacity}, activities the caller serves come back '
    'already leased to it (activities), at most capacity of them (no limit without it); the others are '
    'queued. With p_eager.task_queue (the caller serves workflows) the caller becomes the run''s '
    'sticky_worker and, on ok, wake_in says in how many seconds the run''s first pending timer is due '
    '(NULL: none), so that it can take the task by id then (claim_workflow_task_v1).';

CREATE FUNCTION durable.fail_workflow_task_v1(p_message_id bigint, p_lease_token uuid, p_error jsonb)
RETURNS interval
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_peek durable.messages;
    v_wf durable.workflows;
    v_delay interval;
BEGIN
    PERFORM durable._authorize_messages(ARRAY[p_message_id]);
    SELECT * INTO v_peek FROM durable.messages WHERE id = p_message_id AND kind = 'workflow';
    IF NOT FOUND THEN
        PERFORM durable._held_message(p_message_id, p_lease_token);
    END IF;
    SELECT * INTO v_wf FROM durable.workflows
    WHERE namespace = v_peek.namespace AND workflow_id = v_peek.workflow_id AND run_id = v_peek.run_id
    FOR UPDATE;
    PERFORM durable._held_message(p_message_id, p_lease_token);
    PERFORM durable._check_payload(p_error::text);
    v_delay := durable.task_retry_delay_v1(v_wf.task_failures + 1);
    PERFORM durable._append_event(v_wf.namespace, v_wf.workflow_id, v_wf.run_id, 'workflow_task_failed',
                                  NULL, false, coalesce(p_error, '{}'::jsonb)
                                  || pg_catalog.jsonb_build_object('failures', v_wf.task_failures + 1,
                                                        'retry_in_seconds', extract(epoch FROM v_delay)));
    UPDATE durable.workflows
    SET task_failures = task_failures + 1,
        last_task_failure = coalesce(p_error, '{}'::jsonb)
            || pg_catalog.jsonb_build_object('failures', task_failures + 1, 'at', durable.now())
    WHERE namespace = v_wf.namespace AND workflow_id = v_wf.workflow_id AND run_id = v_wf.run_id;
    UPDATE durable.messages
    SET lease_token = NULL, lease_owner = NULL, visible_at = durable.now() + v_delay
    WHERE id = p_message_id;
    RETURN v_delay;
END $$;
COMMENT ON FUNCTION durable.fail_workflow_task_v1(bigint, uuid, jsonb) IS
    'Records that a workflow task failed inside the engine (non-determinism, undecodable payload) and '
    'retries it after a backoff capped at 60 s. History is never rewritten. Returns the delay.';
