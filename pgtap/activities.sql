-- activities.sql: activity tasks (mirrors sql/activities.sql): scheduling
-- (eager dispatch to the completing worker included), claim by name,
-- complete exactly once, fail and retry per policy, lost leases counting as
-- attempts, heartbeats, late results for closed runs, and two sessions
-- completing or claiming at once (dblink).
--
-- The dblink part needs committed fixtures, so it runs first, outside any
-- transaction (this database is a throwaway clone); the rest runs in one
-- transaction that is rolled back. Every part uses its own namespace.
\ir include/fixtures.psql
SET client_min_messages = warning;  -- dblink_get_result(.., false) reports remote errors as NOTICEs
SELECT plan(134);

DO $$ BEGIN
    PERFORM dblink_connect('b', pg_temp.self_dsn());
    PERFORM dblink_connect('c', pg_temp.self_dsn());
END $$;
SELECT pid AS c_pid FROM dblink('c', 'SELECT pg_backend_pid()') AS t(pid int) \gset
SET lock_timeout = '5s';

-- ---------------------------------------------------------------------------
-- Two sessions completing the same attempt: exactly one records it.
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('dbl', 'w') AS ignored \gset
SELECT pg_temp.step('dbl', 'w', '[{"type": "activity", "seq": 1, "name": "charge", "args": "[]"}]') AS ignored \gset
CREATE TEMP TABLE dbl_act AS SELECT * FROM durable.claim_activity_tasks_v1('dbl', ARRAY['q-activity'], ARRAY['charge']);
SELECT format('SELECT recorded FROM durable.complete_activity_v1(%s, %L, %L)', message_id, lease_token, '"r"') AS complete_sql
FROM dbl_act \gset
DO $$ BEGIN PERFORM dblink_exec('b', 'BEGIN'); END $$;
SELECT is((SELECT ok FROM dblink('b', :'complete_sql') AS t(ok boolean)), true,
          'session B records the result in a transaction it keeps open');
SELECT is(dblink_send_query('c', :'complete_sql'), 1, 'session C sends the same completion meanwhile');
SELECT ok(pg_temp.wait_until_blocked(:c_pid), 'C waits for B');
DO $$ BEGIN PERFORM dblink_exec('b', 'COMMIT'); END $$;
CREATE TEMP TABLE c_res AS SELECT * FROM dblink_get_result('c', false) AS t(ok boolean);
SELECT matches(dblink_error_message('c'), '^ERROR:  lease lost on message',
               'once B commits, C''s duplicate completion fails with lease lost');
SELECT is_empty($$SELECT * FROM dblink_get_result('c') AS t(ok boolean)$$, 'session C is done');
SELECT is((SELECT count(*)::int FROM durable.history WHERE namespace = 'dbl' AND event_type = 'activity_completed'), 1,
          'the result is recorded exactly once');

-- Two sessions claiming activity tasks at once never share one.
SELECT pg_temp.start('dbl2', 'w') AS ignored \gset
SELECT pg_temp.step('dbl2', 'w', '[{"type": "activity", "seq": 1, "name": "a", "args": "[]"},
                                   {"type": "activity", "seq": 2, "name": "a", "args": "[]"},
                                   {"type": "activity", "seq": 3, "name": "a", "args": "[]"}]') AS ignored \gset
DO $$ BEGIN PERFORM dblink_exec('b', 'BEGIN'); END $$;
CREATE TEMP TABLE b_acts AS
SELECT * FROM dblink('b', $$SELECT message_id FROM durable.claim_activity_tasks_v1('dbl2', ARRAY['q-activity'], ARRAY['a'], 2)$$)
    AS t(message_id bigint);
CREATE TEMP TABLE a_acts AS SELECT message_id FROM durable.claim_activity_tasks_v1('dbl2', ARRAY['q-activity'], ARRAY['a'], 3);
DO $$ BEGIN PERFORM dblink_exec('b', 'COMMIT'); END $$;
SELECT is((SELECT count(*)::int FROM b_acts) || '+' || (SELECT count(*)::int FROM a_acts), '2+1',
          'while B holds two activity tasks, A claims the remaining one without waiting');
SELECT is((SELECT count(*)::int FROM a_acts JOIN b_acts USING (message_id)), 0, 'no activity task is claimed twice');

-- A late result for a run that closed while its task row was locked is discarded.
SELECT pg_temp.start('dbl3', 'w') AS ignored \gset
SELECT pg_temp.step('dbl3', 'w', '[{"type": "activity", "seq": 1, "name": "charge", "args": "[]"}]') AS ignored \gset
CREATE TEMP TABLE dbl3_act AS SELECT * FROM durable.claim_activity_tasks_v1('dbl3', ARRAY['q-activity'], ARRAY['charge']);
DO $do$ BEGIN
    PERFORM dblink_exec('b', 'BEGIN');
    PERFORM * FROM dblink('b', $$SELECT 1 FROM durable.messages WHERE namespace = 'dbl3' AND kind = 'activity' FOR UPDATE$$)
        AS t(x int);
END $do$;
SELECT ok(durable.interrupt_workflow_v1('dbl3', 'w'), 'the run is interrupted while its activity task row is locked');
DO $$ BEGIN PERFORM dblink_exec('b', 'ROLLBACK'); END $$;
SELECT is((SELECT recorded FROM durable.complete_activity_v1((SELECT message_id FROM dbl3_act), (SELECT lease_token FROM dbl3_act), '"late"')),
          false, 'the late result is accepted but discarded: complete_activity_v1 returns false');
SELECT is_empty($$SELECT 1 FROM durable.messages WHERE namespace = 'dbl3'$$, 'the activity task is gone');
SELECT is(pg_temp.events('dbl3', 'w'), '{workflow_started,activity_scheduled,workflow_interrupted}'::text[],
          'the interrupted run records no activity result');
DO $$ BEGIN PERFORM dblink_disconnect('b'); PERFORM dblink_disconnect('c'); END $$;
RESET lock_timeout;

BEGIN;
-- ---------------------------------------------------------------------------
-- Scheduling: a workflow task's activity commands (_schedule_activity)
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('sch', 'w') AS ignored \gset
SELECT pg_temp.step('sch', 'w', $$[
    {"type": "activity", "seq": 1, "name": "charge", "args": "[9]", "retry": {"maximum_attempts": 3},
     "headers": {"trace": "t1"}},
    {"type": "activity", "seq": 2, "name": "render", "args": "[]", "task_queue": "gpu"}]$$) AS ignored \gset
SELECT is(pg_temp.last_event('sch', 'w', 'activity_scheduled') - 'retry' - 'start_to_close_timeout',
          '{"activity_name": "render", "task_queue": "gpu", "args": "[]"}'::jsonb,
          'activity_scheduled records the activity name, task queue and args');
SELECT is((SELECT (stream, kind, name, workflow_id, run_id, max_attempts, attempt, payload->>'seq', payload->>'args',
                   payload->'headers'->>'trace', payload->>'workflow_name')::text
           FROM durable.messages WHERE namespace = 'sch' AND name = 'charge'),
          '(q-activity,activity,charge,w,1,3,0,1,[9],t1,w)',
          'an activity task is queued on <task_queue>-activity with its seq, args, headers and maximum_attempts');
SELECT is((SELECT (stream, max_attempts)::text FROM durable.messages WHERE namespace = 'sch' AND name = 'render'),
          '(gpu-activity,5)', 'an activity on another task queue goes to that queue''s stream; 5 attempts by default');

-- ---------------------------------------------------------------------------
-- Eager dispatch: complete_workflow_task_v1 hands back the activities the caller serves
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('eg', 'w') AS ignored \gset
CREATE TEMP TABLE eg1 AS SELECT * FROM durable.claim_workflow_tasks_v1('eg', ARRAY['q'], ARRAY['w']);
CREATE TEMP TABLE eg1_done AS
SELECT * FROM durable.complete_workflow_task_v1((SELECT message_id FROM eg1), (SELECT lease_token FROM eg1), 1,
    '[{"type": "activity", "seq": 1, "name": "charge", "args": "[1]"},
      {"type": "activity", "seq": 2, "name": "email", "args": "[2]"},
      {"type": "activity", "seq": 3, "name": "charge", "args": "[3]", "task_queue": "other"}]',
    '{"owner": "wk-e", "lease_seconds": 45, "activity_stream": "q-activity", "activity_names": ["charge"]}');
SELECT is((SELECT (status, jsonb_array_length(activities), events IS NULL)::text FROM eg1_done), '(ok,1,t)',
          'with p_eager the completion hands back the activities the caller serves');
SELECT ok((SELECT (a#>>'{payload,scheduled_at}')::timestamptz BETWEEN durable.now() - interval '1 minute' AND durable.now()
           FROM eg1_done, jsonb_array_elements(activities) a),
          'an activity task''s payload says when it was scheduled (schedule-to-start metrics)');
SELECT is((SELECT a - '{message_id,lease_token}'::text[] #- '{payload,scheduled_at}'
           FROM eg1_done, jsonb_array_elements(activities) a),
          '{"attempt": 1, "activity_name": "charge", "stream": "q-activity", "workflow_id": "w", "run_id": 1,
            "payload": {"seq": 1, "args": "[1]", "retry": null, "headers": {}, "start_to_close_timeout": null,
                        "workflow_name": "w", "task_queue": "q"}}'::jsonb,
          'shaped like a claim_activity_tasks_v1 row, as attempt 1');
SELECT is((SELECT (m.lease_owner, m.lease_token = (a->>'lease_token')::uuid, m.attempt,
                   m.visible_at - durable.now() BETWEEN interval '44 seconds' AND interval '45 seconds')::text
           FROM eg1_done, jsonb_array_elements(activities) a JOIN durable.messages m ON m.id = (a->>'message_id')::bigint),
          '(wk-e,t,1,t)', 'the activity task is born leased to the caller for lease_seconds');
SELECT is((SELECT array_agg(name || '@' || stream || ':' || attempt || ':' || (lease_token IS NULL) ORDER BY id)
           FROM durable.messages WHERE namespace = 'eg' AND kind = 'activity' AND lease_token IS NULL),
          '{email@q-activity:0:true,charge@other-activity:0:true}'::text[],
          'activities of other names or other streams are queued as usual');
SELECT is_empty($$SELECT * FROM durable.claim_activity_tasks_v1('eg', ARRAY['q-activity'], ARRAY['charge'])$$,
                'no other worker can claim the eagerly leased activity');
-- Eager dispatch stops at the caller's free capacity.
SELECT pg_temp.start('egc', 'w') AS ignored \gset
CREATE TEMP TABLE egc1 AS SELECT * FROM durable.claim_workflow_tasks_v1('egc', ARRAY['q'], ARRAY['w']);
CREATE TEMP TABLE egc1_done AS
SELECT * FROM durable.complete_workflow_task_v1((SELECT message_id FROM egc1), (SELECT lease_token FROM egc1), 1,
    '[{"type": "activity", "seq": 1, "name": "charge", "args": "[1]"},
      {"type": "activity", "seq": 2, "name": "charge", "args": "[2]"},
      {"type": "activity", "seq": 3, "name": "charge", "args": "[3]"}]',
    '{"owner": "wk-c", "lease_seconds": 45, "activity_stream": "q-activity", "activity_names": ["charge"],
      "capacity": 2}');
SELECT is((SELECT jsonb_path_query_array(activities, '$[*].payload.seq') FROM egc1_done), '[1, 2]'::jsonb,
          'with p_eager capacity 2, only the first two activities come back leased to the caller');
SELECT is((SELECT array_agg((payload->>'seq') || ':' || (lease_token IS NULL) || ':' || (visible_at <= durable.now())
                            ORDER BY id)
           FROM durable.messages WHERE namespace = 'egc' AND kind = 'activity' AND lease_owner IS DISTINCT FROM 'wk-c'),
          '{3:true:true}'::text[], 'the third is queued, claimable at once by any worker');
SELECT pg_temp.start('egc', 'z') AS ignored \gset
CREATE TEMP TABLE egc2 AS SELECT * FROM durable.claim_workflow_tasks_v1('egc', ARRAY['q'], ARRAY['z']);
SELECT is((SELECT jsonb_array_length(activities) FROM durable.complete_workflow_task_v1(
               (SELECT message_id FROM egc2), (SELECT lease_token FROM egc2), 1,
               '[{"type": "activity", "seq": 1, "name": "charge", "args": "[]"}]',
               '{"owner": "wk-c", "lease_seconds": 45, "activity_stream": "q-activity", "activity_names": ["charge"],
                 "capacity": 0}')), 0,
          'a caller without free capacity gets no activity eagerly');
-- ---------------------------------------------------------------------------
-- claim_activity_tasks_v1
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('a', 'w') AS ignored \gset
SELECT pg_temp.step('a', 'w', $$[
    {"type": "activity", "seq": 1, "name": "charge", "args": "[100]",
     "retry": {"maximum_attempts": 3, "initial_interval": 2, "backoff_coefficient": 3, "maximum_interval": 100}},
    {"type": "activity", "seq": 2, "name": "refund", "args": "[]"}]$$) AS ignored \gset
CREATE TEMP TABLE a1 AS SELECT * FROM durable.claim_activity_tasks_v1('a', ARRAY['q-activity'], ARRAY['charge'], 10, p_owner => 'wk');
SELECT is((SELECT count(*)::int FROM a1), 1, 'claim_activity_tasks_v1 only claims the activity names given');
SELECT is((SELECT (attempt, activity_name, stream, workflow_id, run_id, payload->>'seq', payload->>'args', lease_token IS NOT NULL)::text FROM a1),
          '(1,charge,q-activity,w,1,1,[100],t)', 'a claimed activity carries its attempt, run, seq, args and a lease token');
SELECT is_empty($$SELECT * FROM durable.claim_activity_tasks_v1('a', ARRAY['q'], ARRAY['charge', 'refund'])$$,
                'activity tasks live on <task_queue>-activity, not on the workflow task queue');
SELECT is_empty($$SELECT * FROM durable.claim_activity_tasks_v1('a', ARRAY['q-activity'], ARRAY['charge'])$$,
                'a claimed activity is not handed out twice');
SELECT is_empty($$SELECT * FROM durable.claim_v1('a', ARRAY['q-activity'], ARRAY['refund'])$$,
                'claim_v1 never hands out activity tasks');

-- heartbeat_activity_v1
SELECT ok(durable.heartbeat_activity_v1((SELECT message_id FROM a1), (SELECT lease_token FROM a1), '{"done": 50}', interval '60 seconds'),
          'a heartbeat with the current token returns true');
SELECT is((SELECT payload->>'heartbeat_details' FROM durable.messages WHERE id = (SELECT message_id FROM a1)), '{"done": 50}',
          'the heartbeat stores its details on the task');
SELECT ok((SELECT visible_at - durable.now() BETWEEN interval '59 seconds' AND interval '60 seconds'
           FROM durable.messages WHERE id = (SELECT message_id FROM a1)), 'and extends the lease to p_lease from now');
SELECT ok(durable.heartbeat_activity_v1((SELECT message_id FROM a1), (SELECT lease_token FROM a1), NULL),
          'a heartbeat without details still extends the lease');
SELECT is((SELECT payload->>'heartbeat_details' FROM durable.messages WHERE id = (SELECT message_id FROM a1)), '{"done": 50}',
          'and keeps the last details');
SELECT is(durable.heartbeat_activity_v1((SELECT message_id FROM a1), gen_random_uuid(), 'x'), false,
          'a heartbeat with a wrong token returns false (the lease was lost)');

-- fail_activity_v1: retry per policy, then the final failure
SELECT throws_ok(format('SELECT outcome FROM durable.fail_activity_v1(%s, %L, ''{}'')', (SELECT message_id FROM a1), gen_random_uuid()),
                 'PD001', NULL, 'failing with a wrong token fails with PD001');
SELECT is((SELECT outcome FROM durable.fail_activity_v1((SELECT message_id FROM a1), (SELECT lease_token FROM a1),
                                   '{"type": "IOError", "types": ["IOError"], "message": "timeout"}')),
          'retrying', 'a failed attempt with attempts left is retried');
SELECT is((SELECT (lease_token IS NULL, attempt, visible_at - durable.now() BETWEEN interval '1.5 seconds' AND interval '2 seconds')::text
           FROM durable.messages WHERE id = (SELECT message_id FROM a1)),
          '(t,1,t)', 'the retry waits initial_interval (2 s), unleased');
SELECT is((SELECT (seq, inbound, data - 'error')::text FROM durable.history WHERE namespace = 'a' AND event_type = 'activity_failed'),
          '(1,f,"{""maxed"": false, ""attempt"": 1, ""retry_in_seconds"": 2.000000}")',
          'history records the failed attempt, not as an outcome for the workflow code');
SELECT is((SELECT count(*)::int FROM durable.messages WHERE namespace = 'a' AND kind = 'workflow'), 0,
          'a retried failure does not wake the workflow');
SELECT is_empty($$SELECT * FROM durable.claim_activity_tasks_v1('a', ARRAY['q-activity'], ARRAY['charge'])$$,
                'the retry is not claimable before its delay');
SELECT durable.advance_clock('2 seconds') IS NOT NULL AS moved \gset
CREATE TEMP TABLE a2 AS SELECT * FROM durable.claim_activity_tasks_v1('a', ARRAY['q-activity'], ARRAY['charge']);
SELECT is((SELECT (attempt, payload->>'heartbeat_details')::text FROM a2), '(2,"{""done"": 50}")',
          'after the delay it is claimed as attempt 2, with the last heartbeat details');
SELECT throws_ok(format('SELECT recorded FROM durable.complete_activity_v1(%s, %L, ''1'')', (SELECT message_id FROM a1), (SELECT lease_token FROM a1)),
                 'PD001', NULL, 'attempt 1''s token can no longer complete it');
SELECT is((SELECT outcome FROM durable.fail_activity_v1((SELECT message_id FROM a2), (SELECT lease_token FROM a2), '{"types": ["IOError"]}')),
          'retrying', 'attempt 2 fails');
SELECT ok((SELECT visible_at - durable.now() BETWEEN interval '5.5 seconds' AND interval '6 seconds'
           FROM durable.messages WHERE id = (SELECT message_id FROM a2)), 'the next delay is initial * coefficient (6 s)');
SELECT durable.advance_clock('6 seconds') IS NOT NULL AS moved \gset
CREATE TEMP TABLE a3 AS SELECT * FROM durable.claim_activity_tasks_v1('a', ARRAY['q-activity'], ARRAY['charge']);
SELECT is((SELECT outcome FROM durable.fail_activity_v1((SELECT message_id FROM a3), (SELECT lease_token FROM a3), '{"type": "IOError", "types": ["IOError"]}')),
          'failed', 'the failure of the last allowed attempt (3 of 3) fails the activity');
SELECT is((SELECT (seq, inbound, data)::text FROM durable.history WHERE namespace = 'a' AND event_type = 'activity_failed' AND inbound),
          '(1,t,"{""error"": {""type"": ""IOError"", ""types"": [""IOError""]}, ""maxed"": true, ""attempt"": 3}")',
          'the workflow gets an inbound activity_failed, maxed, with the last error');
SELECT is_empty(format('SELECT 1 FROM durable.messages WHERE id = %s', (SELECT message_id FROM a3)), 'the activity task is gone');
SELECT isnt_empty($$SELECT 1 FROM durable.messages WHERE namespace = 'a' AND kind = 'workflow'$$, 'the workflow is woken');

-- non-retryable errors
CREATE TEMP TABLE a4 AS SELECT * FROM durable.claim_activity_tasks_v1('a', ARRAY['q-activity'], ARRAY['refund']);
SELECT is((SELECT outcome FROM durable.fail_activity_v1((SELECT message_id FROM a4), (SELECT lease_token FROM a4), '{"type": "Bug", "non_retryable": true}')),
          'failed', 'a non_retryable error fails the activity at its first attempt');
SELECT is((SELECT (data->>'attempt', data->>'maxed')::text FROM durable.history WHERE namespace = 'a' AND seq = 2 AND event_type = 'activity_failed'),
          '(1,true)', 'and the workflow hears of it at once');
SELECT pg_temp.start('a', 'nr') AS ignored \gset
SELECT pg_temp.step('a', 'nr', '[{"type": "activity", "seq": 1, "name": "parse", "args": "[]",
                                  "retry": {"maximum_attempts": 5, "non_retryable_errors": ["ValueError"]}}]') AS ignored \gset
CREATE TEMP TABLE a5 AS SELECT * FROM durable.claim_activity_tasks_v1('a', ARRAY['q-activity'], ARRAY['parse']);
SELECT is((SELECT outcome FROM durable.fail_activity_v1((SELECT message_id FROM a5), (SELECT lease_token FROM a5),
                                   '{"type": "app.BadRow", "types": ["app.BadRow", "ValueError", "Exception"]}')),
          'failed', 'an error one of whose classes is in non_retryable_errors is not retried');

-- complete_activity_v1: exactly once
SELECT pg_temp.start('c', 'w') AS ignored \gset
SELECT pg_temp.step('c', 'w', '[{"type": "activity", "seq": 5, "name": "ship", "args": "[]"}]') AS ignored \gset
CREATE TEMP TABLE c1 AS SELECT * FROM durable.claim_activity_tasks_v1('c', ARRAY['q-activity'], ARRAY['ship']);
SELECT throws_ok(format('SELECT recorded FROM durable.complete_activity_v1(%s, %L, NULL)', (SELECT message_id FROM c1), (SELECT lease_token FROM c1)),
                 'PD004', NULL, 'a NULL result is rejected with PD004');
SELECT is((SELECT recorded FROM durable.complete_activity_v1((SELECT message_id FROM c1), (SELECT lease_token FROM c1), '{"tracking": "X1"}')), true,
          'completing a held activity returns true');
SELECT throws_ok(format('SELECT recorded FROM durable.complete_activity_v1(%s, %L, ''"again"'')', (SELECT message_id FROM c1), (SELECT lease_token FROM c1)),
                 'PD001', NULL, 'a second completion with the same token fails with PD001');
SELECT throws_ok(format('SELECT outcome FROM durable.fail_activity_v1(%s, %L, ''{}'')', (SELECT message_id FROM c1), (SELECT lease_token FROM c1)),
                 'PD001', NULL, 'so does a failure after the completion');
SELECT is((SELECT count(*)::int FROM durable.history WHERE namespace = 'c' AND event_type = 'activity_completed'), 1,
          'history has exactly one activity_completed');
SELECT is((SELECT (seq, inbound, data)::text FROM durable.history WHERE namespace = 'c' AND event_type = 'activity_completed'),
          '(5,t,"{""result"": ""{\\""tracking\\"": \\""X1\\""}"", ""attempt"": 1}")',
          'activity_completed is inbound, resolves the seq and carries the result and attempt');
SELECT is_empty($$SELECT 1 FROM durable.messages WHERE namespace = 'c' AND kind = 'activity'$$, 'the activity task is gone');
SELECT is(jsonb_path_query_array((SELECT events FROM durable.claim_workflow_tasks_v1('c', ARRAY['q'], ARRAY['w'])), '$[*].event_type'),
          '["activity_completed"]'::jsonb, 'the workflow''s next task carries the result');

-- ---------------------------------------------------------------------------
-- A lost lease counts as an attempt
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('l', 'w') AS ignored \gset
SELECT pg_temp.step('l', 'w', '[{"type": "activity", "seq": 1, "name": "slow", "args": "[]", "retry": {"maximum_attempts": 3}}]') AS ignored \gset
CREATE TEMP TABLE l1 AS SELECT * FROM durable.claim_activity_tasks_v1('l', ARRAY['q-activity'], ARRAY['slow'], 1, interval '10 seconds');
SELECT durable.advance_clock('11 seconds') IS NOT NULL AS moved \gset
CREATE TEMP TABLE l2 AS SELECT * FROM durable.claim_activity_tasks_v1('l', ARRAY['q-activity'], ARRAY['slow'], 1, interval '10 seconds');
SELECT is((SELECT attempt FROM l2), 2, 'an activity whose lease expired is claimed again as attempt 2: the lost one counted');
SELECT is((SELECT (seq, inbound, data->>'attempt', data->>'maxed', data->>'lease_lost', data->'error'->>'type',
                   data->'error'->>'detail')::text
           FROM durable.history WHERE namespace = 'l' AND workflow_id = 'w' AND event_type = 'activity_failed'),
          '(1,f,1,false,true,ActivityLeaseExpired,"attempt 1 of 3 was lost with its worker (lease expired)")',
          'the history records that attempt 1 was lost: a non-inbound activity_failed with lease_lost');
SELECT is((SELECT count(*)::int FROM durable.messages WHERE namespace = 'l' AND kind = 'workflow'), 0,
          'a lost attempt does not wake the workflow');
SELECT is_empty($$SELECT * FROM durable.claim_activity_tasks_v1('l', ARRAY['q-activity'], ARRAY['slow'])$$,
                'claiming again finds nothing to claim');
SELECT is((SELECT count(*)::int FROM durable.history WHERE namespace = 'l' AND event_type = 'activity_failed'), 1,
          'and records the lost attempt only once');
SELECT throws_ok(format('SELECT recorded FROM durable.complete_activity_v1(%s, %L, ''1'')', (SELECT message_id FROM l1), (SELECT lease_token FROM l1)),
                 'PD001', NULL, 'the worker that lost the lease cannot record its result');
SELECT is(durable.heartbeat_activity_v1((SELECT message_id FROM l1), (SELECT lease_token FROM l1), 'x'), false,
          'nor heartbeat');
SELECT durable.advance_clock('11 seconds') IS NOT NULL AS moved \gset
SELECT is((SELECT attempt FROM durable.claim_activity_tasks_v1('l', ARRAY['q-activity'], ARRAY['slow'], 1, interval '10 seconds')), 3,
          'losing attempt 2 as well leads to attempt 3');
SELECT is((SELECT array_agg((data->>'attempt') || ':' || inbound ORDER BY event_id) FROM durable.history
           WHERE namespace = 'l' AND workflow_id = 'w' AND event_type = 'activity_failed'), '{1:false,2:false}'::text[],
          'each lost attempt is recorded');
SELECT durable.advance_clock('11 seconds') IS NOT NULL AS moved \gset
SELECT is_empty($$SELECT * FROM durable.claim_activity_tasks_v1('l', ARRAY['q-activity'], ARRAY['slow'])$$,
                'when the lost attempt was the last allowed, the claim hands nothing out');
SELECT is((SELECT (inbound, data->>'attempt', data->>'maxed', data->'error'->>'type', data->'error'->'types', data->'error'->>'lease_lost')::text
           FROM durable.history WHERE namespace = 'l' AND event_type = 'activity_failed' AND inbound),
          '(t,3,true,ActivityLeaseExpired,"[""ActivityLeaseExpired""]",true)',
          'instead the activity fails with ActivityLeaseExpired');
SELECT is_empty($$SELECT 1 FROM durable.messages WHERE namespace = 'l' AND kind = 'activity'$$, 'and its task is gone');
SELECT pg_temp.start('l', 'hb') AS ignored \gset
SELECT pg_temp.step('l', 'hb', '[{"type": "activity", "seq": 1, "name": "beat", "args": "[]", "retry": {"maximum_attempts": 1}}]') AS ignored \gset
CREATE TEMP TABLE l3 AS SELECT * FROM durable.claim_activity_tasks_v1('l', ARRAY['q-activity'], ARRAY['beat'], 1, interval '10 seconds');
SELECT durable.advance_clock('8 seconds') IS NOT NULL AS moved \gset
SELECT ok(durable.heartbeat_activity_v1((SELECT message_id FROM l3), (SELECT lease_token FROM l3), NULL, interval '10 seconds'),
          'a heartbeating activity keeps its lease');
SELECT durable.advance_clock('8 seconds') IS NOT NULL AS moved \gset
SELECT is_empty($$SELECT * FROM durable.claim_activity_tasks_v1('l', ARRAY['q-activity'], ARRAY['beat'])$$,
                'past its first lease it is neither reclaimed');
SELECT is(pg_temp.events('l', 'hb'), '{workflow_started,activity_scheduled}'::text[], 'nor failed as lost');
-- An activity whose worker only claimed it (attempt 1 of 1) and died: maxed at once, nothing queued again.
SELECT pg_temp.start('l', 'one') AS ignored \gset
SELECT pg_temp.step('l', 'one', '[{"type": "activity", "seq": 1, "name": "once", "args": "[]", "retry": {"maximum_attempts": 1}}]') AS ignored \gset
SELECT message_id AS once_id FROM durable.claim_activity_tasks_v1('l', ARRAY['q-activity'], ARRAY['once'], 1, interval '10 seconds') \gset
SELECT durable.advance_clock('11 seconds') IS NOT NULL AS moved \gset
SELECT is_empty($$SELECT * FROM durable.claim_activity_tasks_v1('l', ARRAY['q-activity'], ARRAY['once'])$$,
                'an activity whose only attempt was lost is not claimed again');
SELECT is(pg_temp.events('l', 'one'), '{workflow_started,activity_scheduled,activity_failed}'::text[],
          'its single activity_failed is the final, inbound one');

-- ---------------------------------------------------------------------------
-- Eager dispatch: the completing worker takes the workflow task it woke
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('e', 'w') AS ignored \gset
SELECT pg_temp.step('e', 'w', '[{"type": "activity", "seq": 1, "name": "a1", "args": "[]"},
                                 {"type": "activity", "seq": 2, "name": "a2", "args": "[]", "retry": {"maximum_attempts": 1}},
                                 {"type": "activity", "seq": 3, "name": "a3", "args": "[]"}]') AS ignored \gset
CREATE TEMP TABLE e1 AS SELECT * FROM durable.claim_activity_tasks_v1('e', ARRAY['q-activity'], ARRAY['a1']);
CREATE TEMP TABLE e1_done AS
SELECT * FROM durable.complete_activity_v1((SELECT message_id FROM e1), (SELECT lease_token FROM e1), '"one"',
    '{"owner": "wk-e", "lease_seconds": 40, "task_queue": "q", "workflow_names": ["w"]}');
SELECT is((SELECT (recorded, workflow_task->>'workflow_id', workflow_task->>'task_attempt',
                   jsonb_path_query_array(workflow_task->'events', '$[*].event_type'))::text FROM e1_done),
          '(t,w,1,"[""activity_completed""]")',
          'with p_eager the result comes back with the workflow task it woke, leased to the caller');
SELECT is((SELECT (lease_owner, lease_token = (SELECT (workflow_task->>'lease_token')::uuid FROM e1_done),
                   visible_at - durable.now() BETWEEN interval '39 seconds' AND interval '40 seconds')::text
           FROM durable.messages WHERE namespace = 'e' AND kind = 'workflow'),
          '(wk-e,t,t)', 'the workflow task is leased to the caller for lease_seconds');
SELECT is_empty($$SELECT * FROM durable.claim_workflow_tasks_v1('e', ARRAY['q'], ARRAY['w'])$$,
                'so no other worker claims it');
CREATE TEMP TABLE e2 AS SELECT * FROM durable.claim_activity_tasks_v1('e', ARRAY['q-activity'], ARRAY['a2']);
SELECT is((SELECT (outcome, workflow_task IS NULL)::text
           FROM durable.fail_activity_v1((SELECT message_id FROM e2), (SELECT lease_token FROM e2), '{"type": "X"}',
                                         '{"owner": "wk-f", "lease_seconds": 40, "task_queue": "q", "workflow_names": ["w"]}')),
          '(failed,t)', 'an eager caller does not get a workflow task another worker holds');
SELECT is((SELECT lease_owner FROM durable.messages WHERE namespace = 'e' AND kind = 'workflow'), 'wk-e',
          'the holder keeps it');
SELECT is((SELECT status FROM durable.complete_workflow_task_v1((SELECT workflow_task->>'message_id' FROM e1_done)::bigint,
                                                                (SELECT workflow_task->>'lease_token' FROM e1_done)::uuid,
                                                                (SELECT max(event_id) FROM durable.history
                                                                 WHERE namespace = 'e' AND workflow_id = 'w'),
                                                                '[]')), 'ok',
          'the eagerly handed task completes with its token');
CREATE TEMP TABLE e3 AS SELECT * FROM durable.claim_activity_tasks_v1('e', ARRAY['q-activity'], ARRAY['a3']);
SELECT is((SELECT (recorded, workflow_task IS NULL)::text
           FROM durable.complete_activity_v1((SELECT message_id FROM e3), (SELECT lease_token FROM e3), '"three"',
                                             '{"owner": "wk-g", "lease_seconds": 40, "task_queue": "q", "workflow_names": ["other"]}')),
          '(t,t)', 'a caller that does not serve the woken workflow gets no workflow task');
SELECT is((SELECT workflow_id FROM durable.claim_workflow_tasks_v1('e', ARRAY['q'], ARRAY['w'])), 'w',
          'the task is left for a worker that claims it');
SELECT pg_temp.start('e', 'r') AS ignored \gset
SELECT pg_temp.step('e', 'r', '[{"type": "activity", "seq": 1, "name": "a4", "args": "[]"}]') AS ignored \gset
CREATE TEMP TABLE e4 AS SELECT * FROM durable.claim_activity_tasks_v1('e', ARRAY['q-activity'], ARRAY['a4']);
SELECT is((SELECT (outcome, workflow_task IS NULL)::text
           FROM durable.fail_activity_v1((SELECT message_id FROM e4), (SELECT lease_token FROM e4), '{"type": "X"}',
                                         '{"owner": "wk-h", "lease_seconds": 40, "task_queue": "q", "workflow_names": ["r"]}')),
          '(retrying,t)', 'a failure that will be retried wakes nothing, so hands back no workflow task');

-- ---------------------------------------------------------------------------
-- Results for an interrupted workflow are refused
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('i', 'w') AS ignored \gset
SELECT pg_temp.step('i', 'w', '[{"type": "activity", "seq": 1, "name": "charge", "args": "[]"}]') AS ignored \gset
CREATE TEMP TABLE i1 AS SELECT * FROM durable.claim_activity_tasks_v1('i', ARRAY['q-activity'], ARRAY['charge']);
SELECT ok(durable.interrupt_workflow_v1('i', 'w'), 'the workflow is interrupted while its activity runs');
SELECT throws_ok(format('SELECT recorded FROM durable.complete_activity_v1(%s, %L, ''1'')', (SELECT message_id FROM i1), (SELECT lease_token FROM i1)),
                 'PD001', NULL, 'the activity''s result is refused (PD001)');
SELECT throws_ok(format('SELECT outcome FROM durable.fail_activity_v1(%s, %L, ''{}'')', (SELECT message_id FROM i1), (SELECT lease_token FROM i1)),
                 'PD001', NULL, 'so is its failure');
SELECT is(durable.heartbeat_activity_v1((SELECT message_id FROM i1), (SELECT lease_token FROM i1), 'x'), false,
          'its heartbeat says the lease is lost');

-- ---------------------------------------------------------------------------
-- heartbeat_timeout: an attempt's lease is bounded by it, its heartbeats move
-- its deadline, and an attempt past it is failed as a timeout and retried.
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('hb', 'w') AS ignored \gset
SELECT pg_temp.step('hb', 'w', '[{"type": "activity", "seq": 1, "name": "beat", "args": "[]", "heartbeat_timeout": 2,
                                  "retry": {"maximum_attempts": 2, "initial_interval": 1}}]') AS ignored \gset
SELECT is(pg_temp.last_event('hb', 'w', 'activity_scheduled')->'heartbeat_timeout', '2'::jsonb,
          'activity_scheduled records the heartbeat_timeout (_schedule_activity)');
CREATE TEMP TABLE hb1 AS SELECT * FROM durable.claim_activity_tasks_v1('hb', ARRAY['q-activity'], ARRAY['beat'], 1,
                                                                     interval '30 seconds');
SELECT ok((SELECT visible_at - durable.now() BETWEEN interval '1.9 seconds' AND interval '2 seconds'
           FROM durable.messages WHERE id = (SELECT message_id FROM hb1)),
          'a claimed attempt''s 30 s lease is bounded by its heartbeat_timeout (_attempt_lease)');
SELECT ok((SELECT (payload->>'heartbeat_deadline')::timestamptz - durable.now() BETWEEN interval '1.9 seconds' AND interval '2 seconds'
           FROM durable.messages WHERE id = (SELECT message_id FROM hb1)),
          'the claim sets the attempt''s heartbeat deadline');
SELECT is(_attempt_lease, interval '2 seconds', '_attempt_lease takes the shorter of the lease and the timeout')
FROM durable._attempt_lease(interval '30 seconds', 2);
SELECT is((SELECT array_agg(x) FROM durable.extend_lease_v1(ARRAY[(SELECT message_id FROM hb1)],
                                                          ARRAY[(SELECT lease_token FROM hb1)], interval '30 seconds') x),
          ARRAY[(SELECT message_id FROM hb1)], 'extend_lease_v1 keeps a held attempt within its deadline...');
SELECT ok((SELECT visible_at <= durable.now() + interval '2 seconds' FROM durable.messages WHERE id = (SELECT message_id FROM hb1)),
          '...never past it: only heartbeats move the deadline');
SELECT durable.advance_clock('1.5 seconds') IS NOT NULL AS moved \gset
SELECT is((SELECT (held, cancelled)::text FROM durable.heartbeat_activity_v2((SELECT message_id FROM hb1),
                                                                          (SELECT lease_token FROM hb1), '"half"')),
          '(t,f)', 'heartbeat_activity_v2: a heartbeat in time keeps the lease, not cancelled');
SELECT ok((SELECT visible_at - durable.now() BETWEEN interval '1.9 seconds' AND interval '2 seconds'
                  AND (payload->>'heartbeat_deadline')::timestamptz - durable.now() BETWEEN interval '1.9 seconds' AND interval '2 seconds'
           FROM durable.messages WHERE id = (SELECT message_id FROM hb1)), '...and moves the deadline and the lease');
SELECT durable.advance_clock('2.5 seconds') IS NOT NULL AS moved \gset
SELECT is_empty(format('SELECT * FROM durable.extend_lease_v1(ARRAY[%s], ARRAY[%L]::uuid[], ''30 seconds'')',
                       (SELECT message_id FROM hb1), (SELECT lease_token FROM hb1)),
                'past its deadline, extend_lease_v1 reports the lease lost');
SELECT is((SELECT (held, cancelled)::text FROM durable.heartbeat_activity_v2((SELECT message_id FROM hb1),
                                                                          (SELECT lease_token FROM hb1), NULL)),
          '(f,f)', 'so does a late heartbeat');
SELECT throws_ok(format('SELECT recorded FROM durable.complete_activity_v1(%s, %L, ''"late"'')',
                        (SELECT message_id FROM hb1), (SELECT lease_token FROM hb1)),
                 'PD001', NULL, 'a result past the heartbeat deadline is refused (_held_activity)');
SELECT is_empty($$SELECT * FROM durable.claim_activity_tasks_v1('hb', ARRAY['q-activity'], ARRAY['beat'])$$,
                'the next claim fails the silent attempt and retries it after the policy''s delay, not at once');
SELECT is((SELECT (data->'error'->>'type', data->'error'->>'heartbeat_timeout', data->>'maxed', (data->>'retry_in_seconds')::float8, inbound)::text
           FROM durable.history WHERE namespace = 'hb' AND event_type = 'activity_failed'),
          '(DurableTimeoutError,true,false,1,f)',
          'recorded as a DurableTimeoutError attempt (_heartbeat_timeout, _heartbeat_timed_out), retried per the policy');
SELECT durable.advance_clock('1.5 seconds') IS NOT NULL AS moved \gset
CREATE TEMP TABLE hb2 AS SELECT * FROM durable.claim_activity_tasks_v1('hb', ARRAY['q-activity'], ARRAY['beat']);
SELECT is((SELECT attempt FROM hb2), 2, 'the retry runs as attempt 2');
SELECT durable.advance_clock('2.5 seconds') IS NOT NULL AS moved \gset
SELECT is_empty($$SELECT * FROM durable.claim_activity_tasks_v1('hb', ARRAY['q-activity'], ARRAY['beat'])$$,
                'attempt 2 goes silent too');
SELECT is((SELECT (data->>'maxed', data->'error'->>'type', inbound)::text FROM durable.history
           WHERE namespace = 'hb' AND event_type = 'activity_failed' ORDER BY event_id DESC LIMIT 1),
          '(true,DurableTimeoutError,t)', 'the last attempt allowed timing out fails the activity in its workflow');
SELECT ok(NOT EXISTS (SELECT 1 FROM durable.messages WHERE namespace = 'hb' AND kind = 'activity'), 'and its task goes');
SELECT pg_temp.start('hb0', 'w') AS ignored \gset
SELECT throws_ok($$SELECT pg_temp.step('hb0', 'w', '[{"type": "activity", "seq": 1, "name": "beat", "args": "[]", "heartbeat_timeout": 0}]')$$,
                 'PD004', NULL, 'a heartbeat_timeout must be positive');

-- ---------------------------------------------------------------------------
-- cancel_activity: a workflow stops waiting for its activities
-- ---------------------------------------------------------------------------
SELECT pg_temp.start('cx', 'w') AS ignored \gset
SELECT pg_temp.step('cx', 'w', '[{"type": "activity", "seq": 1, "name": "run", "args": "[]"},
                                  {"type": "activity", "seq": 2, "name": "queued", "args": "[]"},
                                  {"type": "activity", "seq": 3, "name": "fails", "args": "[]"},
                                  {"type": "activity", "seq": 4, "name": "vanishes", "args": "[]"}]') AS ignored \gset
CREATE TEMP TABLE cx1 AS SELECT * FROM durable.claim_activity_tasks_v1('cx', ARRAY['q-activity'], ARRAY['run', 'fails', 'vanishes'], 3);
SELECT is((SELECT (held, cancelled)::text FROM durable.heartbeat_activity_v2((SELECT message_id FROM cx1 WHERE activity_name = 'run'),
                                                                          (SELECT lease_token FROM cx1 WHERE activity_name = 'run'), NULL)),
          '(t,f)', 'before the cancellation, heartbeats say not cancelled');
SELECT ok(durable.cancel_workflow_v1('cx', 'w'), 'the workflow is cancelled');
SELECT is((SELECT (held, cancelled)::text FROM durable.heartbeat_activity_v2((SELECT message_id FROM cx1 WHERE activity_name = 'run'),
                                                                          (SELECT lease_token FROM cx1 WHERE activity_name = 'run'), NULL)),
          '(t,f)', 'a cancellation request alone does not cancel a running activity (the workflow may shield it)');
SELECT is(pg_temp.step('cx', 'w', '[{"type": "cancel_activity", "seq": 1}, {"type": "cancel_activity", "seq": 2},
                                    {"type": "cancel_activity", "seq": 3}, {"type": "cancel_activity", "seq": 4}]'), 'ok',
          'a workflow task cancels its activities (cancel_activity commands, _cancel_activity)');
SELECT ok(NOT EXISTS (SELECT 1 FROM durable.messages WHERE namespace = 'cx' AND name = 'queued'), 'a queued activity goes');
SELECT is((SELECT (data->'error'->>'type', data->>'late', data->>'cancelled', inbound)::text FROM durable.history
           WHERE namespace = 'cx' AND event_type = 'activity_failed' AND seq = 2),
          '(CancelledFailure,true,true,f)', '...recorded as a late, non-inbound activity_failed (_record_late_activity)');
SELECT is((SELECT payload->>'cancelled' FROM durable.messages WHERE id = (SELECT message_id FROM cx1 WHERE activity_name = 'run')),
          'true', 'a running one is marked cancelled');
SELECT is((SELECT (held, cancelled)::text FROM durable.heartbeat_activity_v2((SELECT message_id FROM cx1 WHERE activity_name = 'run'),
                                                                          (SELECT lease_token FROM cx1 WHERE activity_name = 'run'), NULL)),
          '(t,t)', '...and its heartbeats now say cancelled');
SELECT lives_ok($$SELECT durable._cancel_activity(w, 1) FROM durable.workflows w WHERE w.namespace = 'cx'$$,
                'cancel_activity again (a replay sends it again) is harmless');
SELECT is((SELECT count(*)::int FROM durable.history WHERE namespace = 'cx' AND event_type = 'activity_failed'), 1,
          '...and records nothing more');
SELECT is((SELECT (recorded, workflow_task IS NULL)::text
           FROM durable.complete_activity_v1((SELECT message_id FROM cx1 WHERE activity_name = 'run'),
                                             (SELECT lease_token FROM cx1 WHERE activity_name = 'run'), '"late"')),
          '(f,t)', 'the late result of a cancelled activity is not delivered');
SELECT is((SELECT (data->>'result', data->>'late', data->>'cancelled', inbound)::text FROM durable.history
           WHERE namespace = 'cx' AND event_type = 'activity_completed'),
          '("""late""",true,true,f)', '...but recorded as a late, non-inbound activity_completed');
SELECT is((SELECT outcome FROM durable.fail_activity_v1((SELECT message_id FROM cx1 WHERE activity_name = 'fails'),
                                                        (SELECT lease_token FROM cx1 WHERE activity_name = 'fails'),
                                                        '{"type": "X", "types": ["X"]}')),
          'failed', 'a cancelled activity''s failure is not retried');
SELECT is((SELECT (data->>'late', inbound)::text FROM durable.history
           WHERE namespace = 'cx' AND event_type = 'activity_failed' AND seq = 3),
          '(true,f)', '...and recorded as a late, non-inbound activity_failed');
SELECT durable.advance_clock('31 seconds') IS NOT NULL AS moved \gset
SELECT is_empty($$SELECT * FROM durable.claim_activity_tasks_v1('cx', ARRAY['q-activity'], ARRAY['vanishes'])$$,
                'a cancelled activity whose lease expired is not run again');
SELECT is((SELECT (data->>'late', data->>'lease_lost')::text FROM durable.history
           WHERE namespace = 'cx' AND event_type = 'activity_failed' AND seq = 4),
          '(true,true)', '...its lost attempt recorded as late');
SELECT ok(NOT EXISTS (SELECT 1 FROM durable.messages WHERE namespace = 'cx' AND kind = 'activity'), 'no activity task is left');
SELECT is(durable.describe_workflow_v1('cx', 'w')->'pending', '[]'::jsonb,
          'describe_workflow_v1: the cancelled activities, ended late, are no longer pending');

-- A cancelled workflow closing keeps its cancelled running activity, so that its late
-- outcome is recorded (_close_run); an interrupted one drops it.
SELECT pg_temp.start('cy', 'w') AS ignored \gset
SELECT pg_temp.step('cy', 'w', '[{"type": "activity", "seq": 1, "name": "run", "args": "[]"}]') AS ignored \gset
CREATE TEMP TABLE cy1 AS SELECT * FROM durable.claim_activity_tasks_v1('cy', ARRAY['q-activity'], ARRAY['run']);
SELECT ok(durable.cancel_workflow_v1('cy', 'w'), 'cy is cancelled');
SELECT is(pg_temp.step('cy', 'w', '[{"type": "cancel_activity", "seq": 1}, {"type": "cancelled", "error": {"type": "CancelledFailure"}}]'),
          'closed', 'its workflow ends cancelled');
SELECT is((SELECT recorded FROM durable.complete_activity_v1((SELECT message_id FROM cy1), (SELECT lease_token FROM cy1), '"after"')),
          false, 'the activity still completes (_close_run kept its task)');
SELECT is((SELECT pg_temp.events('cy', 'w'))[array_length(pg_temp.events('cy', 'w'), 1)], 'activity_completed',
          '...its late result recorded after workflow_cancelled');
SELECT pg_temp.start('cz', 'w') AS ignored \gset
SELECT pg_temp.step('cz', 'w', '[{"type": "activity", "seq": 1, "name": "run", "args": "[]"}]') AS ignored \gset
CREATE TEMP TABLE cz1 AS SELECT * FROM durable.claim_activity_tasks_v1('cz', ARRAY['q-activity'], ARRAY['run']);
SELECT ok(durable.cancel_workflow_v1('cz', 'w'), 'cz is cancelled');
SELECT is(pg_temp.step('cz', 'w', '[{"type": "cancel_activity", "seq": 1}]'), 'ok', 'cz cancels its activity');
SELECT ok(durable.interrupt_workflow_v1('cz', 'w'), 'then is interrupted');
SELECT throws_ok(format('SELECT recorded FROM durable.complete_activity_v1(%s, %L, ''1'')', (SELECT message_id FROM cz1), (SELECT lease_token FROM cz1)),
                 'PD001', NULL, 'an interrupted workflow''s cancelled activity is dropped: its result is refused');

SELECT * FROM finish();
ROLLBACK;
