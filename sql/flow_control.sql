-- flow_control.sql: flow control. Per-stream limits (at most max_running
-- tasks leased at once, at most rate_limit claims started in any window of
-- rate_period), set by the owner from psql or the SDK and enforced inside
-- every claim (queue.sql _claim, workflows.sql claim_workflow_task_v1: the
-- limits row of the stream is locked there, so concurrent claimers admit
-- tasks one after the other and a limit is exact); ordered partitions (one
-- running run per partition key, in start order).
-- Writes durable.flow_limits, durable.flow_rate_slots, durable.partitions,
-- durable.partition_waiters, and the visibility of a run's first workflow
-- task while it waits for its partition.
--
-- Work that starts without a claim (eager dispatch of an activity, eager
-- continuation of a workflow task) is admitted and counted like a claim
-- (_flow_admit_one); when the limits refuse it, it is queued instead.
-- Lock order: a run, then a partition row, then messages; a claim takes the
-- limits rows of its streams in stream name order, then messages (SKIP LOCKED).

CREATE FUNCTION durable._flow_limited(p_namespace text, p_stream text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM durable.flow_limits l WHERE l.namespace = p_namespace AND l.stream = p_stream)
$$;
COMMENT ON FUNCTION durable._flow_limited(text, text) IS
    'Internal: whether the stream has limits (one primary-key probe).';

-- How many of p_want tasks the stream admits now. Locks the stream's limits
-- row (until commit): the caller claims at most that many, then records them
-- with _flow_took in the same transaction.
CREATE FUNCTION durable._flow_admit(p_namespace text, p_stream text, p_want integer,
                                   p_wait boolean DEFAULT false,
                                   OUT admitted integer, OUT at timestamptz, OUT limited boolean)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_lim durable.flow_limits;
    v_running integer;
    v_nth timestamptz;
    v_cap integer;
    v_free_at timestamptz;
BEGIN
    SELECT * INTO v_lim FROM durable.flow_limits l
    WHERE l.namespace = p_namespace AND l.stream = p_stream
    FOR UPDATE;
    limited := FOUND;
    -- Read after the lock: the claims made before it are committed and counted.
    at := durable.now();
    admitted := greatest(p_want, 0);
    IF NOT limited THEN
        RETURN;
    END IF;
    IF v_lim.max_running IS NOT NULL THEN
        -- Leased and not expired: running (an expired lease is claimable again). At most
        -- max_running index entries are read.
        SELECT pg_catalog.count(*)::integer INTO v_running
        FROM (SELECT 1 FROM durable.messages m
              WHERE m.namespace = p_namespace AND m.stream = p_stream AND m.lease_token IS NOT NULL
                AND m.visible_at > at
              LIMIT v_lim.max_running) r;
        admitted := least(admitted, v_lim.max_running - v_running);
    END IF;
    IF v_lim.rate_limit IS NOT NULL AND admitted > 0 THEN
        admitted := least(admitted, v_lim.rate_limit);
        -- The ring is oldest first from rate_next: the slots free now (claimed at least
        -- rate_period ago) are a prefix of it. Mostly (a rate that does not bind) the n-th
        -- oldest is free, and so are all n: one probe.
        SELECT s.claimed_at INTO v_nth FROM durable.flow_rate_slots s
        WHERE s.namespace = p_namespace AND s.stream = p_stream
          AND s.slot = (v_lim.rate_next + admitted - 1) % v_lim.rate_limit;
        IF v_nth <= at - v_lim.rate_period THEN
            RETURN;
        END IF;
        v_cap := admitted;
        SELECT pg_catalog.count(*)::integer INTO admitted
        FROM durable.flow_rate_slots s
        WHERE s.namespace = p_namespace AND s.stream = p_stream
          AND s.slot = ANY (ARRAY(SELECT (v_lim.rate_next + i) % v_lim.rate_limit
                                  FROM pg_catalog.generate_series(0, v_cap - 1) AS g(i)))
          AND s.claimed_at <= at - v_lim.rate_period;
        -- A claim (p_wait) that comes just before the oldest claim leaves the window waits for it
        -- here (50 ms at most; workers wake a little early for this): its start is then on time,
        -- not a round trip late, and the rate is kept to the millisecond over many periods.
        IF admitted = 0 AND p_wait THEN
            SELECT s.claimed_at + v_lim.rate_period INTO v_free_at FROM durable.flow_rate_slots s
            WHERE s.namespace = p_namespace AND s.stream = p_stream AND s.slot = v_lim.rate_next;
            IF v_free_at > at AND v_free_at <= at + interval '50 milliseconds' THEN
                PERFORM pg_catalog.pg_sleep(extract(epoch FROM v_free_at - at)::float8);
                at := durable.now();
                SELECT pg_catalog.count(*)::integer INTO admitted
                FROM durable.flow_rate_slots s
                WHERE s.namespace = p_namespace AND s.stream = p_stream
                  AND s.slot = ANY (ARRAY(SELECT (v_lim.rate_next + i) % v_lim.rate_limit
                                          FROM pg_catalog.generate_series(0, v_cap - 1) AS g(i)))
                  AND s.claimed_at <= at - v_lim.rate_period;
            END IF;
        END IF;
    END IF;
    admitted := greatest(admitted, 0);
END $$;
COMMENT ON FUNCTION durable._flow_admit(text, text, integer, boolean) IS
    'Internal: locks the stream''s limits row (if any) and says how many of p_want tasks may be claimed now '
    '(max_running minus the leases held, and the free slots of the rate window), the engine time it read '
    'after the lock, and whether the stream has limits. p_wait (a claim): when the rate window frees a slot '
    'within 50 ms, wait for it.';

CREATE FUNCTION durable._flow_took(p_namespace text, p_stream text, p_count integer, p_at timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_next integer;
    v_size integer;
    v_first integer;
BEGIN
    IF p_count < 1 THEN
        RETURN;
    END IF;
    UPDATE durable.flow_limits l SET rate_next = (l.rate_next + p_count) % l.rate_limit
    WHERE l.namespace = p_namespace AND l.stream = p_stream AND l.rate_limit IS NOT NULL
    RETURNING l.rate_next, l.rate_limit INTO v_next, v_size;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_first := ((v_next - p_count) % v_size + v_size) % v_size;
    IF p_count = 1 THEN
        UPDATE durable.flow_rate_slots s SET claimed_at = p_at
        WHERE s.namespace = p_namespace AND s.stream = p_stream AND s.slot = v_first;
    ELSE
        UPDATE durable.flow_rate_slots s SET claimed_at = p_at
        WHERE s.namespace = p_namespace AND s.stream = p_stream
          AND s.slot = ANY (ARRAY(SELECT (v_first + i) % v_size
                                  FROM pg_catalog.generate_series(0, least(p_count, v_size) - 1) AS g(i)));
    END IF;
END $$;
COMMENT ON FUNCTION durable._flow_took(text, text, integer, timestamptz) IS
    'Internal: records p_count claims made at p_at in the stream''s rate window (the oldest slots of the '
    'ring become the newest). The caller holds the limits row (_flow_admit).';

-- Work handed on without a claim (eager dispatch of an activity, eager
-- continuation of a workflow task) is admitted and counted like a claim of one.
CREATE FUNCTION durable._flow_admit_one(p_namespace text, p_stream text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_admit record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM durable.flow_limits l WHERE l.namespace = p_namespace AND l.stream = p_stream) THEN
        RETURN true;  -- the common case: one index probe
    END IF;
    SELECT * INTO v_admit FROM durable._flow_admit(p_namespace, p_stream, 1);
    IF v_admit.admitted < 1 THEN
        RETURN false;
    END IF;
    PERFORM durable._flow_took(p_namespace, p_stream, 1, v_admit.at);
    RETURN true;
END $$;
COMMENT ON FUNCTION durable._flow_admit_one(text, text) IS
    'Internal: whether one task of the stream may start now without a claim (eager dispatch, eager '
    'continuation); on a limited stream it is admitted and counted like a claim of one (the limits row '
    'stays locked until commit). True at once for a stream without limits.';

-- A task of the stream ended (completed, failed for good, its run closed):
-- when the stream has a max_running and tasks wait on it, its running slot
-- is free now, so wake the stream's workers. (Nothing waits on a stream
-- without max_running, or with nothing queued: no NOTIFY.)
CREATE FUNCTION durable._flow_slot_freed(p_namespace text, p_stream text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM durable.flow_limits l
               WHERE l.namespace = p_namespace AND l.stream = p_stream AND l.max_running IS NOT NULL)
       AND EXISTS (SELECT 1 FROM durable.messages m
                   WHERE m.namespace = p_namespace AND m.stream = p_stream AND m.lease_token IS NULL
                     AND m.kind <> 'timer' AND m.visible_at <= durable.now()) THEN
        PERFORM durable._notify_stream(p_namespace, p_stream);
    END IF;
END $$;
COMMENT ON FUNCTION durable._flow_slot_freed(text, text) IS
    'Internal: a leased task of the stream ended; NOTIFYs the stream when it has a max_running and tasks '
    'wait on it (a running slot is free for them).';

-- When a limited stream may next admit a task that is claimable now (NULL:
-- when a lease ends: a completion NOTIFYs the stream, the poll is the backstop).
CREATE FUNCTION durable._flow_next_admit(p_namespace text, p_stream text, p_now timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_lim durable.flow_limits;
    v_at timestamptz := p_now;
    v_oldest timestamptz;
    v_lease_end timestamptz;
BEGIN
    SELECT * INTO v_lim FROM durable.flow_limits l WHERE l.namespace = p_namespace AND l.stream = p_stream;
    IF NOT FOUND THEN
        RETURN p_now;
    END IF;
    IF v_lim.max_running IS NOT NULL THEN
        IF v_lim.max_running = 0 THEN
            RETURN NULL;
        END IF;
        -- At the limit: the max_running-th lease from the end of the line ends first.
        SELECT pg_catalog.min(x.visible_at) INTO v_lease_end
        FROM (SELECT m.visible_at FROM durable.messages m
              WHERE m.namespace = p_namespace AND m.stream = p_stream AND m.lease_token IS NOT NULL
                AND m.visible_at > p_now
              ORDER BY m.visible_at DESC LIMIT v_lim.max_running) x
        HAVING pg_catalog.count(*) >= v_lim.max_running;
        IF v_lease_end IS NOT NULL THEN
            v_at := greatest(v_at, v_lease_end);
        END IF;
    END IF;
    IF v_lim.rate_limit IS NOT NULL THEN
        SELECT s.claimed_at INTO v_oldest FROM durable.flow_rate_slots s
        WHERE s.namespace = p_namespace AND s.stream = p_stream AND s.slot = v_lim.rate_next;
        -- 30 ms early: the claim waits the rest in the database, on time (_flow_admit).
        v_at := greatest(v_at, v_oldest + v_lim.rate_period - interval '30 milliseconds');
    END IF;
    RETURN v_at;
END $$;
COMMENT ON FUNCTION durable._flow_next_admit(text, text, timestamptz) IS
    'Internal (next_wakeup_v1): when a limited stream admits its next claim: 30 ms before the oldest claim of its '
    'rate window leaves it (the claim waits the rest), and, at max_running, when a lease ends (a completion '
    'NOTIFYs sooner); NULL for max_running 0 (paused).';

CREATE FUNCTION durable._set_stream_limits(p_stream text, p_namespace text, p_max_running integer,
                                           p_rate_limit integer, p_rate_period interval) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_old durable.flow_limits;
    v_found boolean;
    v_recent timestamptz[];
    v_now timestamptz := durable.now();
BEGIN
    PERFORM durable._check_name('stream name', p_stream);
    PERFORM durable._check_name('namespace', p_namespace);
    IF p_max_running < 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('max_running %s is negative: give 0 (pause the stream) or more, or NULL '
                                        'for no limit', p_max_running);
    END IF;
    IF (p_rate_limit IS NULL) <> (p_rate_period IS NULL) THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = 'a rate limit needs both rate_limit and rate_period (e.g. 10 per ''1 second''), or neither';
    END IF;
    IF p_rate_limit < 1 OR p_rate_limit > 100000 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('rate_limit %s is out of range: give 1 to 100000 claims per period',
                                        p_rate_limit);
    END IF;
    IF p_rate_period <= interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('rate_period %s must be longer than zero (e.g. ''1 second'')', p_rate_period);
    END IF;
    SELECT * INTO v_old FROM durable.flow_limits l
    WHERE l.namespace = p_namespace AND l.stream = p_stream
    FOR UPDATE;
    v_found := FOUND;
    IF p_max_running IS NULL AND p_rate_limit IS NULL THEN
        DELETE FROM durable.flow_limits l WHERE l.namespace = p_namespace AND l.stream = p_stream;
    ELSIF NOT v_found THEN
        INSERT INTO durable.flow_limits (namespace, stream, max_running, rate_limit, rate_period, rate_next,
                                         updated_at)
        VALUES (p_namespace, p_stream, p_max_running, p_rate_limit, p_rate_period, 0, v_now);
    ELSE
        UPDATE durable.flow_limits l
        SET max_running = p_max_running, rate_limit = p_rate_limit, rate_period = p_rate_period,
            -- The same ring size keeps the ring (and its oldest slot); another one is rebuilt below.
            rate_next = CASE WHEN p_rate_limit = v_old.rate_limit THEN v_old.rate_next ELSE 0 END,
            updated_at = v_now
        WHERE l.namespace = p_namespace AND l.stream = p_stream;
    END IF;
    IF p_rate_limit IS NULL THEN
        DELETE FROM durable.flow_rate_slots s WHERE s.namespace = p_namespace AND s.stream = p_stream;
    ELSIF p_rate_limit IS DISTINCT FROM v_old.rate_limit THEN
        -- A new ring keeps the most recent claims of the old one (the window slides on across the
        -- change): slot i (oldest first) holds the (p_rate_limit - i)-th most recent claim.
        SELECT pg_catalog.array_agg(r.claimed_at ORDER BY r.claimed_at DESC) INTO v_recent
        FROM (SELECT s.claimed_at FROM durable.flow_rate_slots s
              WHERE s.namespace = p_namespace AND s.stream = p_stream
              ORDER BY s.claimed_at DESC LIMIT p_rate_limit) r;
        DELETE FROM durable.flow_rate_slots s WHERE s.namespace = p_namespace AND s.stream = p_stream;
        INSERT INTO durable.flow_rate_slots (namespace, stream, slot, claimed_at)
        SELECT p_namespace, p_stream, g.i, coalesce(v_recent[p_rate_limit - g.i], '-infinity'::timestamptz)
        FROM pg_catalog.generate_series(0, p_rate_limit - 1) AS g(i);
    END IF;
    -- Running workers claim again at once under the new limits.
    PERFORM durable._notify_stream(p_namespace, p_stream);
END $$;
COMMENT ON FUNCTION durable._set_stream_limits(text, text, integer, integer, interval) IS
    'Internal: durable.set_stream_limits'' work.';

CREATE FUNCTION durable.set_stream_limits(stream text, namespace text DEFAULT 'durable',
                                          max_running integer DEFAULT NULL, rate_limit integer DEFAULT NULL,
                                          rate_period interval DEFAULT NULL) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT durable._set_stream_limits($1, $2, $3, $4, $5)
$$;
COMMENT ON FUNCTION durable.set_stream_limits(text, text, integer, integer, interval) IS
    'Owner/DBA: limits a stream, across all workers: at most max_running tasks leased at once (workflow tasks '
    'on a task queue, activity attempts on <task_queue>-activity; 0 pauses it) and at most rate_limit claims '
    'started in any window of rate_period (sliding). NULLs clear (all NULL: no limits). Applies to running '
    'workers at once: every claim reads the limits. PD004 for a negative or half-given limit.';

CREATE TYPE durable.stream_limit AS (
    namespace text, stream text, max_running integer, rate_limit integer, rate_period interval
);
COMMENT ON TYPE durable.stream_limit IS 'A row of durable.stream_limits().';

CREATE FUNCTION durable.stream_limits(namespace text DEFAULT NULL) RETURNS SETOF durable.stream_limit
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT l.namespace, l.stream, l.max_running, l.rate_limit, l.rate_period
    FROM durable.flow_limits l
    WHERE $1 IS NULL OR l.namespace = $1
    ORDER BY l.namespace, l.stream
$$;
COMMENT ON FUNCTION durable.stream_limits(text) IS
    'Owner/DBA: the streams with limits (of one namespace, or all) and their limits (NULL: none of that kind).';

-- The visible_at of a workflow task held back (its run waits for its partition): far
-- in the future, yet finite (an infinite timestamp breaks the arithmetic of wake-ups).
CREATE FUNCTION durable.held_back() RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT '9999-12-31 00:00:00+00'::timestamptz
$$;
COMMENT ON FUNCTION durable.held_back() IS
    'The visible_at of a workflow task held back while its run waits for its partition key (year 9999).';

-- Ordered partitions. A run started with a partition key runs at once when
-- the key is free (its workflow then holds it), else its first workflow task
-- is held back (visible in year 9999, durable.held_back()) and it waits in line.
CREATE FUNCTION durable._partition_join(p_namespace text, p_partition_key text, p_workflow_id text,
                                        p_run_id integer, p_due_at timestamptz) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_holder text;
BEGIN
    LOOP
        INSERT INTO durable.partitions AS p (namespace, partition_key, holder_workflow_id)
        VALUES (p_namespace, p_partition_key, p_workflow_id)
        ON CONFLICT ON CONSTRAINT partitions_pkey DO NOTHING;
        IF FOUND THEN
            RETURN true;
        END IF;
        SELECT p.holder_workflow_id INTO v_holder FROM durable.partitions p
        WHERE p.namespace = p_namespace AND p.partition_key = p_partition_key
        FOR UPDATE;
        EXIT WHEN FOUND;  -- else its holder left it meanwhile: try again
    END LOOP;
    UPDATE durable.messages m SET visible_at = durable.held_back()
    WHERE m.namespace = p_namespace AND m.workflow_id = p_workflow_id AND m.kind = 'workflow'
      AND m.run_id = p_run_id;
    INSERT INTO durable.partition_waiters (namespace, partition_key, workflow_id, run_id, due_at)
    VALUES (p_namespace, p_partition_key, p_workflow_id, p_run_id, p_due_at);
    RETURN false;
END $$;
COMMENT ON FUNCTION durable._partition_join(text, text, text, integer, timestamptz) IS
    'Internal: a new run of p_workflow_id takes partition p_partition_key (true) or, when another workflow holds '
    'it, waits in line with its workflow task held back (false).';

-- A run closing for good leaves its partition: the next run in line (start
-- order) gets it and its workflow task becomes visible (at its start delay's
-- end, if later). A waiting run that closes (interrupted) leaves the line.
CREATE FUNCTION durable._partition_leave(p_wf durable.workflows) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_holder text;
    v_next durable.partition_waiters;
    v_stream text;
BEGIN
    IF p_wf.partition_key IS NULL THEN
        RETURN;
    END IF;
    SELECT p.holder_workflow_id INTO v_holder FROM durable.partitions p
    WHERE p.namespace = p_wf.namespace AND p.partition_key = p_wf.partition_key
    FOR UPDATE;
    IF v_holder IS DISTINCT FROM p_wf.workflow_id THEN
        DELETE FROM durable.partition_waiters w
        WHERE w.namespace = p_wf.namespace AND w.workflow_id = p_wf.workflow_id AND w.run_id = p_wf.run_id;
        RETURN;
    END IF;
    LOOP
        DELETE FROM durable.partition_waiters w
        WHERE w.id = (SELECT x.id FROM durable.partition_waiters x
                      WHERE x.namespace = p_wf.namespace AND x.partition_key = p_wf.partition_key
                      ORDER BY x.id LIMIT 1)
        RETURNING w.* INTO v_next;
        IF NOT FOUND THEN
            DELETE FROM durable.partitions p
            WHERE p.namespace = p_wf.namespace AND p.partition_key = p_wf.partition_key;
            RETURN;
        END IF;
        UPDATE durable.messages m SET visible_at = greatest(v_next.due_at, durable.now())
        WHERE m.namespace = v_next.namespace AND m.workflow_id = v_next.workflow_id AND m.kind = 'workflow'
          AND m.run_id = v_next.run_id
        RETURNING m.stream INTO v_stream;
        IF FOUND THEN
            UPDATE durable.partitions p SET holder_workflow_id = v_next.workflow_id
            WHERE p.namespace = p_wf.namespace AND p.partition_key = p_wf.partition_key;
            PERFORM durable._notify_stream(p_wf.namespace, v_stream);
            RETURN;
        END IF;
        -- That run has no task any more (it is gone): the next one in line.
    END LOOP;
END $$;
COMMENT ON FUNCTION durable._partition_leave(durable.workflows) IS
    'Internal: a run of a partition closes for good: the holder hands the key to the next run in line (its '
    'workflow task becomes visible) or frees it; a waiting run leaves the line.';
