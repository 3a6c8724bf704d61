-- roles.sql: scoped worker roles. A DBA provisions a login role per set of
-- streams from psql; the role has no table privileges at all and may only
-- EXECUTE the worker functions, which are SECURITY DEFINER and check
-- session_user against durable.worker_credentials (never a GUC the caller
-- could SET). A role's scope is the streams it may consume; what it
-- produces is derived from the task it holds a lease on.
-- Writes durable.worker_credentials and cluster roles.

CREATE TABLE durable.worker_credentials (
    role_name text PRIMARY KEY,
    namespace text NOT NULL,
    database_name text NOT NULL,
    stream_names text[] NOT NULL CHECK (cardinality(stream_names) > 0),
    created_at timestamptz NOT NULL,
    rotated_at timestamptz,
    revoked_at timestamptz
);
COMMENT ON TABLE durable.worker_credentials IS
    'Provisioned worker roles and their scope (streams they may consume). Revoked rows stay for audit; '
    'passwords are never stored here (Postgres keeps only their SCRAM hash).';

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
        RETURN;
    END IF;
    IF v_cred.revoked_at IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD005',
            MESSAGE = format('worker role %s was revoked at %s: ask the DBA for a new one',
                             v_cred.role_name, v_cred.revoked_at);
    END IF;
    -- A database copied with CREATE DATABASE ... TEMPLATE carries the original's
    -- roles and grants: they stay the original's, never workers of the copy.
    IF v_cred.database_name IS DISTINCT FROM current_database() THEN
        RAISE EXCEPTION USING ERRCODE = 'PD005',
            MESSAGE = format('worker role %s belongs to database %s, not to %s (a copy of it?): provision a '
                             'worker role in this database (after a rename: UPDATE durable.worker_credentials '
                             'SET database_name = current_database())', v_cred.role_name, v_cred.database_name,
                             current_database());
    END IF;
    SELECT array_agg(s ORDER BY s) INTO v_outside
    FROM unnest(p_streams) s WHERE NOT (s = ANY (v_cred.stream_names));
    IF p_namespace IS DISTINCT FROM v_cred.namespace OR v_outside IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD005',
            MESSAGE = format('worker role %s may not consume stream(s) %s in namespace %L: it is provisioned '
                             'for %s in namespace %L', v_cred.role_name,
                             array_to_string(coalesce(v_outside, p_streams), ', '), p_namespace,
                             array_to_string(v_cred.stream_names, ', '), v_cred.namespace);
    END IF;
END $$;
COMMENT ON FUNCTION durable._authorize(text, text[]) IS
    'Internal: PD005 unless session_user may consume these streams (engine admins always may).';

CREATE FUNCTION durable._may_consume(p_namespace text, p_stream text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT c.revoked_at IS NULL AND c.namespace = p_namespace AND p_stream = ANY (c.stream_names)
                            AND c.database_name = current_database()
                     FROM durable.worker_credentials c WHERE c.role_name = session_user), true)
$$;
COMMENT ON FUNCTION durable._may_consume(text, text) IS
    'Internal: whether session_user may consume p_stream (engine admins always may).';

CREATE FUNCTION durable._authorize_messages(p_message_ids bigint[]) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_scope record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM durable.worker_credentials c WHERE c.role_name = session_user) THEN
        RETURN;
    END IF;
    FOR v_scope IN SELECT m.namespace, array_agg(DISTINCT m.stream) AS streams
                   FROM durable.messages m WHERE m.id = ANY (p_message_ids) GROUP BY m.namespace LOOP
        PERFORM durable._authorize(v_scope.namespace, v_scope.streams);
    END LOOP;
    -- A worker role must still be valid even when the messages are gone.
    PERFORM durable._authorize((SELECT c.namespace FROM durable.worker_credentials c
                                WHERE c.role_name = session_user), '{}'::text[]);
END $$;
COMMENT ON FUNCTION durable._authorize_messages(bigint[]) IS
    'Internal: PD005 unless session_user may consume the streams these messages are on.';

CREATE FUNCTION durable.worker_scope_v1()
RETURNS TABLE (role_name text, namespace text, stream_names text[], revoked boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.role_name, c.namespace, c.stream_names, c.revoked_at IS NOT NULL
    FROM durable.worker_credentials c WHERE c.role_name = session_user
$$;
COMMENT ON FUNCTION durable.worker_scope_v1() IS
    'The calling worker role''s scope (no row for a role that is not a provisioned worker).';

-- The functions a worker role may EXECUTE (everything a workflow worker and
-- an activity worker need).
CREATE FUNCTION durable.worker_functions() RETURNS SETOF regprocedure
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT unnest(ARRAY[
        'durable.schema_version()',
        'durable.worker_scope_v1()',
        'durable.claim_workflow_tasks_v1(text, text[], text[], integer, interval, text)',
        'durable.complete_workflow_task_v1(bigint, uuid, integer, jsonb, jsonb)',
        'durable.fail_workflow_task_v1(bigint, uuid, jsonb)',
        'durable.fire_timers_v1(text, text[], integer)',
        'durable.run_history_v1(text, text, integer)',
        'durable.claim_activity_tasks_v1(text, text[], text[], integer, interval, text)',
        'durable.complete_activity_v1(bigint, uuid, text, jsonb)',
        'durable.fail_activity_v1(bigint, uuid, jsonb, jsonb)',
        'durable.heartbeat_activity_v1(bigint, uuid, text, interval)',
        'durable.wake_for_unknown_activities_v1(text, text, text[], text[], text[], integer)',
        'durable.claim_v1(text, text[], text[], integer, interval, text)',
        'durable.ack_v1(bigint, uuid)',
        'durable.extend_lease_v1(bigint[], uuid[], interval)',
        'durable.release_v1(bigint, uuid, interval)',
        'durable.next_wakeup_v1(text, text[], text[])'
    ]::regprocedure[])
$$;
COMMENT ON FUNCTION durable.worker_functions() IS
    'The functions a provisioned worker role may execute (and nothing else).';

CREATE FUNCTION durable._random_password() RETURNS text
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '')
$$;
COMMENT ON FUNCTION durable._random_password() IS
    'Internal: 64 hex characters from two random UUIDs (no pgcrypto needed).';

CREATE FUNCTION durable._check_password(p_password text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_password IS NOT NULL AND (length(p_password) < 12 OR length(p_password) > 1000) THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = 'a worker password must have 12 to 1000 characters (or pass NULL for a random one)';
    END IF;
END $$;
COMMENT ON FUNCTION durable._check_password(text) IS 'Internal: rejects too short or absurd passwords.';

CREATE FUNCTION durable._grant_worker(p_role text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_fn regprocedure;
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), p_role);
    EXECUTE format('GRANT USAGE ON SCHEMA durable TO %I', p_role);
    FOR v_fn IN SELECT * FROM durable.worker_functions() LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', v_fn, p_role);
        -- A caller who does not own the engine gets a WARNING, not an error,
        -- from GRANT: stop here instead of handing out a role that cannot work.
        IF NOT has_function_privilege(p_role, v_fn, 'EXECUTE') THEN
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = format('could not grant EXECUTE on %s to %s: provision worker roles as the owner of '
                                 'schema durable (or a superuser)', v_fn, p_role);
        END IF;
    END LOOP;
END $$;
COMMENT ON FUNCTION durable._grant_worker(text) IS
    'Internal: a worker role gets CONNECT, USAGE on the schema and EXECUTE on worker_functions() only.';

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
        EXECUTE format('CREATE ROLE %I WITH LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE '
                       'NOREPLICATION NOBYPASSRLS PASSWORD %L', p_role, p_password);
    ELSE
        EXECUTE format('ALTER ROLE %I WITH LOGIN PASSWORD %L', p_role, p_password);
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

-- The DBA functions below pin search_path like the worker functions: they
-- run with the DBA's rights (CREATEROLE, often superuser), so an object
-- someone planted earlier on the DBA's search_path (public.unnest(text[]),
-- a lower(name), an operator) must never be picked over pg_catalog's.
-- password_encryption is pinned too: worker passwords are always stored as
-- SCRAM verifiers, whatever the server's default.
CREATE FUNCTION durable.provision_worker_role(p_stream_names text[], p_namespace text DEFAULT 'durable',
                                              p_password text DEFAULT NULL)
RETURNS TABLE (role_name text, password text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp SET password_encryption = 'scram-sha-256' AS $$
DECLARE
    v_streams text[];
    v_role text;
    v_password text := coalesce(p_password, durable._random_password());
    v_now timestamptz := durable.now();
    v_slug text;
BEGIN
    SELECT array_agg(DISTINCT s ORDER BY s) INTO v_streams FROM unnest(p_stream_names) s;
    IF v_streams IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = 'give at least one stream name, e.g. ARRAY[''orders'', ''orders-activity'']';
    END IF;
    FOR i IN 1 .. cardinality(v_streams) LOOP
        PERFORM durable._check_stream(v_streams[i]);
    END LOOP;
    PERFORM durable._check_name('namespace', p_namespace);
    PERFORM durable._check_password(p_password);
    -- Two DBAs provisioning the same streams at once get one role, not two.
    PERFORM pg_advisory_xact_lock(hashtextextended(
        'durable.worker_role/' || current_database() || '/' || p_namespace, 0));
    SELECT c.role_name INTO v_role FROM durable.worker_credentials c
    WHERE c.namespace = p_namespace AND c.stream_names = v_streams
      AND c.database_name = current_database() AND c.revoked_at IS NULL
      AND EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = c.role_name);  -- not dropped by hand
    IF FOUND THEN
        -- Idempotent: the same streams get the same role, with a new password
        -- (and the grants of functions a later schema version added).
        PERFORM durable._set_role_password(v_role, v_password, false);
        PERFORM durable._grant_worker(v_role);
        UPDATE durable.worker_credentials c SET rotated_at = v_now WHERE c.role_name = v_role;
    ELSE
        v_slug := left(regexp_replace(lower(current_database()), '[^a-z0-9]+', '', 'g'), 16) || '_'
                  || left(regexp_replace(lower(p_namespace), '[^a-z0-9]+', '', 'g'), 16);
        v_role := 'pgdw_' || v_slug || '_' || left(md5(gen_random_uuid()::text), 10);
        PERFORM durable._set_role_password(v_role, v_password, true);
        PERFORM durable._grant_worker(v_role);
        INSERT INTO durable.worker_credentials (role_name, namespace, database_name, stream_names, created_at)
        VALUES (v_role, p_namespace, current_database(), v_streams, v_now);
    END IF;
    RETURN QUERY SELECT v_role, v_password;
END $$;
COMMENT ON FUNCTION durable.provision_worker_role(text[], text, text) IS
    'DBA: creates (or, for the same streams, re-keys) a login role that may only consume these streams '
    'through the worker functions. Returns its name and password (random unless given); the password '
    'is not stored by pgdurable.';

CREATE FUNCTION durable._worker_role(p_role text, p_namespace text) RETURNS durable.worker_credentials
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_cred durable.worker_credentials;
BEGIN
    SELECT * INTO v_cred FROM durable.worker_credentials c
    WHERE c.role_name = p_role AND (p_namespace IS NULL OR c.namespace = p_namespace)
      AND c.database_name = current_database();
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'PD003',
            MESSAGE = format('%L is not a worker role provisioned in %s of this database', p_role,
                             CASE WHEN p_namespace IS NULL THEN 'any namespace'
                                  ELSE format('namespace %L', p_namespace) END);
    END IF;
    RETURN v_cred;
END $$;
COMMENT ON FUNCTION durable._worker_role(text, text) IS 'Internal: a provisioned worker role, or PD003.';

CREATE FUNCTION durable.rotate_worker_password(p_role_name text, p_new_password text DEFAULT NULL,
                                               p_namespace text DEFAULT NULL)
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
            MESSAGE = format('worker role %s is revoked: provision a new one instead', v_cred.role_name);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = v_cred.role_name) THEN
        RAISE EXCEPTION USING ERRCODE = 'PD003',
            MESSAGE = format('worker role %s was dropped outside pgdurable: revoke it and provision a new one',
                             v_cred.role_name);
    END IF;
    PERFORM durable._check_password(p_new_password);
    PERFORM durable._set_role_password(v_cred.role_name, v_password, false);
    UPDATE durable.worker_credentials c SET rotated_at = durable.now() WHERE c.role_name = v_cred.role_name;
    RETURN v_password;
END $$;
COMMENT ON FUNCTION durable.rotate_worker_password(text, text, text) IS
    'DBA: sets a new password (random unless given) on a worker role and returns it. Live sessions keep '
    'running: restart the workers with the new password, or revoke the role if the old one leaked.';

CREATE FUNCTION durable.revoke_worker_role(p_role_name text, p_namespace text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_cred durable.worker_credentials;
BEGIN
    v_cred := durable._worker_role(p_role_name, p_namespace);
    IF EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = v_cred.role_name) THEN
        EXECUTE format('ALTER ROLE %I WITH NOLOGIN', v_cred.role_name);
    END IF;
    UPDATE durable.worker_credentials c SET revoked_at = coalesce(c.revoked_at, durable.now())
    WHERE c.role_name = v_cred.role_name;
    PERFORM pg_terminate_backend(a.pid) FROM pg_stat_activity a
    WHERE a.usename = v_cred.role_name AND a.pid <> pg_backend_pid();
END $$;
COMMENT ON FUNCTION durable.revoke_worker_role(text, text) IS
    'DBA: disables a worker role''s login and ends its live sessions; the audit row is kept with revoked_at. '
    'Idempotent: calling it again ends any session that logged in while the first call committed.';

CREATE FUNCTION durable.list_worker_roles(p_namespace text DEFAULT NULL)
RETURNS TABLE (role_name text, namespace text, stream_names text[], created_at timestamptz,
               rotated_at timestamptz, revoked_at timestamptz)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.role_name, c.namespace, c.stream_names, c.created_at, c.rotated_at, c.revoked_at
    FROM durable.worker_credentials c
    WHERE (p_namespace IS NULL OR c.namespace = p_namespace)
      AND c.database_name = current_database()
    ORDER BY c.created_at, c.role_name
$$;
COMMENT ON FUNCTION durable.list_worker_roles(text) IS
    'DBA: the worker roles of this database (of one namespace, or all), revoked ones included.';
