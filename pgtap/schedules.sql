-- schedules.sql: schedules (mirrors sql/schedules.sql): cron arithmetic
-- (cron_next), the owner's API (create, pause, resume, trigger, delete, list,
-- describe), firing by the workers' timer path (fire_timers_v1) under the
-- catch-up window and overlap policy, next_wakeup_v1, and what a worker
-- role may not do. One transaction, rolled back.
\ir include/fixtures.psql
BEGIN;
SELECT plan(54);

-- ---------------------------------------------------------------------------
-- cron_next
-- ---------------------------------------------------------------------------
SELECT is(ARRAY(SELECT durable.cron_next('0 0 * * MON-FRI', 'UTC', '2026-11-27 12:00Z', 3)),
          ARRAY['2026-11-30 00:00Z', '2026-12-01 00:00Z', '2026-12-02 00:00Z']::timestamptz[],
          'cron_next: weekday names and ranges');
SELECT is(ARRAY(SELECT durable.cron_next('*/20 9-10 1,15 jan,jul *', 'UTC', '2026-01-01 09:30Z', 4)),
          ARRAY['2026-01-01 09:40Z', '2026-01-01 10:00Z', '2026-01-01 10:20Z', '2026-01-01 10:40Z']::timestamptz[],
          'cron_next: steps, ranges, lists and month names in any case');
SELECT is(ARRAY(SELECT durable.cron_next('0 0 13 * FRI', 'UTC', '2026-11-01 00:00Z', 2)),
          ARRAY['2026-11-06 00:00Z', '2026-11-13 00:00Z']::timestamptz[],
          'cron_next: a restricted day-of-month OR a restricted day-of-week');
SELECT is(ARRAY(SELECT durable.cron_next('0 0 */13 * FRI', 'UTC', '2026-01-01 00:00Z', 1)),
          ARRAY['2026-02-27 00:00Z']::timestamptz[],
          'cron_next: AND when the day-of-month field starts with *');
SELECT is(ARRAY(SELECT durable.cron_next('30 2 * * *', 'America/New_York', '2021-03-14 05:00Z', 2)),
          ARRAY['2021-03-14 07:00Z', '2021-03-15 06:30Z']::timestamptz[],
          'cron_next: a wall-clock time in a spring-forward gap fires at the first minute after it');
SELECT is(ARRAY(SELECT durable.cron_next('30 1 * * *', 'America/New_York', '2021-11-06 12:00Z', 2)),
          ARRAY['2021-11-07 05:30Z', '2021-11-08 06:30Z']::timestamptz[],
          'cron_next: a wall-clock time of a repeated hour fires once, at its first occurrence');
SELECT is(ARRAY(SELECT durable.cron_next('0 * * * *', 'America/New_York', '2021-11-07 04:30Z', 3)),
          ARRAY['2021-11-07 05:00Z', '2021-11-07 06:00Z', '2021-11-07 07:00Z']::timestamptz[],
          'cron_next: with a * hour field every matching instant fires, the repeated hour twice');
SELECT throws_ok($$SELECT durable.cron_next('0 0 * *')$$, 'PD004', NULL, 'cron_next: 4 fields are refused');
SELECT throws_ok($$SELECT durable.cron_next('0 0 31 2 *')$$, 'PD004', NULL,
                 'cron_next: a day that never occurs in its months is refused');
SELECT throws_ok($$SELECT durable.cron_next('* * * * *', 'Nowhere/Town')$$, 'PD004', NULL,
                 'cron_next: an unknown time zone is refused');

-- ---------------------------------------------------------------------------
-- create_schedule and its checks
-- ---------------------------------------------------------------------------
SELECT durable.set_clock_offset('2026-01-01 00:00:30Z'::timestamptz - clock_timestamp()) IS NOT NULL AS moved \gset
SELECT is(durable.create_schedule('m', 'wf', 'q', '[1]', every => '1 minute', overlap => 'allow_all',
                                  catchup_window => '3 minutes'),
          '2026-01-01 00:01:00Z'::timestamptz, 'create_schedule returns the first fire time (intervals from the epoch)');
SELECT is((SELECT (args, every, next_tick)::text FROM durable.schedules WHERE schedule_id = 'm'),
          '([1],00:01:00,"2026-01-01 00:01:00+00")', 'a JSON array''s text is the runs'' args');
SELECT lives_ok($$SELECT durable.create_schedule('enc', 'wf', 'q', to_jsonb('ZW5jb2RlZA=='::text), cron => '0 3 * * *')$$,
                'a JSON string is an encoded payload (the SDK''s)');
SELECT is((SELECT args FROM durable.schedules WHERE schedule_id = 'enc'), 'ZW5jb2RlZA==', '... stored as is');
SELECT throws_ok($$SELECT durable.create_schedule('m', 'wf', 'q', every => '1 hour')$$, 'PDS01', NULL,
                 'a schedule id in use is refused with PDS01');
SELECT throws_ok($$SELECT durable.create_schedule('x', 'wf', 'q')$$, 'PD004', NULL, 'neither cron nor every is refused');
SELECT throws_ok($$SELECT durable.create_schedule('x', 'wf', 'q', cron => '* * * * *', every => '1 hour')$$, 'PD004',
                 NULL, 'both cron and every are refused');
SELECT throws_ok($$SELECT durable.create_schedule('x', 'wf', 'q', cron => '* * * * *', timezone => 'Mars/Base')$$,
                 'PD004', NULL, 'an unknown time zone is refused');
SELECT throws_ok($$SELECT durable.create_schedule('x', 'wf', 'q', every => '1 hour', overlap => 'maybe')$$, 'PD004',
                 NULL, 'an unknown overlap policy is refused');
SELECT throws_ok($$SELECT durable.create_schedule('x', 'wf', 'q', every => '1 month')$$, 'PD004', NULL,
                 'an every of months is refused (use cron)');
SELECT throws_ok($$SELECT durable.create_schedule('x', 'wf', 'q', '{"a": 1}', every => '1 hour')$$, 'PD004', NULL,
                 'args that are neither an array nor an encoded payload are refused');
SELECT throws_ok($$SELECT durable.create_schedule('x', 'wf', 'q', every => '1 hour', start_at => '2030-01-02Z',
                                                   end_at => '2030-01-01Z')$$, 'PD004', NULL,
                 'an end before the start is refused');

-- ---------------------------------------------------------------------------
-- Firing through the workers' timer path
-- ---------------------------------------------------------------------------
SELECT is(durable.next_wakeup_v1('durable', ARRAY['q'], ARRAY['wf']) BETWEEN 29 AND 31, true,
          'next_wakeup_v1 wakes an idle worker for the next fire time');
SELECT is(durable.fire_timers_v1('durable', ARRAY['q']), 0, 'nothing fires before its time');
SELECT is((SELECT count(*) FROM durable.workflows WHERE workflow_id LIKE 'm-%'), 0::bigint, 'no run yet');
SELECT durable.advance_clock('31 seconds') IS NOT NULL AS moved \gset
SELECT durable.fire_timers_v1('durable', ARRAY['other']) AS ignored \gset
SELECT is((SELECT count(*) FROM durable.workflows WHERE workflow_id LIKE 'm-%'), 0::bigint,
          'fire_timers_v1 fires only schedules of its task queues');
SELECT durable.fire_timers_v1('durable', ARRAY['q']) AS ignored \gset
SELECT durable.fire_timers_v1('durable', ARRAY['q']) AS ignored \gset
SELECT is(ARRAY(SELECT (workflow_id, run_id, workflow_name, task_queue, args)::text FROM durable.workflows
                WHERE workflow_id LIKE 'm-%'),
          ARRAY['(m-2026-01-01T00:01:00Z,1,wf,q,[1])'], 'a due tick starts one run of its derived id, once');
SELECT durable.advance_clock('10 minutes') IS NOT NULL AS moved \gset
SELECT durable.fire_timers_v1('durable', ARRAY['q']) AS ignored \gset
SELECT is(ARRAY(SELECT workflow_id FROM durable.workflows WHERE workflow_id LIKE 'm-%' ORDER BY 1),
          ARRAY['m-2026-01-01T00:01:00Z', 'm-2026-01-01T00:09:00Z', 'm-2026-01-01T00:10:00Z',
                'm-2026-01-01T00:11:00Z'],
          'after downtime only the ticks within the catch-up window start');
SELECT is((SELECT count(*) FROM durable.schedule_runs WHERE schedule_id = 'm' AND action = 'skipped'
                                                        AND detail LIKE 'missed:%'), 1::bigint,
          'the ticks missed beyond the window are recorded as skipped');
SELECT durable.create_schedule('one', 'wf', 'q', every => '1 minute', catchup_window => '1 hour') AS ignored \gset
SELECT durable.advance_clock('3 minutes') IS NOT NULL AS moved \gset
SELECT durable.fire_timers_v1('durable', ARRAY['q']) AS ignored \gset
SELECT is(ARRAY(SELECT action FROM durable.schedule_runs WHERE schedule_id = 'one' ORDER BY id),
          ARRAY['started', 'skipped', 'skipped'], 'overlap skip: no start while the previous run is open');

-- ---------------------------------------------------------------------------
-- pause, resume, trigger, list, describe, delete
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT durable.pause_schedule('m', note => 'maintenance')$$, 'pause_schedule pauses, with a note');
SELECT is((SELECT (paused, note, next_fire_at IS NULL)::text FROM durable.list_schedules('durable')
           WHERE schedule_id = 'm'), '(t,maintenance,t)', 'list_schedules shows it paused, with no next fire time');
SELECT count(*) AS m_runs FROM durable.workflows WHERE workflow_id LIKE 'm-%' \gset
SELECT durable.advance_clock('5 minutes') IS NOT NULL AS moved \gset
SELECT durable.fire_timers_v1('durable', ARRAY['q']) AS ignored \gset
SELECT is((SELECT count(*) FROM durable.workflows WHERE workflow_id LIKE 'm-%'), :m_runs::bigint,
          'a paused schedule does not fire');
SELECT is(durable.next_wakeup_v1('durable', ARRAY['q'], ARRAY['nothing']) IS NULL
          OR durable.next_wakeup_v1('durable', ARRAY['q'], ARRAY['nothing']) > 0, true,
          'nor wakes workers');
SELECT is(durable.resume_schedule('m') > durable.now(), true, 'resume_schedule returns a next fire time after now');
SELECT durable.fire_timers_v1('durable', ARRAY['q']) AS ignored \gset
SELECT is((SELECT count(*) FROM durable.workflows WHERE workflow_id LIKE 'm-%'), :m_runs::bigint,
          'resuming does not catch up the ticks of the pause');
SELECT alike(durable.trigger_schedule('m'), 'm-2026-01-01T%Z', 'trigger_schedule starts a run now and names it');
SELECT is(durable.trigger_schedule('one'), NULL, 'trigger_schedule obeys the overlap policy (skip: NULL)');
SELECT is((SELECT (d->>'schedule_id', d->'spec'->>'every', d->'spec'->>'overlap', d->>'paused',
                   jsonb_array_length(d->'next_fire_times'), d->'recent_runs'->0->>'trigger')::text
           FROM durable.describe_schedule('m') d),
          '(m,60.000000,allow_all,false,5,manual)', 'describe_schedule: spec, next fire times, recent runs');
SELECT throws_ok($$SELECT durable.describe_schedule('nope')$$, 'PDS02', NULL, 'an unknown schedule is PDS02');
SELECT throws_ok($$SELECT durable.pause_schedule('nope')$$, 'PDS02', NULL, 'pausing one too');
SELECT lives_ok($$SELECT durable.delete_schedule('one')$$, 'delete_schedule deletes');
SELECT is((SELECT count(*) FROM durable.schedule_runs WHERE schedule_id = 'one'), 0::bigint,
          'and its record of ticks');
SELECT is(ARRAY(SELECT schedule_id FROM durable.list_schedules()), ARRAY['enc', 'm'], 'list_schedules lists the rest');

-- ---------------------------------------------------------------------------
-- Time skipping (tests): a schedule's fire time is skipped to like a timer
-- ---------------------------------------------------------------------------
SELECT durable.create_schedule('skip-me', 'wf', 'ts', every => '1 day', namespace => 'tskip') AS first_fire \gset
SELECT is(durable.skip_to_next_timer_v1('tskip') >= :'first_fire'::timestamptz, true,
          'skip_to_next_timer_v1 moves the clock to the next fire time of a schedule');
SELECT is(durable._runnable('tskip'), true, 'a due schedule counts as runnable (its workers have yet to fire it)');
SELECT is(durable.skip_to_next_timer_v1('tskip'), NULL, 'so time does not skip past it');
SELECT durable.fire_timers_v1('tskip', ARRAY['ts']) AS ignored \gset
SELECT is((SELECT count(*) FROM durable.workflows WHERE namespace = 'tskip'), 1::bigint, 'the tick fired');

-- ---------------------------------------------------------------------------
-- As a worker role
-- ---------------------------------------------------------------------------
SELECT durable.create_schedule('theirs', 'wf', 'q2', every => '1 minute', overlap => 'allow_all') AS ignored \gset
SELECT role_name AS wrk FROM durable.provision_worker_role(ARRAY['q'], 'durable') \gset
SELECT durable.advance_clock('2 minutes') IS NOT NULL AS moved \gset
SET SESSION AUTHORIZATION :'wrk';
SELECT throws_ok($$SELECT durable.create_schedule('w', 'wf', 'q', every => '1 hour')$$, '42501', NULL,
                 'a worker role cannot create a schedule');
SELECT throws_ok($$SELECT durable.pause_schedule('m')$$, '42501', NULL, 'nor pause one');
SELECT throws_ok($$SELECT durable.delete_schedule('m')$$, '42501', NULL, 'nor delete one');
SELECT throws_ok($$SELECT durable.fire_timers_v1('durable', ARRAY['q2'])$$, 'PD005', NULL,
                 'nor fire the schedules of a task queue outside its scope');
SELECT lives_ok($$SELECT durable.fire_timers_v1('durable', ARRAY['q'])$$,
                'it fires the schedules of its own task queues');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT count(*) FROM durable.workflows WHERE workflow_id LIKE 'theirs-%'), 0::bigint,
          'the schedule outside its scope did not fire');

SELECT * FROM finish();
ROLLBACK;
