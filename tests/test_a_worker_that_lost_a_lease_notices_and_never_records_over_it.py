"""A worker whose activity lease was taken over notices: it logs it, stops renewing that lease,
tells the activity (``get_context().lease_lost``) and never records over the new holder."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

import pgdurable._store
from pgdurable import Durable
from support.history import events
from support.polling import wait_for

QUEUE = "lease-lost"
noticed: list[str] = []
companion_gate: dict[str, asyncio.Event] = {}


async def lease_watcher() -> str:
    ctx = Durable.activity.get_context()
    for _ in range(2000):  # at most ~40 s
        if ctx.lease_lost:
            noticed.append("lease lost")
            return "stale result"
        await asyncio.sleep(0.02)
    return "never noticed"


async def lease_companion() -> str:
    await companion_gate["release"].wait()
    return "companion"


async def lease_workflow() -> list[str]:
    acts = Durable.workflow.proxy_activities(activities=[lease_watcher, lease_companion])
    return list(await asyncio.gather(acts.lease_watcher(), acts.lease_companion()))


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    noticed.clear()
    companion_gate["release"] = asyncio.Event()
    yield Durable.Connection(dsn)
    companion_gate["release"].set()
    await Durable.shutdown(grace=5)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """The message ids of every lease extension and activity result sent (spies: the real calls run)."""
    seen: dict[str, list[Any]] = {"extend": [], "complete": []}
    extend, complete = pgdurable._store.extend_leases, pgdurable._store.complete_tasks

    async def extend_spy(conn: Any, message_ids: list[int], *args: Any, **kwargs: Any) -> Any:
        seen["extend"].append(list(message_ids))
        return await extend(conn, message_ids, *args, **kwargs)

    async def complete_spy(conn: Any, items: list[dict[str, Any]]) -> Any:
        seen["complete"].extend(i["message_id"] for i in items if i["kind"] == "activity_completed")
        return await complete(conn, items)

    monkeypatch.setattr(pgdurable._store, "extend_leases", extend_spy)
    monkeypatch.setattr(pgdurable._store, "complete_tasks", complete_spy)
    return seen


def take_over(conn: psycopg.Connection, workflow_id: str) -> tuple[int, Any]:
    """Another worker claims the watcher's task: its lease is made to expire and claimed at once, in
    one transaction (so the first worker's renewal cannot slip in between)."""
    with conn.transaction():
        conn.execute("UPDATE durable.messages SET visible_at = durable.now() - interval '1 second' "
                     "WHERE workflow_id = %s AND kind = 'activity' AND name = 'lease_watcher'", [workflow_id])
        row = conn.execute("SELECT message_id, lease_token FROM durable.claim_activity_tasks_v1("
                           "'durable', ARRAY[%s], ARRAY['lease_watcher'], 1, interval '1 hour', 'thief')",
                           [f"{QUEUE}-activity"]).fetchone()
    assert row is not None, "the thief claimed nothing"
    return row[0], row[1]


async def test_worker_whose_activity_lease_was_taken_over_tells_the_activity_and_records_nothing(
        connection, conn, calls, caplog):
    caplog.set_level(logging.INFO, logger="pgdurable.worker")
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=lease_workflow,
                                lease_seconds=0.9)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(task_queue=QUEUE, workflow_name="lease_workflow")
    await wait_for(lambda: len(calls["extend"]) >= 1, "the worker to renew its activity leases")

    message_id, thief_token = take_over(conn, handle.workflow_id)
    await wait_for(lambda: noticed, "the activity to see get_context().lease_lost")
    assert any(r.levelno == logging.WARNING and "lease_watcher" in r.getMessage()
               and "lease" in r.getMessage() for r in caplog.records), caplog.text

    # The worker renews the companion's lease, never the lost one again.
    seen = len(calls["extend"])
    await wait_for(lambda: len(calls["extend"]) >= seen + 2, "two more lease renewals")
    assert all(message_id not in ids for ids in calls["extend"][seen:]), calls["extend"]

    # The new holder records its result; the first worker never tried to record over it.
    conn.execute("SELECT durable.complete_activity_v1(%s, %s, %s)", [message_id, thief_token, '"thief"'])
    companion_gate["release"].set()
    assert await handle.result(timeout=20) == ["thief", "companion"]
    assert message_id not in calls["complete"]
    completed = await events(handle, "activity_completed")
    assert sorted(e["seq"] for e in completed) == [1, 2]
