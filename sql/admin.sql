-- admin.sql: what an operator runs from psql: retention (prune).
-- Deletes closed runs with their history, expired buffered signals, the
-- mailboxes of signal ids nobody uses any more, and workers long gone.

CREATE FUNCTION durable.prune(p_older_than interval, p_namespace text DEFAULT NULL,
                              p_batch integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_cutoff timestamptz := durable.now() - p_older_than;
    v_deleted integer;
BEGIN
    IF p_older_than IS NULL OR p_older_than < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'PD004',
            MESSAGE = pg_catalog.format('invalid retention %s: give a positive interval such as ''30 days''', p_older_than);
    END IF;
    WITH victims AS (
        SELECT w.namespace, w.workflow_id, w.run_id FROM durable.workflows w
        WHERE w.status <> 'running' AND w.closed_at < v_cutoff
          AND (p_namespace IS NULL OR w.namespace = p_namespace)
        ORDER BY w.closed_at
        LIMIT greatest(p_batch, 1)
        FOR UPDATE SKIP LOCKED
    ), gone_history AS (
        DELETE FROM durable.history h USING victims v
        WHERE h.namespace = v.namespace AND h.workflow_id = v.workflow_id AND h.run_id = v.run_id
    )
    DELETE FROM durable.workflows w USING victims v
    WHERE w.namespace = v.namespace AND w.workflow_id = v.workflow_id AND w.run_id = v.run_id;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    DELETE FROM durable.signals s
    WHERE s.id IN (SELECT x.id FROM durable.signals x WHERE x.expires_at < durable.now()
                     AND (p_namespace IS NULL OR x.namespace = p_namespace)
                   LIMIT greatest(p_batch, 1));
    DELETE FROM durable.mailboxes b
    WHERE (b.namespace, b.signal_id) IN (
        SELECT x.namespace, x.signal_id FROM durable.mailboxes x
        WHERE x.created_at < v_cutoff AND (p_namespace IS NULL OR x.namespace = p_namespace)
          AND NOT EXISTS (SELECT 1 FROM durable.signals s WHERE s.namespace = x.namespace AND s.signal_id = x.signal_id)
          AND NOT EXISTS (SELECT 1 FROM durable.signal_waits w
                          WHERE w.namespace = x.namespace AND w.signal_id = x.signal_id)
        LIMIT greatest(p_batch, 1)
        FOR UPDATE SKIP LOCKED);
    -- Workers not seen for the retention period (stopped or gone).
    DELETE FROM durable.workers k
    WHERE k.worker_id IN (SELECT x.worker_id FROM durable.workers x
                          WHERE x.last_seen_at < v_cutoff AND (p_namespace IS NULL OR x.namespace = p_namespace)
                          LIMIT greatest(p_batch, 1)
                          FOR UPDATE SKIP LOCKED);
    RETURN v_deleted;
END $$;
COMMENT ON FUNCTION durable.prune(interval, text, integer) IS
    'Retention: deletes up to p_batch runs closed more than p_older_than ago (with their history) and '
    'expired buffered signals, the mailboxes (signal ids) unused since then and the workers not seen since then, '
    'skipping rows in use. '
    'Returns how many runs went; call again until 0.';
