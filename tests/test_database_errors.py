"""Database failures reach users as pgdurable errors, never as raw psycopg exceptions: the engine's
own codes by code, any other SQLSTATE by class, a lost connection as DatabaseUnavailableError.
What is safe to repeat is retried once (a rolled-back transaction; a lost connection of a read)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from pgdurable import Durable, errors
from support.db import sql


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    yield Durable.Connection(dsn)
    await Durable.shutdown(grace=1)


def force_outcome_error(dsn: str, sqlstate: str, times: int | None) -> None:
    """Makes durable.workflow_outcome_v1 raise ``sqlstate`` on its first ``times`` calls (every call
    when None), counting calls in a sequence; the test's database is a throwaway clone."""
    sql(dsn, "CREATE SEQUENCE public.outcome_calls")
    limit = 2147483647 if times is None else times
    sql(dsn, f"""
        CREATE OR REPLACE FUNCTION durable.workflow_outcome_v1(p_namespace text, p_workflow_id text)
        RETURNS TABLE (run_id integer, status text, result text, error jsonb, workflow_name text,
                       task_queue text)
        LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
            IF nextval('public.outcome_calls') <= {limit} THEN
                RAISE EXCEPTION USING ERRCODE = '{sqlstate}',
                    MESSAGE = 'forced {sqlstate} for ' || p_workflow_id;
            END IF;
            RETURN QUERY SELECT 1, 'running'::text, NULL::text, NULL::jsonb, 'w'::text, 'q'::text;
        END $$""")


def outcome_calls(dsn: str) -> int:
    return sql(dsn, "SELECT last_value FROM public.outcome_calls")[0][0]


async def test_a_transaction_rolled_back_by_a_serialization_failure_is_retried_once_and_succeeds(
        connection, dsn):
    force_outcome_error(dsn, "40001", times=1)
    handle = Durable.Client(connection=connection).workflow.get_handle("q", "w", "wf-1")
    assert await handle.status() == "running"
    assert outcome_calls(dsn) == 2


async def test_a_deadlock_that_persists_raises_transient_database_error_after_one_retry(connection, dsn):
    force_outcome_error(dsn, "40P01", times=None)
    handle = Durable.Client(connection=connection).workflow.get_handle("q", "w", "wf-1")
    with pytest.raises(errors.TransientDatabaseError) as caught:
        await handle.status()
    assert caught.value.sqlstate == "40P01" and caught.value.condition == "DeadlockDetected"
    assert caught.value.retryable is True
    assert "forced 40P01 for wf-1" in str(caught.value) and "run it again" in str(caught.value)
    assert isinstance(caught.value.__cause__, psycopg.Error)


@pytest.mark.parametrize(("sqlstate", "error", "advice"), [
    ("PD042", "EngineError", "pip install -U pgdurable"),
    ("22012", "DatabaseError", "check the database's log"),
    ("42501", "AuthorizationError", "grant"),
    ("57P01", "DatabaseUnavailableError", "reachable"),
])
async def test_an_unmapped_sqlstate_raises_a_pgdurable_error_of_its_class_saying_what_to_do(
        connection, dsn, sqlstate, error, advice):
    force_outcome_error(dsn, sqlstate, times=None)
    handle = Durable.Client(connection=connection).workflow.get_handle("q", "w", "wf-1")
    with pytest.raises(getattr(errors, error)) as caught:
        await handle.status()
    assert isinstance(caught.value, errors.DurableError)
    assert caught.value.sqlstate == sqlstate
    assert f"forced {sqlstate} for wf-1" in str(caught.value) and advice in str(caught.value)
    # Only a rolled-back transaction or a lost connection is worth a second try.
    assert outcome_calls(dsn) == (2 if error == "DatabaseUnavailableError" else 1)


def kill_sessions(dsn: str) -> int:
    """Terminates every other session on the test's database (what a failover or restart does)."""
    rows = sql(dsn, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    return rows[0][0]


async def test_a_read_whose_pooled_connection_the_server_killed_is_retried_and_succeeds(connection, dsn):
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(task_queue="nobody-serves-this", workflow_name="w")
    assert await handle.status() == "running"
    assert kill_sessions(dsn) >= 1
    assert await handle.status() == "running"
    assert [e["event_type"] for e in await handle.history()] == ["workflow_started"]


async def test_a_signal_whose_connection_the_server_killed_is_not_sent_twice(connection, dsn):
    client = Durable.Client(connection=connection)
    await client.workflow.signal("warm-up", 0)  # the pool holds a connection now
    assert kill_sessions(dsn) >= 1
    with pytest.raises(errors.DatabaseUnavailableError) as caught:
        await client.workflow.signal("once-only", 1)
    assert "was not retried" in str(caught.value)
    assert sql(dsn, "SELECT count(*) FROM durable.signals WHERE signal_id = 'once-only'") == [(0,)]


async def test_every_public_call_against_an_unreachable_database_raises_database_unavailable_error():
    connection = Durable.Connection("postgresql://nobody@127.0.0.1:1/nowhere?connect_timeout=2")
    client = Durable.Client(connection=connection)
    handle = client.workflow.get_handle("q", "w", "wf-1")
    calls = {
        "start": client.workflow.start(task_queue="q", workflow_name="w"),
        "signal": client.workflow.signal("s", 1),
        "list": client.workflow.list(),
        "status": handle.status(),
        "state": handle.state(),
        "history": handle.history(),
        "cancel": handle.cancel(),
        "result": handle.result(timeout=1),
        "worker": Durable.Worker.create(connection=connection, task_queue="q", workflow=_unused_workflow),
        "roles": Durable.list_worker_roles(connection=connection),
    }
    try:
        for name, call in calls.items():
            with pytest.raises(errors.DatabaseUnavailableError, match="127.0.0.1") as caught:
                await call
            assert isinstance(caught.value, ConnectionError), name
    finally:
        await Durable.shutdown(grace=1)


async def _unused_workflow() -> None:
    pass
