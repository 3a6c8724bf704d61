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
