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
