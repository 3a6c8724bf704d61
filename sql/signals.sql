-- signals.sql: the namespace-wide signal mailbox, and signals sent to one
-- workflow. Writes durable.signals (buffered signals, FIFO, with an expiry),
-- durable.signal_waits (conditions waiting, oldest first) and
-- durable.mailboxes (one row per signal id, whose row lock serialises it).
--
-- Two deliveries share one FIFO per signal id. A mailbox signal
-- (send_signal_v1, a workflow's own signal command) goes to the oldest
-- condition on its id of any run it may reach. A targeted signal
-- (signal_workflow_v1, handle.signal) goes only to the conditions of the
-- running run of one workflow id; buffered, it carries target_workflow_id,
-- and only a condition of that workflow may take it (continue-as-new and a
-- retry keep it; the workflow closing for good drops it). A condition takes
-- the oldest buffered signal of its id it may receive, whichever delivery.
--
-- Lock order, everywhere: the waiting run first, then the signal id's lock
-- (the row lock of its durable.mailboxes row). A sender
-- finds the oldest wait without locks, locks that run, then the signal id,
-- and checks the wait is still the oldest; if another went first, it lets
-- go of the signal lock (a rolled-back block) and tries again. A condition
-- registers under its own run's lock, then the signal lock. So a signal and
-- a condition never miss each other, and no two calls lock in opposite
-- orders. A run's own waits change only under that run's lock (a condition
-- timing out or abandoned, the run closing), which needs no signal lock.
-- A targeted sender locks the running run of its workflow id, then the
-- signal id: it needs no retry, as that run's waits cannot change under it.
--
-- A traced sender gives headers (its trace context, a JSON object of
-- strings): they travel with the signal, buffered or not, into the
-- signal_received event's data. An untraced one gives NULL: nothing stored.

CREATE FUNCTION durable._lock_signal(p_namespace text, p_signal_id text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- Two first users of an id: the second insert waits for the first, then
    -- does nothing and waits for its row lock like everyone else. (Again if
    -- prune removed the row in between.)
    LOOP
        INSERT INTO durable.mailboxes (namespace, signal_id, created_at)
        VALUES (p_namespace, p_signal_id, durable.now())
        ON CONFLICT DO NOTHING;
        PERFORM 1 FROM durable.mailboxes m
        WHERE m.namespace = p_namespace AND m.signal_id = p_signal_id
        FOR UPDATE;
        EXIT WHEN FOUND;
    END LOOP;
END $$;
COMMENT ON FUNCTION durable._lock_signal(text, text) IS
    'Internal: serialises the mailbox of one signal id for the rest of the transaction (take it after '
    'any run lock, never before).';

-- The oldest condition waiting on a signal id that a signal may reach
-- (p_allowed_queues NULL: any run; else runs on those task queues).
CREATE FUNCTION durable._oldest_wait(p_namespace text, p_signal_id text, p_allowed_queues text[])
RETURNS durable.signal_waits
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT x.* FROM durable.signal_waits x
    WHERE x.namespace = p_namespace AND x.signal_id = p_signal_id
      AND (p_allowed_queues IS NULL
           OR EXISTS (SELECT 1 FROM durable.workflows w
                      WHERE w.namespace = x.namespace AND w.workflow_id = x.workflow_id
                        AND w.run_id = x.run_id AND w.task_queue = ANY (p_allowed_queues)))
    ORDER BY x.id LIMIT 1
$$;
COMMENT ON FUNCTION durable._oldest_wait(text, text, text[]) IS
    'Internal: the oldest waiting condition on a signal id among the runs a signal may reach.';

-- Checks what a sender gives: the signal id, its data and its expiry.
CREATE FUNCTION durable._check_signal(p_signal_id text, p_data text, p_ttl interval) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM durable._check_name('signal id', p_signal_id);
    IF p_data IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004', MESSAGE = 'signal data must not be NULL: send a JSON payload';
    END IF;
    PERFORM durable._check_payload(p_data);
    IF p_ttl IS NULL OR p_ttl <= interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('invalid signal expiry %s: give a positive interval', p_ttl);
    END IF;
END $$;
COMMENT ON FUNCTION durable._check_signal(text, text, interval) IS
    'Internal: PD004 unless the signal id, data (a JSON payload) and expiry (positive) are valid.';

-- Checks a sender's headers (its trace context): a JSON object, or NULL.
CREATE FUNCTION durable._check_signal_headers(p_headers jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM durable._check_headers('signal', p_headers);
END $$;
COMMENT ON FUNCTION durable._check_signal_headers(jsonb) IS
    'Internal: PD004 unless a signal''s headers (the sender''s trace context) are a JSON object or NULL.';

-- Buffers a signal no condition took, under its signal id's lock (p_front:
-- at the head of its mailbox, for a signal given back).
CREATE FUNCTION durable._buffer_signal(p_namespace text, p_signal_id text, p_data text, p_ttl interval,
                                       p_front boolean, p_allowed_queues text[], p_target_workflow_id text,
                                       p_headers jsonb DEFAULT NULL)
RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO durable.signals (namespace, signal_id, data, position, allowed_queues, target_workflow_id,
                                 headers, created_at, expires_at)
    SELECT p_namespace, p_signal_id, p_data,
           CASE WHEN p_front
                THEN (SELECT least(coalesce(pg_catalog.min(x.position), 0), 0) - 1 FROM durable.signals x
                      WHERE x.namespace = p_namespace AND x.signal_id = p_signal_id)
                ELSE 0 END,
           p_allowed_queues, p_target_workflow_id, p_headers, t.now, t.now + p_ttl
    FROM (SELECT durable.now() AS now) t
$$;
COMMENT ON FUNCTION durable._buffer_signal(text, text, text, interval, boolean, text[], text, jsonb) IS
    'Internal: buffers a signal (FIFO per signal id; p_front: at the head; p_target_workflow_id: only '
    'that workflow may take it; p_headers: the sender''s trace context, kept with it).';

-- Delivers to the oldest waiting condition it may reach, else buffers.
-- Returns 'delivered' or 'buffered'. p_front puts a buffered signal back at
-- the head of its mailbox; p_allowed_queues limits whom it may reach.
CREATE FUNCTION durable._send_signal(p_namespace text, p_signal_id text, p_data text,
                                     p_ttl interval DEFAULT interval '7 days',
                                     p_front boolean DEFAULT false,
                                     p_allowed_queues text[] DEFAULT NULL,
                                     p_headers jsonb DEFAULT NULL) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_wait durable.signal_waits;
    v_locked durable.signal_waits[] := '{}';
BEGIN
    PERFORM durable._check_signal(p_signal_id, p_data, p_ttl);
    PERFORM durable._check_signal_headers(p_headers);
    LOOP
        -- The run first: find the oldest wait without locks and lock its run.
        v_wait := durable._oldest_wait(p_namespace, p_signal_id, p_allowed_queues);
        IF v_wait.id IS NOT NULL THEN
            PERFORM 1 FROM durable.workflows w
            WHERE w.namespace = p_namespace AND w.workflow_id = v_wait.workflow_id AND w.run_id = v_wait.run_id
            FOR UPDATE;
            v_locked := v_locked || v_wait;
        END IF;
        -- Then the signal id. If the oldest wait is now one whose run we do not
        -- hold, the block rolls back (releasing the signal lock) and we go again.
        BEGIN
            PERFORM durable._lock_signal(p_namespace, p_signal_id);
            v_wait := durable._oldest_wait(p_namespace, p_signal_id, p_allowed_queues);
            IF v_wait.id IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM pg_catalog.unnest(v_locked) l
                    WHERE l.workflow_id = v_wait.workflow_id AND l.run_id = v_wait.run_id) THEN
                RAISE EXCEPTION USING ERRCODE = 'PDR01';
            END IF;
        EXCEPTION WHEN SQLSTATE 'PDR01' THEN
            CONTINUE;
        END;
        EXIT WHEN v_wait.id IS NULL;
        DELETE FROM durable.signal_waits sw WHERE sw.id = v_wait.id;
        IF durable._deliver(p_namespace, v_wait.workflow_id, v_wait.run_id, 'signal_received', v_wait.seq,
                            durable._received(p_signal_id, p_data, p_allowed_queues, 'mailbox', p_headers)) THEN
            RETURN 'delivered';
        END IF;
        -- That call was resolved already (a stale wait): the next one, still
        -- holding the signal lock, may only be one whose run we hold.
    END LOOP;
    PERFORM durable._buffer_signal(p_namespace, p_signal_id, p_data, p_ttl, p_front, p_allowed_queues, NULL,
                                   p_headers);
    RETURN 'buffered';
END $$;
COMMENT ON FUNCTION durable._send_signal(text, text, text, interval, boolean, text[], jsonb) IS
    'Internal: hands a signal to the oldest waiting condition it may reach, or buffers it (FIFO, expiring; '
    'p_front: at the head of its mailbox; p_headers: the sender''s trace context, carried along).';

-- Delivers a signal to one workflow: its running run p_wf, which the caller
-- holds locked, takes it in its oldest condition on the id, else it is
-- buffered for that workflow. Returns 'delivered' or 'buffered'.
CREATE FUNCTION durable._send_targeted(p_wf durable.workflows, p_signal_id text, p_data text,
                                       p_ttl interval DEFAULT interval '7 days',
                                       p_front boolean DEFAULT false,
                                       p_headers jsonb DEFAULT NULL) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_wait durable.signal_waits;
BEGIN
    PERFORM durable._check_signal(p_signal_id, p_data, p_ttl);
    PERFORM durable._check_signal_headers(p_headers);
    -- The run is held, so its waits cannot change: take the signal id's lock
    -- second, as every sender does, and no retry is needed.
    PERFORM durable._lock_signal(p_wf.namespace, p_signal_id);
    FOR v_wait IN SELECT * FROM durable.signal_waits x
                  WHERE x.namespace = p_wf.namespace AND x.workflow_id = p_wf.workflow_id
                    AND x.run_id = p_wf.run_id AND x.signal_id = p_signal_id
                  ORDER BY x.id LOOP
        DELETE FROM durable.signal_waits sw WHERE sw.id = v_wait.id;
        IF durable._deliver(p_wf.namespace, p_wf.workflow_id, p_wf.run_id, 'signal_received', v_wait.seq,
                            durable._received(p_signal_id, p_data, NULL, 'workflow', p_headers)) THEN
            RETURN 'delivered';
        END IF;
    END LOOP;
    PERFORM durable._buffer_signal(p_wf.namespace, p_signal_id, p_data, p_ttl, p_front, NULL, p_wf.workflow_id,
                                   p_headers);
    RETURN 'buffered';
END $$;
COMMENT ON FUNCTION durable._send_targeted(durable.workflows, text, text, interval, boolean, jsonb) IS
    'Internal: hands a signal to the oldest waiting condition of one locked running run, or buffers it '
    'for that workflow only (p_headers: the sender''s trace context, carried along).';

-- Registers a condition of a run the caller holds locked: takes the oldest
-- unexpired buffered signal the run may receive at once, or waits.
-- Returns true when a buffered signal was consumed.
CREATE FUNCTION durable._wait_signal(p_wf durable.workflows, p_seq integer, p_signal_id text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_signal durable.signals;
    v_now timestamptz := durable.now();
BEGIN
    PERFORM durable._check_name('signal id', p_signal_id);
    PERFORM durable._lock_signal(p_wf.namespace, p_signal_id);
    DELETE FROM durable.signals s
    WHERE s.id = (SELECT x.id FROM durable.signals x
                  WHERE x.namespace = p_wf.namespace AND x.signal_id = p_signal_id AND x.expires_at > v_now
                    AND CASE WHEN x.target_workflow_id IS NULL
                             THEN x.allowed_queues IS NULL OR p_wf.task_queue = ANY (x.allowed_queues)
                             ELSE x.target_workflow_id = p_wf.workflow_id END
                  ORDER BY x.position, x.id LIMIT 1)
    RETURNING s.* INTO v_signal;
    IF FOUND THEN
        PERFORM durable._deliver(p_wf.namespace, p_wf.workflow_id, p_wf.run_id, 'signal_received', p_seq,
                                 durable._received(p_signal_id, v_signal.data, v_signal.allowed_queues,
                                                   CASE WHEN v_signal.target_workflow_id IS NULL
                                                        THEN 'mailbox' ELSE 'workflow' END,
                                                   v_signal.headers));
        RETURN true;
    END IF;
    INSERT INTO durable.signal_waits (namespace, signal_id, workflow_id, run_id, seq, created_at)
    VALUES (p_wf.namespace, p_signal_id, p_wf.workflow_id, p_wf.run_id, p_seq, v_now);
    RETURN false;
END $$;
COMMENT ON FUNCTION durable._wait_signal(durable.workflows, integer, text) IS
    'Internal: a condition consumes the oldest buffered signal of its id it may receive (mailbox or sent '
    'to its workflow), or starts waiting.';

-- A condition's timeout fired: it wins only if its wait is still there.
CREATE FUNCTION durable._condition_timeout(p_namespace text, p_signal_id text, p_workflow_id text,
                                           p_run_id integer, p_seq integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- Under the run's lock its waits change only here (a sender locks the run first).
    PERFORM 1 FROM durable.workflows
    WHERE namespace = p_namespace AND workflow_id = p_workflow_id AND run_id = p_run_id
    FOR UPDATE;
    DELETE FROM durable.signal_waits
    WHERE namespace = p_namespace AND workflow_id = p_workflow_id AND run_id = p_run_id AND seq = p_seq;
    IF NOT FOUND THEN
        RETURN false;  -- the signal won the race
    END IF;
    RETURN durable._deliver(p_namespace, p_workflow_id, p_run_id, 'signal_timed_out', p_seq,
                            pg_catalog.jsonb_build_object('signal_id', p_signal_id));
END $$;
COMMENT ON FUNCTION durable._condition_timeout(text, text, text, integer, integer) IS
    'Internal: resolves a waiting condition as timed out, unless a signal already took it.';

-- Workflow code abandoned a condition (asyncio.wait_for timed out, its task
-- was cancelled); the caller holds the run. Its wait goes, resolved as timed
-- out; a signal that reached it first goes back to the head of the mailbox
-- it came from, with the reach it had: the signal id, the allowed queues
-- and the delivery (a targeted signal stays this workflow's), and its headers, come from the
-- recorded delivery, never from the command, so a worker cannot re-send
-- what it received to another id or strip a signal's scope.
CREATE FUNCTION durable._cancel_wait(p_wf durable.workflows, p_seq integer) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_wait durable.signal_waits;
    v_received jsonb;
BEGIN
    DELETE FROM durable.signal_waits
    WHERE namespace = p_wf.namespace AND workflow_id = p_wf.workflow_id AND run_id = p_wf.run_id AND seq = p_seq
    RETURNING * INTO v_wait;
    IF FOUND THEN
        PERFORM durable._deliver(p_wf.namespace, p_wf.workflow_id, p_wf.run_id, 'signal_timed_out', p_seq,
                                 pg_catalog.jsonb_build_object('signal_id', v_wait.signal_id, 'abandoned', true));
        RETURN;
    END IF;
    SELECT h.data INTO v_received FROM durable.history h
    WHERE h.namespace = p_wf.namespace AND h.workflow_id = p_wf.workflow_id AND h.run_id = p_wf.run_id
      AND h.seq = p_seq AND h.event_type = 'signal_received';
    IF FOUND AND v_received->>'delivery' = 'workflow' THEN
        PERFORM durable._send_targeted(p_wf, v_received->>'signal_id', v_received->>'data', interval '7 days', true,
                                       v_received->'headers');
    ELSIF FOUND THEN
        PERFORM durable._send_signal(p_wf.namespace, v_received->>'signal_id', v_received->>'data',
            interval '7 days', true,
            CASE WHEN v_received ? 'allowed_queues'
                 THEN ARRAY(SELECT pg_catalog.jsonb_array_elements_text(v_received->'allowed_queues')) END,
            v_received->'headers');
    END IF;
END $$;
COMMENT ON FUNCTION durable._cancel_wait(durable.workflows, integer) IS
    'Internal: drops an abandoned condition''s wait, or returns the signal it already took to the head '
    'of its own mailbox, with the reach it had.';

-- The data of a signal_received event: the signal, its delivery ('mailbox'
-- or 'workflow'), (for a signal a worker role sent) the task queues it may
-- reach, the last two kept for a give-back, and (for a traced sender) its
-- headers: the receiving workflow task's span links to the sender's.
CREATE FUNCTION durable._received(p_signal_id text, p_data text, p_allowed_queues text[], p_delivery text,
                                  p_headers jsonb DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object('signal_id', p_signal_id, 'data', p_data, 'delivery', p_delivery)
           || CASE WHEN p_allowed_queues IS NULL THEN '{}'::jsonb
                   ELSE pg_catalog.jsonb_build_object('allowed_queues', pg_catalog.to_jsonb(p_allowed_queues)) END
           || CASE WHEN p_headers IS NULL OR p_headers = 'null'::jsonb THEN '{}'::jsonb
                   ELSE pg_catalog.jsonb_build_object('headers', p_headers) END
$$;
COMMENT ON FUNCTION durable._received(text, text, text[], text, jsonb) IS
    'Internal: a signal_received event''s data (signal id, data, delivery: mailbox or workflow, the '
    'queues a scoped signal may reach, and the sender''s headers when it was traced).';

CREATE FUNCTION durable.send_signal_v1(p_namespace text, p_signal_id text, p_data text,
                                       p_ttl interval DEFAULT interval '7 days',
                                       p_headers jsonb DEFAULT NULL) RETURNS text
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT durable._send_signal(p_namespace, p_signal_id, p_data, p_ttl, false, NULL, p_headers)
$$;
COMMENT ON FUNCTION durable.send_signal_v1(text, text, text, interval, jsonb) IS
    'Sends a signal (namespace-wide id): consumed by the oldest waiting condition, else buffered FIFO '
    'until p_ttl passes. Returns ''delivered'' or ''buffered''. p_headers: string pairs (a trace context) '
    'carried into the receiver''s signal_received event; NULL stores nothing.';

-- Owner and clients only (never a worker role's: worker_functions() does not
-- list it).
CREATE FUNCTION durable.signal_workflow_v1(p_namespace text, p_workflow_id text, p_signal_id text, p_data text,
                                           p_ttl interval DEFAULT interval '7 days',
                                           p_headers jsonb DEFAULT NULL) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_wf durable.workflows;
BEGIN
    PERFORM durable._check_name('workflow id', p_workflow_id);
    PERFORM durable._check_signal(p_signal_id, p_data, p_ttl);
    PERFORM durable._check_signal_headers(p_headers);
    -- The running run first. One that closes while we wait for its lock may
    -- have been followed by a new run (continue-as-new, a retry), which only
    -- a fresh look (a new statement) sees.
    LOOP
        SELECT * INTO v_wf FROM durable.workflows w
        WHERE w.namespace = p_namespace AND w.workflow_id = p_workflow_id AND w.status = 'running'
        FOR UPDATE;
        EXIT WHEN FOUND;
        IF NOT EXISTS (SELECT 1 FROM durable.workflows w
                       WHERE w.namespace = p_namespace AND w.workflow_id = p_workflow_id
                         AND w.status = 'running') THEN
            RAISE EXCEPTION USING ERRCODE = 'PD003',
                MESSAGE = pg_catalog.format('workflow %L is not running in namespace %L (unknown or closed): signal %L '
                                 'was not sent', p_workflow_id, p_namespace, p_signal_id);
        END IF;
    END LOOP;
    RETURN durable._send_targeted(v_wf, p_signal_id, p_data, p_ttl, false, p_headers);
END $$;
COMMENT ON FUNCTION durable.signal_workflow_v1(text, text, text, text, interval, jsonb) IS
    'Sends a signal to one workflow (handle.signal): the oldest waiting condition of its running run on '
    'p_signal_id takes it, else it is buffered for that workflow only until p_ttl passes. Returns '
    '''delivered'' or ''buffered''; PD003 when the workflow is unknown or closed (nothing buffered). '
    'p_headers: string pairs (a trace context) carried into its signal_received event; NULL stores nothing.';
