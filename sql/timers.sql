-- timers.sql: durable timers. A timer is a message of kind 'timer' on its
-- run's task queue, due when its visible_at passes: a sleep, or the timeout
-- of a condition. _start_timer enqueues one, _cancel_timer withdraws one the
-- workflow code abandoned, fire_timers_v1 (run by every workflow task claim)
-- turns the due ones into inbound events: timer_fired, or signal_timed_out
-- unless a signal won (signals.sql).
-- Writes the 'timer' messages and, through _append_event and _deliver, the
-- run's history.
--
-- Lock order: fire_timers_v1 locks a due timer, then its run (_deliver).
-- Whoever holds a run first (closing it, cancelling a timer) skips a timer
-- locked by a firing, so the two never wait on each other in a cycle.

CREATE FUNCTION durable._start_timer(p_wf durable.workflows, p_seq integer, p_seconds double precision,
                                     p_payload jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_now timestamptz := durable.now();
    v_due timestamptz;
BEGIN
    IF p_seconds IS NULL OR p_seconds < 0 OR p_seconds > 100 * 365 * 86400.0 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('invalid timer duration %s s: give 0 to 100 years', p_seconds);
    END IF;
    v_due := v_now + pg_catalog.make_interval(secs => p_seconds);
    INSERT INTO durable.messages (namespace, stream, kind, name, workflow_id, run_id, payload, visible_at, created_at)
    VALUES (p_wf.namespace, p_wf.task_queue, 'timer', p_wf.workflow_name, p_wf.workflow_id, p_wf.run_id,
            p_payload || pg_catalog.jsonb_build_object('seq', p_seq, 'due_at', v_due), v_due, v_now);
    PERFORM durable._notify_stream(p_wf.namespace, p_wf.task_queue);
END $$;
COMMENT ON FUNCTION durable._start_timer(durable.workflows, integer, double precision, jsonb) IS
    'Internal: enqueues a timer message due in p_seconds on the run''s task queue.';

-- Withdraws a timer the workflow code abandoned (the timeout of an asyncio.wait_for whose
-- awaitable finished first, a cancelled sleep): it neither wakes the run nor shows as pending.
-- A timer being fired right now is skipped, not waited for (fire_timers_v1 locks the timer,
-- then the run): its timer_fired reaches nobody.
CREATE FUNCTION durable._cancel_timer(p_wf durable.workflows, p_seq integer) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_withdrawn boolean;
BEGIN
    IF p_seq IS NULL OR NOT EXISTS (
        SELECT 1 FROM durable.history h
        WHERE h.namespace = p_wf.namespace AND h.workflow_id = p_wf.workflow_id AND h.run_id = p_wf.run_id
          AND h.seq = p_seq AND h.event_type = 'timer_started') THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('cancel_timer names durable call #%s, which is no timer of workflow %L run %s',
                             p_seq, p_wf.workflow_id, p_wf.run_id);
    END IF;
    DELETE FROM durable.messages m
    WHERE m.id IN (SELECT x.id FROM durable.messages x
                   WHERE x.namespace = p_wf.namespace AND x.workflow_id = p_wf.workflow_id
                     AND x.run_id = p_wf.run_id AND x.kind = 'timer' AND (x.payload->>'seq')::integer = p_seq
                   FOR UPDATE SKIP LOCKED);
    v_withdrawn := FOUND;
    PERFORM durable._append_event(p_wf.namespace, p_wf.workflow_id, p_wf.run_id, 'timer_cancelled', p_seq,
                                  false, pg_catalog.jsonb_build_object('withdrawn', v_withdrawn));
END $$;
COMMENT ON FUNCTION durable._cancel_timer(durable.workflows, integer) IS
    'Internal: deletes the timer of durable call p_seq (one the workflow code abandoned) and records '
    'timer_cancelled (withdrawn false: it had fired already). PD004 if p_seq is no timer of the run.';

CREATE FUNCTION durable._fire_timer(p_timer durable.messages) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_timer.payload->>'timer' = 'condition_timeout' THEN
        PERFORM durable._condition_timeout(p_timer.namespace, p_timer.payload->>'signal_id',
                                           p_timer.workflow_id, p_timer.run_id, (p_timer.payload->>'seq')::integer);
    ELSE
        PERFORM durable._deliver(p_timer.namespace, p_timer.workflow_id, p_timer.run_id, 'timer_fired',
                                 (p_timer.payload->>'seq')::integer,
                                 pg_catalog.jsonb_build_object('due_at', p_timer.payload->'due_at'));
    END IF;
END $$;
COMMENT ON FUNCTION durable._fire_timer(durable.messages) IS
    'Internal: a due timer resolves its sleep, or times out its condition unless a signal won.';

CREATE FUNCTION durable.fire_timers_v1(p_namespace text, p_task_queues text[], p_limit integer DEFAULT 500)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_timer durable.messages;
    v_fired integer := 0;
    v_now timestamptz := durable.now();
BEGIN
    PERFORM durable._authorize(p_namespace, p_task_queues);
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 1000 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('fire_timers_v1 limit %s is out of range: give 1 to 1000', p_limit);
    END IF;
    FOR v_timer IN
        DELETE FROM durable.messages d
        WHERE d.id IN (SELECT t.id FROM durable.messages t
                       WHERE t.namespace = p_namespace AND t.stream = ANY (p_task_queues)
                         AND t.kind = 'timer' AND t.visible_at <= v_now
                       ORDER BY t.visible_at, t.id
                       LIMIT p_limit
                       FOR UPDATE SKIP LOCKED)
        RETURNING d.*
    LOOP
        PERFORM durable._fire_timer(v_timer);
        v_fired := v_fired + 1;
    END LOOP;
    -- Due schedules of these task queues start their runs (schedules.sql).
    PERFORM durable._fire_schedules(p_namespace, p_task_queues, p_limit);
    RETURN v_fired;
END $$;
COMMENT ON FUNCTION durable.fire_timers_v1(text, text[], integer) IS
    'Fires up to p_limit due timers of these task queues (each becomes an inbound event), then the due '
    'schedules of these task queues (up to p_limit; each starts its tick''s run). Returns how many timers.';

CREATE FUNCTION durable._next_timer_in(p_namespace text, p_workflow_id text, p_run_id integer)
RETURNS double precision
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    -- greatest() skips a NULL: no timer must stay NULL, not become 0.
    SELECT CASE WHEN pg_catalog.min(m.visible_at) IS NOT NULL
                THEN greatest(extract(epoch FROM pg_catalog.min(m.visible_at) - durable.now()), 0)::double precision END
    FROM durable.messages m
    WHERE m.namespace = p_namespace AND m.workflow_id = p_workflow_id AND m.run_id = p_run_id
      AND m.kind = 'timer'
$$;
COMMENT ON FUNCTION durable._next_timer_in(text, text, integer) IS
    'Internal: seconds (engine clock) until the run''s first pending timer is due; 0 if one is due, NULL if '
    'it has none.';

-- Time skipping (pgdurable.testing's WorkflowEnvironment(time_skipping=True)); owner only, never in
-- worker_functions(). The check and the jump are one transaction: the SHARE lock waits for the
-- writers under way (a completion that schedules an activity, a signal) and keeps new ones out until
-- the jump is made, so nothing can become runnable between the look and the leap.
CREATE FUNCTION durable._runnable(p_namespace text) RETURNS boolean
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    -- Runnable now: a visible message (a due timer included), or a leased one (a task running), or
    -- a due schedule (schedules.sql) its workers have yet to fire.
    SELECT EXISTS (SELECT 1 FROM durable.messages m
                   WHERE m.namespace = p_namespace AND (m.lease_token IS NOT NULL OR m.visible_at <= durable.now()))
        OR EXISTS (SELECT 1 FROM durable.schedules s
                   WHERE s.namespace = p_namespace AND NOT s.paused AND s.next_fire_at <= durable.now())
$$;
COMMENT ON FUNCTION durable._runnable(text) IS
    'Internal (time skipping): whether the namespace has a visible message, a leased (running) task or a due '
    'schedule.';

CREATE FUNCTION durable.skip_to_next_timer_v1(p_namespace text) RETURNS timestamptz
LANGUAGE plpgsql VOLATILE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_now timestamptz;
    v_next durable.messages;
    v_schedule durable.schedules;
BEGIN
    LOCK TABLE durable.messages IN SHARE MODE;
    PERFORM 1 FROM durable.clock FOR UPDATE;
    v_now := durable.now();
    IF durable._runnable(p_namespace) THEN
        RETURN NULL;
    END IF;
    SELECT m.* INTO v_next FROM durable.messages m
    WHERE m.namespace = p_namespace ORDER BY m.visible_at, m.id LIMIT 1;
    -- A schedule that fires first (schedules.sql) is skipped to as a timer is.
    SELECT s.* INTO v_schedule FROM durable.schedules s
    WHERE s.namespace = p_namespace AND NOT s.paused AND s.next_fire_at IS NOT NULL
    ORDER BY s.next_fire_at LIMIT 1;
    IF v_schedule.next_fire_at IS NOT NULL AND (v_next.id IS NULL OR v_schedule.next_fire_at <= v_next.visible_at) THEN
        UPDATE durable.clock SET offset_by = offset_by + (v_schedule.next_fire_at - v_now);
        PERFORM durable._notify_stream(p_namespace, v_schedule.task_queue);
        RETURN durable.now();
    END IF;
    IF v_next.id IS NULL OR v_next.kind <> 'timer' THEN
        RETURN NULL;
    END IF;
    UPDATE durable.clock SET offset_by = offset_by + (v_next.visible_at - v_now);
    PERFORM durable._notify_stream(p_namespace, v_next.stream);
    RETURN durable.now();
END $$;
COMMENT ON FUNCTION durable.skip_to_next_timer_v1(text) IS
    'Owner only, for tests: when nothing of the namespace is runnable (no visible message, no leased task, no '
    'due schedule) and its next due message is a timer (or a schedule fires first), moves the engine clock to '
    'that time and wakes its task queue. Returns the new now(), or NULL when it did not move the clock.';

-- env.sleep(duration) of pgdurable.testing; owner only, never in worker_functions().
CREATE FUNCTION durable.advance_clock_when_idle_v1(p_namespace text, p_by interval) RETURNS timestamptz
LANGUAGE plpgsql VOLATILE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_now timestamptz;
    v_stream text;
BEGIN
    IF p_by < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('advance_clock_when_idle_v1 by %s: the engine clock only moves forward', p_by);
    END IF;
    LOCK TABLE durable.messages IN SHARE MODE;  -- as skip_to_next_timer_v1: look and leap at once
    PERFORM 1 FROM durable.clock FOR UPDATE;
    IF durable._runnable(p_namespace) THEN
        RETURN NULL;
    END IF;
    UPDATE durable.clock SET offset_by = offset_by + p_by;
    v_now := durable.now();
    FOR v_stream IN SELECT DISTINCT m.stream FROM durable.messages m
                    WHERE m.namespace = p_namespace AND m.kind = 'timer' AND m.visible_at <= v_now
                    UNION
                    SELECT s.task_queue FROM durable.schedules s
                    WHERE s.namespace = p_namespace AND NOT s.paused AND s.next_fire_at <= v_now LOOP
        PERFORM durable._notify_stream(p_namespace, v_stream);
    END LOOP;
    RETURN v_now;
END $$;
COMMENT ON FUNCTION durable.advance_clock_when_idle_v1(text, interval) IS
    'Owner only, for tests: when nothing of the namespace is runnable (no visible message, no leased task), '
    'moves the engine clock forward by p_by and wakes the task queues whose timers (or schedules) are due by then. Returns '
    'the new now(), or NULL (clock untouched) while something is runnable: call again once it has run.';
