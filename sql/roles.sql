-- (Over 450 lines: provisioning, scope checks and grants of worker roles are one security boundary.)
-- roles.sql: scoped worker roles. A DBA provisions a login role per set of
-- streams from psql; the role has no table privileges at all and may only
-- EXECUTE the worker functions, which are SECURITY DEFINER and check
-- session_user against durable.worker_credentials (never a GUC the caller
-- could SET). A role has two scopes: the streams it may *consume* (claim),
-- and the task queues its workflows' commands may *produce* to (activities,
-- children, signals to other workflows); by default its own queues. The DBA
-- may also limit the signal ids its conditions wait on.
-- Writes durable.worker_credentials (a table of schema.sql) and cluster roles.

-- Is session_user the engine's owner (or a member of it, or a superuser)?
-- Only such a caller runs worker functions without a worker role's scope.
CREATE FUNCTION durable._is_engine_admin() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.pg_has_role(session_user, n.nspowner, 'MEMBER')
    FROM pg_catalog.pg_namespace n WHERE n.nspname = 'durable'
$$;
COMMENT ON FUNCTION durable._is_engine_admin() IS
    'Internal: whether session_user is a member of the role owning schema durable (superusers are).';

CREATE FUNCTION durable._not_a_worker() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'PD005',
        MESSAGE = pg_catalog.format('role %s is not a pgdurable worker role of this database (nor the engine''s owner): '
                         'log in as the role durable.provision_worker_role made', session_user);
END $$;
COMMENT ON FUNCTION durable._not_a_worker() IS
    'Internal: PD005 for a caller that is neither a provisioned worker role nor the engine owner.';

-- Scope check used by every worker function. A caller that is not a
-- provisioned worker role is trusted: EXECUTE is granted to nobody else.
CREATE FUNCTION durable._authorize(p_namespace text, p_streams text[]) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_cred durable.worker_credentials;
    v_outside text[];
BEGIN
    SELECT * INTO v_cred FROM durable.worker_credentials c WHERE c.role_name = session_user;
    IF NOT FOUND THEN
        -- Membership in a worker role is no way in: only its own login is.
        IF NOT durable._is_engine_admin() THEN
            PERFORM durable._not_a_worker();
        END IF;
        RETURN;
    END IF;
    IF v_cred.revoked_at IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD005',
            MESSAGE = pg_catalog.format('worker role %s was revoked at %s: ask the DBA for a new one',
                             v_cred.role_name, v_cred.revoked_at);
    END IF;
    -- A database copied with CREATE DATABASE ... TEMPLATE carries the original's
    -- roles and grants: they stay the original's, never workers of the copy.
    IF v_cred.database_name IS DISTINCT FROM pg_catalog.current_database() THEN
        RAISE EXCEPTION USING ERRCODE = 'PD005',
            MESSAGE = pg_catalog.format('worker role %s belongs to database %s, not to %s (a copy of it?): provision a '
                             'worker role in this database (after a rename: UPDATE durable.worker_credentials '
                             'SET database_name = current_database())', v_cred.role_name, v_cred.database_name,
                             pg_catalog.current_database());
    END IF;
    SELECT pg_catalog.array_agg(s ORDER BY s) INTO v_outside
    FROM pg_catalog.unnest(p_streams) s WHERE NOT (s = ANY (v_cred.stream_names));
    IF p_namespace IS DISTINCT FROM v_cred.namespace OR v_outside IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD005',
            MESSAGE = pg_catalog.format('worker role %s may not consume stream(s) %s in namespace %L: it is provisioned '
                             'for %s in namespace %L', v_cred.role_name,
                             pg_catalog.array_to_string(coalesce(v_outside, p_streams), ', '), p_namespace,
                             pg_catalog.array_to_string(v_cred.stream_names, ', '), v_cred.namespace);
    END IF;
END $$;
COMMENT ON FUNCTION durable._authorize(text, text[]) IS
    'Internal: PD005 unless session_user is a live worker role that may consume these streams, or the '
    'engine owner.';

CREATE FUNCTION durable._may_consume(p_namespace text, p_stream text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT c.revoked_at IS NULL AND c.namespace = p_namespace AND p_stream = ANY (c.stream_names)
                            AND c.database_name = pg_catalog.current_database()
                     FROM durable.worker_credentials c WHERE c.role_name = session_user),
                    durable._is_engine_admin())
$$;
COMMENT ON FUNCTION durable._may_consume(text, text) IS
    'Internal: whether session_user may consume p_stream (engine admins always may).';

CREATE FUNCTION durable._authorize_messages(p_message_ids bigint[]) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_cred durable.worker_credentials;
    v_outside bigint;
BEGIN
    SELECT * INTO v_cred FROM durable.worker_credentials c WHERE c.role_name = session_user;
    -- The role itself must be valid (live, of this database), even when the messages are gone.
    PERFORM durable._authorize(v_cred.namespace, '{}'::text[]);
    IF v_cred.role_name IS NULL THEN
        RETURN;  -- the engine owner
    END IF;
    SELECT m.id INTO v_outside FROM durable.messages m
    WHERE m.id = ANY (p_message_ids)
      AND (m.namespace <> v_cred.namespace OR NOT (m.stream = ANY (v_cred.stream_names)))
    LIMIT 1;
    IF FOUND THEN
        -- Say nothing of where that message is: other namespaces stay unseen.
        RAISE EXCEPTION USING ERRCODE = 'PD005',
            MESSAGE = pg_catalog.format('worker role %s may not touch message %s: it is not on a stream the role may '
                             'consume', v_cred.role_name, v_outside);
    END IF;
END $$;
COMMENT ON FUNCTION durable._authorize_messages(bigint[]) IS
    'Internal: PD005 unless session_user may consume the streams these messages are on (the error never '
    'names another scope''s streams or namespace).';

-- The produce scope of session_user in a namespace: NULL for the engine
-- owner (unrestricted), else the task queues the DBA allowed.
CREATE FUNCTION durable._produce_scope(p_namespace text) RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.produce FROM durable.worker_credentials c WHERE c.role_name = session_user
$$;
COMMENT ON FUNCTION durable._produce_scope(text) IS
    'Internal: the task queues session_user may produce to (NULL: the engine owner, unrestricted).';

CREATE FUNCTION durable._check_produce(p_namespace text, p_what text, p_name text, p_task_queue text)
RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_produce text[] := durable._produce_scope(p_namespace);
BEGIN
    IF v_produce IS NOT NULL AND NOT (p_task_queue = ANY (v_produce)) THEN
        RAISE EXCEPTION USING ERRCODE = 'PD005',
            MESSAGE = pg_catalog.format('worker role %s may not %s %L on task queue %L: it may produce to %s only (the '
                             'DBA widens that with provision_worker_role(..., p_produce => ...))',
                             session_user, p_what, p_name, p_task_queue, pg_catalog.array_to_string(v_produce, ', '));
    END IF;
END $$;
COMMENT ON FUNCTION durable._check_produce(text, text, text, text) IS
    'Internal: PD005 unless session_user may produce to p_task_queue (schedule an activity, start a child).';

CREATE FUNCTION durable._check_signal_scope(p_signal_id text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_prefixes text[];
BEGIN
    SELECT c.signal_prefixes INTO v_prefixes FROM durable.worker_credentials c WHERE c.role_name = session_user;
    IF v_prefixes IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM pg_catalog.unnest(v_prefixes) x WHERE pg_catalog.starts_with(p_signal_id, x)) THEN
        RAISE EXCEPTION USING ERRCODE = 'PD005',
            MESSAGE = pg_catalog.format('worker role %s may not wait on signal %L nor send it: its workflows may use only '
                             'signal ids starting with %s', session_user, p_signal_id,
                             pg_catalog.array_to_string(v_prefixes, ', '));
    END IF;
END $$;
COMMENT ON FUNCTION durable._check_signal_scope(text) IS
    'Internal: PD005 when session_user''s workflows may not wait on or send this signal id (the DBA''s '
    'prefixes).';

CREATE FUNCTION durable.worker_scope_v1()
RETURNS TABLE (role_name text, namespace text, stream_names text[], revoked boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.role_name, c.namespace, c.stream_names, c.revoked_at IS NOT NULL
    FROM durable.worker_credentials c
    WHERE c.role_name = session_user AND c.database_name = pg_catalog.current_database()
$$;
COMMENT ON FUNCTION durable.worker_scope_v1() IS
    'The calling worker role''s scope (no row for a role that is not a provisioned worker).';

-- The functions a worker role may EXECUTE (everything a workflow worker and
-- an activity worker need).
CREATE FUNCTION durable.worker_functions() RETURNS SETOF regprocedure
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.unnest(ARRAY[
        'durable.schema_version()',
        'durable.worker_scope_v1()',
        'durable.claim_workflow_tasks_v1(text, text[], text[], integer, interval, text)',
        'durable.claim_workflow_task_v1(text, text, text, text[], interval, text, interval)',
        'durable.complete_workflow_task_v1(bigint, uuid, integer, jsonb, jsonb)',
        'durable.fail_workflow_task_v1(bigint, uuid, jsonb)',
        'durable.fire_timers_v1(text, text[], integer)',
        'durable.run_history_v1(text, text, integer, uuid)',
        'durable.stream_channels_v1(text, text[])',
        'durable.worker_channel_v1(text, text)',
        'durable.claim_activity_tasks_v1(text, text[], text[], integer, interval, text)',
        'durable.complete_activity_v1(bigint, uuid, text, jsonb)',
        'durable.fail_activity_v1(bigint, uuid, jsonb, jsonb)',
        'durable.complete_tasks_v1(jsonb)',
        'durable.heartbeat_activity_v1(bigint, uuid, text, interval)',
        'durable.heartbeat_activity_v2(bigint, uuid, text, interval)',
        'durable.wake_for_unknown_activities_v1(text, text, text[], text[], text[], integer)',
        'durable.extend_lease_v1(bigint[], uuid[], interval)',
        'durable.release_v1(bigint, uuid, interval)',
        'durable.next_wakeup_v1(text, text[], text[])',
        'durable.heartbeat_worker_v1(text, text, text, integer, text, text[], text[], interval, boolean)'
    ]::regprocedure[])
$$;
COMMENT ON FUNCTION durable.worker_functions() IS
    'The functions a provisioned worker role may execute (and nothing else).';

CREATE FUNCTION durable._random_password() RETURNS text
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.replace(pg_catalog.gen_random_uuid()::text || pg_catalog.gen_random_uuid()::text, '-', '')
$$;
COMMENT ON FUNCTION durable._random_password() IS
    'Internal: 64 hex characters from two random UUIDs (no pgcrypto needed).';

CREATE FUNCTION durable._check_password(p_password text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_password IS NOT NULL AND (pg_catalog.length(p_password) < 12 OR pg_catalog.length(p_password) > 1000) THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = 'a worker password must have 12 to 1000 characters (or pass NULL for a random one)';
    END IF;
    -- Postgres would store a pre-hashed password as given: refuse it, so every
    -- worker password is a SCRAM verifier made here from the clear text.
    IF p_password ~ '^md5[0-9a-f]{32}$' OR pg_catalog.starts_with(p_password, 'SCRAM-SHA-256$') THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = 'give the worker password in clear text: pre-hashed passwords (md5..., SCRAM-SHA-256$...) '
                      'are refused, so that each is stored as a SCRAM verifier';
    END IF;
END $$;
COMMENT ON FUNCTION durable._check_password(text) IS
    'Internal: rejects too short, absurd or pre-hashed passwords.';

CREATE FUNCTION durable._grant_worker(p_role text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_fn regprocedure;
BEGIN
    EXECUTE pg_catalog.format('GRANT CONNECT ON DATABASE %I TO %I', pg_catalog.current_database(), p_role);
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA durable TO %I', p_role);
    FOR v_fn IN SELECT * FROM durable.worker_functions() LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %I', v_fn, p_role);
        -- A caller who does not own the engine gets a WARNING, not an error,
        -- from GRANT: stop here instead of handing out a role that cannot work.
        IF NOT pg_catalog.has_function_privilege(p_role, v_fn, 'EXECUTE') THEN
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = pg_catalog.format('could not grant EXECUTE on %s to %s: provision worker roles as the owner of '
                                 'schema durable (or a superuser)', v_fn, p_role);
        END IF;
    END LOOP;
END $$;
COMMENT ON FUNCTION durable._grant_worker(text) IS
    'Internal: a worker role gets CONNECT, USAGE on the schema and EXECUTE on worker_functions() only.';

CREATE FUNCTION durable._revoke_grants(p_role text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE pg_catalog.format('REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA durable FROM %I', p_role);
    EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA durable FROM %I', p_role);
    EXECUTE pg_catalog.format('REVOKE ALL ON DATABASE %I FROM %I', pg_catalog.current_database(), p_role);
END $$;
COMMENT ON FUNCTION durable._revoke_grants(text) IS
    'Internal: takes back every grant a worker role had (EXECUTE, USAGE, CONNECT).';

-- Per-role limits: a connection limit (enforced by the server) and session
-- defaults for the timeouts (a session of the role may still SET its own).
CREATE FUNCTION durable._limit_role(p_role text, p_connection_limit integer, p_statement_timeout interval,
                                    p_idle_in_transaction_timeout interval, p_lock_timeout interval)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_connection_limit IS NULL OR p_connection_limit < 1 OR p_connection_limit > 10000 THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('connection limit %s is out of range: give 1 to 10000', p_connection_limit);
    END IF;
    IF p_statement_timeout IS NULL OR p_statement_timeout <= interval '0'
       OR p_idle_in_transaction_timeout IS NULL OR p_idle_in_transaction_timeout <= interval '0'
       OR p_lock_timeout IS NULL OR p_lock_timeout <= interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = 'worker role timeouts must be positive intervals (statement, idle in transaction, lock)';
    END IF;
    EXECUTE pg_catalog.format('ALTER ROLE %I CONNECTION LIMIT %s', p_role, p_connection_limit);
    EXECUTE pg_catalog.format('ALTER ROLE %I IN DATABASE %I SET statement_timeout = %L', p_role, pg_catalog.current_database(),
                   (extract(epoch FROM p_statement_timeout) * 1000)::bigint || 'ms');
    EXECUTE pg_catalog.format('ALTER ROLE %I IN DATABASE %I SET idle_in_transaction_session_timeout = %L', p_role,
                   pg_catalog.current_database(), (extract(epoch FROM p_idle_in_transaction_timeout) * 1000)::bigint || 'ms');
    EXECUTE pg_catalog.format('ALTER ROLE %I IN DATABASE %I SET lock_timeout = %L', p_role, pg_catalog.current_database(),
                   (extract(epoch FROM p_lock_timeout) * 1000)::bigint || 'ms');
END $$;
COMMENT ON FUNCTION durable._limit_role(text, integer, interval, interval, interval) IS
    'Internal: sets a worker role''s connection limit and its session defaults for statement, '
    'idle-in-transaction and lock timeouts (in this database).';

-- CREATE/ALTER ROLE with a password. When such a statement fails (a
-- password-check module rejecting it, a role dropped by hand), Postgres
-- reports the statement text, password included, in the error's CONTEXT:
-- in the server log and to the client. The error is raised again here
-- without that context.
CREATE FUNCTION durable._set_role_password(p_role text, p_password text, p_create boolean) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_state text;
    v_message text;
    v_detail text;
BEGIN
    IF p_create THEN
        EXECUTE pg_catalog.format('CREATE ROLE %I WITH LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE '
                       'NOREPLICATION NOBYPASSRLS PASSWORD %L', p_role, p_password);
    ELSE
        EXECUTE pg_catalog.format('ALTER ROLE %I WITH LOGIN PASSWORD %L', p_role, p_password);
    END IF;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL;
    IF v_detail = '' THEN
        RAISE EXCEPTION USING ERRCODE = v_state, MESSAGE = v_message;
    END IF;
    RAISE EXCEPTION USING ERRCODE = v_state, MESSAGE = v_message, DETAIL = v_detail;
END $$;
COMMENT ON FUNCTION durable._set_role_password(text, text, boolean) IS
    'Internal: creates a worker login role, or sets its password, never leaking the password into an error.';

-- The DBA functions below run with the DBA's rights (CREATEROLE, often
-- superuser): their pinned search_path means an object someone planted
-- earlier on the DBA's search_path (public.unnest(text[]), a lower(name), an
-- operator) is never picked over pg_catalog's. password_encryption is pinned
-- too: worker passwords are always stored as SCRAM verifiers, whatever the
-- server's default.
CREATE FUNCTION durable.provision_worker_role(p_stream_names text[], p_namespace text DEFAULT 'durable',
                                              p_password text DEFAULT NULL,
                                              p_produce text[] DEFAULT NULL,
                                              p_signal_prefixes text[] DEFAULT NULL,
                                              p_connection_limit integer DEFAULT 50,
                                              p_statement_timeout interval DEFAULT interval '1 minute',
                                              p_idle_in_transaction_timeout interval DEFAULT interval '1 minute',
                                              p_lock_timeout interval DEFAULT interval '30 seconds')
RETURNS TABLE (role_name text, password text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp SET password_encryption = 'scram-sha-256' AS $$
DECLARE
    v_streams text[];
    v_produce text[];
    v_prefixes text[];
    v_role text;
    v_password text := coalesce(p_password, durable._random_password());
    v_now timestamptz := durable.now();
    v_slug text;
BEGIN
    SELECT pg_catalog.array_agg(DISTINCT s ORDER BY s) INTO v_streams FROM pg_catalog.unnest(p_stream_names) s;
    IF v_streams IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = 'give at least one stream name, e.g. ARRAY[''orders'', ''orders-activity'']';
    END IF;
    FOR i IN 1 .. pg_catalog.cardinality(v_streams) LOOP
        PERFORM durable._check_name('stream name', v_streams[i]);
    END LOOP;
    -- By default a role produces to its own task queues (a stream named
    -- <queue>-activity is queue <queue>'s activity stream).
    SELECT pg_catalog.array_agg(DISTINCT q ORDER BY q) INTO v_produce
    FROM pg_catalog.unnest(coalesce(p_produce, ARRAY(SELECT pg_catalog.regexp_replace(s, '-activity$', '') FROM pg_catalog.unnest(v_streams) s))) q;
    IF v_produce IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = 'p_produce must name at least one task queue (or be NULL for the role''s own queues)';
    END IF;
    FOR i IN 1 .. pg_catalog.cardinality(v_produce) LOOP
        PERFORM durable._check_name('task queue', v_produce[i]);
    END LOOP;
    IF p_signal_prefixes IS NOT NULL THEN
        SELECT pg_catalog.array_agg(DISTINCT x ORDER BY x) INTO v_prefixes FROM pg_catalog.unnest(p_signal_prefixes) x;
        IF v_prefixes IS NULL OR EXISTS (SELECT 1 FROM pg_catalog.unnest(v_prefixes) x WHERE x IS NULL) THEN
            RAISE EXCEPTION USING ERRCODE = 'PD004',
                MESSAGE = 'p_signal_prefixes must list signal id prefixes (or be NULL: any signal id)';
        END IF;
    END IF;
    PERFORM durable._check_name('namespace', p_namespace);
    PERFORM durable._check_password(p_password);
    -- Two DBAs provisioning the same streams at once get one role, not two
    -- (a row lock: no worker role can take it).
    PERFORM 1 FROM durable.secret FOR UPDATE;
    SELECT c.role_name INTO v_role FROM durable.worker_credentials c
    WHERE c.namespace = p_namespace AND c.stream_names = v_streams
      AND c.database_name = pg_catalog.current_database() AND c.revoked_at IS NULL
      AND EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = c.role_name);  -- not dropped by hand
    IF FOUND THEN
        -- Idempotent: the same streams get the same role, with a new password,
        -- the scopes and limits given now (and the grants of functions a later
        -- schema version added).
        PERFORM durable._set_role_password(v_role, v_password, false);
        PERFORM durable._grant_worker(v_role);
        UPDATE durable.worker_credentials c
        SET rotated_at = v_now, produce = v_produce, signal_prefixes = v_prefixes
        WHERE c.role_name = v_role;
    ELSE
        -- Role names are cluster-wide and every role may read pg_roles: the
        -- name carries the database (pg_database is public anyway), never the
        -- namespace.
        v_slug := left(pg_catalog.regexp_replace(pg_catalog.lower(pg_catalog.current_database()), '[^a-z0-9]+', '', 'g'), 16);
        v_role := 'pgdw_' || v_slug || '_' || left(pg_catalog.md5(pg_catalog.gen_random_uuid()::text), 12);
        PERFORM durable._set_role_password(v_role, v_password, true);
        PERFORM durable._grant_worker(v_role);
        INSERT INTO durable.worker_credentials (role_name, namespace, database_name, stream_names, produce,
                                                signal_prefixes, created_at)
        VALUES (v_role, p_namespace, pg_catalog.current_database(), v_streams, v_produce, v_prefixes, v_now);
    END IF;
    PERFORM durable._limit_role(v_role, p_connection_limit, p_statement_timeout, p_idle_in_transaction_timeout,
                                p_lock_timeout);
    RETURN QUERY SELECT v_role, v_password;
END $$;
COMMENT ON FUNCTION durable.provision_worker_role(text[], text, text, text[], text[], integer, interval, interval, interval) IS
    'DBA: creates (or, for the same streams, re-keys) a login role that may only consume these streams '
    'through the worker functions, and whose workflows may produce only to p_produce (default: its own '
    'task queues) and wait only on signal ids starting with p_signal_prefixes (default: any). The role '
    'gets a connection limit and session defaults for statement, idle-in-transaction and lock timeouts. '
    'Returns its name and password (random unless given); the password is not stored by pgdurable.';

CREATE FUNCTION durable._worker_role(p_role text, p_namespace text) RETURNS durable.worker_credentials
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_cred durable.worker_credentials;
BEGIN
    SELECT * INTO v_cred FROM durable.worker_credentials c
    WHERE c.role_name = p_role AND (p_namespace IS NULL OR c.namespace = p_namespace)
      AND c.database_name = pg_catalog.current_database();
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'PD003',
            MESSAGE = pg_catalog.format('%L is not a worker role provisioned in %s of this database', p_role,
                             CASE WHEN p_namespace IS NULL THEN 'any namespace'
                                  ELSE pg_catalog.format('namespace %L', p_namespace) END);
    END IF;
    RETURN v_cred;
END $$;
COMMENT ON FUNCTION durable._worker_role(text, text) IS 'Internal: a provisioned worker role, or PD003.';

CREATE FUNCTION durable.rotate_worker_password(p_role_name text, p_new_password text DEFAULT NULL,
                                               p_namespace text DEFAULT NULL,
                                               p_end_sessions boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp SET password_encryption = 'scram-sha-256' AS $$
DECLARE
    v_cred durable.worker_credentials;
    v_password text := coalesce(p_new_password, durable._random_password());
BEGIN
    v_cred := durable._worker_role(p_role_name, p_namespace);
    IF v_cred.revoked_at IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD005',
            MESSAGE = pg_catalog.format('worker role %s is revoked: provision a new one instead', v_cred.role_name);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = v_cred.role_name) THEN
        RAISE EXCEPTION USING ERRCODE = 'PD003',
            MESSAGE = pg_catalog.format('worker role %s was dropped outside pgdurable: revoke it and provision a new one',
                             v_cred.role_name);
    END IF;
    PERFORM durable._check_password(p_new_password);
    PERFORM durable._set_role_password(v_cred.role_name, v_password, false);
    UPDATE durable.worker_credentials c SET rotated_at = durable.now() WHERE c.role_name = v_cred.role_name;
    IF p_end_sessions THEN
        -- A live session can ALTER ROLE its own password back: end them all.
        PERFORM pg_catalog.pg_terminate_backend(a.pid) FROM pg_stat_activity a
        WHERE a.usename = v_cred.role_name AND a.pid <> pg_catalog.pg_backend_pid();
    END IF;
    RETURN v_password;
END $$;
COMMENT ON FUNCTION durable.rotate_worker_password(text, text, text, boolean) IS
    'DBA: sets a new password (random unless given) on a worker role and returns it. Live sessions keep '
    'running unless p_end_sessions (a live session of a leaked role could set its old password back): '
    'restart the workers with the new password.';

CREATE FUNCTION durable.revoke_worker_role(p_role_name text, p_namespace text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_cred durable.worker_credentials;
BEGIN
    v_cred := durable._worker_role(p_role_name, p_namespace);
    IF EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = v_cred.role_name) THEN
        EXECUTE pg_catalog.format('ALTER ROLE %I WITH NOLOGIN', v_cred.role_name);
    END IF;
    UPDATE durable.worker_credentials c SET revoked_at = coalesce(c.revoked_at, durable.now())
    WHERE c.role_name = v_cred.role_name;
    IF EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = v_cred.role_name) THEN
        PERFORM durable._revoke_grants(v_cred.role_name);
    END IF;
    PERFORM pg_catalog.pg_terminate_backend(a.pid) FROM pg_stat_activity a
    WHERE a.usename = v_cred.role_name AND a.pid <> pg_catalog.pg_backend_pid();
END $$;
COMMENT ON FUNCTION durable.revoke_worker_role(text, text) IS
    'DBA: disables a worker role''s login, takes back its grants and ends its live sessions; the audit row '
    'is kept with revoked_at. '
    'Idempotent: calling it again ends any session that logged in while the first call committed.';

CREATE FUNCTION durable.list_worker_roles(p_namespace text DEFAULT NULL)
RETURNS TABLE (role_name text, namespace text, stream_names text[], created_at timestamptz,
               rotated_at timestamptz, revoked_at timestamptz, produce text[], signal_prefixes text[])
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.role_name, c.namespace, c.stream_names, c.created_at, c.rotated_at, c.revoked_at, c.produce,
           c.signal_prefixes
    FROM durable.worker_credentials c
    WHERE (p_namespace IS NULL OR c.namespace = p_namespace)
      AND c.database_name = pg_catalog.current_database()
    ORDER BY c.created_at, c.role_name
$$;
COMMENT ON FUNCTION durable.list_worker_roles(text) IS
    'DBA: the worker roles of this database (of one namespace, or all), revoked ones included, with the '
    'streams they consume, the task queues they produce to and their signal id prefixes.';
