-- queue.sql: streams (mirrors sql/queue.sql): enqueue, claim by name with a
-- lease, ack / extend_lease / release and their fencing, next_wakeup, the
-- NOTIFY channel name, and two concurrent claimers (dblink).
--
-- The dblink part needs committed fixtures, so it runs first, outside any
-- transaction (this database is a throwaway clone); the rest runs in one
-- transaction that is rolled back. Every part uses its own namespace.
\ir include/fixtures.psql
SELECT plan(94);

-- ---------------------------------------------------------------------------
-- Two claimers never get the same message (SKIP LOCKED), namespace 'dbl'.
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE dbl_ids AS
SELECT id FROM durable.enqueue_batch_v1('dbl', 's', '[{"name": "job"}, {"name": "job"}, {"name": "job"}]') AS id;
DO $$ BEGIN PERFORM dblink_connect('b', pg_temp.self_dsn()); END $$;
SET lock_timeout = '3s';  -- a claim that waited on B's locks would fail here instead of passing late

DO $$ BEGIN PERFORM dblink_exec('b', 'BEGIN'); END $$;
CREATE TEMP TABLE b_claim AS
SELECT * FROM dblink('b', $$SELECT id FROM durable.claim_v1('dbl', ARRAY['s'], ARRAY['job'], 2)$$) AS t(id bigint);
CREATE TEMP TABLE a_claim AS
SELECT id FROM durable.claim_v1('dbl', ARRAY['s'], ARRAY['job'], 3);

SELECT is((SELECT count(*)::int FROM b_claim), 2,
          'session B claims two messages inside a transaction it keeps open');
SELECT is((SELECT count(*)::int FROM a_claim), 1,
          'session A, asking for three meanwhile, gets only the one message B does not hold (no waiting)');
SELECT is((SELECT count(*)::int FROM a_claim JOIN b_claim USING (id)), 0,
          'no message is claimed by both sessions');
SELECT set_eq('SELECT id FROM a_claim UNION ALL SELECT id FROM b_claim', 'SELECT id FROM dbl_ids',
              'between them the two sessions claimed every message exactly once');

DO $$ BEGIN PERFORM dblink_exec('b', 'COMMIT'); END $$;
SELECT is_empty($$SELECT id FROM durable.claim_v1('dbl', ARRAY['s'], ARRAY['job'], 3)$$,
                'once B commits, its messages stay leased to B: A claims nothing');

SELECT durable.enqueue_v1('dbl', 's2', 'job') AS dbl_m \gset
DO $$ BEGIN PERFORM dblink_exec('b', 'BEGIN'); END $$;
SELECT is((SELECT id FROM dblink('b', $$SELECT id FROM durable.claim_v1('dbl', ARRAY['s2'], ARRAY['job'])$$)
                          AS t(id bigint)), :dbl_m::bigint,
          'B claims a message in an open transaction');
SELECT is_empty($$SELECT id FROM durable.claim_v1('dbl', ARRAY['s2'], ARRAY['job'])$$,
                'A cannot claim the message B''s open transaction holds');
DO $$ BEGIN PERFORM dblink_exec('b', 'ROLLBACK'); END $$;
SELECT results_eq($$SELECT id, attempt FROM durable.claim_v1('dbl', ARRAY['s2'], ARRAY['job'])$$,
                  format('VALUES (%s::bigint, 1)', :dbl_m),
                  'after B rolls back, A claims that message as its first attempt');

-- Wakeups: enqueues NOTIFY the stream's channel, once per transaction.
SELECT durable.stream_channel('dbl', 'wake') AS wake_channel \gset
DO $$ BEGIN PERFORM dblink_exec('b', format('LISTEN %I', durable.stream_channel('dbl', 'wake'))); END $$;
SELECT durable.enqueue_v1('dbl', 'wake', 'job') AS wake_id \gset
SELECT results_eq($$SELECT * FROM pg_temp.received('b')$$, format('VALUES (%L, %L)', :'wake_channel', ''),
                  'a committed enqueue_v1 NOTIFYs its stream''s channel (empty payload)');
SELECT count(*) AS ignored FROM durable.enqueue_batch_v1('dbl', 'wake', '[{"name": "job"}, {"name": "job"}, {"name": "job"}]') \gset
SELECT results_eq($$SELECT * FROM pg_temp.received('b')$$, format('VALUES (%L, %L)', :'wake_channel', ''),
                  'a batch of three NOTIFYs once');
SELECT format('SELECT durable.release_v1(%s, %L)', id, lease_token) AS release_sql
FROM durable.claim_v1('dbl', ARRAY['wake'], ARRAY['job']) \gset
SELECT is(count(*)::int, 1, 'a message is claimed') FROM (SELECT 1 FROM durable.messages WHERE namespace = 'dbl' AND stream = 'wake' AND lease_token IS NOT NULL) x;
SELECT lives_ok(:'release_sql', 'and released');
SELECT results_eq($$SELECT * FROM pg_temp.received('b')$$, format('VALUES (%L, %L)', :'wake_channel', ''),
                  'release_v1 NOTIFYs the stream too (the message is claimable again)');
DO $$ BEGIN PERFORM dblink_disconnect('b'); END $$;
RESET lock_timeout;

BEGIN;
-- ---------------------------------------------------------------------------
-- enqueue_v1
-- ---------------------------------------------------------------------------
SELECT durable.enqueue_v1('q', 'orders', 'ship', '{"n": 1}') AS e1 \gset
SELECT ok(:e1 > 0, 'enqueue_v1 returns the new message id');
SELECT is((SELECT to_jsonb(m) - '{id,visible_at,created_at}'::text[] FROM durable.messages m WHERE id = :e1),
          '{"namespace": "q", "stream": "orders", "kind": "message", "name": "ship", "workflow_id": null,
            "run_id": null, "payload": {"n": 1}, "priority": 0, "attempt": 0, "max_attempts": null,
            "lease_owner": null, "lease_token": null}'::jsonb,
          'enqueue_v1 stores a plain message: payload, priority 0, no attempt yet, no lease');
SELECT ok((SELECT visible_at = created_at AND visible_at <= durable.now() FROM durable.messages WHERE id = :e1),
          'a message enqueued without a delay is visible at once');
SELECT durable.enqueue_v1('q', 'orders', 'ship', p_delay => interval '90 seconds',
                          p_priority => 4::smallint, p_max_attempts => 3) AS e2 \gset
SELECT is((SELECT visible_at - created_at FROM durable.messages WHERE id = :e2), interval '90 seconds',
          'a delayed message becomes visible exactly p_delay after it was enqueued');
SELECT is((SELECT (priority, max_attempts)::text FROM durable.messages WHERE id = :e2), '(4,3)',
          'enqueue_v1 stores the priority and max_attempts it is given');
SELECT durable.enqueue_v1('q', 'orders', 'ship', NULL) AS e3 \gset
SELECT is((SELECT payload FROM durable.messages WHERE id = :e3), '{}'::jsonb,
          'a NULL payload is stored as an empty object');
SELECT cmp_ok(durable.enqueue_v1('q', 'orders', 'ship'), '>', :e2::bigint, 'message ids increase');
SELECT throws_ok($$SELECT durable.enqueue_v1('q', '', 'ship')$$, 'PD004', NULL,
                 'an empty stream name is rejected with PD004');
SELECT throws_ok($$SELECT durable.enqueue_v1('q', repeat('s', 1001), 'ship')$$, 'PD004', NULL,
                 'a stream name over 1000 characters is rejected with PD004');
SELECT lives_ok($$SELECT durable.enqueue_v1('q', repeat('s', 1000), 'ship')$$,
                'a stream name of exactly 1000 characters is accepted');
SELECT throws_ok($$SELECT durable.enqueue_v1('q', 'orders', 'ship', p_delay => interval '-1 second')$$,
                 'PD004', NULL, 'a negative delay is rejected with PD004');

-- ---------------------------------------------------------------------------
-- enqueue_batch_v1
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE batch AS
SELECT * FROM durable.enqueue_batch_v1('qb', 's',
    '[{"name": "a", "payload": {"i": 1}}, {"name": "b", "priority": 3}, {"name": "c", "delay_seconds": 30},
      {"name": "d", "delay_seconds": -5, "max_attempts": 2}]') WITH ORDINALITY AS t(id, ord);
SELECT is((SELECT count(*)::int FROM batch), 4, 'enqueue_batch_v1 returns one id per message');
SELECT is((SELECT array_agg(m.name ORDER BY b.ord) FROM batch b JOIN durable.messages m USING (id)),
          '{a,b,c,d}'::text[], 'enqueue_batch_v1 returns the ids in input order');
SELECT is((SELECT array_agg(id ORDER BY ord) FROM batch), (SELECT array_agg(id ORDER BY id) FROM batch),
          'batch ids increase in input order');
SELECT is((SELECT array_agg(m.payload ORDER BY b.ord) FROM batch b JOIN durable.messages m USING (id)),
          ARRAY['{"i": 1}', '{}', '{}', '{}']::jsonb[], 'each batch message keeps its payload ({} by default)');
SELECT is((SELECT array_agg(m.priority ORDER BY b.ord) FROM batch b JOIN durable.messages m USING (id)),
          '{0,3,0,0}'::smallint[], 'each batch message keeps its priority (0 by default)');
SELECT is((SELECT array_agg(m.visible_at - m.created_at ORDER BY b.ord) FROM batch b JOIN durable.messages m USING (id)),
          ARRAY[interval '0', interval '0', interval '30 seconds', interval '0'],
          'delay_seconds delays a batch message; a negative one counts as no delay');
SELECT is((SELECT m.max_attempts FROM batch b JOIN durable.messages m USING (id) WHERE b.ord = 4), 2,
          'a batch message keeps its max_attempts');
SELECT is((SELECT count(*)::int FROM durable.enqueue_batch_v1('qb', 's', '[]')), 0,
          'an empty batch enqueues nothing');
SELECT throws_ok($$SELECT durable.enqueue_batch_v1('qb', 's', '{"name": "a"}')$$, 'PD004', NULL,
                 'enqueue_batch_v1 rejects anything but a JSON array with PD004');
SELECT throws_ok($$SELECT durable.enqueue_batch_v1('qb', '', '[]')$$, 'PD004', NULL,
                 'enqueue_batch_v1 rejects an empty stream name with PD004');

-- ---------------------------------------------------------------------------
-- stream_channel
-- ---------------------------------------------------------------------------
SELECT is(octet_length(durable.stream_channel('q', repeat('x', 200))), 38,
          'the channel of a 200-character stream name is 38 bytes (under the 63-byte NOTIFY limit)');
SELECT is(durable.stream_channel('q', repeat('x', 200)), durable.stream_channel('q', repeat('x', 200)),
          'stream_channel is deterministic');
SELECT is(durable.stream_channel('q', 'orders'),
          'pgd_s_' || md5((SELECT key FROM durable.secret) || '/stream/q/orders'),
          'stream_channel is pgd_s_ followed by the md5 of namespace/stream salted with durable.secret '
          '(nobody without the secret computes it)');
SELECT isnt(durable.stream_channel('q', 'orders'), durable.stream_channel('q2', 'orders'),
            'the same stream in another namespace has another channel');
SELECT is(octet_length(durable.stream_channel('ns', 'é' || repeat('ß', 300))), 38,
          'a long non-ASCII stream name still gives a 38-byte channel');

-- ---------------------------------------------------------------------------
-- claim_v1: by name, priority then visible_at, delayed visibility
-- ---------------------------------------------------------------------------
SELECT durable.enqueue_v1('qc', 's', 'email') AS c_email \gset
SELECT durable.enqueue_v1('qc', 's', 'sms') AS c_sms \gset
SELECT durable.enqueue_v1('qc', 'other', 'email') AS c_other \gset
SELECT durable.enqueue_v1('qc2', 's', 'email') AS c_ns2 \gset
SELECT results_eq($$SELECT id FROM durable.claim_v1('qc', ARRAY['s'], ARRAY['sms'], 10)$$,
                  ARRAY[:c_sms::bigint], 'claim_v1 only hands out messages whose name the caller asked for');
SELECT results_eq($$SELECT id FROM durable.claim_v1('qc', ARRAY['s'], ARRAY['email', 'push'], 10)$$,
                  ARRAY[:c_email::bigint], 'claim_v1 only reads the streams it names, in its own namespace');
SELECT is_empty($$SELECT id FROM durable.claim_v1('qc', ARRAY['s'], ARRAY['email', 'sms'], 10)$$,
                'claimed messages are not handed out twice');
SELECT is((SELECT attempt FROM durable.messages WHERE id = :c_ns2), 0,
          'a message of another namespace is untouched by those claims');
SELECT throws_ok($$SELECT * FROM durable.claim_v1('qc', ARRAY['s'], ARRAY['email'], 0)$$, 'PD004', NULL,
                 'a claim of batch 0 is rejected with PD004');
SELECT throws_ok($$SELECT * FROM durable.claim_v1('qc', ARRAY['s'], ARRAY['email'], 1, interval '0')$$,
                 'PD004', NULL, 'a claim with a zero lease is rejected with PD004');

-- visible_at order: 'late' is enqueued first but becomes visible after 'early'.
SELECT durable.enqueue_v1('qo', 's', 'j', p_delay => interval '20 seconds') AS o_late \gset
SELECT durable.enqueue_v1('qo', 's', 'j', p_delay => interval '10 seconds') AS o_early \gset
SELECT is_empty($$SELECT id FROM durable.claim_v1('qo', ARRAY['s'], ARRAY['j'])$$,
                'a delayed message cannot be claimed before its delay has passed');
SELECT durable.advance_clock('21 seconds') IS NOT NULL AS moved \gset
SELECT durable.enqueue_v1('qo', 's', 'j', p_priority => 1::smallint) AS o_urgent \gset
SELECT results_eq($$SELECT id FROM durable.claim_v1('qo', ARRAY['s'], ARRAY['j'], 1)$$,
                  ARRAY[:o_urgent::bigint], 'a higher priority is claimed first, even if it became visible last');
SELECT results_eq($$SELECT id FROM durable.claim_v1('qo', ARRAY['s'], ARRAY['j'], 1)$$,
                  ARRAY[:o_early::bigint], 'at equal priority the message visible earliest is claimed first');
SELECT results_eq($$SELECT id FROM durable.claim_v1('qo', ARRAY['s'], ARRAY['j'], 1)$$,
                  ARRAY[:o_late::bigint], 'then the next one by visible_at');

SELECT durable.enqueue_v1('qp', 's', 'j') AS p1 \gset
SELECT durable.enqueue_v1('qp', 's', 'j', p_priority => 5::smallint) AS p2 \gset
SELECT durable.enqueue_v1('qp', 's', 'j', p_priority => -1::smallint) AS p3 \gset
SELECT results_eq($$SELECT id FROM durable.claim_v1('qp', ARRAY['s'], ARRAY['j'], 10)$$,
                  ARRAY[:p2, :p1, :p3]::bigint[], 'a batch claim returns its messages highest priority first');

-- ---------------------------------------------------------------------------
-- leases, ack, fencing
-- ---------------------------------------------------------------------------
SELECT durable.enqueue_v1('ql', 's', 'j') AS l1 \gset
CREATE TEMP TABLE lease1 AS SELECT * FROM durable.claim_v1('ql', ARRAY['s'], ARRAY['j'], 1, p_owner => 'worker-a');
SELECT is((SELECT (attempt, lease_owner, lease_token IS NOT NULL)::text FROM lease1), '(1,worker-a,t)',
          'a claim leases the message to its owner with a token, as attempt 1');
SELECT ok((SELECT visible_at - durable.now() BETWEEN interval '29 seconds' AND interval '30 seconds' FROM lease1),
          'the default lease hides the message for 30 seconds');
SELECT durable.advance_clock('29 seconds') IS NOT NULL AS moved \gset
SELECT is_empty($$SELECT id FROM durable.claim_v1('ql', ARRAY['s'], ARRAY['j'])$$,
                'a leased message stays invisible while its lease runs');
SELECT durable.advance_clock('2 seconds') IS NOT NULL AS moved \gset
CREATE TEMP TABLE lease2 AS SELECT * FROM durable.claim_v1('ql', ARRAY['s'], ARRAY['j'], 1, p_owner => 'worker-b');
SELECT is((SELECT (id, attempt, lease_owner)::text FROM lease2), format('(%s,2,worker-b)', :l1),
          'after the lease expires the message is claimable again, as attempt 2');
SELECT isnt((SELECT lease_token FROM lease2), (SELECT lease_token FROM lease1),
            'the new claim gets a new lease token');
SELECT throws_ok(format('SELECT durable.ack_v1(%s, %L)', :l1, (SELECT lease_token FROM lease1)), 'PD001', NULL,
                 'ack with the token of the expired lease fails with PD001 (fencing)');
SELECT throws_ok(format('SELECT durable.release_v1(%s, %L)', :l1, (SELECT lease_token FROM lease1)), 'PD001', NULL,
                 'release with a stale token fails with PD001');
SELECT throws_ok(format('SELECT durable.ack_v1(%s, NULL)', :l1), 'PD001', NULL,
                 'ack without a token fails with PD001');
SELECT lives_ok(format('SELECT durable.ack_v1(%s, %L)', :l1, (SELECT lease_token FROM lease2)),
                'ack with the current token succeeds');
SELECT is_empty(format('SELECT 1 FROM durable.messages WHERE id = %s', :l1), 'ack deletes the message');
SELECT throws_ok(format('SELECT durable.ack_v1(%s, %L)', :l1, (SELECT lease_token FROM lease2)), 'PD001', NULL,
                 'a second ack of the same message fails with PD001');
SELECT throws_ok($$SELECT durable.ack_v1(-1, gen_random_uuid())$$, 'PD001', NULL,
                 'ack of an unknown message fails with PD001');

-- extend_lease_v1
SELECT durable.enqueue_v1('qe', 's', 'j') AS x1 \gset
SELECT durable.enqueue_v1('qe', 's', 'j') AS x2 \gset
CREATE TEMP TABLE ext AS SELECT * FROM durable.claim_v1('qe', ARRAY['s'], ARRAY['j'], 2, interval '10 seconds');
SELECT results_eq(format('SELECT * FROM durable.extend_lease_v1(ARRAY[%s, %s], ARRAY[%L, %L]::uuid[], interval ''60 seconds'')',
                         :x1, :x2, (SELECT lease_token FROM ext WHERE id = :x1), gen_random_uuid()),
                  ARRAY[:x1::bigint], 'extend_lease_v1 extends only the leases whose token matches, and returns their ids');
SELECT ok((SELECT visible_at - durable.now() BETWEEN interval '59 seconds' AND interval '60 seconds'
           FROM durable.messages WHERE id = :x1), 'the extended lease now ends p_lease from now');
SELECT durable.advance_clock('11 seconds') IS NOT NULL AS moved \gset
SELECT results_eq($$SELECT id FROM durable.claim_v1('qe', ARRAY['s'], ARRAY['j'], 10)$$, ARRAY[:x2::bigint],
                  'past the original lease only the message whose lease was not extended is claimable');
SELECT is((SELECT lease_token FROM durable.messages WHERE id = :x1), (SELECT lease_token FROM ext WHERE id = :x1),
          'extending a lease keeps its token');

-- release_v1
SELECT durable.enqueue_v1('qr', 's', 'j') AS r1 \gset
CREATE TEMP TABLE rel AS SELECT * FROM durable.claim_v1('qr', ARRAY['s'], ARRAY['j']);
SELECT lives_ok(format('SELECT durable.release_v1(%s, %L, interval ''15 seconds'')', :r1, (SELECT lease_token FROM rel)),
                'release_v1 gives a held message back');
SELECT is((SELECT (attempt, lease_token IS NULL, lease_owner IS NULL)::text FROM durable.messages WHERE id = :r1),
          '(0,t,t)', 'a released message has no lease and its attempt is not counted');
SELECT is_empty($$SELECT id FROM durable.claim_v1('qr', ARRAY['s'], ARRAY['j'])$$,
                'a message released with a delay is not claimable before the delay');
SELECT durable.advance_clock('16 seconds') IS NOT NULL AS moved \gset
SELECT results_eq($$SELECT id, attempt FROM durable.claim_v1('qr', ARRAY['s'], ARRAY['j'])$$,
                  format('VALUES (%s::bigint, 1)', :r1), 'after the delay it is claimed again as attempt 1');
SELECT throws_ok(format('SELECT durable.ack_v1(%s, %L)', :r1, (SELECT lease_token FROM rel)), 'PD001', NULL,
                 'the token of a released lease no longer acks');

-- ---------------------------------------------------------------------------
-- next_wakeup_v1
-- ---------------------------------------------------------------------------
SELECT is(durable.next_wakeup_v1('qw', ARRAY['s'], ARRAY['j']), NULL,
          'next_wakeup_v1 is NULL when the streams are empty');
SELECT durable.enqueue_v1('qw', 's', 'j', p_delay => interval '45 seconds') AS w1 \gset
SELECT ok(durable.next_wakeup_v1('qw', ARRAY['s'], ARRAY['j']) BETWEEN 44 AND 45,
          'next_wakeup_v1 gives the seconds until a delayed message becomes visible');
SELECT is(durable.next_wakeup_v1('qw', ARRAY['s'], ARRAY['other']), NULL,
          'next_wakeup_v1 ignores messages of names the caller does not serve');
SELECT is(durable.next_wakeup_v1('qw2', ARRAY['s'], ARRAY['j']), NULL,
          'next_wakeup_v1 ignores other namespaces');
SELECT durable.enqueue_v1('qw', 's', 'j', p_delay => interval '5 seconds') AS w2 \gset
SELECT ok(durable.next_wakeup_v1('qw', ARRAY['s'], ARRAY['j']) BETWEEN 4 AND 5,
          'next_wakeup_v1 follows the earliest message');
SELECT durable.enqueue_v1('qw', 's', 'j') AS w3 \gset
SELECT is(durable.next_wakeup_v1('qw', ARRAY['s'], ARRAY['j']), 0::float8,
          'next_wakeup_v1 is 0 when a message is due now');
SELECT durable.advance_clock('6 seconds') IS NOT NULL AS moved \gset
CREATE TEMP TABLE wk AS SELECT * FROM durable.claim_v1('qw', ARRAY['s'], ARRAY['j'], 2, interval '20 seconds');
SELECT ok(durable.next_wakeup_v1('qw', ARRAY['s'], ARRAY['j']) BETWEEN 19 AND 20,
          'a leased message wakes the worker at its lease expiry (when it could be reclaimed)');

-- Bounds and channels
SELECT throws_ok($$SELECT * FROM durable.claim_v1('bq', ARRAY['s'], ARRAY['m'], 1001)$$, 'PD004',
                 'claim batch 1001 is out of range: give 1 to 1000', 'a claim batch is at most 1000');
SELECT throws_like($$SELECT * FROM durable.claim_v1('bq', ARRAY['s'], ARRAY['m'], 1, '1000 years')$$,
                   'lease 1000 years is out of range%', 'a lease is at most 1 hour');
SELECT lives_ok($$SELECT * FROM durable.claim_v1('bq', ARRAY['s'], ARRAY['m'], 1000, '1 hour')$$,
                'batch 1000 and a 1 hour lease are allowed');
SELECT throws_like($$SELECT durable.extend_lease_v1(ARRAY[1]::bigint[], ARRAY[NULL]::uuid[], '2 hours')$$,
                   'lease 02:00:00 is out of range%', 'extend_lease_v1 is bounded too');
SELECT throws_like($$SELECT durable.extend_lease_v1(array_fill(1::bigint, ARRAY[1001]), array_fill(NULL::uuid, ARRAY[1001]),
                                                    '1 minute')$$,
                   'extend_lease_v1 takes at most 1000 messages%', '...and takes at most 1000 messages');
SELECT is(durable.stream_channels_v1('bq', ARRAY['b', 'a']),
          ARRAY[durable.stream_channel('bq', 'b'), durable.stream_channel('bq', 'a')],
          'stream_channels_v1 returns the channels of the streams, in the order given');
SELECT lives_ok($$SELECT durable._notify('pgd_tap', 'x')$$, '_notify sends (the queue is empty)');

SELECT throws_like($$SELECT durable._check_eager('{"owner": "w", "lease_seconds": 1e9}')$$, 'lease % is out of range%',
                   'an eager-dispatch lease is bounded like a claim''s');
SELECT throws_ok($$SELECT durable._check_eager('{"owner": "w"}')$$, 'PD004', NULL,
                 'an eager-dispatch request without a numeric lease_seconds is refused');
SELECT lives_ok($$SELECT durable._check_eager('{"owner": "w", "lease_seconds": 30}'), durable._check_eager(NULL)$$,
                'a 30 s eager lease (or none) is fine');

-- Lease operations commit without waiting for the WAL flush; completions do not
SELECT durable.start_workflow_v1('rc', 'rc-1', 'rc_wf', 'rcq', '[]') IS NOT NULL AS ignored \gset
SET LOCAL synchronous_commit = on;
SELECT count(*) AS ignored FROM durable.claim_v1('rc', ARRAY['rcq'], ARRAY['nothing']) \gset
SELECT is(current_setting('synchronous_commit'), 'off', 'claim_v1 sets synchronous_commit off for its transaction');
SET LOCAL synchronous_commit = on;
SELECT message_id AS rc_id, lease_token AS rc_token
FROM durable.claim_workflow_tasks_v1('rc', ARRAY['rcq'], ARRAY['rc_wf'], 1) \gset
SELECT is(current_setting('synchronous_commit'), 'off', '...so does claim_workflow_tasks_v1');
SET LOCAL synchronous_commit = on;
SELECT count(*) AS ignored FROM durable.extend_lease_v1(ARRAY[:rc_id]::bigint[], ARRAY[:'rc_token']::uuid[], '30 seconds') \gset
SELECT is(current_setting('synchronous_commit'), 'off', '...and extend_lease_v1');
SET LOCAL synchronous_commit = on;
SELECT count(*) AS ignored FROM durable.complete_workflow_task_v1(:rc_id, :'rc_token', 1,
    '[{"type": "activity", "seq": 1, "name": "rc_act", "args": "[]"}]') \gset
SELECT is(current_setting('synchronous_commit'), 'on', 'a completion stays durable (synchronous_commit untouched)');
SELECT message_id AS rca_id, lease_token AS rca_token
FROM durable.claim_activity_tasks_v1('rc', ARRAY['rcq-activity'], ARRAY['rc_act'], 1) \gset
SELECT is(current_setting('synchronous_commit'), 'off', 'claim_activity_tasks_v1 sets it off');
SET LOCAL synchronous_commit = on;
SELECT durable.heartbeat_activity_v1(:rca_id, :'rca_token', NULL) AS ignored \gset
SELECT is(current_setting('synchronous_commit'), 'off', '...and heartbeat_activity_v1');

SELECT * FROM finish();
ROLLBACK;
