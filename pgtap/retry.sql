-- retry.sql: retry arithmetic (mirrors sql/retry.sql): retry_delay_v1,
-- should_retry_v1, task_retry_delay_v1. Pure functions, no fixtures.
BEGIN;
SELECT plan(30);

-- retry_delay_v1: min(initial * coef^(n-1), max)
SELECT is(durable.retry_delay_v1('{}', 1), interval '1 second',
          'with the default policy the delay after attempt 1 is 1 s');
SELECT is(durable.retry_delay_v1('{}', 2), interval '2 seconds', 'after attempt 2 it doubles to 2 s');
SELECT is(durable.retry_delay_v1('{}', 3), interval '4 seconds', 'after attempt 3 it is 4 s');
SELECT is(durable.retry_delay_v1('{}', 6), interval '32 seconds', 'after attempt 6 it is 32 s');
SELECT is(durable.retry_delay_v1('{}', 7), interval '60 seconds',
          'after attempt 7 the default 60 s maximum caps it (64 s uncapped)');
SELECT is(durable.retry_delay_v1('{"initial_interval": 0.5, "backoff_coefficient": 3, "maximum_interval": 10}', 1),
          interval '0.5 seconds', 'a custom policy starts at its initial_interval');
SELECT is(durable.retry_delay_v1('{"initial_interval": 0.5, "backoff_coefficient": 3, "maximum_interval": 10}', 3),
          interval '4.5 seconds', 'a custom policy multiplies by its backoff_coefficient (0.5 * 3^2)');
SELECT is(durable.retry_delay_v1('{"initial_interval": 0.5, "backoff_coefficient": 3, "maximum_interval": 10}', 4),
          interval '10 seconds', 'a custom policy is capped at its maximum_interval (13.5 s uncapped)');
SELECT is(durable.retry_delay_v1('{"initial_interval": 5, "backoff_coefficient": 1}', 9), interval '5 seconds',
          'a backoff_coefficient of 1 gives a constant delay');
SELECT is(durable.retry_delay_v1('{"initial_interval": 3}', 0), interval '3 seconds',
          'an attempt below 1 counts as attempt 1');
SELECT is(durable.retry_delay_v1('{"initial_interval": 3}', NULL), interval '3 seconds',
          'a NULL attempt counts as attempt 1');
SELECT is(durable.retry_delay_v1(NULL, 2), interval '2 seconds', 'a NULL policy uses the defaults');
SELECT is(durable.retry_delay_v1('{"maximum_attempts": 100000}', 5000), interval '60 seconds',
          'a very late attempt is capped at the maximum instead of overflowing');
SELECT is(durable.retry_delay_v1('{"backoff_coefficient": 1.01, "maximum_interval": 1000000}', 401),
          make_interval(secs => power(1.01::float8, 400)),
          'a slow backoff still grows exactly while it is below the maximum');
SELECT is(durable.retry_delay_v1('{"initial_interval": 0, "maximum_attempts": 100000}', 5000), interval '0',
          'an initial_interval of 0 retries at once, however late the attempt');

-- should_retry_v1
SELECT ok(durable.should_retry_v1('{"maximum_attempts": 3}', 1, '{}'), 'attempt 1 of 3 may be retried');
SELECT ok(durable.should_retry_v1('{"maximum_attempts": 3}', 2, '{}'), 'attempt 2 of 3 may be retried');
SELECT ok(NOT durable.should_retry_v1('{"maximum_attempts": 3}', 3, '{}'),
          'attempt 3 of 3 was the last: maximum_attempts counts every attempt, the first included');
SELECT ok(NOT durable.should_retry_v1('{"maximum_attempts": 1}', 1, '{}'),
          'maximum_attempts 1 means no retry at all');
SELECT ok(durable.should_retry_v1('{}', 4, '{}') AND NOT durable.should_retry_v1('{}', 5, '{}'),
          'the default policy allows 5 attempts');
SELECT ok(NOT durable.should_retry_v1('{"maximum_attempts": 10}', 1, '{"non_retryable": true}'),
          'an error flagged non_retryable is never retried');
SELECT ok(durable.should_retry_v1('{"maximum_attempts": 10}', 1, '{"non_retryable": false}'),
          'non_retryable false is retried');
SELECT ok(NOT durable.should_retry_v1('{"maximum_attempts": 10, "non_retryable_errors": ["ValueError"]}', 1,
                                      '{"types": ["app.BadInput", "ValueError", "Exception"]}'),
          'an error is not retried when any of its classes is in non_retryable_errors');
SELECT ok(NOT durable.should_retry_v1('{"non_retryable_errors": ["KeyError", "builtins.ValueError"]}', 1,
                                      '{"types": ["ValueError", "builtins.ValueError"]}'),
          'non_retryable_errors may hold several names, and a qualified name matches');
SELECT ok(durable.should_retry_v1('{"maximum_attempts": 10, "non_retryable_errors": ["ValueError"]}', 1,
                                  '{"types": ["KeyError", "Exception"], "type": "ValueError"}'),
          'an error none of whose types is non-retryable is retried (only types is matched)');
SELECT ok(durable.should_retry_v1('{"non_retryable_errors": ["ValueError"]}', 1, NULL),
          'an error without details is retried while attempts remain');

-- task_retry_delay_v1: 1 s, 2 s, 4 s ... capped at 60 s
SELECT is(ARRAY[durable.task_retry_delay_v1(1), durable.task_retry_delay_v1(2), durable.task_retry_delay_v1(3),
                durable.task_retry_delay_v1(4), durable.task_retry_delay_v1(5), durable.task_retry_delay_v1(6)],
          ARRAY[interval '1 s', interval '2 s', interval '4 s', interval '8 s', interval '16 s', interval '32 s'],
          'a failing workflow task backs off 1, 2, 4, 8, 16, 32 s');
SELECT is(durable.task_retry_delay_v1(7), interval '60 seconds', 'the 7th failure is capped at 60 s');
SELECT is(durable.task_retry_delay_v1(100), interval '60 seconds', 'the 100th failure waits 60 s too');
SELECT is(durable.task_retry_delay_v1(5000), interval '60 seconds',
          'a workflow task failing for days (5000 failures) still waits 60 s instead of overflowing');

SELECT * FROM finish();
ROLLBACK;
