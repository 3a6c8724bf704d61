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
