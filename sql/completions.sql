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
