-- repair.sql: reset and fork, what an operator does to a run that went wrong.
-- Both start a run whose history is a copy of the latest run's events below
-- a chosen event (a durable call: activity_scheduled, timer_started,
-- child_started or signal_wait_started), plus one non-inbound
-- workflow_reset event that says where it came from; a worker replays the
-- copy (calls resolved in it are not made again) and runs the code on from
-- the chosen call. reset_workflow does it under the same workflow id (the
-- running run, if any, ends as 'continued' with a workflow_reset event);
-- fork_workflow does it under a new id and leaves the original alone.
-- Writes durable.workflows, durable.history, the old run's messages and
-- signal_waits (a reset drops them) and the new run's workflow task. Owner
-- only: neither is in durable.worker_functions().

-- Checks the reset point of run p_wf (PD004 if it is not one).
CREATE FUNCTION durable._repair_point(p_wf durable.workflows, p_event_id integer) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_type text;
    v_open integer;
BEGIN
    SELECT h.event_type INTO v_type FROM durable.history h
    WHERE h.namespace = p_wf.namespace AND h.workflow_id = p_wf.workflow_id AND h.run_id = p_wf.run_id
      AND h.event_id = p_event_id;
    IF v_type IS NULL OR v_type NOT IN ('activity_scheduled', 'timer_started', 'child_started',
                                        'signal_wait_started') THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('event %s of workflow %L run %s is %s: reset or fork from an activity_scheduled, '
                             'timer_started, child_started or signal_wait_started event (see its history)',
                             coalesce(p_event_id::text, 'NULL'), p_wf.workflow_id, p_wf.run_id,
                             coalesce('a ' || v_type || ' event', 'not in its history'));
    END IF;
    -- A call made before the point whose outcome came after it would wait
    -- forever in the new run (its pending work is not carried over).
    SELECT pg_catalog.min(h.event_id) INTO v_open FROM durable.history h
    WHERE h.namespace = p_wf.namespace AND h.workflow_id = p_wf.workflow_id AND h.run_id = p_wf.run_id
      AND h.event_id < p_event_id AND NOT h.inbound AND h.seq IS NOT NULL
      AND h.event_type IN ('activity_scheduled', 'timer_started', 'signal_wait_started', 'child_started')
      AND NOT (h.event_type = 'child_started' AND NOT coalesce((h.data->>'awaited')::boolean, false))
      AND NOT EXISTS (SELECT 1 FROM durable.history o
                      WHERE o.namespace = h.namespace AND o.workflow_id = h.workflow_id AND o.run_id = h.run_id
                        AND o.seq = h.seq AND o.event_id < p_event_id
                        AND (o.inbound OR o.event_type = 'timer_cancelled'));
    IF v_open IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('event %s of workflow %L run %s follows event %s, a durable call whose outcome came '
                             'after it: reset or fork from event %s or earlier', p_event_id, p_wf.workflow_id,
                             p_wf.run_id, v_open, v_open);
    END IF;
END $$;
COMMENT ON FUNCTION durable._repair_point(durable.workflows, integer) IS
    'Internal: PD004 unless event p_event_id of the run is an activity_scheduled, timer_started, child_started '
    'or signal_wait_started event with every durable call before it resolved before it.';

-- Creates run p_run_id of p_workflow_id from the events of p_from below p_event_id.
CREATE FUNCTION durable._copy_run(p_from durable.workflows, p_event_id integer, p_workflow_id text,
                                  p_run_id integer, p_keep_parent boolean, p_data jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_now timestamptz := durable.now();
BEGIN
    INSERT INTO durable.workflows (namespace, workflow_id, run_id, workflow_name, task_queue, status, args,
                                   attempt, retry, parent_workflow_id, parent_run_id, parent_seq,
                                   last_event_id, last_inbound_event_id, processed_event_id,
                                   created_at, updated_at, priority, partition_key, dedup_id)
    SELECT p_from.namespace, p_workflow_id, p_run_id, p_from.workflow_name, p_from.task_queue, 'running',
           p_from.args, p_from.attempt, p_from.retry,
           CASE WHEN p_keep_parent THEN p_from.parent_workflow_id END,
           CASE WHEN p_keep_parent THEN p_from.parent_run_id END,
           CASE WHEN p_keep_parent THEN p_from.parent_seq END,
           p_event_id - 1,
           coalesce((SELECT pg_catalog.max(h.event_id) FROM durable.history h
                     WHERE h.namespace = p_from.namespace AND h.workflow_id = p_from.workflow_id
                       AND h.run_id = p_from.run_id AND h.event_id < p_event_id AND h.inbound), 0),
           -- Not 0: a worker then fetches the whole copied history (non-inbound events included).
           1, v_now, v_now,
           -- Flow control: the priority goes along; a reset of a running run (the same workflow
           -- going on) keeps its partition key (it still holds it) and its dedup id.
           p_from.priority,
           CASE WHEN p_keep_parent AND p_from.status = 'running' THEN p_from.partition_key END,
           CASE WHEN p_keep_parent AND p_from.status = 'running' THEN p_from.dedup_id END
    -- Two resets of one run at once: the second finds the run the first made.
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'PD002',
            MESSAGE = pg_catalog.format('workflow %L already has run %s in namespace %L (a reset or fork made at the same '
                             'time): read its history and reset again', p_workflow_id, p_run_id, p_from.namespace);
    END IF;
    INSERT INTO durable.history (namespace, workflow_id, run_id, event_id, event_type, seq, inbound, data, created_at)
    SELECT h.namespace, p_workflow_id, p_run_id, h.event_id, h.event_type, h.seq, h.inbound, h.data, h.created_at
    FROM durable.history h
    WHERE h.namespace = p_from.namespace AND h.workflow_id = p_from.workflow_id AND h.run_id = p_from.run_id
      AND h.event_id < p_event_id
    ORDER BY h.event_id;
    PERFORM durable._append_event(p_from.namespace, p_workflow_id, p_run_id, 'workflow_reset', NULL, false, p_data);
    PERFORM durable._ensure_workflow_task(p_from.namespace, p_workflow_id, p_run_id, p_from.task_queue,
                                          p_from.workflow_name, p_priority => p_from.priority);
END $$;
COMMENT ON FUNCTION durable._copy_run(durable.workflows, integer, text, integer, boolean, jsonb) IS
    'Internal: a running run p_run_id of p_workflow_id whose history is p_from''s events below p_event_id and '
    'a workflow_reset event (p_data), with its workflow task queued, at p_from''s priority (a reset of a running '
    'run keeps its partition key and dedup id too).';

-- The latest run of an id, locked; PD003 for an unknown id.
CREATE FUNCTION durable._latest_run(p_namespace text, p_workflow_id text) RETURNS durable.workflows
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_wf durable.workflows;
BEGIN
    SELECT * INTO v_wf FROM durable.workflows
    WHERE namespace = p_namespace AND workflow_id = p_workflow_id
    ORDER BY run_id DESC LIMIT 1
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'PD003',
            MESSAGE = pg_catalog.format('workflow %L not found in namespace %L', p_workflow_id, p_namespace);
    END IF;
    RETURN v_wf;
END $$;
COMMENT ON FUNCTION durable._latest_run(text, text) IS
    'Internal: the latest run of a workflow id, locked (PD003 for an unknown id).';

CREATE FUNCTION durable.reset_workflow(p_namespace text, p_workflow_id text, p_event_id integer,
                                       p_reason text DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_wf durable.workflows := durable._latest_run(p_namespace, p_workflow_id);
    v_now timestamptz := durable.now();
    v_data jsonb;
BEGIN
    PERFORM durable._repair_point(v_wf, p_event_id);
    v_data := pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('reason', p_reason, 'event_id', p_event_id,
                                                   'from_workflow_id', p_workflow_id, 'from_run_id', v_wf.run_id,
                                                   'new_run_id', v_wf.run_id + 1));
    -- The old run records the reset (its closing event when it was running).
    PERFORM durable._append_event(p_namespace, p_workflow_id, v_wf.run_id, 'workflow_reset', NULL, false, v_data);
    IF v_wf.status = 'running' THEN
        UPDATE durable.workflows
        SET status = 'continued', closed_at = v_now, updated_at = v_now
        WHERE namespace = p_namespace AND workflow_id = p_workflow_id AND run_id = v_wf.run_id;
        -- Its pending activities, timers and waits go (a leased activity's late result is refused);
        -- a workflow task a claim holds is taken over by the new run. Signals sent to the
        -- workflow and not yet taken stay: the new run may take them.
        DELETE FROM durable.messages m
        WHERE m.id IN (SELECT x.id FROM durable.messages x
                       WHERE x.namespace = p_namespace AND x.workflow_id = p_workflow_id
                         AND x.run_id = v_wf.run_id
                       FOR UPDATE SKIP LOCKED);
        DELETE FROM durable.signal_waits
        WHERE namespace = p_namespace AND workflow_id = p_workflow_id AND run_id = v_wf.run_id;
    END IF;
    PERFORM durable._copy_run(v_wf, p_event_id, p_workflow_id, v_wf.run_id + 1, true, v_data);
    RETURN v_wf.run_id + 1;
END $$;
COMMENT ON FUNCTION durable.reset_workflow(text, text, integer, text) IS
    'Owner: ends the latest run of p_workflow_id (a running one as continued, its pending work dropped) and '
    'starts the next run from a copy of its events below p_event_id (an activity_scheduled, timer_started, '
    'child_started or signal_wait_started event; PD004 otherwise): a worker replays the copy, so calls '
    'resolved before the point are not made again, and runs the code on from there. Both runs record a '
    'workflow_reset event (with p_reason). Children the old run started are not touched: the new run''s start '
    'of one still running fails as a duplicate (child_failed). Returns the new run id.';

CREATE FUNCTION durable.fork_workflow(p_namespace text, p_workflow_id text, p_from_event_id integer,
                                      p_new_workflow_id text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_wf durable.workflows;
    v_new text := coalesce(p_new_workflow_id, pg_catalog.gen_random_uuid()::text);
BEGIN
    SELECT * INTO v_wf FROM durable.workflows
    WHERE namespace = p_namespace AND workflow_id = p_workflow_id
    ORDER BY run_id DESC LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'PD003',
            MESSAGE = pg_catalog.format('workflow %L not found in namespace %L', p_workflow_id, p_namespace);
    END IF;
    PERFORM durable._check_name('workflow id', v_new);
    PERFORM durable._repair_point(v_wf, p_from_event_id);
    IF EXISTS (SELECT 1 FROM durable.workflows
               WHERE namespace = p_namespace AND workflow_id = v_new) THEN
        RAISE EXCEPTION USING ERRCODE = 'PD002',
            MESSAGE = pg_catalog.format('workflow id %L is taken in namespace %L: fork into a new id', v_new, p_namespace);
    END IF;
    PERFORM durable._copy_run(v_wf, p_from_event_id, v_new, 1, false,
        pg_catalog.jsonb_build_object('event_id', p_from_event_id, 'from_workflow_id', p_workflow_id,
                           'from_run_id', v_wf.run_id, 'fork', true));
    RETURN v_new;
END $$;
COMMENT ON FUNCTION durable.fork_workflow(text, text, integer, text) IS
    'Owner: starts workflow p_new_workflow_id (default a new uuid; PD002 if the id is taken) from a copy of '
    'the events of p_workflow_id''s latest run below p_from_event_id (the same points as reset_workflow), '
    'leaving the original alone; it records a workflow_reset event saying where it came from. Returns the '
    'new workflow id.';
