-- queue.sql: streams. Enqueue (single, batch), claim by name with a lease,
-- ack, heartbeat, release, wakeup channels and next_wakeup. Writes
-- durable.messages only. Timers are messages of kind 'timer' whose
-- visible_at lies in the future (see timers.sql for how they fire).

-- NOTIFY channel names are at most 63 bytes: hash the stream name, salted
-- with durable.secret so that no role can compute another namespace's
-- channels (worker roles ask stream_channels_v1 for their own).
CREATE FUNCTION durable.stream_channel(p_namespace text, p_stream text) RETURNS text
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'pgd_s_' || durable._salted_md5('stream/' || p_namespace || '/' || p_stream)
$$;
COMMENT ON FUNCTION durable.stream_channel(text, text) IS
    'The LISTEN channel a stream''s enqueues NOTIFY (38 bytes, salted: only the owner computes it).';

CREATE FUNCTION durable.stream_channels_v1(p_namespace text, p_streams text[]) RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM durable._authorize(p_namespace, p_streams);
    RETURN (SELECT pg_catalog.array_agg(durable.stream_channel(p_namespace, s) ORDER BY o)
            FROM pg_catalog.unnest(p_streams) WITH ORDINALITY AS u(s, o));
END $$;
COMMENT ON FUNCTION durable.stream_channels_v1(text, text[]) IS
    'The LISTEN channels of streams the caller may consume, in the order given (PD005 outside its scope).';

-- NOTIFY is a hint: workers poll as a backstop. When the server's queue is
-- filling up (a listener stuck in a transaction holds its tail), skip it:
-- a NOTIFY that did not fit would fail the whole transaction at commit.
CREATE FUNCTION durable._notify(p_channel text, p_payload text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_catalog.pg_notification_queue_usage() < 0.5 THEN
        PERFORM pg_catalog.pg_notify(p_channel, p_payload);
    END IF;
END $$;
COMMENT ON FUNCTION durable._notify(text, text) IS
    'Internal: NOTIFY, unless the server''s notification queue is half full (then workers poll).';

CREATE FUNCTION durable._notify_stream(p_namespace text, p_stream text) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    -- Postgres folds identical notifications of one transaction into one.
    SELECT durable._notify(durable.stream_channel(p_namespace, p_stream), '')
$$;
COMMENT ON FUNCTION durable._notify_stream(text, text) IS
    'Internal: wakes the listeners of a stream (coalesced per transaction; skipped when the queue is full).';

CREATE FUNCTION durable.enqueue_v1(
    p_namespace text,
    p_stream text,
    p_name text,
    p_payload jsonb DEFAULT '{}'::jsonb,
    p_priority smallint DEFAULT 0,
    p_delay interval DEFAULT interval '0',
    p_max_attempts integer DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_now timestamptz := durable.now();
    v_id bigint;
BEGIN
    PERFORM durable._check_name('stream name', p_stream);
    IF p_delay < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('negative delay %s: give a delay of zero or more', p_delay);
    END IF;
    INSERT INTO durable.messages
        (namespace, stream, kind, name, payload, priority, visible_at, max_attempts, created_at)
    VALUES (p_namespace, p_stream, 'message', p_name, coalesce(p_payload, '{}'::jsonb),
            coalesce(p_priority, 0), v_now + coalesce(p_delay, interval '0'), p_max_attempts, v_now)
    RETURNING id INTO v_id;
    PERFORM durable._notify_stream(p_namespace, p_stream);
    RETURN v_id;
END $$;
COMMENT ON FUNCTION durable.enqueue_v1(text, text, text, jsonb, smallint, interval, integer) IS
    'Enqueues one plain message on a stream (visible after p_delay) and NOTIFYs the stream. Returns its id.';

CREATE FUNCTION durable.enqueue_batch_v1(p_namespace text, p_stream text, p_messages jsonb)
RETURNS SETOF bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_now timestamptz := durable.now();
BEGIN
    PERFORM durable._check_name('stream name', p_stream);
    IF pg_catalog.jsonb_typeof(p_messages) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = 'enqueue_batch_v1 takes a JSON array of {"name", "payload", "priority", "delay_seconds"}';
    END IF;
    RETURN QUERY
    INSERT INTO durable.messages
        (namespace, stream, kind, name, payload, priority, visible_at, max_attempts, created_at)
    SELECT p_namespace, p_stream, 'message', m->>'name', coalesce(m->'payload', '{}'::jsonb),
           coalesce((m->>'priority')::smallint, 0),
           v_now + pg_catalog.make_interval(secs => greatest(coalesce((m->>'delay_seconds')::float8, 0), 0)),
           (m->>'max_attempts')::integer, v_now
    FROM pg_catalog.jsonb_array_elements(p_messages) WITH ORDINALITY AS t(m, ord)
    ORDER BY ord
    RETURNING id;
    PERFORM durable._notify_stream(p_namespace, p_stream);
END $$;
COMMENT ON FUNCTION durable.enqueue_batch_v1(text, text, jsonb) IS
    'Enqueues many plain messages in one statement and one NOTIFY; returns their ids in input order.';

-- Claims, lease extensions and heartbeats commit without waiting for the WAL
-- flush: one lost in a crash only makes a task visible again (its lease was
-- never durable), and whatever builds on it (a completion) commits durably,
-- flushing it too. Starts, signals and completions stay durable. Set for the
-- caller's transaction: call these functions in a transaction of their own
-- (the SDK does).
CREATE FUNCTION durable._relaxed_commit() RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.set_config('synchronous_commit', 'off', true) IS NULL
$$;
COMMENT ON FUNCTION durable._relaxed_commit() IS
    'Internal: this transaction commits without waiting for the WAL flush (claims, lease extensions, '
    'heartbeats: losing one in a crash only makes a task visible again).';

CREATE FUNCTION durable._check_lease(p_lease interval) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_lease IS NULL OR p_lease <= interval '0' OR p_lease > interval '1 hour' THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('lease %s is out of range: give more than 0 and at most 1 hour (heartbeat to '
                             'hold a task longer)', p_lease);
    END IF;
END $$;
COMMENT ON FUNCTION durable._check_lease(interval) IS
    'Internal: PD004 unless 0 < lease <= 1 hour (a task held longer is heartbeated).';

-- What a completing worker says it can take at once (eager dispatch): the
-- lease it asks for is bounded like a claim's, its owner label like a name.
CREATE FUNCTION durable._check_eager(p_eager jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_eager IS NULL THEN
        RETURN;
    END IF;
    IF pg_catalog.jsonb_typeof(p_eager) IS DISTINCT FROM 'object' OR pg_catalog.jsonb_typeof(p_eager->'lease_seconds') IS DISTINCT FROM 'number'
       OR pg_catalog.length(p_eager->>'owner') > 1000 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = 'p_eager must be an object with a numeric lease_seconds and an owner of at most 1000 characters';
    END IF;
    PERFORM durable._check_lease(pg_catalog.make_interval(secs => (p_eager->>'lease_seconds')::float8));
END $$;
COMMENT ON FUNCTION durable._check_eager(jsonb) IS
    'Internal: PD004 unless an eager-dispatch request asks for a lease a claim could get (at most 1 hour).';

-- The claim every consumer shares: the first p_batch visible messages of
-- the given streams, kinds and names, by priority then visible_at, leased
-- to p_owner. SKIP LOCKED lets concurrent claimers pass each other. A stream
-- with limits (flow_control.sql) is claimed alone, under its limits row's
-- lock, at most as many as the limits admit; a claim of streams without
-- limits pays one index probe for them.
CREATE FUNCTION durable._claim(
    p_namespace text, p_streams text[], p_names text[], p_kind text,
    p_batch integer, p_lease interval, p_owner text
) RETURNS TABLE (message durable.messages, lost_lease boolean)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_stream text;
    v_left integer := p_batch;
    v_admit record;
    v_got integer;
BEGIN
    IF p_batch IS NULL OR p_batch < 1 OR p_batch > 1000 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('claim batch %s is out of range: give 1 to 1000', p_batch);
    END IF;
    PERFORM durable._check_lease(p_lease);
    IF pg_catalog.length(p_owner) > 1000 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004', MESSAGE = 'a claim''s owner label has at most 1000 characters';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM durable.flow_limits l
                   WHERE l.namespace = p_namespace AND l.stream = ANY (p_streams)) THEN
        RETURN QUERY SELECT * FROM durable._claim_ready(p_namespace, p_streams, p_names, p_kind, p_batch, p_lease,
                                                       p_owner, durable.now());
        RETURN;
    END IF;
    -- Limited: stream by stream, in name order (the order their limits rows are locked in).
    FOR v_stream IN SELECT DISTINCT s.s FROM pg_catalog.unnest(p_streams) AS s(s) ORDER BY 1 LOOP
        SELECT * INTO v_admit FROM durable._flow_admit(p_namespace, v_stream, v_left, true);
        CONTINUE WHEN v_admit.admitted < 1;
        RETURN QUERY SELECT * FROM durable._claim_ready(p_namespace, ARRAY[v_stream], p_names, p_kind,
                                                       v_admit.admitted, p_lease, p_owner, v_admit.at);
        GET DIAGNOSTICS v_got = ROW_COUNT;
        PERFORM durable._flow_took(p_namespace, v_stream, v_got, v_admit.at);
        v_left := v_left - v_got;
        EXIT WHEN v_left < 1;
    END LOOP;
END $$;
COMMENT ON FUNCTION durable._claim(text, text[], text[], text, integer, interval, text) IS
    'Internal: leases up to p_batch visible messages (within the limits of limited streams); lost_lease is true '
    'when the previous lease expired unacked.';

CREATE FUNCTION durable._claim_ready(
    p_namespace text, p_streams text[], p_names text[], p_kind text,
    p_batch integer, p_lease interval, p_owner text, p_now timestamptz
) RETURNS TABLE (message durable.messages, lost_lease boolean)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_now timestamptz := p_now;
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT m.id, m.lease_token AS old_token
        FROM durable.messages m
        WHERE m.namespace = p_namespace
          AND m.stream = ANY (p_streams)
          AND m.kind = p_kind
          AND m.name = ANY (p_names)
          AND m.visible_at <= v_now
          -- One stream (a worker's claim) reads messages_ready in its order and stops at the
          -- batch; several are merged and sorted.
          AND pg_catalog.cardinality(p_streams) > 1
        ORDER BY m.priority DESC, m.visible_at, m.id
        LIMIT p_batch
        FOR UPDATE SKIP LOCKED
    ), picked_one AS (
        SELECT m.id, m.lease_token AS old_token
        FROM durable.messages m
        WHERE m.namespace = p_namespace
          AND m.stream = p_streams[1]
          AND m.kind = p_kind
          AND m.name = ANY (p_names)
          AND m.visible_at <= v_now
          AND pg_catalog.cardinality(p_streams) = 1
        ORDER BY m.priority DESC, m.visible_at, m.id
        LIMIT p_batch
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE durable.messages m
        SET attempt = m.attempt + 1,
            lease_owner = p_owner,
            lease_token = pg_catalog.gen_random_uuid(),
            visible_at = v_now + p_lease
        FROM (SELECT * FROM picked UNION ALL SELECT * FROM picked_one) picked
        WHERE m.id = picked.id
        RETURNING m.*, picked.old_token IS NOT NULL AS lost
    )
    SELECT (c.id, c.namespace, c.stream, c.kind, c.name, c.workflow_id, c.run_id, c.payload,
            c.priority, c.visible_at, c.attempt, c.max_attempts, c.lease_owner, c.lease_token,
            c.created_at)::durable.messages,
           c.lost
    FROM claimed c
    ORDER BY c.priority DESC, c.id;
END $$;
COMMENT ON FUNCTION durable._claim_ready(text, text[], text[], text, integer, interval, text, timestamptz) IS
    'Internal: _claim''s pick and lease (no limits): up to p_batch messages visible at p_now, priority first '
    '(then visible_at, id), through messages_ready.';

CREATE FUNCTION durable.claim_v1(
    p_namespace text,
    p_streams text[],
    p_names text[],
    p_batch integer DEFAULT 1,
    p_lease interval DEFAULT interval '30 seconds',
    p_owner text DEFAULT NULL
) RETURNS SETOF durable.messages
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM durable._authorize(p_namespace, p_streams);
    PERFORM durable._relaxed_commit();
    RETURN QUERY SELECT (c.message).* FROM durable._claim(p_namespace, p_streams, p_names, 'message',
                                                          p_batch, p_lease, p_owner) c;
END $$;
COMMENT ON FUNCTION durable.claim_v1(text, text[], text[], integer, interval, text) IS
    'Leases up to p_batch plain messages of the given streams whose name is in p_names '
    '(priority first, then visible_at). Each claim adds one to attempt; an expired lease is claimable again.';

CREATE FUNCTION durable._held_message(p_message_id bigint, p_lease_token uuid) RETURNS durable.messages
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_msg durable.messages;
BEGIN
    SELECT * INTO v_msg FROM durable.messages WHERE id = p_message_id FOR UPDATE;
    IF NOT FOUND OR v_msg.lease_token IS DISTINCT FROM p_lease_token OR p_lease_token IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD001',
            MESSAGE = pg_catalog.format('lease lost on message %s: it was acked, released or claimed by another worker '
                             'after its lease expired; this result is discarded', p_message_id);
    END IF;
    RETURN v_msg;
END $$;
COMMENT ON FUNCTION durable._held_message(bigint, uuid) IS
    'Internal fencing: locks a message and checks the caller still holds its lease (else PD001).';

CREATE FUNCTION durable.ack_v1(p_message_id bigint, p_lease_token uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM durable._authorize_messages(ARRAY[p_message_id]);
    PERFORM durable._held_message(p_message_id, p_lease_token);
    DELETE FROM durable.messages WHERE id = p_message_id;
END $$;
COMMENT ON FUNCTION durable.ack_v1(bigint, uuid) IS
    'Acknowledges (deletes) a message the caller holds the lease of; PD001 if the lease was lost.';

CREATE FUNCTION durable.extend_lease_v1(p_message_ids bigint[], p_lease_tokens uuid[], p_lease interval)
RETURNS SETOF bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_now timestamptz := durable.now();
BEGIN
    PERFORM durable._authorize_messages(p_message_ids);
    PERFORM durable._relaxed_commit();
    PERFORM durable._check_lease(p_lease);
    IF pg_catalog.cardinality(p_message_ids) > 1000 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('extend_lease_v1 takes at most 1000 messages (got %s)', pg_catalog.cardinality(p_message_ids));
    END IF;
    RETURN QUERY
    -- By primary key (= ANY), whatever the statistics say: a join with the arrays could be planned
    -- as a scan of every message.
    UPDATE durable.messages m
    -- An activity attempt with a heartbeat_timeout: never past its heartbeat deadline (only its
    -- own heartbeats move that), and a lease past it is lost.
    SET visible_at = CASE WHEN m.kind = 'activity' AND m.payload ? 'heartbeat_deadline'
                          THEN LEAST(v_now + p_lease, (m.payload->>'heartbeat_deadline')::timestamptz)
                          ELSE v_now + p_lease END
    WHERE m.id = ANY (p_message_ids)
      AND m.lease_token = (SELECT h.token
                           FROM ROWS FROM (pg_catalog.unnest(p_message_ids), pg_catalog.unnest(p_lease_tokens))
                                AS h(id, token)
                           WHERE h.id = m.id LIMIT 1)
      AND (m.kind <> 'activity' OR NOT m.payload ? 'heartbeat_deadline'
           OR (m.payload->>'heartbeat_deadline')::timestamptz > v_now)
    RETURNING m.id;
END $$;
COMMENT ON FUNCTION durable.extend_lease_v1(bigint[], uuid[], interval) IS
    'Heartbeat: extends the leases still held (id and token match) to now + p_lease; returns those ids. '
    'A missing id means that lease was lost. An activity attempt''s lease stops at its heartbeat deadline '
    '(heartbeat_timeout): past it, the lease is lost.';

CREATE FUNCTION durable.release_v1(p_message_id bigint, p_lease_token uuid,
                                   p_delay interval DEFAULT interval '0') RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_msg durable.messages;
BEGIN
    PERFORM durable._authorize_messages(ARRAY[p_message_id]);
    v_msg := durable._held_message(p_message_id, p_lease_token);
    UPDATE durable.messages
    SET lease_token = NULL, lease_owner = NULL,
        attempt = greatest(attempt - 1, 0),
        visible_at = durable.now() + greatest(coalesce(p_delay, interval '0'), interval '0')
    WHERE id = p_message_id;
    PERFORM durable._notify_stream(v_msg.namespace, v_msg.stream);
END $$;
COMMENT ON FUNCTION durable.release_v1(bigint, uuid, interval) IS
    'Gives a held message back unprocessed (visible after p_delay); the attempt it used is not counted.';

CREATE FUNCTION durable.next_wakeup_v1(p_namespace text, p_streams text[], p_names text[])
RETURNS double precision
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_next timestamptz;
    v_now timestamptz := durable.now();
BEGIN
    PERFORM durable._authorize(p_namespace, p_streams);
    IF NOT EXISTS (SELECT 1 FROM durable.flow_limits l
                   WHERE l.namespace = p_namespace AND l.stream = ANY (p_streams)) THEN
        SELECT pg_catalog.min(m.visible_at) INTO v_next
        FROM durable.messages m
        WHERE m.namespace = p_namespace AND m.stream = ANY (p_streams)
          AND (m.kind = 'timer' OR m.name = ANY (p_names));
    ELSE
        -- A limited stream's claimable task waits for its limits to admit it (flow_control.sql);
        -- its timers do not (claim_workflow_tasks_v1 fires them whatever the limits).
        SELECT pg_catalog.min(least(n.timer_next,
                         CASE WHEN n.task_next IS NULL OR n.task_next > v_now THEN n.task_next
                              ELSE durable._flow_next_admit(p_namespace, n.stream, v_now) END)) INTO v_next
        FROM (SELECT s.s AS stream,
                     (SELECT pg_catalog.min(m.visible_at) FROM durable.messages m
                      WHERE m.namespace = p_namespace AND m.stream = s.s AND m.kind <> 'timer'
                        AND m.name = ANY (p_names)) AS task_next,
                     (SELECT pg_catalog.min(m.visible_at) FROM durable.messages m
                      WHERE m.namespace = p_namespace AND m.stream = s.s AND m.kind = 'timer') AS timer_next
              FROM pg_catalog.unnest(p_streams) AS s(s)) n
        WHERE n.task_next IS NOT NULL OR n.timer_next IS NOT NULL;
    END IF;
    -- The next fire time of a schedule of these streams (schedules.sql): least() skips a NULL.
    v_next := least(v_next, (SELECT pg_catalog.min(s.next_fire_at) FROM durable.schedules s
                             WHERE s.namespace = p_namespace AND s.task_queue = ANY (p_streams) AND NOT s.paused));
    IF v_next IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN greatest(extract(epoch FROM v_next - v_now), 0)::double precision;
END $$;
COMMENT ON FUNCTION durable.next_wakeup_v1(text, text[], text[]) IS
    'Seconds until the next message (or timer, or lease expiry) of these streams becomes claimable (on a '
    'limited stream: until its limits admit a claim), or the next schedule of these streams fires; 0 if one '
    'is due now, NULL if there is none. Workers sleep until then or a NOTIFY.';
