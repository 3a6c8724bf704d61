-- Generated from sql/ (manifest order) by scripts/freeze_sql.py: edit sql/,
-- then regenerate with `python scripts/freeze_sql.py` (see migrations/README).

-- >>> schema.sql
-- schema.sql: the `durable` schema, its tables, the engine clock and the
-- schema version. Every other file only adds functions over these tables.
--
-- Conventions: namespaces partition every table; user payloads (args,
-- results, signal data) are opaque `text` written by the SDK (JSON, or
-- whatever a registered codec made of it) — the engine never looks inside.
-- Errors raised by the engine use SQLSTATE class PD (PD001 lease lost,
-- PD002 duplicate workflow, PD003 not found, PD004 invalid argument,
-- PD005 not permitted; PDS01 duplicate schedule, PDS02 schedule not found).

CREATE SCHEMA durable;
COMMENT ON SCHEMA durable IS 'pgdurable: a durable workflow engine in PL/pgSQL';

-- The engine clock: clock_timestamp() plus an offset that only the schema
-- owner can change (tests skip time with it; it is zero in production).
CREATE TABLE durable.clock (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    offset_by interval NOT NULL DEFAULT interval '0'
);
INSERT INTO durable.clock DEFAULT VALUES;

-- Streams: one table of messages. A message is claimable when visible_at
-- has passed; a claim leases it by pushing visible_at to the lease expiry,
-- so an expired lease makes the message claimable again with no sweeper.
CREATE TABLE durable.messages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace text NOT NULL,
    stream text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('message', 'workflow', 'activity', 'timer')),
    name text NOT NULL,
    workflow_id text,
    run_id integer,
    payload jsonb NOT NULL DEFAULT '{}'::jsonb,
    priority smallint NOT NULL DEFAULT 0,
    visible_at timestamptz NOT NULL,
    attempt integer NOT NULL DEFAULT 0,
    max_attempts integer CHECK (max_attempts IS NULL OR max_attempts >= 1),
    lease_owner text,
    lease_token uuid,
    created_at timestamptz NOT NULL
) WITH (fillfactor = 70);
COMMENT ON TABLE durable.messages IS
    'Stream messages: workflow tasks, activity tasks, timers and plain messages. '
    'visible_at is the delivery time, or the lease expiry while lease_token is set.';
CREATE INDEX messages_ready ON durable.messages (namespace, stream, priority DESC, visible_at, id);
CREATE INDEX messages_by_workflow ON durable.messages (namespace, workflow_id, run_id)
    WHERE workflow_id IS NOT NULL;
-- Due timers (fire_timers_v1, run inside every workflow-task claim) and expired
-- leases (the lost attempts every activity claim records first) are few among
-- the queued tasks: each has an index of its own, so finding none costs an
-- index probe, not a read of the stream's backlog.
CREATE INDEX messages_timers ON durable.messages (namespace, stream, visible_at, id) WHERE kind = 'timer';
CREATE INDEX messages_leased ON durable.messages (namespace, stream, visible_at) WHERE lease_token IS NOT NULL;
-- At most one pending workflow task per workflow: new events fold into it.
CREATE UNIQUE INDEX messages_one_workflow_task ON durable.messages (namespace, workflow_id)
    WHERE kind = 'workflow';

-- Flow control (flow_control.sql). Per-stream limits, global across workers:
-- at most max_running tasks leased at once, at most rate_limit claims in any
-- window of rate_period (sliding). A claim of a stream with a row here locks
-- that row, so concurrent claimers admit tasks one after the other (exact);
-- a stream without one pays one index probe.
CREATE TABLE durable.flow_limits (
    namespace text NOT NULL,
    stream text NOT NULL,
    max_running integer CHECK (max_running >= 0),
    rate_limit integer CHECK (rate_limit BETWEEN 1 AND 100000),
    rate_period interval CHECK (rate_period > interval '0'),
    rate_next integer NOT NULL DEFAULT 0,  -- the oldest slot of the ring in flow_rate_slots
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (namespace, stream),
    CHECK ((rate_limit IS NULL) = (rate_period IS NULL)),
    CHECK (max_running IS NOT NULL OR rate_limit IS NOT NULL)
);
COMMENT ON TABLE durable.flow_limits IS
    'Per-stream limits (durable.set_stream_limits): max_running leased tasks at once, rate_limit claims in any '
    'window of rate_period. Read and locked inside every claim of the stream.';
-- The sliding window of a rate limit: a ring of rate_limit claim times, oldest
-- first from flow_limits.rate_next. A claim may start one task per slot whose
-- time is at least rate_period old, and writes its own time there: bounded
-- (rate_limit rows), and exact.
CREATE TABLE durable.flow_rate_slots (
    namespace text NOT NULL,
    stream text NOT NULL,
    slot integer NOT NULL,
    claimed_at timestamptz NOT NULL,
    PRIMARY KEY (namespace, stream, slot),
    FOREIGN KEY (namespace, stream) REFERENCES durable.flow_limits (namespace, stream) ON DELETE CASCADE
);
COMMENT ON TABLE durable.flow_rate_slots IS
    'The last rate_limit claim times of a rate-limited stream (a ring, oldest first from flow_limits.rate_next).';
-- Ordered partitions: the workflow that holds a partition key now (the row
-- exists only while one does), and the runs waiting for it in start order
-- (their first workflow task is held back until their turn).
CREATE TABLE durable.partitions (
    namespace text NOT NULL,
    partition_key text NOT NULL,
    holder_workflow_id text NOT NULL,
    PRIMARY KEY (namespace, partition_key)
);
COMMENT ON TABLE durable.partitions IS
    'Partition keys held now: the workflow whose run runs (one at a time per key); its row lock orders starts '
    'and closes of the key.';
CREATE TABLE durable.partition_waiters (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace text NOT NULL,
    partition_key text NOT NULL,
    workflow_id text NOT NULL,
    run_id integer NOT NULL,
    due_at timestamptz NOT NULL  -- its start delay's end: it runs at its turn, not before this
);
CREATE INDEX partition_waiters_fifo ON durable.partition_waiters (namespace, partition_key, id);
CREATE INDEX partition_waiters_by_run ON durable.partition_waiters (namespace, workflow_id, run_id);
COMMENT ON TABLE durable.partition_waiters IS
    'Runs waiting for their partition key, in start order (id); each one''s workflow task is held back.';

-- Workflows: one row per run. A workflow id has at most one running run.
CREATE TABLE durable.workflows (
    namespace text NOT NULL,
    workflow_id text NOT NULL,
    run_id integer NOT NULL,
    workflow_name text NOT NULL,
    task_queue text NOT NULL,
    status text NOT NULL CHECK (status IN
        ('running', 'completed', 'failed', 'cancelled', 'interrupted', 'continued')),
    args text NOT NULL,
    result text,
    error jsonb,
    attempt integer NOT NULL DEFAULT 1,
    retry jsonb,
    parent_workflow_id text,
    parent_run_id integer,
    parent_seq integer,
    last_event_id integer NOT NULL DEFAULT 0,
    last_inbound_event_id integer NOT NULL DEFAULT 0,
    processed_event_id integer NOT NULL DEFAULT 0,
    cancel_requested boolean NOT NULL DEFAULT false,
    task_failures integer NOT NULL DEFAULT 0,
    last_task_failure jsonb,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    closed_at timestamptz,
    sticky_worker text,
    -- Flow control (flow_control.sql): the run's priority (its tasks', higher first), its partition
    -- (one running run per key at a time, in start order) and its dedup id (one running run per id).
    priority smallint NOT NULL DEFAULT 0,
    partition_key text,
    dedup_id text,
    PRIMARY KEY (namespace, workflow_id, run_id)
) WITH (fillfactor = 80);
COMMENT ON TABLE durable.workflows IS
    'One row per workflow run; processed_event_id is how far the workflow code has seen its history; '
    'sticky_worker is the worker that completed its last workflow task (it holds the run in its cache and '
    'is told on its own channel when the run has new events).';
CREATE UNIQUE INDEX workflows_one_running ON durable.workflows (namespace, workflow_id)
    WHERE status = 'running';
-- A dedup id names at most one running run of its namespace (a second start is refused or returns it).
CREATE UNIQUE INDEX workflows_one_dedup ON durable.workflows (namespace, dedup_id)
    WHERE status = 'running' AND dedup_id IS NOT NULL;
-- No timestamp in this index: appending an event updates updated_at, and an
-- index on it would make every such update a non-HOT one. Status first: with
-- namespace first it served "namespace = $1" as well as the primary key, and
-- on a young table whose statistics lag (a burst of starts before the first
-- autoanalyze) the planner picked it, smaller, for lookups by workflow id --
-- a scan of every run of the namespace per lookup.
CREATE INDEX workflows_by_status ON durable.workflows (status, namespace);
-- The dashboard's list, newest first, a page at a time (search_workflows_v1):
-- created_at never changes after the insert, so this index keeps updates HOT.
CREATE INDEX workflows_by_created ON durable.workflows (namespace, created_at, workflow_id, run_id);
CREATE INDEX workflows_by_parent ON durable.workflows (namespace, parent_workflow_id)
    WHERE parent_workflow_id IS NOT NULL;

-- History: append-only, keyed (workflow, run, event_id). `seq` names the
-- durable call (command) an event belongs to; `inbound` events are the ones
-- delivered to workflow code, in event_id order, on every replay.
CREATE TABLE durable.history (
    namespace text NOT NULL,
    workflow_id text NOT NULL,
    run_id integer NOT NULL,
    event_id integer NOT NULL,
    event_type text NOT NULL CHECK (event_type IN (
        'workflow_started', 'workflow_completed', 'workflow_failed', 'workflow_cancelled',
        'workflow_interrupted', 'workflow_continued_as_new', 'workflow_task_failed', 'workflow_reset',
        'cancel_requested', 'activity_scheduled', 'activity_failed', 'activity_completed',
        'timer_started', 'timer_fired', 'timer_cancelled', 'signal_wait_started', 'signal_received',
        'signal_timed_out', 'signal_sent', 'child_started', 'child_completed', 'child_failed',
        'patch_marker', 'external_signal_sent', 'external_cancel_sent', 'external_interrupt_sent')),
    seq integer,
    inbound boolean NOT NULL,
    data jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (namespace, workflow_id, run_id, event_id)
);
COMMENT ON TABLE durable.history IS
    'Append-only workflow history; inbound events are replayed into workflow code in event_id order.';
-- A durable call is resolved at most once: exactly-once recording.
CREATE UNIQUE INDEX history_one_resolution ON durable.history (namespace, workflow_id, run_id, seq)
    WHERE inbound AND seq IS NOT NULL;
-- The last minute's events for durable.stream_stats (stats.sql). BRIN: history is appended in
-- time order, so the index is a few pages and an insert into the newest, unsummarized range of
-- pages costs it nothing.
CREATE INDEX history_by_time ON durable.history USING brin (created_at) WITH (pages_per_range = 16);

-- Signals: a namespace-wide mailbox per signal id, and signals sent to one
-- workflow (same ids, same FIFO). Buffered signals wait here (FIFO by
-- position, then id: a signal put back at the head of its mailbox gets a
-- position below the others of its id) for a condition; waiting conditions
-- wait in signal_waits (oldest first). allowed_queues: a signal a worker
-- role sent may reach only runs on the task queues of its produce scope
-- (NULL: any run, as for signals a client sent). target_workflow_id: a
-- signal sent to one workflow (handle.signal), which only that workflow's
-- conditions may take (NULL: the namespace-wide mailbox).
CREATE TABLE durable.signals (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace text NOT NULL,
    signal_id text NOT NULL,
    data text NOT NULL,
    position bigint NOT NULL DEFAULT 0,
    allowed_queues text[],
    target_workflow_id text,
    headers jsonb,  -- the sender's trace context (a traced sender only)
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX signals_fifo ON durable.signals (namespace, signal_id, position, id);
CREATE INDEX signals_target ON durable.signals (namespace, target_workflow_id)
    WHERE target_workflow_id IS NOT NULL;

CREATE TABLE durable.signal_waits (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace text NOT NULL,
    signal_id text NOT NULL,
    workflow_id text NOT NULL,
    run_id integer NOT NULL,
    seq integer NOT NULL,
    created_at timestamptz NOT NULL,
    UNIQUE (namespace, workflow_id, run_id, seq)
);
CREATE INDEX signal_waits_fifo ON durable.signal_waits (namespace, signal_id, id);

-- One row per signal id ever used: its row lock serialises that id's
-- mailbox (a sender and a condition never miss each other). A row lock, not
-- an advisory one: no other role can take it, nor learn it from pg_locks.
CREATE TABLE durable.mailboxes (
    namespace text NOT NULL,
    signal_id text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (namespace, signal_id)
);

-- Worker roles a DBA provisioned (roles.sql): the functions a worker role
-- may EXECUTE check session_user against this table.
CREATE TABLE durable.worker_credentials (
    role_name text PRIMARY KEY,
    namespace text NOT NULL,
    database_name text NOT NULL,
    stream_names text[] NOT NULL CHECK (cardinality(stream_names) > 0),
    produce text[] NOT NULL,
    signal_prefixes text[],
    created_at timestamptz NOT NULL,
    rotated_at timestamptz,
    revoked_at timestamptz
);
COMMENT ON TABLE durable.worker_credentials IS
    'Provisioned worker roles and their scopes: streams they may consume, task queues they may produce '
    'to, signal id prefixes their conditions may wait on (NULL: any). Revoked rows stay for audit; '
    'passwords are never stored here (Postgres keeps only their SCRAM hash).';

-- Workers that registered themselves (workers.sql): one row per worker
-- process part (its owner string, the lease owner of what it claims). A
-- worker upserts its row at start and on every heartbeat and marks it
-- stopped on shutdown; a row not seen for 3 heartbeat intervals is not live.
CREATE TABLE durable.workers (
    worker_id text PRIMARY KEY,
    namespace text NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    task_queue text NOT NULL,
    workflow_names text[] NOT NULL,
    activity_names text[] NOT NULL,
    role_name text NOT NULL,
    heartbeat_interval interval NOT NULL CHECK (heartbeat_interval > interval '0'),
    started_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    stopped_at timestamptz
);
COMMENT ON TABLE durable.workers IS
    'Workers that registered themselves: what each serves (task queue, workflow and activity names), where it '
    'runs (host, pid), the role that registered it, and when it was last seen (live: not stopped and seen within '
    '3 heartbeat intervals).';
CREATE INDEX workers_by_queue ON durable.workers (namespace, task_queue);

-- A per-database secret no worker role can read: NOTIFY channel names are
-- derived from it, so nobody computes another namespace's channels from the
-- public source. (The engine's own locks are row locks on engine tables.)
CREATE TABLE durable.secret (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    key text NOT NULL DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '')
);
INSERT INTO durable.secret DEFAULT VALUES;
COMMENT ON TABLE durable.secret IS
    'A random key made at install: salts NOTIFY channel names (owner only).';

CREATE FUNCTION durable._salted_md5(p_text text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.md5((SELECT s.key FROM durable.secret s) || '/' || p_text)
$$;
COMMENT ON FUNCTION durable._salted_md5(text) IS
    'Internal: md5 of p_text salted with durable.secret (NOTIFY channel names).';

CREATE FUNCTION durable._check_headers(p_what text, p_headers jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_headers IS NULL THEN
        RETURN;
    END IF;
    IF pg_catalog.jsonb_typeof(p_headers) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('%s headers must be a JSON object of strings (a trace context), or NULL',
                                        p_what);
    END IF;
    IF pg_catalog.octet_length(p_headers::text) > 8192 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('%s headers of %s bytes exceed the 8192 byte limit: headers carry a trace '
                                        'context, not data (put data in the args or the signal''s payload)',
                                        p_what, pg_catalog.octet_length(p_headers::text));
    END IF;
END $$;
COMMENT ON FUNCTION durable._check_headers(text, jsonb) IS
    'Internal: PD004 unless p_headers (of a workflow start or a signal) is NULL or a JSON object of at most 8 KiB.';

CREATE FUNCTION durable._check_payload(p_payload text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- The SDK checks the same limit with the same message (payloads.MAX_PAYLOAD_BYTES).
    IF pg_catalog.octet_length(p_payload) > 16777216 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('payload of %s bytes exceeds the 16777216 byte limit: store large data '
                                        'elsewhere and pass a reference', pg_catalog.octet_length(p_payload));
    END IF;
END $$;
COMMENT ON FUNCTION durable._check_payload(text) IS
    'Internal: PD004 for a payload (args, result, signal data, details, error) over 16 MiB.';

CREATE FUNCTION durable._check_name(p_what text, p_value text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_value IS NULL OR p_value = '' OR pg_catalog.length(p_value) > 1000 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('invalid %s %L: give a non-empty value of at most 1000 characters',
                             p_what, left(p_value, 80));
    END IF;
END $$;
COMMENT ON FUNCTION durable._check_name(text, text) IS
    'Internal: the one name validator. PD004 "invalid <p_what> <value>" for a NULL, empty or over-1000-character '
    'name: workflow id and name, task queue, activity name, stream name, signal id, namespace.';

CREATE FUNCTION durable.schema_version() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$ SELECT 1 $$;
COMMENT ON FUNCTION durable.schema_version() IS
    'The engine schema version; the SDK refuses a database whose version it cannot speak.';

CREATE FUNCTION durable.now() RETURNS timestamptz
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.clock_timestamp() + (SELECT c.offset_by FROM durable.clock c)
$$;
COMMENT ON FUNCTION durable.now() IS
    'The engine clock: clock_timestamp() plus the owner-only offset (zero in production).';

CREATE FUNCTION durable.set_clock_offset(p_offset interval) RETURNS timestamptz
LANGUAGE sql VOLATILE STRICT SET search_path = pg_catalog, pg_temp AS $$
    UPDATE durable.clock SET offset_by = p_offset;
    SELECT durable.now();
$$;
COMMENT ON FUNCTION durable.set_clock_offset(interval) IS
    'Owner only: sets the engine clock offset (tests use it to skip time). Returns the new now().';

CREATE FUNCTION durable.advance_clock(p_by interval) RETURNS timestamptz
LANGUAGE sql VOLATILE STRICT SET search_path = pg_catalog, pg_temp AS $$
    UPDATE durable.clock SET offset_by = offset_by + p_by;
    SELECT durable.now();
$$;
COMMENT ON FUNCTION durable.advance_clock(interval) IS
    'Owner only: moves the engine clock forward by p_by. Returns the new now().';

-- Schedules (schedules.sql): a workflow started on every tick of a cron
-- expression (in a time zone) or of a fixed interval. next_tick is the
-- nominal time of the next tick (NULL: none left before end_at), next_fire_at
-- that tick plus its jitter offset: the workers' timer path
-- (fire_timers_v1) fires a schedule once next_fire_at has passed, under the
-- row lock (FOR UPDATE SKIP LOCKED), and moves next_tick on in the same
-- transaction. buffered_tick: overlap 'buffer_one' keeps one tick here until
-- the schedule's last run closes. args: the payload every run starts with.
CREATE TABLE durable.schedules (
    namespace text NOT NULL,
    schedule_id text NOT NULL,
    workflow_name text NOT NULL,
    task_queue text NOT NULL,
    args text NOT NULL,
    cron text,
    every interval,
    timezone text NOT NULL,
    overlap text NOT NULL CHECK (overlap IN ('skip', 'buffer_one', 'allow_all', 'cancel_other',
                                             'terminate_other')),
    catchup_window interval NOT NULL,
    start_at timestamptz,
    end_at timestamptz,
    jitter interval,
    paused boolean NOT NULL DEFAULT false,
    note text,
    next_tick timestamptz,
    next_fire_at timestamptz,
    buffered_tick timestamptz,
    last_workflow_id text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (namespace, schedule_id),
    CHECK ((cron IS NULL) <> (every IS NULL))
);
COMMENT ON TABLE durable.schedules IS
    'Schedules: workflow_name started on task_queue at every tick of cron (in timezone) or every; fired by the '
    'workers'' timer path when next_fire_at passes. Change them with durable.create_schedule / pause_schedule / '
    'resume_schedule / trigger_schedule / delete_schedule, not by hand.';
-- The timer path's probe (run inside every workflow-task claim): due, unpaused schedules of its
-- task queues, and those holding a buffered tick.
CREATE INDEX schedules_due ON durable.schedules (namespace, task_queue, next_fire_at) WHERE NOT paused;
CREATE INDEX schedules_buffered ON durable.schedules (namespace, task_queue) WHERE buffered_tick IS NOT NULL;

-- What each tick of a schedule did (the newest 50 per schedule are kept):
-- action 'started' (a run started: workflow_id), 'skipped' (overlap, or
-- missed beyond the catch-up window: detail says which), 'buffered',
-- 'cancelled_other' / 'terminated_other' (the previous run it stopped),
-- 'error' (the start failed: detail).
CREATE TABLE durable.schedule_runs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace text NOT NULL,
    schedule_id text NOT NULL,
    tick timestamptz NOT NULL,
    trigger text NOT NULL CHECK (trigger IN ('scheduled', 'manual', 'buffered')),
    action text NOT NULL CHECK (action IN ('started', 'skipped', 'buffered', 'cancelled_other',
                                           'terminated_other', 'error')),
    workflow_id text,
    detail text,
    created_at timestamptz NOT NULL
);
COMMENT ON TABLE durable.schedule_runs IS
    'What the recent ticks of each schedule did (started a run, skipped, buffered, stopped the previous run, '
    'failed); the newest 50 per schedule are kept.';
CREATE INDEX schedule_runs_by_schedule ON durable.schedule_runs (namespace, schedule_id, id);

-- >>> queue.sql
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

-- >>> flow_control.sql
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

-- >>> retry.sql
-- retry.sql: retry arithmetic. A policy is the jsonb the SDK stores with an
-- activity (or a workflow started with retry=): maximum_attempts (all
-- attempts, the first included), initial_interval and maximum_interval in
-- seconds, backoff_coefficient, non_retryable_errors (class names). Pure
-- functions: no table is written here; activities.sql applies them.

CREATE FUNCTION durable.retry_delay_v1(p_policy jsonb, p_attempt integer) RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    -- The delay before attempt p_attempt + 1: min(initial * coef^(n-1), max).
    -- The exponent stops where coef^k passes e^690 (~1e300, far beyond any
    -- maximum): a late attempt gets the maximum instead of a float overflow.
    SELECT pg_catalog.make_interval(secs => least(
        p.initial * pg_catalog.power(p.coef, CASE WHEN p.coef > 0 AND p.coef <> 1
                                       THEN least(p.k, pg_catalog.floor(690 / pg_catalog.abs(pg_catalog.ln(p.coef)))) ELSE p.k END),
        p.maximum))
    FROM (SELECT coalesce((p_policy->>'initial_interval')::float8, 1.0) AS initial,
                 coalesce((p_policy->>'backoff_coefficient')::float8, 2.0) AS coef,
                 coalesce((p_policy->>'maximum_interval')::float8, 60.0) AS maximum,
                 greatest(coalesce(p_attempt, 1), 1) - 1 AS k) p
$$;
COMMENT ON FUNCTION durable.retry_delay_v1(jsonb, integer) IS
    'Delay after failed attempt n: min(initial_interval * backoff_coefficient^(n-1), maximum_interval) seconds.';

CREATE FUNCTION durable.should_retry_v1(p_policy jsonb, p_attempt integer, p_error jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    -- Retry unless: the error is fatal, one of its classes is non-retryable,
    -- or attempt n was the last allowed.
    SELECT NOT coalesce((p_error->>'non_retryable')::boolean, false)
       AND NOT EXISTS (
            SELECT 1
            FROM pg_catalog.jsonb_array_elements_text(coalesce(p_error->'types', '[]'::jsonb)) t(name)
            JOIN pg_catalog.jsonb_array_elements_text(coalesce(p_policy->'non_retryable_errors', '[]'::jsonb)) n(name)
              ON n.name = t.name)
       AND p_attempt < coalesce((p_policy->>'maximum_attempts')::integer, 5)
$$;
COMMENT ON FUNCTION durable.should_retry_v1(jsonb, integer, jsonb) IS
    'True when failed attempt p_attempt may be retried under p_policy: not fatal, no non-retryable '
    'class among p_error->types, and attempts remain (maximum_attempts counts every attempt).';

CREATE FUNCTION durable.task_retry_delay_v1(p_failures integer) RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    -- Workflow tasks retry forever: 1 s, 2 s, 4 s ... capped at 60 s.
    SELECT durable.retry_delay_v1('{"initial_interval": 1, "backoff_coefficient": 2,
                                    "maximum_interval": 60}'::jsonb, p_failures)
$$;
COMMENT ON FUNCTION durable.task_retry_delay_v1(integer) IS
    'Backoff of a failed workflow task after p_failures failures: 1 s doubling, capped at 60 s.';

-- >>> signals.sql
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

-- >>> workflows.sql
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

-- >>> timers.sql
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

-- >>> schedules.sql
-- (Over 450 lines: cron arithmetic, the firing path and the owner's API share one tick model.)
-- schedules.sql: schedules. A schedule starts workflow_name on task_queue at
-- every tick of a 5-field cron expression (evaluated in its time zone) or of a
-- fixed interval, bounded by start_at / end_at, each tick delayed by a
-- deterministic jitter offset. No daemon fires them: the workers' timer path
-- (fire_timers_v1, run inside every workflow-task claim) fires the due
-- schedules of the caller's task queues, and next_wakeup_v1 wakes idle
-- workers for the next fire time.
--
-- Exactly once: a tick is fired under the schedule's row lock (FOR UPDATE
-- SKIP LOCKED, racing workers skip it) in the transaction that moves
-- next_tick on; its run's workflow id is derived from the schedule and the
-- tick (<schedule_id>-<tick, ISO 8601 UTC>) and started with id_reuse
-- 'return_existing', so even a replayed tick never makes a second run.
--
-- Overlap (the schedule's last started run still running): skip, buffer_one
-- (keep one tick, started when that run closes), allow_all, cancel_other
-- (cancel it, start the new one at once), terminate_other (interrupt it,
-- start the new one). Catch-up: a tick fired more than catchup_window late
-- (after downtime, a stalled worker) is skipped; later ones follow the
-- overlap policy. Paused schedules do not fire; resuming does not catch up.
--
-- Cron semantics follow the Python library cronsim (the property test checks
-- that they agree): fields minute hour day-of-month month day-of-week; '*',
-- lists, ranges, steps, names (JAN-DEC, SUN-SAT, any case; 0 and 7 are
-- Sunday). Day-of-month and day-of-week: when either field starts with '*'
-- both must match, else either may (Vixie cron). Time zones and DST: when
-- neither the minute nor the hour field starts with '*' the expression names
-- wall-clock times: each is fired once, a time a spring-forward gap skips
-- fires at the first wall-clock minute after the gap, and a time a fall-back
-- repeats fires at its first occurrence. Otherwise every real instant whose
-- local time matches fires (a repeated hour's matches fire twice, a skipped
-- hour's never). L, W, # and a seconds field are not supported.
--
-- args: the payload text every run starts with. The SDK passes it encoded
-- exactly as client.workflow.start encodes args (a JSON string holding the
-- encoded payload, so a registered codec applies); a psql user passes a plain
-- JSON array, stored as its JSON text (readable by workers without a codec).
-- Writes durable.schedules, durable.schedule_runs and, through
-- _start_workflow / cancel_workflow_v1 / interrupt_workflow_v1, the runs.

CREATE TYPE durable.cron_spec AS (
    minutes integer[],    -- minute of the hour
    hours integer[],
    days integer[],       -- day of the month
    months integer[],
    weekdays integer[],   -- 0 (Sunday) to 6
    day_and boolean,      -- day-of-month AND day-of-week (else OR)
    wall_clock boolean    -- fixed wall-clock times (neither minute nor hour field starts with '*')
);
COMMENT ON TYPE durable.cron_spec IS 'A parsed 5-field cron expression (durable._cron_parse).';

CREATE FUNCTION durable._cron_bad(p_expr text, p_field integer, p_term text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'PD004',
        MESSAGE = pg_catalog.format('invalid cron expression %L: bad %s field %L: give %s, with lists (1,3), '
                                    'ranges (1-5) and steps (*/15, 1-30/2)', p_expr,
                                    (ARRAY['minute', 'hour', 'day-of-month', 'month', 'day-of-week'])[p_field],
                                    pg_catalog.left(p_term, 80),
                                    (ARRAY['0-59', '0-23', '1-31', '1-12 or JAN-DEC',
                                           '0-7 (0 and 7 are Sunday) or SUN-SAT'])[p_field]);
END $$;
COMMENT ON FUNCTION durable._cron_bad(text, integer, text) IS
    'Internal: PD004 naming the cron expression, its bad field and what that field accepts.';

CREATE FUNCTION durable._cron_value(p_expr text, p_field integer, p_text text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_pos integer;
    v_value integer;
BEGIN
    IF p_field = 4 THEN
        v_pos := pg_catalog.array_position(ARRAY['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP',
                                                 'OCT', 'NOV', 'DEC'], p_text);
        IF v_pos IS NOT NULL THEN
            RETURN v_pos;
        END IF;
    ELSIF p_field = 5 THEN
        v_pos := pg_catalog.array_position(ARRAY['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'], p_text);
        IF v_pos IS NOT NULL THEN
            RETURN v_pos - 1;
        END IF;
    END IF;
    IF p_text !~ '^[0-9]{1,6}$' THEN
        PERFORM durable._cron_bad(p_expr, p_field, p_text);
    END IF;
    v_value := p_text::integer;
    IF v_value < (ARRAY[0, 0, 1, 1, 0])[p_field] OR v_value > (ARRAY[59, 23, 31, 12, 7])[p_field] THEN
        PERFORM durable._cron_bad(p_expr, p_field, p_text);
    END IF;
    RETURN v_value;
END $$;
COMMENT ON FUNCTION durable._cron_value(text, integer, text) IS
    'Internal: one value of cron field p_field (1 minute .. 5 day-of-week): a number in range or a name.';

-- One field (or one term of a list), as cronsim parses it: '*', 'a,b', 'x/step' (a single start
-- value x runs to the field's maximum; a range or '*' keeps every step-th of its values), 'a-b', 'a'.
CREATE FUNCTION durable._cron_field(p_expr text, p_field integer, p_term text) RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_min integer := (ARRAY[0, 0, 1, 1, 0])[p_field];
    v_max integer := (ARRAY[59, 23, 31, 12, 7])[p_field];
    v_items integer[];
    v_step integer;
    v_slash integer;
    v_dash integer;
    v_from integer;
    v_to integer;
BEGIN
    IF p_term = '*' THEN
        RETURN ARRAY(SELECT pg_catalog.generate_series(v_min, v_max));
    END IF;
    IF pg_catalog.strpos(p_term, ',') > 0 THEN
        RETURN ARRAY(SELECT DISTINCT x FROM pg_catalog.unnest(pg_catalog.string_to_array(p_term, ',')) t,
                                            pg_catalog.unnest(durable._cron_field(p_expr, p_field, t)) x
                     ORDER BY x);
    END IF;
    v_slash := pg_catalog.strpos(p_term, '/');
    IF v_slash > 0 THEN
        IF pg_catalog.substr(p_term, v_slash + 1) !~ '^[0-9]{1,6}$'
           OR pg_catalog.substr(p_term, v_slash + 1)::integer = 0 THEN
            PERFORM durable._cron_bad(p_expr, p_field, p_term);
        END IF;
        v_step := pg_catalog.substr(p_term, v_slash + 1)::integer;
        v_items := durable._cron_field(p_expr, p_field, pg_catalog.left(p_term, v_slash - 1));
        IF pg_catalog.cardinality(v_items) = 1 THEN
            RETURN ARRAY(SELECT pg_catalog.generate_series(v_items[1], v_max, v_step));
        END IF;
        RETURN ARRAY(SELECT u.x FROM pg_catalog.unnest(v_items) WITH ORDINALITY u(x, i)
                     WHERE (u.i - 1) % v_step = 0 ORDER BY u.x);
    END IF;
    v_dash := pg_catalog.strpos(p_term, '-');
    IF v_dash > 0 THEN
        v_from := durable._cron_value(p_expr, p_field, pg_catalog.left(p_term, v_dash - 1));
        v_to := durable._cron_value(p_expr, p_field, pg_catalog.substr(p_term, v_dash + 1));
        IF v_to < v_from THEN
            PERFORM durable._cron_bad(p_expr, p_field, p_term);
        END IF;
        RETURN ARRAY(SELECT pg_catalog.generate_series(v_from, v_to));
    END IF;
    RETURN ARRAY[durable._cron_value(p_expr, p_field, p_term)];
END $$;
COMMENT ON FUNCTION durable._cron_field(text, integer, text) IS
    'Internal: the sorted values of one cron field (1 minute .. 5 day-of-week); PD004 when it is malformed.';

CREATE FUNCTION durable._cron_parse(p_expr text) RETURNS durable.cron_spec
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_parts text[];
    v_spec durable.cron_spec;
BEGIN
    IF p_expr IS NULL OR pg_catalog.length(p_expr) > 1000 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = 'invalid cron expression: give 5 fields (minute hour day-of-month month day-of-week) of at '
                      'most 1000 characters, e.g. ''0 3 * * *''';
    END IF;
    v_parts := pg_catalog.regexp_split_to_array(
        pg_catalog.regexp_replace(pg_catalog.upper(p_expr), '^\s+|\s+$', '', 'g'), '\s+');
    IF pg_catalog.cardinality(v_parts) <> 5 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('invalid cron expression %L: it has %s field(s); give 5: minute hour '
                                        'day-of-month month day-of-week, e.g. ''0 3 * * *'' (no seconds field)',
                                        pg_catalog.left(p_expr, 80),
                                        CASE WHEN v_parts = ARRAY[''] THEN 0 ELSE pg_catalog.cardinality(v_parts) END);
    END IF;
    v_spec.minutes := durable._cron_field(p_expr, 1, v_parts[1]);
    v_spec.hours := durable._cron_field(p_expr, 2, v_parts[2]);
    v_spec.days := durable._cron_field(p_expr, 3, v_parts[3]);
    v_spec.months := durable._cron_field(p_expr, 4, v_parts[4]);
    v_spec.weekdays := ARRAY(SELECT DISTINCT x % 7 FROM pg_catalog.unnest(durable._cron_field(p_expr, 5, v_parts[5])) x
                             ORDER BY 1);
    v_spec.day_and := pg_catalog.starts_with(v_parts[3], '*') OR pg_catalog.starts_with(v_parts[5], '*');
    v_spec.wall_clock := NOT (pg_catalog.starts_with(v_parts[1], '*') OR pg_catalog.starts_with(v_parts[2], '*'));
    IF v_spec.day_and AND v_spec.days[1] > 29
       AND v_spec.days[1] > (SELECT pg_catalog.max((ARRAY[31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[m])
                             FROM pg_catalog.unnest(v_spec.months) m) THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('invalid cron expression %L: day-of-month %s never occurs in the months '
                                        'it names', p_expr, v_parts[3]);
    END IF;
    RETURN v_spec;
END $$;
COMMENT ON FUNCTION durable._cron_parse(text) IS
    'Internal: parses a 5-field cron expression (PD004 naming the bad field when it is malformed).';

CREATE FUNCTION durable._cron_day_matches(p_spec durable.cron_spec, p_day date) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN p_spec.day_and
                THEN EXTRACT(day FROM p_day)::integer = ANY (p_spec.days)
                     AND EXTRACT(dow FROM p_day)::integer = ANY (p_spec.weekdays)
                ELSE EXTRACT(day FROM p_day)::integer = ANY (p_spec.days)
                     OR EXTRACT(dow FROM p_day)::integer = ANY (p_spec.weekdays) END
$$;
COMMENT ON FUNCTION durable._cron_day_matches(durable.cron_spec, date) IS
    'Internal: whether a date matches the cron day-of-month / day-of-week fields (AND or OR, see the file).';

-- The first local day, from p_day on, whose month and day match; NULL after 50 years.
CREATE FUNCTION durable._cron_next_day(p_spec durable.cron_spec, p_day date) RETURNS date
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_day date := p_day;
    v_last_year integer := EXTRACT(year FROM p_day)::integer + 50;
BEGIN
    LOOP
        IF EXTRACT(year FROM v_day) > v_last_year THEN
            RETURN NULL;
        END IF;
        IF NOT (EXTRACT(month FROM v_day)::integer = ANY (p_spec.months)) THEN
            v_day := (pg_catalog.date_trunc('month', v_day) + interval '1 month')::date;
        ELSIF durable._cron_day_matches(p_spec, v_day) THEN
            RETURN v_day;
        ELSE
            v_day := v_day + 1;
        END IF;
    END LOOP;
END $$;
COMMENT ON FUNCTION durable._cron_next_day(durable.cron_spec, date) IS
    'Internal: the first date from p_day on whose month and day match the cron fields (NULL past 50 years).';

-- Minutes of the day (hour * 60 + minute) the expression names, sorted.
CREATE FUNCTION durable._cron_minutes_of_day(p_spec durable.cron_spec) RETURNS integer[]
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT ARRAY(SELECT h * 60 + m FROM pg_catalog.unnest(p_spec.hours) h, pg_catalog.unnest(p_spec.minutes) m
                 ORDER BY 1)
$$;
COMMENT ON FUNCTION durable._cron_minutes_of_day(durable.cron_spec) IS
    'Internal: the minutes of the day (hour * 60 + minute) a cron expression names, sorted.';

-- The earliest instant whose local time in p_tz is p_local, NULL when p_local falls in a gap. A
-- repeated local time (fall-back) has two instants: the offsets in force 3 hours before and after
-- the first guess give both.
CREATE FUNCTION durable._cron_instant(p_local timestamp, p_tz text) RETURNS timestamptz
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.min(c.i)
    FROM (SELECT p_local AT TIME ZONE p_tz AS guess) g
    CROSS JOIN LATERAL (VALUES (g.guess),
        ((p_local AT TIME ZONE 'UTC')
         - (((g.guess - interval '3 hours') AT TIME ZONE p_tz) - ((g.guess - interval '3 hours') AT TIME ZONE 'UTC'))),
        ((p_local AT TIME ZONE 'UTC')
         - (((g.guess + interval '3 hours') AT TIME ZONE p_tz) - ((g.guess + interval '3 hours') AT TIME ZONE 'UTC')))
    ) c(i)
    WHERE (c.i AT TIME ZONE p_tz) = p_local
$$;
COMMENT ON FUNCTION durable._cron_instant(timestamp, text) IS
    'Internal: the earliest instant whose wall-clock time in p_tz is p_local (NULL inside a DST gap).';

-- The first tick strictly after p_after (NULL when none within 50 years).
CREATE FUNCTION durable._cron_after(p_spec durable.cron_spec, p_tz text, p_after timestamptz) RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_mods integer[] := durable._cron_minutes_of_day(p_spec);
    v_from timestamp := pg_catalog.date_trunc('second', p_after AT TIME ZONE p_tz) + interval '1 second';
    v_day date;
    v_mod integer;
    v_local timestamp;
    v_best timestamptz;
    v_guard integer := 0;
BEGIN
    IF p_spec.wall_clock THEN
        -- Fixed wall-clock times: walk local time, then place the result (see the file's comment).
        v_day := durable._cron_next_day(p_spec, v_from::date);
        v_mod := NULL;
        IF v_day = v_from::date THEN
            SELECT pg_catalog.min(x) INTO v_mod FROM pg_catalog.unnest(v_mods) x
            WHERE v_day + pg_catalog.make_interval(mins => x) >= v_from;
            IF v_mod IS NULL THEN
                v_day := durable._cron_next_day(p_spec, v_day + 1);
            END IF;
        END IF;
        IF v_day IS NULL THEN
            RETURN NULL;
        END IF;
        v_local := v_day + pg_catalog.make_interval(mins => coalesce(v_mod, v_mods[1]));
        LOOP
            v_best := durable._cron_instant(v_local, p_tz);
            EXIT WHEN v_best IS NOT NULL OR v_guard > 1440;
            v_local := v_local + interval '1 minute';  -- in a gap: the first minute after it
            v_guard := v_guard + 1;
        END LOOP;
        RETURN v_best;
    END IF;
    -- Otherwise: the earliest real instant after p_after whose local time matches.
    v_day := durable._cron_next_day(p_spec, (v_from - interval '3 hours')::date);
    WHILE v_day IS NOT NULL LOOP
        SELECT pg_catalog.min(c.i) INTO v_best
        FROM pg_catalog.unnest(v_mods) x
        CROSS JOIN LATERAL (SELECT v_day + pg_catalog.make_interval(mins => x) AS l) w
        CROSS JOIN LATERAL (SELECT w.l AT TIME ZONE p_tz AS guess) g
        CROSS JOIN LATERAL (VALUES (g.guess),
            ((w.l AT TIME ZONE 'UTC')
             - (((g.guess - interval '3 hours') AT TIME ZONE p_tz) - ((g.guess - interval '3 hours') AT TIME ZONE 'UTC'))),
            ((w.l AT TIME ZONE 'UTC')
             - (((g.guess + interval '3 hours') AT TIME ZONE p_tz) - ((g.guess + interval '3 hours') AT TIME ZONE 'UTC')))
        ) c(i)
        WHERE w.l >= v_from - interval '3 hours' AND (c.i AT TIME ZONE p_tz) = w.l
          AND c.i >= pg_catalog.date_trunc('second', p_after) + interval '1 second';
        IF v_best IS NOT NULL THEN
            RETURN v_best;
        END IF;
        v_day := durable._cron_next_day(p_spec, v_day + 1);
    END LOOP;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION durable._cron_after(durable.cron_spec, text, timestamptz) IS
    'Internal: the first tick of a parsed cron expression in time zone p_tz strictly after p_after.';

CREATE FUNCTION durable._check_timezone(p_timezone text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_timezone = 'UTC' THEN
        RETURN;  -- the common case, without reading the zone files (pg_timezone_names takes ~30 ms)
    END IF;
    IF p_timezone IS NULL OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names z WHERE z.name = p_timezone) THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('unknown time zone %L: give an IANA time zone name such as ''UTC'', '
                                        '''Europe/Paris'' or ''America/New_York'' (see pg_timezone_names)',
                                        pg_catalog.left(p_timezone, 80));
    END IF;
END $$;
COMMENT ON FUNCTION durable._check_timezone(text) IS
    'Internal: PD004 unless p_timezone is an IANA time zone name Postgres knows (pg_timezone_names).';

CREATE FUNCTION durable.cron_next(p_expr text, p_timezone text DEFAULT 'UTC', p_after timestamptz DEFAULT NULL,
                                  p_count integer DEFAULT 1)
RETURNS SETOF timestamptz
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_spec durable.cron_spec := durable._cron_parse(p_expr);
    v_at timestamptz := coalesce(p_after, durable.now());
    v_i integer := 0;
BEGIN
    PERFORM durable._check_timezone(p_timezone);
    IF p_count IS NULL OR p_count < 0 OR p_count > 1000 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('cron_next count %s is out of range: give 0 to 1000', p_count);
    END IF;
    WHILE v_i < p_count LOOP
        v_at := durable._cron_after(v_spec, p_timezone, v_at);
        EXIT WHEN v_at IS NULL;
        RETURN NEXT v_at;
        v_i := v_i + 1;
    END LOOP;
END $$;
COMMENT ON FUNCTION durable.cron_next(text, text, timestamptz, integer) IS
    'The next p_count fire times of cron expression p_expr (5 fields) in time zone p_timezone after p_after '
    '(default: the engine clock''s now). PD004 for a bad expression or time zone. DST rules: see schedules.sql.';

-- ---------------------------------------------------------------------------
-- Ticks
-- ---------------------------------------------------------------------------

-- The schedule's first tick strictly after p_after, within start_at / end_at (NULL: none left).
-- Intervals tick at start_at + k * every, or, without start_at, at k * every from the Unix epoch.
CREATE FUNCTION durable._schedule_next_tick(p_s durable.schedules, p_after timestamptz) RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_after timestamptz := p_after;
    v_anchor timestamptz := coalesce(p_s.start_at, pg_catalog.to_timestamp(0));
    v_tick timestamptz;
    v_spec durable.cron_spec;
    v_guard integer := 0;
BEGIN
    IF p_s.start_at IS NOT NULL AND v_after < p_s.start_at THEN
        v_after := p_s.start_at - interval '1 microsecond';
    END IF;
    IF p_s.cron IS NOT NULL THEN
        v_spec := durable._cron_parse(p_s.cron);
        v_tick := durable._cron_after(v_spec, p_s.timezone, v_after);
        -- A wall-clock time of a repeated hour is placed at its first occurrence, which can
        -- precede p_after: never hand back a tick at or before it.
        WHILE v_tick IS NOT NULL AND v_tick <= v_after AND v_guard < 10 LOOP
            v_tick := durable._cron_after(v_spec, p_s.timezone, v_tick);
            v_guard := v_guard + 1;
        END LOOP;
    ELSIF v_after < v_anchor THEN
        v_tick := v_anchor;
    ELSE
        v_tick := v_anchor + p_s.every * (pg_catalog.floor(EXTRACT(epoch FROM v_after - v_anchor)
                                                           / EXTRACT(epoch FROM p_s.every))::bigint + 1);
        WHILE v_tick <= v_after LOOP  -- rounding at the edge
            v_tick := v_tick + p_s.every;
        END LOOP;
    END IF;
    IF v_tick > p_s.end_at THEN
        RETURN NULL;
    END IF;
    RETURN v_tick;
END $$;
COMMENT ON FUNCTION durable._schedule_next_tick(durable.schedules, timestamptz) IS
    'Internal: the schedule''s first tick strictly after p_after within start_at / end_at (NULL: none left).';

CREATE FUNCTION durable._schedule_jitter(p_s durable.schedules, p_tick timestamptz) RETURNS interval
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    -- Deterministic in [0, jitter): every worker computes the same offset for a tick.
    SELECT CASE WHEN p_tick IS NULL OR p_s.jitter IS NULL THEN interval '0'
                ELSE p_s.jitter * (('x' || pg_catalog.substr(pg_catalog.md5(
                         p_s.namespace || '/' || p_s.schedule_id || '/' || EXTRACT(epoch FROM p_tick)::text), 1, 12)
                     )::bit(48)::bigint / 281474976710656.0) END
$$;
COMMENT ON FUNCTION durable._schedule_jitter(durable.schedules, timestamptz) IS
    'Internal: the tick''s deterministic jitter offset in [0, jitter) (a hash of schedule and tick).';

CREATE FUNCTION durable._schedule_workflow_id(p_schedule_id text, p_tick timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT p_schedule_id || '-' || pg_catalog.to_char(p_tick AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
           || CASE WHEN EXTRACT(microseconds FROM p_tick)::bigint % 1000000 <> 0
                   THEN pg_catalog.to_char(p_tick AT TIME ZONE 'UTC', '.US') ELSE '' END || 'Z'
$$;
COMMENT ON FUNCTION durable._schedule_workflow_id(text, timestamptz) IS
    'Internal: the workflow id of a schedule''s tick: <schedule_id>-<tick in ISO 8601 UTC>, e.g. '
    'nightly-2026-01-31T03:00:00Z.';

CREATE FUNCTION durable._schedule_record(p_s durable.schedules, p_tick timestamptz, p_trigger text, p_action text,
                                         p_workflow_id text, p_detail text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_oldest_kept bigint;
BEGIN
    INSERT INTO durable.schedule_runs (namespace, schedule_id, tick, trigger, action, workflow_id, detail, created_at)
    VALUES (p_s.namespace, p_s.schedule_id, p_tick, p_trigger, p_action, p_workflow_id, p_detail, durable.now());
    SELECT r.id INTO v_oldest_kept FROM durable.schedule_runs r
    WHERE r.namespace = p_s.namespace AND r.schedule_id = p_s.schedule_id
    ORDER BY r.id DESC OFFSET 49 LIMIT 1;
    IF FOUND THEN
        DELETE FROM durable.schedule_runs r
        WHERE r.namespace = p_s.namespace AND r.schedule_id = p_s.schedule_id AND r.id < v_oldest_kept;
    END IF;
END $$;
COMMENT ON FUNCTION durable._schedule_record(durable.schedules, timestamptz, text, text, text, text) IS
    'Internal: records what a tick did in schedule_runs, keeping the newest 50 per schedule.';

CREATE FUNCTION durable._schedule_run_open(p_s durable.schedules) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT p_s.last_workflow_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM durable.workflows w
        WHERE w.namespace = p_s.namespace AND w.workflow_id = p_s.last_workflow_id AND w.status = 'running')
$$;
COMMENT ON FUNCTION durable._schedule_run_open(durable.schedules) IS
    'Internal: whether the schedule''s last started run is still running.';

-- One tick under the overlap policy: start its run, or skip / buffer it, stopping the previous run
-- first under cancel_other / terminate_other. Returns the schedule row as changed (the caller
-- writes it).
CREATE FUNCTION durable._schedule_tick(p_s durable.schedules, p_tick timestamptz, p_trigger text)
RETURNS durable.schedules
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_s durable.schedules := p_s;
    v_open boolean := durable._schedule_run_open(p_s);
    v_workflow_id text;
    v_run_id integer;
    v_started boolean;
    v_name text;
    v_queue text;
BEGIN
    IF v_open AND v_s.overlap = 'skip' THEN
        PERFORM durable._schedule_record(v_s, p_tick, p_trigger, 'skipped', NULL,
            pg_catalog.format('overlap skip: the previous run %s is still running', v_s.last_workflow_id));
        RETURN v_s;
    END IF;
    IF v_open AND v_s.overlap = 'buffer_one' THEN
        IF v_s.buffered_tick IS NULL THEN
            v_s.buffered_tick := p_tick;
            PERFORM durable._schedule_record(v_s, p_tick, p_trigger, 'buffered', NULL,
                pg_catalog.format('overlap buffer_one: starts when the previous run %s closes', v_s.last_workflow_id));
        ELSE
            PERFORM durable._schedule_record(v_s, p_tick, p_trigger, 'skipped', NULL,
                pg_catalog.format('overlap buffer_one: the tick of %s is buffered already', v_s.buffered_tick));
        END IF;
        RETURN v_s;
    END IF;
    IF v_open AND v_s.overlap = 'cancel_other' THEN
        PERFORM durable.cancel_workflow_v1(v_s.namespace, v_s.last_workflow_id);
        PERFORM durable._schedule_record(v_s, p_tick, p_trigger, 'cancelled_other', v_s.last_workflow_id,
                                         'overlap cancel_other: cancellation requested');
    ELSIF v_open AND v_s.overlap = 'terminate_other' THEN
        PERFORM durable.interrupt_workflow_v1(v_s.namespace, v_s.last_workflow_id,
            pg_catalog.format('terminated by schedule %s (overlap terminate_other)', v_s.schedule_id));
        PERFORM durable._schedule_record(v_s, p_tick, p_trigger, 'terminated_other', v_s.last_workflow_id,
                                         'overlap terminate_other: interrupted');
    END IF;
    v_workflow_id := durable._schedule_workflow_id(v_s.schedule_id, p_tick);
    SELECT s.run_id, s.started INTO v_run_id, v_started
    FROM durable._start_workflow(v_s.namespace, v_workflow_id, v_s.workflow_name, v_s.task_queue, v_s.args,
                                 NULL, 'return_existing', NULL, NULL, NULL) s;
    IF NOT v_started THEN
        -- The tick's id is predictable: a run under it that is not this schedule's workflow (say, a
        -- child a worker started first) is not taken for the tick's run.
        SELECT w.workflow_name, w.task_queue INTO v_name, v_queue FROM durable.workflows w
        WHERE w.namespace = v_s.namespace AND w.workflow_id = v_workflow_id AND w.run_id = v_run_id;
        IF v_name <> v_s.workflow_name OR v_queue <> v_s.task_queue THEN
            RAISE EXCEPTION USING ERRCODE = 'PD002',
                MESSAGE = pg_catalog.format('workflow id %L belongs to workflow %L on task queue %L: the tick of '
                                            'schedule %L (workflow %L on task queue %L) did not start',
                                            v_workflow_id, v_name, v_queue, v_s.schedule_id, v_s.workflow_name,
                                            v_s.task_queue);
        END IF;
    END IF;
    PERFORM durable._schedule_record(v_s, p_tick, p_trigger, 'started', v_workflow_id,
        CASE WHEN v_started THEN NULL ELSE 'the run of this tick had started already' END);
    v_s.last_workflow_id := v_workflow_id;
    RETURN v_s;
END $$;
COMMENT ON FUNCTION durable._schedule_tick(durable.schedules, timestamptz, text) IS
    'Internal: applies the overlap policy to one tick (start its run, skip, buffer, or stop the previous '
    'run and start) and records it; returns the changed schedule row. PD002 when the tick''s workflow id '
    'is held by another workflow (another name or task queue).';

-- Fires what is due of one locked schedule: its buffered tick once the last run closed, then its
-- due ticks (at most 100 per call), skipping those more than catchup_window late. Returns the row.
CREATE FUNCTION durable._advance_schedule(p_s durable.schedules, p_now timestamptz) RETURNS durable.schedules
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_s durable.schedules := p_s;
    v_first timestamptz;
    v_resume timestamptz;
    v_count integer := 0;
BEGIN
    IF v_s.buffered_tick IS NOT NULL AND NOT durable._schedule_run_open(v_s) THEN
        v_first := v_s.buffered_tick;
        v_s.buffered_tick := NULL;
        v_s := durable._schedule_tick(v_s, v_first, 'buffered');
    END IF;
    WHILE v_s.next_tick IS NOT NULL AND v_s.next_fire_at <= p_now AND v_count < 100 LOOP
        v_count := v_count + 1;
        IF p_now - v_s.next_fire_at > v_s.catchup_window THEN
            -- Missed (downtime): every tick too late is skipped at once, recorded as one row.
            v_first := v_s.next_tick;
            v_resume := durable._schedule_next_tick(
                v_s, p_now - v_s.catchup_window - coalesce(v_s.jitter, interval '0') - interval '1 microsecond');
            IF v_resume IS NOT NULL AND v_resume <= v_first THEN
                v_resume := durable._schedule_next_tick(v_s, v_first);
            END IF;
            PERFORM durable._schedule_record(v_s, v_first, 'scheduled', 'skipped', NULL,
                pg_catalog.format('missed: the ticks from %s %s were more than the catch-up window (%s) late',
                                  v_first, CASE WHEN v_resume IS NULL THEN 'on' ELSE 'to before ' || v_resume END,
                                  v_s.catchup_window));
            v_s.next_tick := v_resume;
        ELSE
            v_s := durable._schedule_tick(v_s, v_s.next_tick, 'scheduled');
            v_s.next_tick := durable._schedule_next_tick(v_s, v_s.next_tick);
        END IF;
        v_s.next_fire_at := v_s.next_tick + durable._schedule_jitter(v_s, v_s.next_tick);
    END LOOP;
    RETURN v_s;
END $$;
COMMENT ON FUNCTION durable._advance_schedule(durable.schedules, timestamptz) IS
    'Internal: fires a locked schedule''s buffered tick (once its last run closed) and its due ticks under '
    'the catch-up window and overlap policy; returns the changed row.';

CREATE FUNCTION durable._save_schedule(p_s durable.schedules) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    UPDATE durable.schedules
    SET next_tick = p_s.next_tick, next_fire_at = p_s.next_fire_at, buffered_tick = p_s.buffered_tick,
        last_workflow_id = p_s.last_workflow_id, updated_at = durable.now()
    WHERE namespace = p_s.namespace AND schedule_id = p_s.schedule_id
$$;
COMMENT ON FUNCTION durable._save_schedule(durable.schedules) IS
    'Internal: writes a schedule''s firing state (next tick, fire time, buffered tick, last run).';

-- Called by fire_timers_v1 (a worker function: the caller's scope was checked there, and only
-- schedules of the task queues it consumes are looked at). A schedule whose start fails (say,
-- its payload is over the limit) records the error and moves on to its next tick: it never
-- fails the worker's claim.
CREATE FUNCTION durable._fire_schedules(p_namespace text, p_task_queues text[], p_limit integer) RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_now timestamptz := durable.now();
    v_s durable.schedules;
    v_after durable.schedules;
    v_fired integer := 0;
    v_state text;
    v_message text;
BEGIN
    FOR v_s IN SELECT * FROM durable.schedules s
               WHERE s.namespace = p_namespace AND s.task_queue = ANY (p_task_queues) AND NOT s.paused
                 AND (s.next_fire_at <= v_now OR s.buffered_tick IS NOT NULL)
               ORDER BY s.next_fire_at, s.schedule_id
               LIMIT p_limit
               FOR UPDATE SKIP LOCKED LOOP
        -- The row as locked (a racing worker may have fired it meanwhile): due still?
        CONTINUE WHEN NOT (v_s.next_fire_at <= v_now
                           OR (v_s.buffered_tick IS NOT NULL AND NOT durable._schedule_run_open(v_s)));
        BEGIN
            v_after := durable._advance_schedule(v_s, v_now);
            PERFORM durable._save_schedule(v_after);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
            IF pg_catalog.left(v_state, 2) IN ('40', '53', '57', '58', 'XX') THEN
                RAISE;
            END IF;
            PERFORM durable._schedule_record(v_s, coalesce(v_s.buffered_tick, v_s.next_tick), 'scheduled', 'error',
                                             NULL, pg_catalog.format('%s (SQLSTATE %s)', v_message, v_state));
            v_s.buffered_tick := NULL;
            v_s.next_tick := durable._schedule_next_tick(v_s, greatest(v_now, v_s.next_tick));
            v_s.next_fire_at := v_s.next_tick + durable._schedule_jitter(v_s, v_s.next_tick);
            PERFORM durable._save_schedule(v_s);
        END;
        v_fired := v_fired + 1;
    END LOOP;
    RETURN v_fired;
END $$;
COMMENT ON FUNCTION durable._fire_schedules(text, text[], integer) IS
    'Internal (fire_timers_v1): fires the due schedules of these task queues, each under its row lock '
    '(FOR UPDATE SKIP LOCKED); returns how many schedules it advanced.';

-- ---------------------------------------------------------------------------
-- The owner's API (DBA, client): not for worker roles
-- ---------------------------------------------------------------------------

CREATE FUNCTION durable._schedule_row(p_namespace text, p_schedule_id text, p_lock boolean)
RETURNS durable.schedules
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_s durable.schedules;
BEGIN
    IF p_lock THEN
        SELECT * INTO v_s FROM durable.schedules s
        WHERE s.namespace = p_namespace AND s.schedule_id = p_schedule_id FOR UPDATE;
    ELSE
        SELECT * INTO v_s FROM durable.schedules s
        WHERE s.namespace = p_namespace AND s.schedule_id = p_schedule_id;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'PDS02',
            MESSAGE = pg_catalog.format('schedule %L not found in namespace %L: list them with '
                                        'durable.list_schedules() or `pgdurable schedule list`',
                                        pg_catalog.left(p_schedule_id, 200), p_namespace);
    END IF;
    RETURN v_s;
END $$;
COMMENT ON FUNCTION durable._schedule_row(text, text, boolean) IS
    'Internal: the schedule''s row (locked FOR UPDATE when p_lock); PDS02 when there is none.';

CREATE FUNCTION durable._create_schedule(p_schedule_id text, p_workflow_name text, p_task_queue text, p_args jsonb,
                                         p_cron text, p_every interval, p_namespace text, p_timezone text,
                                         p_overlap text, p_catchup_window interval, p_start_at timestamptz,
                                         p_end_at timestamptz, p_jitter interval)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_s durable.schedules;
    v_args text;
    v_now timestamptz := durable.now();
BEGIN
    PERFORM durable._check_name('schedule id', p_schedule_id);
    IF pg_catalog.length(p_schedule_id) > 900 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = 'invalid schedule id: give at most 900 characters (its runs'' workflow ids add the tick)';
    END IF;
    PERFORM durable._check_name('namespace', p_namespace);
    PERFORM durable._check_name('workflow name', p_workflow_name);
    PERFORM durable._check_name('task queue', p_task_queue);
    IF (p_cron IS NULL) = (p_every IS NULL) THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('schedule %L needs exactly one of cron and every (%s): a cron expression '
                                        'such as ''0 3 * * *'' or an interval such as ''1 hour''', p_schedule_id,
                                        CASE WHEN p_cron IS NULL THEN 'neither was given' ELSE 'both were given' END);
    END IF;
    IF p_cron IS NOT NULL THEN
        PERFORM durable._cron_parse(p_cron);
    END IF;
    IF p_every IS NOT NULL AND (EXTRACT(year FROM p_every) <> 0 OR EXTRACT(month FROM p_every) <> 0
                                OR EXTRACT(epoch FROM p_every) < 1) THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('invalid every %s: give a fixed interval of at least 1 second (seconds to '
                                        'days; for months use a cron expression)', p_every);
    END IF;
    PERFORM durable._check_timezone(p_timezone);
    IF p_overlap IS NULL OR p_overlap NOT IN ('skip', 'buffer_one', 'allow_all', 'cancel_other', 'terminate_other') THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('unknown overlap policy %L: use skip, buffer_one, allow_all, cancel_other or '
                                        'terminate_other', pg_catalog.left(p_overlap, 80));
    END IF;
    IF p_catchup_window IS NULL OR p_catchup_window < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('invalid catchup_window %s: give an interval of 0 or more', p_catchup_window);
    END IF;
    IF p_jitter < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('invalid jitter %s: give an interval of 0 or more, or NULL', p_jitter);
    END IF;
    IF p_end_at <= p_start_at THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('schedule %L ends (%s) before it starts (%s)', p_schedule_id, p_end_at,
                                        p_start_at);
    END IF;
    v_args := CASE pg_catalog.jsonb_typeof(coalesce(p_args, '[]'::jsonb))
                  WHEN 'array' THEN coalesce(p_args, '[]'::jsonb)::text
                  WHEN 'string' THEN p_args #>> '{}' END;
    IF v_args IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = 'schedule args must be a JSON array of the workflow''s arguments (or, from the SDK, the '
                      'encoded payload as a JSON string)';
    END IF;
    PERFORM durable._check_payload(v_args);
    INSERT INTO durable.schedules AS s (namespace, schedule_id, workflow_name, task_queue, args, cron, every,
                                        timezone, overlap, catchup_window, start_at, end_at, jitter,
                                        created_at, updated_at)
    VALUES (p_namespace, p_schedule_id, p_workflow_name, p_task_queue, v_args, p_cron,
            CASE WHEN p_every IS NOT NULL THEN pg_catalog.make_interval(secs => EXTRACT(epoch FROM p_every)) END,
            p_timezone, p_overlap, p_catchup_window, p_start_at, p_end_at, nullif(p_jitter, interval '0'),
            v_now, v_now)
    ON CONFLICT DO NOTHING
    RETURNING s.* INTO v_s;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'PDS01',
            MESSAGE = pg_catalog.format('schedule %L already exists in namespace %L: delete it first '
                                        '(durable.delete_schedule) or pick another id', p_schedule_id, p_namespace);
    END IF;
    v_s.next_tick := durable._schedule_next_tick(v_s, v_now);
    v_s.next_fire_at := v_s.next_tick + durable._schedule_jitter(v_s, v_s.next_tick);
    PERFORM durable._save_schedule(v_s);
    PERFORM durable._notify_stream(p_namespace, p_task_queue);  -- idle workers re-read their next wake-up
    RETURN v_s.next_fire_at;
END $$;
COMMENT ON FUNCTION durable._create_schedule(text, text, text, jsonb, text, interval, text, text, text, interval, timestamptz, timestamptz, interval) IS
    'Internal: create_schedule with p_-named parameters.';

CREATE FUNCTION durable.create_schedule(schedule_id text, workflow_name text, task_queue text,
                                        args jsonb DEFAULT '[]', cron text DEFAULT NULL, every interval DEFAULT NULL,
                                        namespace text DEFAULT 'durable', timezone text DEFAULT 'UTC',
                                        overlap text DEFAULT 'skip', catchup_window interval DEFAULT '1 minute',
                                        start_at timestamptz DEFAULT NULL, end_at timestamptz DEFAULT NULL,
                                        jitter interval DEFAULT NULL)
RETURNS timestamptz
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT durable._create_schedule(schedule_id, workflow_name, task_queue, args, cron, every, namespace, timezone,
                                    overlap, catchup_window, start_at, end_at, jitter)
$$;
COMMENT ON FUNCTION durable.create_schedule(text, text, text, jsonb, text, interval, text, text, text, interval, timestamptz, timestamptz, interval) IS
    'Creates a schedule: workflow_name started on task_queue with args (a JSON array) at every tick of cron (5 '
    'fields, in timezone) or every (a fixed interval), between start_at and end_at, each tick delayed by up to '
    'jitter; overlap: skip | buffer_one | allow_all | cancel_other | terminate_other; ticks more than '
    'catchup_window late are skipped. Returns the first fire time. PDS01 if the id exists, PD004 for bad input.';

CREATE FUNCTION durable.pause_schedule(schedule_id text, namespace text DEFAULT 'durable', note text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_s durable.schedules := durable._schedule_row(pause_schedule.namespace, pause_schedule.schedule_id, true);
BEGIN
    UPDATE durable.schedules s SET paused = true, note = pause_schedule.note, updated_at = durable.now()
    WHERE s.namespace = v_s.namespace AND s.schedule_id = v_s.schedule_id;
END $$;
COMMENT ON FUNCTION durable.pause_schedule(text, text, text) IS
    'Pauses a schedule (no tick fires until resume_schedule); note says why. PDS02 for an unknown schedule.';

CREATE FUNCTION durable.resume_schedule(schedule_id text, namespace text DEFAULT 'durable') RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_s durable.schedules := durable._schedule_row(resume_schedule.namespace, resume_schedule.schedule_id, true);
BEGIN
    IF v_s.paused THEN
        -- The ticks of the pause are not caught up: the next one is the first after now.
        v_s.next_tick := durable._schedule_next_tick(v_s, durable.now());
        v_s.next_fire_at := v_s.next_tick + durable._schedule_jitter(v_s, v_s.next_tick);
        PERFORM durable._save_schedule(v_s);
        UPDATE durable.schedules s SET paused = false, note = NULL
        WHERE s.namespace = v_s.namespace AND s.schedule_id = v_s.schedule_id;
        PERFORM durable._notify_stream(v_s.namespace, v_s.task_queue);
    END IF;
    RETURN v_s.next_fire_at;
END $$;
COMMENT ON FUNCTION durable.resume_schedule(text, text) IS
    'Resumes a paused schedule from now on (the ticks of the pause are not caught up); returns the next fire '
    'time. PDS02 for an unknown schedule.';

CREATE FUNCTION durable.trigger_schedule(schedule_id text, namespace text DEFAULT 'durable') RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_s durable.schedules := durable._schedule_row(trigger_schedule.namespace, trigger_schedule.schedule_id, true);
    v_before text := v_s.last_workflow_id;
BEGIN
    v_s := durable._schedule_tick(v_s, durable.now(), 'manual');
    PERFORM durable._save_schedule(v_s);
    RETURN CASE WHEN v_s.last_workflow_id IS DISTINCT FROM v_before THEN v_s.last_workflow_id END;
END $$;
COMMENT ON FUNCTION durable.trigger_schedule(text, text) IS
    'Starts the schedule''s workflow now (also while paused), under its overlap policy: returns the started '
    'workflow id, or NULL when the policy skipped or buffered it. PDS02 for an unknown schedule.';

CREATE FUNCTION durable.delete_schedule(schedule_id text, namespace text DEFAULT 'durable') RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_s durable.schedules := durable._schedule_row(delete_schedule.namespace, delete_schedule.schedule_id, true);
BEGIN
    DELETE FROM durable.schedule_runs r WHERE r.namespace = v_s.namespace AND r.schedule_id = v_s.schedule_id;
    DELETE FROM durable.schedules s WHERE s.namespace = v_s.namespace AND s.schedule_id = v_s.schedule_id;
END $$;
COMMENT ON FUNCTION durable.delete_schedule(text, text) IS
    'Deletes a schedule and its record of recent ticks (the runs it started are untouched). PDS02 for an '
    'unknown schedule.';

CREATE TYPE durable.schedule_listing AS (
    namespace text, schedule_id text, workflow_name text, task_queue text, cron text, every interval,
    timezone text, overlap text, paused boolean, note text, next_fire_at timestamptz, last_workflow_id text,
    created_at timestamptz
);
COMMENT ON TYPE durable.schedule_listing IS 'A row of durable.list_schedules().';

CREATE FUNCTION durable.list_schedules(namespace text DEFAULT NULL) RETURNS SETOF durable.schedule_listing
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.namespace, s.schedule_id, s.workflow_name, s.task_queue, s.cron, s.every, s.timezone, s.overlap,
           s.paused, s.note, CASE WHEN NOT s.paused THEN s.next_fire_at END, s.last_workflow_id, s.created_at
    FROM durable.schedules s
    WHERE list_schedules.namespace IS NULL OR s.namespace = list_schedules.namespace
    ORDER BY s.namespace, s.schedule_id
$$;
COMMENT ON FUNCTION durable.list_schedules(text) IS
    'The schedules (of one namespace, or all): what they start, their cron or interval, overlap policy, '
    'whether paused (and why), the next fire time (NULL while paused) and the last run started.';

CREATE FUNCTION durable.describe_schedule(schedule_id text, namespace text DEFAULT 'durable',
                                          fire_times integer DEFAULT 5)
RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_s durable.schedules := durable._schedule_row(describe_schedule.namespace, describe_schedule.schedule_id,
                                                   false);
    v_times jsonb := '[]'::jsonb;
    v_tick timestamptz := v_s.next_tick;
    v_i integer := 0;
BEGIN
    IF fire_times IS NULL OR fire_times < 0 OR fire_times > 100 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('describe_schedule fire_times %s is out of range: give 0 to 100', fire_times);
    END IF;
    WHILE NOT v_s.paused AND v_tick IS NOT NULL AND v_i < fire_times LOOP
        v_times := v_times || pg_catalog.to_jsonb(v_tick + durable._schedule_jitter(v_s, v_tick));
        v_tick := durable._schedule_next_tick(v_s, v_tick);
        v_i := v_i + 1;
    END LOOP;
    RETURN pg_catalog.jsonb_build_object(
        'schedule_id', v_s.schedule_id,
        'namespace', v_s.namespace,
        'spec', pg_catalog.jsonb_build_object(
            'workflow_name', v_s.workflow_name, 'task_queue', v_s.task_queue, 'args', v_s.args,
            'cron', v_s.cron,
            'every', EXTRACT(epoch FROM v_s.every), 'timezone', v_s.timezone, 'overlap', v_s.overlap,
            'catchup_window', EXTRACT(epoch FROM v_s.catchup_window), 'start_at', v_s.start_at,
            'end_at', v_s.end_at, 'jitter', EXTRACT(epoch FROM v_s.jitter)),
        'paused', v_s.paused,
        'note', v_s.note,
        'next_fire_times', v_times,
        'buffered_tick', v_s.buffered_tick,
        'last_workflow_id', v_s.last_workflow_id,
        'created_at', v_s.created_at,
        'recent_runs', coalesce((
            SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                       'tick', r.tick, 'trigger', r.trigger, 'action', r.action, 'workflow_id', r.workflow_id,
                       'detail', r.detail, 'at', r.created_at) ORDER BY r.id DESC)
            FROM durable.schedule_runs r
            WHERE r.namespace = v_s.namespace AND r.schedule_id = v_s.schedule_id), '[]'::jsonb));
END $$;
COMMENT ON FUNCTION durable.describe_schedule(text, text, integer) IS
    'A schedule as JSON: schedule_id, spec (what it starts, its args payload, cron or every in seconds, '
    'timezone, overlap, '
    'catchup_window and jitter in seconds, start_at, end_at), paused and note, next_fire_times (none while '
    'paused), buffered_tick, last_workflow_id, recent_runs (newest first: tick, trigger, action, workflow_id, '
    'detail). PDS02 for an unknown schedule.';

-- >>> activities.sql
-- activities.sql: activity tasks. Scheduling (a workflow task's activity
-- commands, eagerly leased to the completing worker when it serves them),
-- claim (by activity name), complete, fail (retry per policy or record the
-- final failure), heartbeat, and the bookkeeping of attempts lost with
-- their worker.
-- Writes the 'activity' messages and, through _append_event and _deliver,
-- the owning run's history. Execution is at-least-once; recording a result
-- is exactly-once: the result lands only while its lease is held, in the
-- same transaction that removes the task.

-- Scheduling: complete_workflow_task_v1 (workflows.sql) calls these with the run locked.
CREATE FUNCTION durable._schedule_activity(p_wf durable.workflows, p_cmd jsonb, p_eager jsonb DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_now timestamptz := durable.now();
    v_queue text := coalesce(p_cmd->>'task_queue', p_wf.task_queue);
    v_stream text := coalesce(p_cmd->>'task_queue', p_wf.task_queue) || '-activity';
    v_eager boolean;
    v_id bigint;
    v_heartbeat jsonb := CASE WHEN pg_catalog.jsonb_typeof(p_cmd->'heartbeat_timeout') = 'number'
                              THEN p_cmd->'heartbeat_timeout' END;
    v_lease interval;
BEGIN
    PERFORM durable._check_name('activity name', p_cmd->>'name');
    IF v_heartbeat IS NOT NULL AND (v_heartbeat::text)::float8 <= 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('heartbeat_timeout of activity %L must be a positive number of seconds, got %s',
                             p_cmd->>'name', v_heartbeat);
    END IF;
    PERFORM durable._check_name('task queue', v_queue);
    PERFORM durable._check_produce(p_wf.namespace, 'schedule activity', p_cmd->>'name', v_queue);
    -- Eager dispatch: when the completing worker serves this activity itself,
    -- the task is born leased to it (no claim, no NOTIFY, no wait).
    v_eager := p_eager IS NOT NULL AND v_stream = p_eager->>'activity_stream'
               AND (p_eager->'activity_names') ? (p_cmd->>'name')
               AND durable._may_consume(p_wf.namespace, v_stream)
               -- On a limited stream, only when its limits admit it (counted as a claim).
               AND durable._flow_admit_one(p_wf.namespace, v_stream);
    PERFORM durable._append_event(p_wf.namespace, p_wf.workflow_id, p_wf.run_id, 'activity_scheduled',
        (p_cmd->>'seq')::integer, false,
        pg_catalog.jsonb_build_object('activity_name', p_cmd->>'name', 'task_queue', v_queue, 'args', p_cmd->'args',
                           'retry', p_cmd->'retry', 'start_to_close_timeout', p_cmd->'start_to_close_timeout')
        || CASE WHEN v_heartbeat IS NULL THEN '{}'::jsonb
                ELSE pg_catalog.jsonb_build_object('heartbeat_timeout', v_heartbeat) END);
    -- An attempt with a heartbeat_timeout holds its lease until its next heartbeat is due at the latest.
    v_lease := CASE WHEN v_eager THEN durable._attempt_lease(
                   pg_catalog.make_interval(secs => (p_eager->>'lease_seconds')::float8), (v_heartbeat::text)::float8) END;
    INSERT INTO durable.messages (namespace, stream, kind, name, workflow_id, run_id, payload, visible_at,
                                  attempt, max_attempts, lease_owner, lease_token, created_at, priority)
    VALUES (p_wf.namespace, v_stream, 'activity', p_cmd->>'name', p_wf.workflow_id, p_wf.run_id,
            pg_catalog.jsonb_build_object('seq', (p_cmd->>'seq')::integer, 'args', p_cmd->'args', 'retry', p_cmd->'retry',
                               'headers', coalesce(p_cmd->'headers', '{}'::jsonb),
                               'start_to_close_timeout', p_cmd->'start_to_close_timeout',
                               'workflow_name', p_wf.workflow_name, 'task_queue', v_queue,
                               'scheduled_at', v_now)
            || CASE WHEN v_heartbeat IS NULL THEN '{}'::jsonb
                    ELSE pg_catalog.jsonb_build_object('heartbeat_timeout', v_heartbeat)
                         || CASE WHEN v_eager THEN pg_catalog.jsonb_build_object(
                                'heartbeat_deadline', v_now + pg_catalog.make_interval(secs => (v_heartbeat::text)::float8))
                                 ELSE '{}'::jsonb END END,
            CASE WHEN v_eager THEN v_now + v_lease ELSE v_now END,
            CASE WHEN v_eager THEN 1 ELSE 0 END,
            coalesce((p_cmd->'retry'->>'maximum_attempts')::integer, 5),
            CASE WHEN v_eager THEN p_eager->>'owner' END,
            CASE WHEN v_eager THEN pg_catalog.gen_random_uuid() END,
            v_now, p_wf.priority)  -- an activity has its run's priority
    RETURNING id INTO v_id;
    IF v_eager THEN
        RETURN v_id;
    END IF;
    PERFORM durable._notify_stream(p_wf.namespace, v_stream);
    RETURN NULL;
END $$;
COMMENT ON FUNCTION durable._schedule_activity(durable.workflows, jsonb, jsonb) IS
    'Internal: records activity_scheduled and enqueues the activity task on <task_queue>-activity, or, '
    'when p_eager says the completing worker serves it (and the stream''s limits admit it), leases it to that '
    'worker at once (returns its id). The task has its run''s priority. '
    'A heartbeat_timeout (seconds) goes into the task''s payload: each attempt''s lease is bounded by it.';

-- heartbeat_timeout: an attempt's lease never runs past its heartbeat deadline (the time of its
-- claim or last heartbeat plus the timeout), so an attempt that stops heartbeating expires then and
-- is failed as a timeout (claim_activity_tasks_v1), well before its start_to_close_timeout.
CREATE FUNCTION durable._attempt_lease(p_lease interval, p_heartbeat_timeout float8) RETURNS interval
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN p_heartbeat_timeout IS NULL THEN p_lease
                ELSE LEAST(p_lease, pg_catalog.make_interval(secs => p_heartbeat_timeout)) END
$$;
COMMENT ON FUNCTION durable._attempt_lease(interval, float8) IS
    'Internal: the lease an activity attempt gets: p_lease, bounded by its heartbeat_timeout (seconds) when '
    'it has one.';

-- The error of an attempt that sent no heartbeat within its heartbeat_timeout.
CREATE FUNCTION durable._heartbeat_timed_out(p_attempt integer, p_max_attempts integer, p_timeout jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object('type', 'DurableTimeoutError',
                              'types', '["DurableTimeoutError", "ActivityHeartbeatTimeout"]'::jsonb,
                              'message', NULL, 'heartbeat_timeout', true,
                              'detail', pg_catalog.format('attempt %s of %s sent no heartbeat within its heartbeat_timeout '
                                               'of %s s', p_attempt, p_max_attempts, p_timeout))
$$;
COMMENT ON FUNCTION durable._heartbeat_timed_out(integer, integer, jsonb) IS
    'Internal: the stored error (type DurableTimeoutError, heartbeat_timeout true) of an activity attempt '
    'that stopped heartbeating for longer than its heartbeat_timeout.';

-- An activity the workflow stopped waiting for (a cancellation, an abandoned await): its late
-- outcome is recorded as such, never delivered; the task goes.
CREATE FUNCTION durable._record_late_activity(p_msg durable.messages, p_event_type text, p_data jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM durable.messages WHERE id = p_msg.id;
    IF p_msg.lease_token IS NOT NULL THEN
        PERFORM durable._flow_slot_freed(p_msg.namespace, p_msg.stream);  -- a running slot is free
    END IF;
    IF p_msg.workflow_id IS NOT NULL AND EXISTS (
            SELECT 1 FROM durable.workflows w
            WHERE w.namespace = p_msg.namespace AND w.workflow_id = p_msg.workflow_id AND w.run_id = p_msg.run_id) THEN
        PERFORM durable._append_event(p_msg.namespace, p_msg.workflow_id, p_msg.run_id, p_event_type,
            (p_msg.payload->>'seq')::integer, false,
            p_data || pg_catalog.jsonb_build_object('late', true, 'cancelled', true));
    END IF;
END $$;
COMMENT ON FUNCTION durable._record_late_activity(durable.messages, text, jsonb) IS
    'Internal: removes the task of an activity its workflow cancelled and records its late outcome as a '
    'non-inbound activity_completed or activity_failed (late and cancelled true): visible in the history, '
    'never fed to the workflow code.';

-- A workflow task's cancel_activity command: the workflow stopped waiting for activity call p_seq.
CREATE FUNCTION durable._cancel_activity(p_wf durable.workflows, p_seq integer) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_msg durable.messages;
BEGIN
    SELECT m.* INTO v_msg FROM durable.messages m
    WHERE m.namespace = p_wf.namespace AND m.workflow_id = p_wf.workflow_id AND m.run_id = p_wf.run_id
      AND m.kind = 'activity' AND (m.payload->>'seq')::integer = p_seq
    FOR UPDATE;
    IF NOT FOUND OR v_msg.payload ? 'cancelled' THEN
        RETURN;  -- it finished already, or was cancelled before (a replay sends the command again)
    END IF;
    IF v_msg.lease_token IS NULL THEN
        -- Not running (queued, or waiting for a retry): it never runs again.
        PERFORM durable._record_late_activity(v_msg, 'activity_failed', pg_catalog.jsonb_build_object(
            'attempt', v_msg.attempt, 'maxed', false,
            'error', pg_catalog.jsonb_build_object('type', 'CancelledFailure', 'types', '["CancelledFailure"]'::jsonb,
                                        'message', NULL, 'detail', 'cancelled before it ran again')));
        RETURN;
    END IF;
    -- Running: its heartbeats now say cancelled, and its outcome will be recorded as late.
    UPDATE durable.messages m SET payload = m.payload || pg_catalog.jsonb_build_object('cancelled', true)
    WHERE m.id = v_msg.id;
END $$;
COMMENT ON FUNCTION durable._cancel_activity(durable.workflows, integer) IS
    'Internal: applies a cancel_activity command: a queued activity task goes (its cancellation recorded as '
    'a late activity_failed); a running one is marked cancelled, which its heartbeats report and which '
    'makes its outcome a late, non-inbound event. Idempotent.';

CREATE FUNCTION durable._activity_tasks(p_ids bigint[]) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'message_id', m.id, 'lease_token', m.lease_token, 'attempt', m.attempt,
               'activity_name', m.name, 'stream', m.stream, 'workflow_id', m.workflow_id,
               'run_id', m.run_id, 'payload', m.payload) ORDER BY m.id), '[]'::jsonb)
    FROM durable.messages m WHERE m.id = ANY (p_ids)
$$;
COMMENT ON FUNCTION durable._activity_tasks(bigint[]) IS
    'Internal: held activity tasks as JSON, shaped like claim_activity_tasks_v1 rows.';

-- Ends an activity for good: its final outcome is an inbound event.
CREATE FUNCTION durable._finish_activity(p_msg durable.messages, p_event_type text, p_data jsonb,
                                         p_notify boolean DEFAULT true)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM durable.messages WHERE id = p_msg.id;
    PERFORM durable._flow_slot_freed(p_msg.namespace, p_msg.stream);
    IF p_msg.workflow_id IS NULL THEN
        RETURN false;
    END IF;
    RETURN durable._deliver(p_msg.namespace, p_msg.workflow_id, p_msg.run_id, p_event_type,
                            (p_msg.payload->>'seq')::integer, p_data, p_notify);
END $$;
COMMENT ON FUNCTION durable._finish_activity(durable.messages, text, jsonb, boolean) IS
    'Internal: removes an activity task and delivers its final outcome to its run.';

-- Locks the owning run (lock order: run, then message) and checks the lease.
CREATE FUNCTION durable._held_activity(p_message_id bigint, p_lease_token uuid) RETURNS durable.messages
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_peek durable.messages;
BEGIN
    SELECT * INTO v_peek FROM durable.messages WHERE id = p_message_id AND kind = 'activity';
    IF FOUND AND v_peek.workflow_id IS NOT NULL THEN
        PERFORM 1 FROM durable.workflows
        WHERE namespace = v_peek.namespace AND workflow_id = v_peek.workflow_id AND run_id = v_peek.run_id
        FOR UPDATE;
    END IF;
    v_peek := durable._held_message(p_message_id, p_lease_token);
    IF (v_peek.payload->>'heartbeat_deadline')::timestamptz <= durable.now() THEN
        RAISE EXCEPTION USING ERRCODE = 'PD001',
            MESSAGE = pg_catalog.format('lease lost on message %s: the attempt sent no heartbeat within its heartbeat_timeout '
                             '(it is failed as a timeout and retried); this outcome is discarded', p_message_id);
    END IF;
    RETURN v_peek;
END $$;
COMMENT ON FUNCTION durable._held_activity(bigint, uuid) IS
    'Internal: locks an activity task''s run then the task, and checks the caller holds its lease (else PD001, '
    'also once the attempt is past its heartbeat deadline).';

-- The error of an attempt lost with its worker (its lease expired unrecorded).
CREATE FUNCTION durable._lease_expired(p_attempt integer, p_max_attempts integer) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object('type', 'ActivityLeaseExpired', 'types', '["ActivityLeaseExpired"]'::jsonb,
                              'message', NULL, 'lease_lost', true,
                              'detail', pg_catalog.format('attempt %s of %s was lost with its worker (lease expired)',
                                               p_attempt, p_max_attempts))
$$;
COMMENT ON FUNCTION durable._lease_expired(integer, integer) IS
    'Internal: the stored error (type ActivityLeaseExpired, lease_lost true) of an activity attempt lost '
    'with its worker.';

-- Records in the run's history that attempt p_attempt of an activity was lost (as Temporal records a
-- timed-out attempt): a non-inbound activity_failed, so the workflow code is not woken.
CREATE FUNCTION durable._record_lost_attempt(p_msg durable.messages, p_attempt integer) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_msg.workflow_id IS NOT NULL THEN
        PERFORM durable._append_event(p_msg.namespace, p_msg.workflow_id, p_msg.run_id, 'activity_failed',
            (p_msg.payload->>'seq')::integer, false,
            pg_catalog.jsonb_build_object('attempt', p_attempt, 'maxed', false, 'lease_lost', true, 'retry_in_seconds', 0,
                               'error', durable._lease_expired(p_attempt, p_msg.max_attempts)));
    END IF;
END $$;
COMMENT ON FUNCTION durable._record_lost_attempt(durable.messages, integer) IS
    'Internal: appends a non-inbound activity_failed (lease_lost true) for attempt p_attempt of an activity '
    'task whose lease expired.';

-- An attempt that sent no heartbeat within its heartbeat_timeout (its lease ran out at its heartbeat
-- deadline): recorded as a DurableTimeoutError attempt and retried per the policy, or, when it was
-- the last attempt allowed (or the policy says so), the activity fails for good.
CREATE FUNCTION durable._heartbeat_timeout(p_msg durable.messages) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_error jsonb := durable._heartbeat_timed_out(p_msg.attempt, p_msg.max_attempts, p_msg.payload->'heartbeat_timeout');
    v_policy jsonb := coalesce(p_msg.payload->'retry', '{}'::jsonb)
                      || pg_catalog.jsonb_build_object('maximum_attempts', coalesce(p_msg.max_attempts, 2147483647));
    v_delay interval;
BEGIN
    IF NOT durable.should_retry_v1(v_policy, p_msg.attempt, v_error) THEN
        PERFORM durable._finish_activity(p_msg, 'activity_failed', pg_catalog.jsonb_build_object(
            'attempt', p_msg.attempt, 'maxed', true, 'error', v_error));
        RETURN;
    END IF;
    v_delay := durable.retry_delay_v1(v_policy, p_msg.attempt);
    IF p_msg.workflow_id IS NOT NULL THEN
        PERFORM durable._append_event(p_msg.namespace, p_msg.workflow_id, p_msg.run_id, 'activity_failed',
            (p_msg.payload->>'seq')::integer, false,
            pg_catalog.jsonb_build_object('attempt', p_msg.attempt, 'maxed', false, 'error', v_error,
                               'retry_in_seconds', extract(epoch FROM v_delay)));
    END IF;
    UPDATE durable.messages m
    SET lease_token = NULL, lease_owner = NULL, visible_at = durable.now() + v_delay,
        payload = m.payload - 'heartbeat_deadline'
    WHERE m.id = p_msg.id;
END $$;
COMMENT ON FUNCTION durable._heartbeat_timeout(durable.messages) IS
    'Internal: fails an activity attempt that stopped heartbeating (DurableTimeoutError, heartbeat_timeout '
    'true in the non-inbound activity_failed) and retries it after the policy''s delay, or fails the '
    'activity when the policy is exhausted.';

CREATE FUNCTION durable.claim_activity_tasks_v1(
    p_namespace text,
    p_streams text[],
    p_activity_names text[],
    p_batch integer DEFAULT 10,
    p_lease interval DEFAULT interval '30 seconds',
    p_owner text DEFAULT NULL
) RETURNS TABLE (message_id bigint, lease_token uuid, attempt integer, activity_name text,
                 stream text, workflow_id text, run_id integer, payload jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_now timestamptz := durable.now();
    v_lost durable.messages;
    v_claimed record;
    v_msg durable.messages;
BEGIN
    PERFORM durable._authorize(p_namespace, p_streams);
    PERFORM durable._relaxed_commit();
    -- An attempt whose lease expired was lost with its worker: it counts, and the run's history
    -- says so; the task is then free for the claim below. When it was the last attempt allowed,
    -- the activity fails for good. Lock order: the run, then its task (one another session holds
    -- is left to it); runs in key order, so two claimers never wait on each other in a cycle.
    FOR v_lost IN
        SELECT m.* FROM durable.messages m
        WHERE m.namespace = p_namespace AND m.stream = ANY (p_streams) AND m.kind = 'activity'
          AND m.name = ANY (p_activity_names) AND m.lease_token IS NOT NULL AND m.visible_at <= v_now
        ORDER BY m.workflow_id, m.run_id, m.id
        LIMIT 1000  -- a bounded transaction; the next claims take the rest
    LOOP
        PERFORM 1 FROM durable.workflows w
        WHERE w.namespace = v_lost.namespace AND w.workflow_id = v_lost.workflow_id AND w.run_id = v_lost.run_id
        FOR UPDATE;
        SELECT m.* INTO v_lost FROM durable.messages m
        WHERE m.id = v_lost.id AND m.lease_token = v_lost.lease_token AND m.visible_at <= v_now
        FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        IF v_lost.payload ? 'cancelled' THEN
            -- Its workflow cancelled it: it is not run again.
            PERFORM durable._record_late_activity(v_lost, 'activity_failed', pg_catalog.jsonb_build_object(
                'attempt', v_lost.attempt, 'maxed', false, 'lease_lost', true,
                'error', durable._lease_expired(v_lost.attempt, v_lost.max_attempts)));
        ELSIF (v_lost.payload->>'heartbeat_deadline')::timestamptz <= v_now THEN
            -- It stopped heartbeating: a timeout, retried per policy like any failed attempt.
            PERFORM durable._heartbeat_timeout(v_lost);
        ELSIF v_lost.attempt >= coalesce(v_lost.max_attempts, 2147483647) THEN
            PERFORM durable._finish_activity(v_lost, 'activity_failed', pg_catalog.jsonb_build_object(
                'attempt', v_lost.attempt, 'maxed', true,
                'error', durable._lease_expired(v_lost.attempt, v_lost.max_attempts)));
        ELSE
            PERFORM durable._record_lost_attempt(v_lost, v_lost.attempt);
            UPDATE durable.messages m SET lease_token = NULL, lease_owner = NULL WHERE m.id = v_lost.id;
        END IF;
    END LOOP;
    FOR v_claimed IN
        SELECT c.message AS msg, c.lost_lease AS lost
        FROM durable._claim(p_namespace, p_streams, p_activity_names, 'activity', p_batch, p_lease, p_owner) c
    LOOP
        v_msg := v_claimed.msg;
        IF v_claimed.lost THEN
            -- Its lease expired between the pass above and this claim (a rare race), or it was past
            -- that pass's first 1000: the same bookkeeping, the run locked after its task this once.
            IF v_msg.payload ? 'cancelled' THEN
                -- Its workflow cancelled it: it is not run again.
                PERFORM durable._record_late_activity(v_msg, 'activity_failed', pg_catalog.jsonb_build_object(
                    'attempt', v_msg.attempt - 1, 'maxed', false, 'lease_lost', true,
                    'error', durable._lease_expired(v_msg.attempt - 1, v_msg.max_attempts)));
                CONTINUE;
            END IF;
            IF v_msg.attempt - 1 >= coalesce(v_msg.max_attempts, 2147483647) THEN
                PERFORM durable._finish_activity(v_msg, 'activity_failed', pg_catalog.jsonb_build_object(
                    'attempt', v_msg.attempt - 1, 'maxed', true,
                    'error', durable._lease_expired(v_msg.attempt - 1, v_msg.max_attempts)));
                CONTINUE;
            END IF;
            PERFORM durable._record_lost_attempt(v_msg, v_msg.attempt - 1);
        END IF;
        IF pg_catalog.jsonb_typeof(v_msg.payload->'heartbeat_timeout') = 'number' THEN
            -- This attempt's heartbeat deadline: its lease never runs past it.
            UPDATE durable.messages m
            SET payload = m.payload || pg_catalog.jsonb_build_object('heartbeat_deadline',
                    v_now + pg_catalog.make_interval(secs => (m.payload->>'heartbeat_timeout')::float8)),
                visible_at = LEAST(m.visible_at,
                                   v_now + pg_catalog.make_interval(secs => (m.payload->>'heartbeat_timeout')::float8))
            WHERE m.id = v_msg.id
            RETURNING m.* INTO v_msg;
        END IF;
        message_id := v_msg.id;
        lease_token := v_msg.lease_token;
        attempt := v_msg.attempt;
        activity_name := v_msg.name;
        stream := v_msg.stream;
        workflow_id := v_msg.workflow_id;
        run_id := v_msg.run_id;
        payload := v_msg.payload;
        RETURN NEXT;
    END LOOP;
END $$;
COMMENT ON FUNCTION durable.claim_activity_tasks_v1(text, text[], text[], integer, interval, text) IS
    'Leases up to p_batch activity tasks of the named activities. A lost attempt (its lease expired) counts '
    'toward maximum_attempts and is recorded in the run''s history as a non-inbound activity_failed with '
    'lease_lost true; one that was the last allowed fails the activity instead. An attempt that passed its '
    'heartbeat deadline is a DurableTimeoutError retried per its policy; a lost attempt of an activity its '
    'workflow cancelled is not run again. A claimed attempt with a heartbeat_timeout gets its heartbeat '
    'deadline, which bounds its lease.';

-- An activity's final outcome: recorded in its run, which wakes; when the
-- caller serves that workflow (p_eager), the woken task comes back leased
-- to it and nobody else needs waking.
CREATE FUNCTION durable._settle_activity(p_msg durable.messages, p_event_type text, p_data jsonb,
                                         p_eager jsonb)
RETURNS TABLE (recorded boolean, workflow_task jsonb)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_eager boolean := durable._eager_serves(p_msg.namespace, p_msg.workflow_id, p_msg.run_id, p_eager);
    v_recorded boolean;
BEGIN
    v_recorded := durable._finish_activity(p_msg, p_event_type, p_data, NOT v_eager);
    RETURN QUERY SELECT v_recorded,
        CASE WHEN v_recorded AND v_eager
             THEN durable._lease_workflow_task(p_msg.namespace, p_msg.workflow_id, p_msg.run_id, p_eager) END;
END $$;
COMMENT ON FUNCTION durable._settle_activity(durable.messages, text, jsonb, jsonb) IS
    'Internal: records an activity''s final outcome in its run and, for a caller serving that workflow, '
    'leases it the woken workflow task.';

CREATE FUNCTION durable.complete_activity_v1(p_message_id bigint, p_lease_token uuid, p_result text,
                                             p_eager jsonb DEFAULT NULL)
RETURNS TABLE (recorded boolean, workflow_task jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_msg durable.messages;
BEGIN
    PERFORM durable._authorize_messages(ARRAY[p_message_id]);
    PERFORM durable._check_eager(p_eager);
    v_msg := durable._held_activity(p_message_id, p_lease_token);
    IF p_result IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004', MESSAGE = 'activity result must not be NULL: send a JSON payload';
    END IF;
    PERFORM durable._check_payload(p_result);
    IF v_msg.payload ? 'cancelled' THEN
        PERFORM durable._record_late_activity(v_msg, 'activity_completed',
            pg_catalog.jsonb_build_object('result', p_result, 'attempt', v_msg.attempt));
        RETURN QUERY SELECT false, NULL::jsonb;
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM durable._settle_activity(
        v_msg, 'activity_completed', pg_catalog.jsonb_build_object('result', p_result, 'attempt', v_msg.attempt), p_eager);
END $$;
COMMENT ON FUNCTION durable.complete_activity_v1(bigint, uuid, text, jsonb) IS
    'Records an activity''s result exactly once (PD001 if the lease was lost) and wakes its workflow. '
    'recorded is false when the workflow no longer runs (the result is discarded) or cancelled the activity '
    '(the result is recorded as a late, non-inbound activity_completed). With p_eager {owner, '
    'lease_seconds, task_queue, workflow_names}, the woken workflow task comes back leased to the caller '
    'when it serves that workflow (workflow_task, shaped like a claim_workflow_tasks_v1 row).';

CREATE FUNCTION durable.fail_activity_v1(p_message_id bigint, p_lease_token uuid, p_error jsonb,
                                         p_eager jsonb DEFAULT NULL)
RETURNS TABLE (outcome text, workflow_task jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_msg durable.messages;
    v_policy jsonb;
    v_delay interval;
BEGIN
    PERFORM durable._authorize_messages(ARRAY[p_message_id]);
    PERFORM durable._check_eager(p_eager);
    v_msg := durable._held_activity(p_message_id, p_lease_token);
    PERFORM durable._check_payload(p_error::text);
    IF v_msg.payload ? 'cancelled' THEN
        PERFORM durable._record_late_activity(v_msg, 'activity_failed',
            pg_catalog.jsonb_build_object('attempt', v_msg.attempt, 'maxed', false, 'error', p_error));
        RETURN QUERY SELECT 'failed'::text, NULL::jsonb;
        RETURN;
    END IF;
    v_policy := coalesce(v_msg.payload->'retry', '{}'::jsonb)
                || pg_catalog.jsonb_build_object('maximum_attempts', coalesce(v_msg.max_attempts, 2147483647));
    IF NOT durable.should_retry_v1(v_policy, v_msg.attempt, p_error) THEN
        RETURN QUERY SELECT 'failed'::text, s.workflow_task FROM durable._settle_activity(
            v_msg, 'activity_failed', pg_catalog.jsonb_build_object('attempt', v_msg.attempt, 'maxed', true, 'error', p_error),
            p_eager) s;
        RETURN;
    END IF;
    v_delay := durable.retry_delay_v1(v_policy, v_msg.attempt);
    IF v_msg.workflow_id IS NOT NULL THEN
        PERFORM durable._append_event(v_msg.namespace, v_msg.workflow_id, v_msg.run_id, 'activity_failed',
            (v_msg.payload->>'seq')::integer, false,
            pg_catalog.jsonb_build_object('attempt', v_msg.attempt, 'maxed', false, 'error', p_error,
                               'retry_in_seconds', extract(epoch FROM v_delay)));
    END IF;
    UPDATE durable.messages m
    SET lease_token = NULL, lease_owner = NULL, visible_at = durable.now() + v_delay
    WHERE m.id = p_message_id;
    PERFORM durable._notify_stream(v_msg.namespace, v_msg.stream);
    RETURN QUERY SELECT 'retrying'::text, NULL::jsonb;
END $$;
COMMENT ON FUNCTION durable.fail_activity_v1(bigint, uuid, jsonb, jsonb) IS
    'Records a failed activity attempt. p_error: {type, types (class names, most derived first), message, '
    'traceback, non_retryable}. Retries after min(initial * coef^(n-1), max) or, when the policy is '
    'exhausted or the error is non-retryable, fails the activity in its workflow (outcome retrying or '
    'failed; p_eager as in complete_activity_v1). An activity its workflow cancelled is not retried: its '
    'failure is recorded as a late, non-inbound activity_failed (outcome failed).';

CREATE FUNCTION durable.heartbeat_activity_v2(p_message_id bigint, p_lease_token uuid, p_details text,
                                              p_lease interval DEFAULT interval '30 seconds')
RETURNS TABLE (held boolean, cancelled boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_now timestamptz := durable.now();
    v_msg durable.messages;
BEGIN
    PERFORM durable._authorize_messages(ARRAY[p_message_id]);
    PERFORM durable._relaxed_commit();
    PERFORM durable._check_lease(p_lease);
    PERFORM durable._check_payload(p_details);
    -- A heartbeat moves the attempt's heartbeat deadline (when it has a heartbeat_timeout) and its lease.
    UPDATE durable.messages m
    SET visible_at = v_now + durable._attempt_lease(p_lease, (m.payload->>'heartbeat_timeout')::float8),
        payload = m.payload
                  || CASE WHEN p_details IS NULL THEN '{}'::jsonb
                          ELSE pg_catalog.jsonb_build_object('heartbeat_details', p_details) END
                  || CASE WHEN pg_catalog.jsonb_typeof(m.payload->'heartbeat_timeout') = 'number'
                          THEN pg_catalog.jsonb_build_object('heartbeat_deadline',
                                   v_now + pg_catalog.make_interval(secs => (m.payload->>'heartbeat_timeout')::float8))
                          ELSE '{}'::jsonb END
    WHERE m.id = p_message_id AND m.lease_token = p_lease_token AND m.kind = 'activity'
      -- A lease past its heartbeat deadline is lost, even before another claim takes the task.
      AND (NOT m.payload ? 'heartbeat_deadline' OR (m.payload->>'heartbeat_deadline')::timestamptz > v_now)
    RETURNING m.* INTO v_msg;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, false;
        RETURN;
    END IF;
    -- Cancelled: the workflow stopped waiting for it (its cancel_activity command). A cancellation
    -- request alone is not enough: the workflow may await it in a non-cancellable scope.
    RETURN QUERY SELECT true, v_msg.payload ? 'cancelled';
END $$;
COMMENT ON FUNCTION durable.heartbeat_activity_v2(bigint, uuid, text, interval) IS
    'Extends a held activity''s lease (bounded by its heartbeat_timeout, whose deadline it moves) and stores '
    'its progress details for the next attempt. held is false when the lease was lost (or its heartbeat '
    'deadline passed); cancelled is true once its workflow cancelled it (stopped waiting for it).';

CREATE FUNCTION durable.heartbeat_activity_v1(p_message_id bigint, p_lease_token uuid, p_details text,
                                              p_lease interval DEFAULT interval '30 seconds')
RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT h.held FROM durable.heartbeat_activity_v2(p_message_id, p_lease_token, p_details, p_lease) h
$$;
COMMENT ON FUNCTION durable.heartbeat_activity_v1(bigint, uuid, text, interval) IS
    'Extends a held activity''s lease and stores its progress details for the next attempt. '
    'Returns false when the lease was lost. (heartbeat_activity_v2 also says whether it was cancelled.)';

-- Activities are registered in a process by running workflow code
-- (proxy_activities(activities=...)). A worker that starts after its
-- predecessor died knows none yet, and the workflows waiting on them get no
-- new event: wake those runs so a replay registers their activities.
CREATE FUNCTION durable.wake_for_unknown_activities_v1(p_namespace text, p_task_queue text,
                                                       p_workflow_names text[], p_known_activities text[],
                                                       p_skip_workflow_ids text[] DEFAULT '{}',
                                                       p_limit integer DEFAULT 20)
RETURNS TABLE (workflow_id text, run_id integer)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_now timestamptz := durable.now();
    v_run record;
BEGIN
    PERFORM durable._authorize(p_namespace, ARRAY[p_task_queue, p_task_queue || '-activity']);
    FOR v_run IN
        SELECT DISTINCT w.workflow_id, w.run_id, w.task_queue, w.workflow_name
        FROM durable.messages m
        CROSS JOIN LATERAL (  -- one primary-key lookup per message, whatever the statistics say
            SELECT x.* FROM durable.workflows x
            WHERE x.namespace = m.namespace AND x.workflow_id = m.workflow_id AND x.run_id = m.run_id
            LIMIT 1) w
        WHERE m.namespace = p_namespace AND m.stream = p_task_queue || '-activity' AND m.kind = 'activity'
          AND m.visible_at <= v_now AND NOT (m.name = ANY (p_known_activities))
          AND w.status = 'running' AND w.task_queue = p_task_queue
          AND w.workflow_name = ANY (p_workflow_names)
          AND NOT (w.workflow_id = ANY (coalesce(p_skip_workflow_ids, '{}')))
        LIMIT least(greatest(p_limit, 0), 1000)
    LOOP
        PERFORM durable._ensure_workflow_task(p_namespace, v_run.workflow_id, v_run.run_id, v_run.task_queue,
                                              v_run.workflow_name);
        workflow_id := v_run.workflow_id;
        run_id := v_run.run_id;
        RETURN NEXT;
    END LOOP;
END $$;
COMMENT ON FUNCTION durable.wake_for_unknown_activities_v1(text, text, text[], text[], text[], integer) IS
    'Gives a workflow task to runs of these workflows that wait on a claimable activity whose name the '
    'caller''s process does not know yet, so replaying them registers it (runs of p_skip_workflow_ids, '
    'woken before, are left alone). Returns the runs woken.';

-- >>> completions.sql
-- completions.sql: group commits. A worker records many workflow-task and
-- activity outcomes in one call and one transaction (complete_tasks_v1);
-- each item runs the function it would have called alone
-- (complete_workflow_task_v1, complete_activity_v1, fail_activity_v1) in a
-- subtransaction of its own, so an item that fails (a lost lease, refused
-- commands, a deadlock with another session) fails alone and the others
-- are recorded. Writes nothing itself: those functions do.
--
-- Items are applied in the order given; the SDK sends them sorted by
-- workflow id so that two batches lock the runs they share in one order.

CREATE FUNCTION durable.complete_tasks_v1(p_items jsonb)
RETURNS TABLE (item integer, outcome jsonb, error_code text, error_message text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_item jsonb;
    v_index integer;
    v_eager jsonb;
BEGIN
    IF pg_catalog.jsonb_typeof(p_items) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004', MESSAGE = 'p_items must be a JSON array of completions';
    END IF;
    -- Beyond 64 subtransactions a backend's snapshot data overflows and every session pays:
    -- batches stay below.
    IF pg_catalog.jsonb_array_length(p_items) > 50 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('complete_tasks_v1 takes at most 50 items (got %s): send several batches',
                                        pg_catalog.jsonb_array_length(p_items));
    END IF;
    FOR v_index, v_item IN
        SELECT e.ord::integer - 1, e.value FROM pg_catalog.jsonb_array_elements(p_items) WITH ORDINALITY e(value, ord)
    LOOP
        item := v_index;
        outcome := NULL;
        error_code := NULL;
        error_message := NULL;
        v_eager := NULLIF(v_item->'eager', 'null'::jsonb);
        BEGIN
            CASE v_item->>'kind'
            WHEN 'workflow_task' THEN
                SELECT pg_catalog.to_jsonb(c) INTO outcome
                FROM durable.complete_workflow_task_v1((v_item->>'message_id')::bigint,
                    (v_item->>'lease_token')::uuid, (v_item->>'processed_event_id')::integer,
                    v_item->'commands', v_eager) c;
            WHEN 'activity_completed' THEN
                SELECT pg_catalog.to_jsonb(c) INTO outcome
                FROM durable.complete_activity_v1((v_item->>'message_id')::bigint,
                    (v_item->>'lease_token')::uuid, v_item->>'result', v_eager) c;
            WHEN 'activity_failed' THEN
                SELECT pg_catalog.to_jsonb(c) INTO outcome
                FROM durable.fail_activity_v1((v_item->>'message_id')::bigint,
                    (v_item->>'lease_token')::uuid, v_item->'error', v_eager) c;
            ELSE
                RAISE EXCEPTION USING ERRCODE = 'PD004',
                    MESSAGE = pg_catalog.format('completion #%s has kind %s: give workflow_task, '
                                                'activity_completed or activity_failed', v_index,
                                                COALESCE(pg_catalog.quote_literal(v_item->>'kind'), 'null'));
            END CASE;
        EXCEPTION WHEN OTHERS THEN
            outcome := NULL;
            GET STACKED DIAGNOSTICS error_code = RETURNED_SQLSTATE, error_message = MESSAGE_TEXT;
        END;
        RETURN NEXT;
    END LOOP;
END $$;
COMMENT ON FUNCTION durable.complete_tasks_v1(jsonb) IS
    'Group commit: records up to 50 completions in one transaction, each in a subtransaction of its own. '
    'An item is {kind: workflow_task, message_id, lease_token, processed_event_id, commands, eager} '
    '(as complete_workflow_task_v1), {kind: activity_completed, message_id, lease_token, result, eager} '
    '(complete_activity_v1) or {kind: activity_failed, message_id, lease_token, error, eager} '
    '(fail_activity_v1). One row per item, in order: outcome is what that function returned (as JSON), '
    'or error_code (a SQLSTATE) and error_message say why the item alone was not recorded (PD001: lease lost).';

-- >>> workers.sql
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

-- >>> client.sql
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

-- >>> repair.sql
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

-- >>> roles.sql
-- (Over 450 lines: provisioning, scope checks and grants of worker roles are one security boundary.)
-- roles.sql: scoped worker roles. A DBA provisions a login role per set of
-- streams from psql; the role has no table privileges at all and may only
-- EXECUTE the worker functions, which are SECURITY DEFINER and check
-- session_user against durable.worker_credentials (never a GUC the caller
-- could SET). A role has two scopes: the streams it may *consume* (claim),
-- and the task queues its workflows' commands may *produce* to (activities,
-- children, signals to other workflows); by default its own queues. The DBA
-- may also limit the signal ids its conditions wait on.
-- Writes durable.worker_credentials (a table of schema.sql) and cluster roles.

-- Is session_user the engine's owner (or a member of it, or a superuser)?
-- Only such a caller runs worker functions without a worker role's scope.
CREATE FUNCTION durable._is_engine_admin() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.pg_has_role(session_user, n.nspowner, 'MEMBER')
    FROM pg_catalog.pg_namespace n WHERE n.nspname = 'durable'
$$;
COMMENT ON FUNCTION durable._is_engine_admin() IS
    'Internal: whether session_user is a member of the role owning schema durable (superusers are).';

CREATE FUNCTION durable._not_a_worker() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'PD005',
        MESSAGE = pg_catalog.format('role %s is not a pgdurable worker role of this database (nor the engine''s owner): '
                         'log in as the role durable.provision_worker_role made', session_user);
END $$;
COMMENT ON FUNCTION durable._not_a_worker() IS
    'Internal: PD005 for a caller that is neither a provisioned worker role nor the engine owner.';

-- Scope check used by every worker function. A caller that is not a
-- provisioned worker role is trusted: EXECUTE is granted to nobody else.
CREATE FUNCTION durable._authorize(p_namespace text, p_streams text[]) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_cred durable.worker_credentials;
    v_outside text[];
BEGIN
    SELECT * INTO v_cred FROM durable.worker_credentials c WHERE c.role_name = session_user;
    IF NOT FOUND THEN
        -- Membership in a worker role is no way in: only its own login is.
        IF NOT durable._is_engine_admin() THEN
            PERFORM durable._not_a_worker();
        END IF;
        RETURN;
    END IF;
    IF v_cred.revoked_at IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD005',
            MESSAGE = pg_catalog.format('worker role %s was revoked at %s: ask the DBA for a new one',
                             v_cred.role_name, v_cred.revoked_at);
    END IF;
    -- A database copied with CREATE DATABASE ... TEMPLATE carries the original's
    -- roles and grants: they stay the original's, never workers of the copy.
    IF v_cred.database_name IS DISTINCT FROM pg_catalog.current_database() THEN
        RAISE EXCEPTION USING ERRCODE = 'PD005',
            MESSAGE = pg_catalog.format('worker role %s belongs to database %s, not to %s (a copy of it?): provision a '
                             'worker role in this database (after a rename: UPDATE durable.worker_credentials '
                             'SET database_name = current_database())', v_cred.role_name, v_cred.database_name,
                             pg_catalog.current_database());
    END IF;
    SELECT pg_catalog.array_agg(s ORDER BY s) INTO v_outside
    FROM pg_catalog.unnest(p_streams) s WHERE NOT (s = ANY (v_cred.stream_names));
    IF p_namespace IS DISTINCT FROM v_cred.namespace OR v_outside IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD005',
            MESSAGE = pg_catalog.format('worker role %s may not consume stream(s) %s in namespace %L: it is provisioned '
                             'for %s in namespace %L', v_cred.role_name,
                             pg_catalog.array_to_string(coalesce(v_outside, p_streams), ', '), p_namespace,
                             pg_catalog.array_to_string(v_cred.stream_names, ', '), v_cred.namespace);
    END IF;
END $$;
COMMENT ON FUNCTION durable._authorize(text, text[]) IS
    'Internal: PD005 unless session_user is a live worker role that may consume these streams, or the '
    'engine owner.';

CREATE FUNCTION durable._may_consume(p_namespace text, p_stream text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT c.revoked_at IS NULL AND c.namespace = p_namespace AND p_stream = ANY (c.stream_names)
                            AND c.database_name = pg_catalog.current_database()
                     FROM durable.worker_credentials c WHERE c.role_name = session_user),
                    durable._is_engine_admin())
$$;
COMMENT ON FUNCTION durable._may_consume(text, text) IS
    'Internal: whether session_user may consume p_stream (engine admins always may).';

CREATE FUNCTION durable._authorize_messages(p_message_ids bigint[]) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_cred durable.worker_credentials;
    v_outside bigint;
BEGIN
    SELECT * INTO v_cred FROM durable.worker_credentials c WHERE c.role_name = session_user;
    -- The role itself must be valid (live, of this database), even when the messages are gone.
    PERFORM durable._authorize(v_cred.namespace, '{}'::text[]);
    IF v_cred.role_name IS NULL THEN
        RETURN;  -- the engine owner
    END IF;
    SELECT m.id INTO v_outside FROM durable.messages m
    WHERE m.id = ANY (p_message_ids)
      AND (m.namespace <> v_cred.namespace OR NOT (m.stream = ANY (v_cred.stream_names)))
    LIMIT 1;
    IF FOUND THEN
        -- Say nothing of where that message is: other namespaces stay unseen.
        RAISE EXCEPTION USING ERRCODE = 'PD005',
            MESSAGE = pg_catalog.format('worker role %s may not touch message %s: it is not on a stream the role may '
                             'consume', v_cred.role_name, v_outside);
    END IF;
END $$;
COMMENT ON FUNCTION durable._authorize_messages(bigint[]) IS
    'Internal: PD005 unless session_user may consume the streams these messages are on (the error never '
    'names another scope''s streams or namespace).';

-- The produce scope of session_user in a namespace: NULL for the engine
-- owner (unrestricted), else the task queues the DBA allowed.
CREATE FUNCTION durable._produce_scope(p_namespace text) RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.produce FROM durable.worker_credentials c WHERE c.role_name = session_user
$$;
COMMENT ON FUNCTION durable._produce_scope(text) IS
    'Internal: the task queues session_user may produce to (NULL: the engine owner, unrestricted).';

CREATE FUNCTION durable._check_produce(p_namespace text, p_what text, p_name text, p_task_queue text)
RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_produce text[] := durable._produce_scope(p_namespace);
BEGIN
    IF v_produce IS NOT NULL AND NOT (p_task_queue = ANY (v_produce)) THEN
        RAISE EXCEPTION USING ERRCODE = 'PD005',
            MESSAGE = pg_catalog.format('worker role %s may not %s %L on task queue %L: it may produce to %s only (the '
                             'DBA widens that with provision_worker_role(..., p_produce => ...))',
                             session_user, p_what, p_name, p_task_queue, pg_catalog.array_to_string(v_produce, ', '));
    END IF;
END $$;
COMMENT ON FUNCTION durable._check_produce(text, text, text, text) IS
    'Internal: PD005 unless session_user may produce to p_task_queue (schedule an activity, start a child).';

CREATE FUNCTION durable._check_signal_scope(p_signal_id text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_prefixes text[];
BEGIN
    SELECT c.signal_prefixes INTO v_prefixes FROM durable.worker_credentials c WHERE c.role_name = session_user;
    IF v_prefixes IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM pg_catalog.unnest(v_prefixes) x WHERE pg_catalog.starts_with(p_signal_id, x)) THEN
        RAISE EXCEPTION USING ERRCODE = 'PD005',
            MESSAGE = pg_catalog.format('worker role %s may not wait on signal %L nor send it: its workflows may use only '
                             'signal ids starting with %s', session_user, p_signal_id,
                             pg_catalog.array_to_string(v_prefixes, ', '));
    END IF;
END $$;
COMMENT ON FUNCTION durable._check_signal_scope(text) IS
    'Internal: PD005 when session_user''s workflows may not wait on or send this signal id (the DBA''s '
    'prefixes).';

CREATE FUNCTION durable.worker_scope_v1()
RETURNS TABLE (role_name text, namespace text, stream_names text[], revoked boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.role_name, c.namespace, c.stream_names, c.revoked_at IS NOT NULL
    FROM durable.worker_credentials c
    WHERE c.role_name = session_user AND c.database_name = pg_catalog.current_database()
$$;
COMMENT ON FUNCTION durable.worker_scope_v1() IS
    'The calling worker role''s scope (no row for a role that is not a provisioned worker).';

-- The functions a worker role may EXECUTE (everything a workflow worker and
-- an activity worker need).
CREATE FUNCTION durable.worker_functions() RETURNS SETOF regprocedure
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.unnest(ARRAY[
        'durable.schema_version()',
        'durable.worker_scope_v1()',
        'durable.claim_workflow_tasks_v1(text, text[], text[], integer, interval, text)',
        'durable.claim_workflow_task_v1(text, text, text, text[], interval, text, interval)',
        'durable.complete_workflow_task_v1(bigint, uuid, integer, jsonb, jsonb)',
        'durable.fail_workflow_task_v1(bigint, uuid, jsonb)',
        'durable.fire_timers_v1(text, text[], integer)',
        'durable.run_history_v1(text, text, integer, uuid)',
        'durable.stream_channels_v1(text, text[])',
        'durable.worker_channel_v1(text, text)',
        'durable.claim_activity_tasks_v1(text, text[], text[], integer, interval, text)',
        'durable.complete_activity_v1(bigint, uuid, text, jsonb)',
        'durable.fail_activity_v1(bigint, uuid, jsonb, jsonb)',
        'durable.complete_tasks_v1(jsonb)',
        'durable.heartbeat_activity_v1(bigint, uuid, text, interval)',
        'durable.heartbeat_activity_v2(bigint, uuid, text, interval)',
        'durable.wake_for_unknown_activities_v1(text, text, text[], text[], text[], integer)',
        'durable.extend_lease_v1(bigint[], uuid[], interval)',
        'durable.release_v1(bigint, uuid, interval)',
        'durable.next_wakeup_v1(text, text[], text[])',
        'durable.heartbeat_worker_v1(text, text, text, integer, text, text[], text[], interval, boolean)'
    ]::regprocedure[])
$$;
COMMENT ON FUNCTION durable.worker_functions() IS
    'The functions a provisioned worker role may execute (and nothing else).';

CREATE FUNCTION durable._random_password() RETURNS text
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.replace(pg_catalog.gen_random_uuid()::text || pg_catalog.gen_random_uuid()::text, '-', '')
$$;
COMMENT ON FUNCTION durable._random_password() IS
    'Internal: 64 hex characters from two random UUIDs (no pgcrypto needed).';

CREATE FUNCTION durable._check_password(p_password text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_password IS NOT NULL AND (pg_catalog.length(p_password) < 12 OR pg_catalog.length(p_password) > 1000) THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = 'a worker password must have 12 to 1000 characters (or pass NULL for a random one)';
    END IF;
    -- Postgres would store a pre-hashed password as given: refuse it, so every
    -- worker password is a SCRAM verifier made here from the clear text.
    IF p_password ~ '^md5[0-9a-f]{32}$' OR pg_catalog.starts_with(p_password, 'SCRAM-SHA-256$') THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = 'give the worker password in clear text: pre-hashed passwords (md5..., SCRAM-SHA-256$...) '
                      'are refused, so that each is stored as a SCRAM verifier';
    END IF;
END $$;
COMMENT ON FUNCTION durable._check_password(text) IS
    'Internal: rejects too short, absurd or pre-hashed passwords.';

CREATE FUNCTION durable._grant_worker(p_role text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_fn regprocedure;
BEGIN
    EXECUTE pg_catalog.format('GRANT CONNECT ON DATABASE %I TO %I', pg_catalog.current_database(), p_role);
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA durable TO %I', p_role);
    FOR v_fn IN SELECT * FROM durable.worker_functions() LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %I', v_fn, p_role);
        -- A caller who does not own the engine gets a WARNING, not an error,
        -- from GRANT: stop here instead of handing out a role that cannot work.
        IF NOT pg_catalog.has_function_privilege(p_role, v_fn, 'EXECUTE') THEN
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = pg_catalog.format('could not grant EXECUTE on %s to %s: provision worker roles as the owner of '
                                 'schema durable (or a superuser)', v_fn, p_role);
        END IF;
    END LOOP;
END $$;
COMMENT ON FUNCTION durable._grant_worker(text) IS
    'Internal: a worker role gets CONNECT, USAGE on the schema and EXECUTE on worker_functions() only.';

CREATE FUNCTION durable._revoke_grants(p_role text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE pg_catalog.format('REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA durable FROM %I', p_role);
    EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA durable FROM %I', p_role);
    EXECUTE pg_catalog.format('REVOKE ALL ON DATABASE %I FROM %I', pg_catalog.current_database(), p_role);
END $$;
COMMENT ON FUNCTION durable._revoke_grants(text) IS
    'Internal: takes back every grant a worker role had (EXECUTE, USAGE, CONNECT).';

-- Per-role limits: a connection limit (enforced by the server) and session
-- defaults for the timeouts (a session of the role may still SET its own).
CREATE FUNCTION durable._limit_role(p_role text, p_connection_limit integer, p_statement_timeout interval,
                                    p_idle_in_transaction_timeout interval, p_lock_timeout interval)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_connection_limit IS NULL OR p_connection_limit < 1 OR p_connection_limit > 10000 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('connection limit %s is out of range: give 1 to 10000', p_connection_limit);
    END IF;
    IF p_statement_timeout IS NULL OR p_statement_timeout <= interval '0'
       OR p_idle_in_transaction_timeout IS NULL OR p_idle_in_transaction_timeout <= interval '0'
       OR p_lock_timeout IS NULL OR p_lock_timeout <= interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = 'worker role timeouts must be positive intervals (statement, idle in transaction, lock)';
    END IF;
    EXECUTE pg_catalog.format('ALTER ROLE %I CONNECTION LIMIT %s', p_role, p_connection_limit);
    EXECUTE pg_catalog.format('ALTER ROLE %I IN DATABASE %I SET statement_timeout = %L', p_role, pg_catalog.current_database(),
                   (extract(epoch FROM p_statement_timeout) * 1000)::bigint || 'ms');
    EXECUTE pg_catalog.format('ALTER ROLE %I IN DATABASE %I SET idle_in_transaction_session_timeout = %L', p_role,
                   pg_catalog.current_database(), (extract(epoch FROM p_idle_in_transaction_timeout) * 1000)::bigint || 'ms');
    EXECUTE pg_catalog.format('ALTER ROLE %I IN DATABASE %I SET lock_timeout = %L', p_role, pg_catalog.current_database(),
                   (extract(epoch FROM p_lock_timeout) * 1000)::bigint || 'ms');
END $$;
COMMENT ON FUNCTION durable._limit_role(text, integer, interval, interval, interval) IS
    'Internal: sets a worker role''s connection limit and its session defaults for statement, '
    'idle-in-transaction and lock timeouts (in this database).';

-- CREATE/ALTER ROLE with a password. When such a statement fails (a
-- password-check module rejecting it, a role dropped by hand), Postgres
-- reports the statement text, password included, in the error's CONTEXT:
-- in the server log and to the client. The error is raised again here
-- without that context.
CREATE FUNCTION durable._set_role_password(p_role text, p_password text, p_create boolean) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_state text;
    v_message text;
    v_detail text;
BEGIN
    IF p_create THEN
        EXECUTE pg_catalog.format('CREATE ROLE %I WITH LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE '
                       'NOREPLICATION NOBYPASSRLS PASSWORD %L', p_role, p_password);
    ELSE
        EXECUTE pg_catalog.format('ALTER ROLE %I WITH LOGIN PASSWORD %L', p_role, p_password);
    END IF;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL;
    IF v_detail = '' THEN
        RAISE EXCEPTION USING ERRCODE = v_state, MESSAGE = v_message;
    END IF;
    RAISE EXCEPTION USING ERRCODE = v_state, MESSAGE = v_message, DETAIL = v_detail;
END $$;
COMMENT ON FUNCTION durable._set_role_password(text, text, boolean) IS
    'Internal: creates a worker login role, or sets its password, never leaking the password into an error.';

-- The DBA functions below run with the DBA's rights (CREATEROLE, often
-- superuser): their pinned search_path means an object someone planted
-- earlier on the DBA's search_path (public.unnest(text[]), a lower(name), an
-- operator) is never picked over pg_catalog's. password_encryption is pinned
-- too: worker passwords are always stored as SCRAM verifiers, whatever the
-- server's default.
CREATE FUNCTION durable.provision_worker_role(p_stream_names text[], p_namespace text DEFAULT 'durable',
                                              p_password text DEFAULT NULL,
                                              p_produce text[] DEFAULT NULL,
                                              p_signal_prefixes text[] DEFAULT NULL,
                                              p_connection_limit integer DEFAULT 50,
                                              p_statement_timeout interval DEFAULT interval '1 minute',
                                              p_idle_in_transaction_timeout interval DEFAULT interval '1 minute',
                                              p_lock_timeout interval DEFAULT interval '30 seconds')
RETURNS TABLE (role_name text, password text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp SET password_encryption = 'scram-sha-256' AS $$
DECLARE
    v_streams text[];
    v_produce text[];
    v_prefixes text[];
    v_role text;
    v_password text := coalesce(p_password, durable._random_password());
    v_now timestamptz := durable.now();
    v_slug text;
BEGIN
    SELECT pg_catalog.array_agg(DISTINCT s ORDER BY s) INTO v_streams FROM pg_catalog.unnest(p_stream_names) s;
    IF v_streams IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = 'give at least one stream name, e.g. ARRAY[''orders'', ''orders-activity'']';
    END IF;
    FOR i IN 1 .. pg_catalog.cardinality(v_streams) LOOP
        PERFORM durable._check_name('stream name', v_streams[i]);
    END LOOP;
    -- By default a role produces to its own task queues (a stream named
    -- <queue>-activity is queue <queue>'s activity stream).
    SELECT pg_catalog.array_agg(DISTINCT q ORDER BY q) INTO v_produce
    FROM pg_catalog.unnest(coalesce(p_produce, ARRAY(SELECT pg_catalog.regexp_replace(s, '-activity$', '') FROM pg_catalog.unnest(v_streams) s))) q;
    IF v_produce IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = 'p_produce must name at least one task queue (or be NULL for the role''s own queues)';
    END IF;
    FOR i IN 1 .. pg_catalog.cardinality(v_produce) LOOP
        PERFORM durable._check_name('task queue', v_produce[i]);
    END LOOP;
    IF p_signal_prefixes IS NOT NULL THEN
        SELECT pg_catalog.array_agg(DISTINCT x ORDER BY x) INTO v_prefixes FROM pg_catalog.unnest(p_signal_prefixes) x;
        IF v_prefixes IS NULL OR EXISTS (SELECT 1 FROM pg_catalog.unnest(v_prefixes) x WHERE x IS NULL) THEN
            RAISE EXCEPTION USING ERRCODE = 'PD004',
                MESSAGE = 'p_signal_prefixes must list signal id prefixes (or be NULL: any signal id)';
        END IF;
    END IF;
    PERFORM durable._check_name('namespace', p_namespace);
    PERFORM durable._check_password(p_password);
    -- Two DBAs provisioning the same streams at once get one role, not two
    -- (a row lock: no worker role can take it).
    PERFORM 1 FROM durable.secret FOR UPDATE;
    SELECT c.role_name INTO v_role FROM durable.worker_credentials c
    WHERE c.namespace = p_namespace AND c.stream_names = v_streams
      AND c.database_name = pg_catalog.current_database() AND c.revoked_at IS NULL
      AND EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = c.role_name);  -- not dropped by hand
    IF FOUND THEN
        -- Idempotent: the same streams get the same role, with a new password,
        -- the scopes and limits given now (and the grants of functions a later
        -- schema version added).
        PERFORM durable._set_role_password(v_role, v_password, false);
        PERFORM durable._grant_worker(v_role);
        UPDATE durable.worker_credentials c
        SET rotated_at = v_now, produce = v_produce, signal_prefixes = v_prefixes
        WHERE c.role_name = v_role;
    ELSE
        -- Role names are cluster-wide and every role may read pg_roles: the
        -- name carries the database (pg_database is public anyway), never the
        -- namespace.
        v_slug := left(pg_catalog.regexp_replace(pg_catalog.lower(pg_catalog.current_database()), '[^a-z0-9]+', '', 'g'), 16);
        v_role := 'pgdw_' || v_slug || '_' || left(pg_catalog.md5(pg_catalog.gen_random_uuid()::text), 12);
        PERFORM durable._set_role_password(v_role, v_password, true);
        PERFORM durable._grant_worker(v_role);
        INSERT INTO durable.worker_credentials (role_name, namespace, database_name, stream_names, produce,
                                                signal_prefixes, created_at)
        VALUES (v_role, p_namespace, pg_catalog.current_database(), v_streams, v_produce, v_prefixes, v_now);
    END IF;
    PERFORM durable._limit_role(v_role, p_connection_limit, p_statement_timeout, p_idle_in_transaction_timeout,
                                p_lock_timeout);
    RETURN QUERY SELECT v_role, v_password;
END $$;
COMMENT ON FUNCTION durable.provision_worker_role(text[], text, text, text[], text[], integer, interval, interval, interval) IS
    'DBA: creates (or, for the same streams, re-keys) a login role that may only consume these streams '
    'through the worker functions, and whose workflows may produce only to p_produce (default: its own '
    'task queues) and wait only on signal ids starting with p_signal_prefixes (default: any). The role '
    'gets a connection limit and session defaults for statement, idle-in-transaction and lock timeouts. '
    'Returns its name and password (random unless given); the password is not stored by pgdurable.';

CREATE FUNCTION durable._worker_role(p_role text, p_namespace text) RETURNS durable.worker_credentials
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_cred durable.worker_credentials;
BEGIN
    SELECT * INTO v_cred FROM durable.worker_credentials c
    WHERE c.role_name = p_role AND (p_namespace IS NULL OR c.namespace = p_namespace)
      AND c.database_name = pg_catalog.current_database();
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'PD003',
            MESSAGE = pg_catalog.format('%L is not a worker role provisioned in %s of this database', p_role,
                             CASE WHEN p_namespace IS NULL THEN 'any namespace'
                                  ELSE pg_catalog.format('namespace %L', p_namespace) END);
    END IF;
    RETURN v_cred;
END $$;
COMMENT ON FUNCTION durable._worker_role(text, text) IS 'Internal: a provisioned worker role, or PD003.';

CREATE FUNCTION durable.rotate_worker_password(p_role_name text, p_new_password text DEFAULT NULL,
                                               p_namespace text DEFAULT NULL,
                                               p_end_sessions boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp SET password_encryption = 'scram-sha-256' AS $$
DECLARE
    v_cred durable.worker_credentials;
    v_password text := coalesce(p_new_password, durable._random_password());
BEGIN
    v_cred := durable._worker_role(p_role_name, p_namespace);
    IF v_cred.revoked_at IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD005',
            MESSAGE = pg_catalog.format('worker role %s is revoked: provision a new one instead', v_cred.role_name);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = v_cred.role_name) THEN
        RAISE EXCEPTION USING ERRCODE = 'PD003',
            MESSAGE = pg_catalog.format('worker role %s was dropped outside pgdurable: revoke it and provision a new one',
                             v_cred.role_name);
    END IF;
    PERFORM durable._check_password(p_new_password);
    PERFORM durable._set_role_password(v_cred.role_name, v_password, false);
    UPDATE durable.worker_credentials c SET rotated_at = durable.now() WHERE c.role_name = v_cred.role_name;
    IF p_end_sessions THEN
        -- A live session can ALTER ROLE its own password back: end them all.
        PERFORM pg_catalog.pg_terminate_backend(a.pid) FROM pg_stat_activity a
        WHERE a.usename = v_cred.role_name AND a.pid <> pg_catalog.pg_backend_pid();
    END IF;
    RETURN v_password;
END $$;
COMMENT ON FUNCTION durable.rotate_worker_password(text, text, text, boolean) IS
    'DBA: sets a new password (random unless given) on a worker role and returns it. Live sessions keep '
    'running unless p_end_sessions (a live session of a leaked role could set its old password back): '
    'restart the workers with the new password.';

CREATE FUNCTION durable.revoke_worker_role(p_role_name text, p_namespace text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_cred durable.worker_credentials;
BEGIN
    v_cred := durable._worker_role(p_role_name, p_namespace);
    IF EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = v_cred.role_name) THEN
        EXECUTE pg_catalog.format('ALTER ROLE %I WITH NOLOGIN', v_cred.role_name);
    END IF;
    UPDATE durable.worker_credentials c SET revoked_at = coalesce(c.revoked_at, durable.now())
    WHERE c.role_name = v_cred.role_name;
    IF EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = v_cred.role_name) THEN
        PERFORM durable._revoke_grants(v_cred.role_name);
    END IF;
    PERFORM pg_catalog.pg_terminate_backend(a.pid) FROM pg_stat_activity a
    WHERE a.usename = v_cred.role_name AND a.pid <> pg_catalog.pg_backend_pid();
END $$;
COMMENT ON FUNCTION durable.revoke_worker_role(text, text) IS
    'DBA: disables a worker role''s login, takes back its grants and ends its live sessions; the audit row '
    'is kept with revoked_at. '
    'Idempotent: calling it again ends any session that logged in while the first call committed.';

CREATE FUNCTION durable.list_worker_roles(p_namespace text DEFAULT NULL)
RETURNS TABLE (role_name text, namespace text, stream_names text[], created_at timestamptz,
               rotated_at timestamptz, revoked_at timestamptz, produce text[], signal_prefixes text[])
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.role_name, c.namespace, c.stream_names, c.created_at, c.rotated_at, c.revoked_at, c.produce,
           c.signal_prefixes
    FROM durable.worker_credentials c
    WHERE (p_namespace IS NULL OR c.namespace = p_namespace)
      AND c.database_name = pg_catalog.current_database()
    ORDER BY c.created_at, c.role_name
$$;
COMMENT ON FUNCTION durable.list_worker_roles(text) IS
    'DBA: the worker roles of this database (of one namespace, or all), revoked ones included, with the '
    'streams they consume, the task queues they produce to and their signal id prefixes.';

-- >>> admin.sql
-- admin.sql: what an operator runs from psql: retention (prune).
-- Deletes closed runs with their history, expired buffered signals, the
-- mailboxes of signal ids nobody uses any more, and workers long gone.

CREATE FUNCTION durable.prune(p_older_than interval, p_namespace text DEFAULT NULL,
                              p_batch integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_cutoff timestamptz := durable.now() - p_older_than;
    v_deleted integer;
BEGIN
    IF p_older_than IS NULL OR p_older_than < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('invalid retention %s: give a positive interval such as ''30 days''', p_older_than);
    END IF;
    WITH victims AS (
        SELECT w.namespace, w.workflow_id, w.run_id FROM durable.workflows w
        WHERE w.status <> 'running' AND w.closed_at < v_cutoff
          AND (p_namespace IS NULL OR w.namespace = p_namespace)
        ORDER BY w.closed_at
        LIMIT greatest(p_batch, 1)
        FOR UPDATE SKIP LOCKED
    ), gone_history AS (
        DELETE FROM durable.history h USING victims v
        WHERE h.namespace = v.namespace AND h.workflow_id = v.workflow_id AND h.run_id = v.run_id
    )
    DELETE FROM durable.workflows w USING victims v
    WHERE w.namespace = v.namespace AND w.workflow_id = v.workflow_id AND w.run_id = v.run_id;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    DELETE FROM durable.signals s
    WHERE s.id IN (SELECT x.id FROM durable.signals x WHERE x.expires_at < durable.now()
                     AND (p_namespace IS NULL OR x.namespace = p_namespace)
                   LIMIT greatest(p_batch, 1));
    DELETE FROM durable.mailboxes b
    WHERE (b.namespace, b.signal_id) IN (
        SELECT x.namespace, x.signal_id FROM durable.mailboxes x
        WHERE x.created_at < v_cutoff AND (p_namespace IS NULL OR x.namespace = p_namespace)
          AND NOT EXISTS (SELECT 1 FROM durable.signals s WHERE s.namespace = x.namespace AND s.signal_id = x.signal_id)
          AND NOT EXISTS (SELECT 1 FROM durable.signal_waits w
                          WHERE w.namespace = x.namespace AND w.signal_id = x.signal_id)
        LIMIT greatest(p_batch, 1)
        FOR UPDATE SKIP LOCKED);
    -- Workers not seen for the retention period (stopped or gone).
    DELETE FROM durable.workers k
    WHERE k.worker_id IN (SELECT x.worker_id FROM durable.workers x
                          WHERE x.last_seen_at < v_cutoff AND (p_namespace IS NULL OR x.namespace = p_namespace)
                          LIMIT greatest(p_batch, 1)
                          FOR UPDATE SKIP LOCKED);
    RETURN v_deleted;
END $$;
COMMENT ON FUNCTION durable.prune(interval, text, integer) IS
    'Retention: deletes up to p_batch runs closed more than p_older_than ago (with their history) and '
    'expired buffered signals, the mailboxes (signal ids) unused since then and the workers not seen since then, '
    'skipping rows in use. '
    'Returns how many runs went; call again until 0.';

-- >>> stats.sql
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

-- >>> grants.sql
-- grants.sql: loaded last. Nothing in schema durable is callable by PUBLIC:
-- the owner (and roles it grants to) run the engine; worker roles get
-- EXECUTE on their SECURITY DEFINER functions only (roles.sql). Writes no
-- table: only privileges.
--
-- Postgres gives PUBLIC EXECUTE on every new function, and a per-schema
-- ALTER DEFAULT PRIVILEGES cannot take that back. So every migration run
-- ends with durable._reassert_grants() (migrations/env.py): a function a
-- later revision adds is never executable by PUBLIC, and worker roles hold
-- EXECUTE on exactly durable.worker_functions() of that version.

CREATE FUNCTION durable._reassert_grants() RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_role text;
BEGIN
    REVOKE ALL ON SCHEMA durable FROM PUBLIC;
    REVOKE ALL ON ALL TABLES IN SCHEMA durable FROM PUBLIC;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA durable FROM PUBLIC;
    REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA durable FROM PUBLIC;
    FOR v_role IN SELECT c.role_name FROM durable.worker_credentials c
                  WHERE c.database_name = pg_catalog.current_database()
                    AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = c.role_name)
                  ORDER BY c.role_name LOOP
        PERFORM durable._revoke_grants(v_role);
        IF (SELECT c.revoked_at IS NULL FROM durable.worker_credentials c WHERE c.role_name = v_role) THEN
            PERFORM durable._grant_worker(v_role);
        END IF;
    END LOOP;
END $$;
COMMENT ON FUNCTION durable._reassert_grants() IS
    'Owner: takes PUBLIC''s privileges off everything in schema durable (functions added later included) '
    'and gives each live worker role EXECUTE on exactly worker_functions(). Every migration run ends with it.';

SELECT durable._reassert_grants();
