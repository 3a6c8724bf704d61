-- signals.sql: the namespace-wide signal mailbox. Writes durable.signals
-- (buffered signals, FIFO, with an expiry) and durable.signal_waits
-- (conditions waiting, oldest first). Every operation on one signal id runs
-- under one transaction-scoped advisory lock, so a signal and a condition
-- never miss each other, and a condition's timeout and a signal race with
-- exactly one winner (the loser's signal stays buffered).

CREATE FUNCTION durable._lock_signal(p_namespace text, p_signal_id text) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_advisory_xact_lock(hashtextextended('durable.signal/' || p_namespace || '/' || p_signal_id, 0))
$$;
COMMENT ON FUNCTION durable._lock_signal(text, text) IS
    'Internal: serialises every mailbox operation on one signal id for the rest of the transaction.';

CREATE FUNCTION durable._check_signal_id(p_signal_id text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_signal_id IS NULL OR p_signal_id = '' OR length(p_signal_id) > 1000 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = format('invalid signal id %L: give a non-empty id of at most 1000 characters',
                             left(p_signal_id, 80));
    END IF;
END $$;
COMMENT ON FUNCTION durable._check_signal_id(text) IS 'Internal: rejects empty or oversized signal ids.';

-- Delivers to the oldest waiting condition, else buffers. Returns
-- 'delivered' or 'buffered'.
CREATE FUNCTION durable._send_signal(p_namespace text, p_signal_id text, p_data text,
                                     p_ttl interval DEFAULT interval '7 days',
                                     p_front boolean DEFAULT false) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_wait durable.signal_waits;
    v_now timestamptz := durable.now();
BEGIN
    PERFORM durable._check_signal_id(p_signal_id);
    IF p_data IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004', MESSAGE = 'signal data must not be NULL: send a JSON payload';
    END IF;
    IF p_ttl IS NULL OR p_ttl <= interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = format('invalid signal expiry %s: give a positive interval', p_ttl);
    END IF;
    PERFORM durable._lock_signal(p_namespace, p_signal_id);
    LOOP
        SELECT x.* INTO v_wait FROM durable.signal_waits x
        WHERE x.namespace = p_namespace AND x.signal_id = p_signal_id
        ORDER BY x.id LIMIT 1;
        EXIT WHEN NOT FOUND;
        -- Lock the waiter's run before its wait: _close_run drops a closing
        -- run's waits while holding the run, so the other order deadlocks.
        PERFORM 1 FROM durable.workflows w
        WHERE w.namespace = p_namespace AND w.workflow_id = v_wait.workflow_id AND w.run_id = v_wait.run_id
        FOR UPDATE;
        DELETE FROM durable.signal_waits sw WHERE sw.id = v_wait.id;
        IF FOUND AND durable._deliver(p_namespace, v_wait.workflow_id, v_wait.run_id, 'signal_received',
                                      v_wait.seq, jsonb_build_object('signal_id', p_signal_id, 'data', p_data)) THEN
            RETURN 'delivered';
        END IF;
        -- That wait went with its closing run, or its run has ended: try the next one.
    END LOOP;
    IF p_front THEN
        -- Back to the head of its mailbox (a signal an abandoned condition took).
        INSERT INTO durable.signals (id, namespace, signal_id, data, created_at, expires_at)
        OVERRIDING SYSTEM VALUE
        VALUES ((SELECT coalesce(min(x.id), 1) - 1 FROM durable.signals x), p_namespace, p_signal_id, p_data,
                v_now, v_now + p_ttl);
    ELSE
        INSERT INTO durable.signals (namespace, signal_id, data, created_at, expires_at)
        VALUES (p_namespace, p_signal_id, p_data, v_now, v_now + p_ttl);
    END IF;
    RETURN 'buffered';
END $$;
COMMENT ON FUNCTION durable._send_signal(text, text, text, interval, boolean) IS
    'Internal: hands a signal to the oldest waiting condition on its id, or buffers it (FIFO, expiring).';

-- Registers a condition: takes the oldest unexpired buffered signal at
-- once, or waits. Returns true when a buffered signal was consumed.
CREATE FUNCTION durable._wait_signal(p_namespace text, p_workflow_id text, p_run_id integer,
                                     p_seq integer, p_signal_id text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_signal durable.signals;
    v_now timestamptz := durable.now();
BEGIN
    PERFORM durable._check_signal_id(p_signal_id);
    PERFORM durable._lock_signal(p_namespace, p_signal_id);
    DELETE FROM durable.signals s
    WHERE s.id = (SELECT x.id FROM durable.signals x
                  WHERE x.namespace = p_namespace AND x.signal_id = p_signal_id AND x.expires_at > v_now
                  ORDER BY x.id LIMIT 1)
    RETURNING s.* INTO v_signal;
    IF FOUND THEN
        PERFORM durable._deliver(p_namespace, p_workflow_id, p_run_id, 'signal_received', p_seq,
                                 jsonb_build_object('signal_id', p_signal_id, 'data', v_signal.data));
        RETURN true;
    END IF;
    INSERT INTO durable.signal_waits (namespace, signal_id, workflow_id, run_id, seq, created_at)
    VALUES (p_namespace, p_signal_id, p_workflow_id, p_run_id, p_seq, v_now);
    RETURN false;
END $$;
COMMENT ON FUNCTION durable._wait_signal(text, text, integer, integer, text) IS
    'Internal: a condition consumes the oldest buffered signal of its id, or starts waiting for one.';

-- A condition's timeout fired: it wins only if its wait is still there.
CREATE FUNCTION durable._condition_timeout(p_namespace text, p_signal_id text, p_workflow_id text,
                                           p_run_id integer, p_seq integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- The run first, then the signal lock: the order complete_workflow_task_v1
    -- takes them in when a condition starts waiting.
    PERFORM 1 FROM durable.workflows
    WHERE namespace = p_namespace AND workflow_id = p_workflow_id AND run_id = p_run_id
    FOR UPDATE;
    PERFORM durable._lock_signal(p_namespace, p_signal_id);
    DELETE FROM durable.signal_waits
    WHERE namespace = p_namespace AND workflow_id = p_workflow_id AND run_id = p_run_id AND seq = p_seq;
    IF NOT FOUND THEN
        RETURN false;  -- the signal won the race
    END IF;
    RETURN durable._deliver(p_namespace, p_workflow_id, p_run_id, 'signal_timed_out', p_seq,
                            jsonb_build_object('signal_id', p_signal_id));
END $$;
COMMENT ON FUNCTION durable._condition_timeout(text, text, text, integer, integer) IS
    'Internal: resolves a waiting condition as timed out, unless a signal already took it.';

-- Workflow code abandoned a condition (asyncio.wait_for timed out, its task
-- was cancelled). Its wait goes, resolved as timed out; a signal that
-- reached it first goes back to the head of the mailbox, not lost.
CREATE FUNCTION durable._cancel_wait(p_namespace text, p_signal_id text, p_workflow_id text,
                                     p_run_id integer, p_seq integer) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_data text;
BEGIN
    PERFORM durable._lock_signal(p_namespace, p_signal_id);
    DELETE FROM durable.signal_waits
    WHERE namespace = p_namespace AND workflow_id = p_workflow_id AND run_id = p_run_id AND seq = p_seq;
    IF FOUND THEN
        PERFORM durable._deliver(p_namespace, p_workflow_id, p_run_id, 'signal_timed_out', p_seq,
                                 jsonb_build_object('signal_id', p_signal_id, 'abandoned', true));
        RETURN;
    END IF;
    SELECT h.data->>'data' INTO v_data FROM durable.history h
    WHERE h.namespace = p_namespace AND h.workflow_id = p_workflow_id AND h.run_id = p_run_id
      AND h.seq = p_seq AND h.event_type = 'signal_received';
    IF FOUND THEN
        PERFORM durable._send_signal(p_namespace, p_signal_id, v_data, interval '7 days', true);
    END IF;
END $$;
COMMENT ON FUNCTION durable._cancel_wait(text, text, text, integer, integer) IS
    'Internal: drops an abandoned condition''s wait, or returns the signal it already took to the head '
    'of its mailbox.';

CREATE FUNCTION durable.send_signal_v1(p_namespace text, p_signal_id text, p_data text,
                                       p_ttl interval DEFAULT interval '7 days') RETURNS text
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT durable._send_signal(p_namespace, p_signal_id, p_data, p_ttl)
$$;
COMMENT ON FUNCTION durable.send_signal_v1(text, text, text, interval) IS
    'Sends a signal (namespace-wide id): consumed by the oldest waiting condition, else buffered FIFO '
    'until p_ttl passes. Returns ''delivered'' or ''buffered''.';
