"""Issue 15, item 4: a workflow name no worker serves starts (a worker may come later) but says so.
Workers register themselves in ``durable.workers`` (at start, on a heartbeat, stopped at
shutdown); ``durable.list_workers`` shows them with a live flag, and ``state()["waiting_for"]``
of a workflow task nobody live serves says ``no live worker serves workflow '<name>'``."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from pgdurable import Durable
from support.history import wait_pending
from support.polling import wait_for


async def echo(text: str) -> str:
    return text


async def served_workflow(text: str) -> str:
    acts = Durable.workflow.proxy_activities(activities=[echo])
    return await acts.echo(text)


async def unserved_workflow() -> None:
    return None


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    yield Durable.Connection(dsn)
    await Durable.shutdown()


def workers(dsn: str, namespace: str | None = "durable") -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM durable.list_workers(%s)", [namespace]).fetchall()


async def test_a_worker_is_listed_with_what_it_serves_and_is_not_live_after_shutdown(dsn, connection):
    worker = await Durable.Worker.create(connection=connection, task_queue="reg-q", workflow=served_workflow,
                                         activities=[echo])
    [row] = workers(dsn)
    assert row["task_queue"] == "reg-q"
    assert row["workflow_names"] == ["served_workflow"]
    assert "echo" in row["activity_names"]
    assert (row["host"], row["pid"]) == (socket.gethostname(), os.getpid())
    assert row["live"] is True and row["stopped_at"] is None
    with psycopg.connect(dsn) as conn:
        assert row["role_name"] == conn.info.user
    assert workers(dsn, "elsewhere") == []

    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=["hi"], task_queue="reg-q", workflow_name="served_workflow")
    assert await handle.result(timeout=20) == "hi"

    await worker.shutdown()
    [row] = workers(dsn)
    assert row["live"] is False and row["stopped_at"] is not None


async def test_a_worker_heartbeats_and_one_that_stops_heartbeating_is_not_live(dsn, connection, monkeypatch):
    from pgdurable.worker import _worker

    monkeypatch.setattr(_worker, "HEARTBEAT_INTERVAL", 0.2)
    await Durable.Worker.create(connection=connection, task_queue="beat-q", workflow=served_workflow)
    [first] = workers(dsn)
    await wait_for(lambda: workers(dsn)[0]["last_seen_at"] > first["last_seen_at"], "a heartbeat")
    # A worker killed without a shutdown stops heartbeating: 3 intervals later it is not live.
    await Durable.shutdown()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE durable.workers SET stopped_at = NULL")
        assert workers(dsn)[0]["live"] is True
        conn.execute("SELECT durable.advance_clock('1 second')")
    assert workers(dsn)[0]["live"] is False


async def test_state_of_a_workflow_no_live_worker_serves_says_so_until_one_does(dsn, connection):
    # A worker on the queue for another workflow name does not count.
    await Durable.Worker.create(connection=connection, task_queue="unserved-q", workflow=served_workflow)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(task_queue="unserved-q", workflow_name="unserved_workflow")
    waiting = await wait_pending(handle, "workflow_task")
    state = await handle.state()
    assert "no live worker serves workflow 'unserved_workflow'" in state["waiting_for"]
    assert waiting["waiting_for"] == state["waiting_for"]
    assert "task queue 'unserved-q'" in state["waiting_for"]

    await Durable.Worker.create(connection=connection, task_queue="unserved-q", workflow=unserved_workflow)
    assert await handle.result(timeout=20) is None
    assert (await handle.state())["waiting_for"] is None
