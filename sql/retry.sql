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
