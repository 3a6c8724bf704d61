"""The errors that used to be builtins have names in pgdurable.errors, keep their old bases (so
existing ``except`` clauses still work) and say what to do."""

from __future__ import annotations

import asyncio

import pytest

from pgdurable import Durable, errors

NO_DSN = ("no Postgres DSN given: pass one (--dsn, or alembic -x dsn=...), or set PGDURABLE_DSN (or "
          "DATABASE_URL) to a libpq connection string such as postgresql://user@host:5432/dbname")
NO_IO = ("real I/O is not allowed inside a workflow (replay must be deterministic): do it in an "
         "activity")


def test_a_connection_without_any_dsn_raises_missing_dsn_error_saying_how_to_set_one(monkeypatch):
    monkeypatch.delenv("PGDURABLE_DSN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(errors.MissingDsnError) as caught:
        _ = Durable.Connection().dsn
    assert str(caught.value) == NO_DSN
    assert isinstance(caught.value, errors.DurableError)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, RuntimeError)
    with pytest.raises(errors.MissingDsnError, match="PGDURABLE_DSN"):
        Durable.migrate()


async def io_in_workflow() -> list[list[str | bool]]:
    seen: list[list[str | bool]] = []
    try:
        await asyncio.get_running_loop().run_in_executor(None, sum, [1, 2])
    except errors.WorkflowIOError as exc:
        seen.append([type(exc).__name__, str(exc), isinstance(exc, RuntimeError)])
    try:
        await asyncio.open_connection("127.0.0.1", 5432)
    except errors.WorkflowIOError as exc:
        seen.append([type(exc).__name__, str(exc), isinstance(exc, errors.DurableError)])
    return seen


async def test_real_io_inside_a_workflow_raises_workflow_io_error_naming_the_fix(dsn):
    connection = Durable.Connection(dsn)
    try:
        await Durable.Worker.create(connection=connection, task_queue="errors-io", workflow=io_in_workflow)
        client = Durable.Client(connection=connection)
        handle = await client.workflow.start(task_queue="errors-io", workflow_name="io_in_workflow")
        assert await handle.result(timeout=20) == [["WorkflowIOError", NO_IO, True],
                                                   ["WorkflowIOError", NO_IO, True]]
    finally:
        await Durable.shutdown()


def test_every_new_error_is_exported_and_documented():
    for name in ("MissingDsnError", "WorkflowIOError"):
        assert name in errors.__all__
        assert getattr(errors, name).__doc__
