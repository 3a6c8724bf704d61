-- schema.sql: the durable schema, its tables and invariants, the engine
-- clock and the schema version (mirrors sql/schema.sql).
\ir include/fixtures.psql
BEGIN;
SELECT plan(38);

SELECT has_schema('durable', 'the durable schema exists');
SELECT function_returns(
    'durable', 'schema_version', ARRAY[]::name[], 'integer',
    'durable.schema_version() returns an integer'
);
SELECT cmp_ok(durable.schema_version(), '>=', 1, 'the schema version is at least 1');
SELECT has_table('durable', t, format('table durable.%s exists', t))
FROM unnest(ARRAY['clock', 'messages', 'workflows', 'history', 'signals', 'signal_waits']::name[]) t;

-- The engine clock
SELECT ok(abs(extract(epoch FROM durable.now() - clock_timestamp())) < 1,
          'with no offset durable.now() is the wall clock');
SELECT durable.now() AS t0 \gset
SELECT pg_sleep(0.01) IS NOT NULL AS slept \gset
SELECT cmp_ok(durable.now(), '>', :'t0'::timestamptz,
              'durable.now() moves within a transaction (clock_timestamp, not now())');
SELECT ok(abs(extract(epoch FROM durable.advance_clock('1 hour') - clock_timestamp()) - 3600) < 1,
          'advance_clock returns the new engine time, an hour ahead');
SELECT is((SELECT offset_by FROM durable.clock), interval '1 hour', 'advance_clock stores the offset');
SELECT durable.advance_clock('30 minutes') IS NOT NULL AS moved \gset
SELECT is((SELECT offset_by FROM durable.clock), interval '90 minutes', 'advance_clock adds to the offset');
SELECT ok(abs(extract(epoch FROM durable.now() - clock_timestamp()) - 5400) < 1, 'durable.now() follows the offset');
SELECT is(durable.advance_clock(NULL), NULL, 'advance_clock(NULL) does nothing (STRICT)');
SELECT is((SELECT offset_by FROM durable.clock), interval '90 minutes', 'and leaves the offset alone');
SELECT ok(abs(extract(epoch FROM durable.set_clock_offset('5 minutes') - clock_timestamp()) - 300) < 1,
          'set_clock_offset sets the offset outright and returns the new engine time');
SELECT lives_ok($$SELECT durable.set_clock_offset('0')$$, 'set_clock_offset(0) restores real time');
SELECT ok(abs(extract(epoch FROM durable.now() - clock_timestamp())) < 1, 'durable.now() is the wall clock again');
SELECT throws_ok($$INSERT INTO durable.clock VALUES (false, '0')$$, '23514', NULL, 'the clock has a single row');

-- Invariants the engine relies on under concurrency
SELECT pg_temp.start('inv', 'w') AS ignored \gset
SELECT throws_ok($$INSERT INTO durable.workflows (namespace, workflow_id, run_id, workflow_name, task_queue, status,
                                                  args, created_at, updated_at)
                   VALUES ('inv', 'w', 2, 'w', 'q', 'running', '[]', now(), now())$$, '23505', NULL,
                 'a workflow id has at most one running run');
SELECT throws_ok($$INSERT INTO durable.messages (namespace, stream, kind, name, workflow_id, run_id, visible_at, created_at)
                   VALUES ('inv', 'q', 'workflow', 'w', 'w', 1, now(), now())$$, '23505', NULL,
                 'a workflow has at most one pending workflow task');
SELECT throws_ok($$INSERT INTO durable.history (namespace, workflow_id, run_id, event_id, event_type, seq, inbound, created_at)
                   VALUES ('inv', 'w', 1, 100, 'timer_fired', 7, true, now()),
                          ('inv', 'w', 1, 101, 'timer_fired', 7, true, now())$$, '23505', NULL,
                 'a durable call (seq) is resolved by at most one inbound event');

-- The per-database secret and what is derived from it
SELECT is((SELECT count(*)::integer FROM durable.secret), 1, 'durable.secret holds one key');
SELECT cmp_ok(length((SELECT key FROM durable.secret)), '>=', 64, 'the key is at least 64 random hex characters');
SELECT is(durable._salted_md5('x'), md5((SELECT key FROM durable.secret) || '/x'),
          '_salted_md5 is the md5 of the text salted with durable.secret');
SELECT lives_ok($$SELECT durable._check_payload(repeat('x', 16777216))$$, '_check_payload accepts exactly 16 MiB');
SELECT throws_ok($$SELECT durable._check_payload(repeat('x', 16777217))$$, 'PD004',
                 'payload of 16777217 bytes exceeds the 16777216 byte limit: store large data elsewhere and pass a reference',
                 '_check_payload refuses one byte more, with the SDK''s message');
SELECT throws_like($$SELECT durable._check_payload(repeat('é', 8388609))$$, 'payload of 16777218 bytes%',
                   '_check_payload counts bytes, not characters');
SELECT lives_ok($$SELECT durable._check_payload(NULL)$$, '_check_payload lets NULL through (callers check NULLs)');
-- The one name validator (workflow ids and names, task queues, streams, signal ids, namespaces)
SELECT lives_ok($$SELECT durable._check_name('stream name', repeat('s', 1000))$$,
                '_check_name accepts a name of 1000 characters');
SELECT throws_ok($$SELECT durable._check_name('stream name', repeat('s', 1001))$$, 'PD004',
                 format('invalid stream name %L: give a non-empty value of at most 1000 characters', repeat('s', 80)),
                 '_check_name refuses 1001 characters, naming what it checked and the first 80 of them');
SELECT throws_ok($$SELECT durable._check_name('signal id', '')$$, 'PD004',
                 'invalid signal id '''': give a non-empty value of at most 1000 characters',
                 '_check_name refuses an empty name');
SELECT throws_ok($$SELECT durable._check_name('workflow id', NULL)$$, 'PD004',
                 'invalid workflow id NULL: give a non-empty value of at most 1000 characters',
                 '_check_name refuses NULL');
SELECT throws_like($$SELECT durable.enqueue_v1('inv', '', 'm')$$, 'invalid stream name%',
                   'enqueue_v1 validates its stream with it');
SELECT throws_like($$SELECT durable.send_signal_v1('inv', repeat('x', 1001), '1')$$, 'invalid signal id%',
                   'send_signal_v1 validates its signal id with it');
SELECT lives_ok($$INSERT INTO durable.history (namespace, workflow_id, run_id, event_id, event_type, seq, inbound, created_at)
                  VALUES ('inv', 'w', 1, 102, 'timer_cancelled', 8, false, now())$$,
                'timer_cancelled is a history event type');

SELECT * FROM finish();
ROLLBACK;
