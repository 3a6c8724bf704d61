"""asyncio.gather of durable calls: one workflow task schedules them all, in one commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import pgdurable._store
from pgdurable import Durable
from support.history import events

N = 6


async def par_square(x: int) -> int:
    await asyncio.sleep(0.01 * (N - x))  # finish out of order
    return x * x


async def gather_workflow(n: int) -> list[int]:
    acts = Durable.workflow.proxy_activities(activities=[par_square])
    return list(await asyncio.gather(*(acts.par_square(i) for i in range(n))))


async def mixed_gather_workflow() -> list[Any]:
    acts = Durable.workflow.proxy_activities(activities=[par_square])
    return list(await asyncio.gather(acts.par_square(3), Durable.workflow.sleep(0.1),
                                     Durable.workflow.condition("never-sent", timeout=0.1),
                                     acts.par_square(4)))


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    yield Durable.Connection(dsn)
    await Durable.shutdown()


@pytest.fixture
def commits(monkeypatch: pytest.MonkeyPatch) -> list[list[dict[str, Any]]]:
    """The commands of every workflow task a worker completes (a spy, the real call runs)."""
    seen: list[list[dict[str, Any]]] = []
    real = pgdurable._store.complete_tasks

    async def spy(conn: Any, items: list[dict[str, Any]]) -> Any:
        seen.extend(list(i["commands"]) for i in items if i["kind"] == "workflow_task")
        return await real(conn, items)

    monkeypatch.setattr(pgdurable._store, "complete_tasks", spy)
    return seen


async def test_gather_of_activities_returns_results_in_call_order(connection):
    await Durable.Worker.create(connection=connection, task_queue="par", workflow=gather_workflow)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=[N], task_queue="par", workflow_name="gather_workflow")
    assert await handle.result(timeout=20) == [i * i for i in range(N)]


async def test_gather_of_n_activities_commits_in_one_complete_workflow_task_call(connection, commits):
    await Durable.Worker.create(connection=connection, task_queue="par", workflow=gather_workflow)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=[N], task_queue="par", workflow_name="gather_workflow")
    await handle.result(timeout=20)

    batches = [[c["seq"] for c in batch if c["type"] == "activity"] for batch in commits]
    assert [seqs for seqs in batches if seqs] == [list(range(1, N + 1))]

    history = await handle.history()
    kinds = [e["event_type"] for e in history]
    first = kinds.index("activity_scheduled")
    assert kinds[first:first + N] == ["activity_scheduled"] * N
    assert kinds.count("activity_scheduled") == N
    assert kinds.count("activity_completed") == N


async def test_gather_of_activities_timers_and_conditions_replays_deterministically(connection):
    # No cache: every workflow task replays the whole gather from history.
    await Durable.Worker.create(connection=connection, task_queue="par", workflow=mixed_gather_workflow,
                                max_cached_workflows=0)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(task_queue="par", workflow_name="mixed_gather_workflow")
    assert await handle.result(timeout=20) == [9, 0.1, False, 16]
    scheduled = [(e["event_type"], e["seq"]) for e in await events(handle)
                 if e["event_type"] in ("activity_scheduled", "timer_started", "signal_wait_started")]
    assert scheduled == [("activity_scheduled", 1), ("timer_started", 2), ("signal_wait_started", 3),
                         ("activity_scheduled", 4)]
