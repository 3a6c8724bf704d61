"""Group commits: a busy worker records many outcomes per call of complete_tasks_v1, an item the
database rolled back alone goes again (and only it), and a large outcome goes in a call of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import pgdurable._store
from pgdurable import Durable
from pgdurable.worker import _completer

QUEUE = "group-commits"


async def gc_step(i: int) -> int:
    return i + 1


async def gc_workflow(i: int) -> int:
    acts = Durable.workflow.proxy_activities(activities=[gc_step])
    return await acts.gc_step(i)


async def gc_large_workflow() -> int:
    return len(await Durable.workflow.proxy_activities(activities=[gc_large]).gc_large())


async def gc_large() -> str:
    return "x" * (_completer.ALONE_BYTES + 1)


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    yield Durable.Connection(dsn)
    await Durable.shutdown()


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[list[dict[str, Any]]]:
    """The items of every complete_tasks call (a spy: the real call runs)."""
    seen: list[list[dict[str, Any]]] = []
    real = pgdurable._store.complete_tasks

    async def spy(conn: Any, items: list[dict[str, Any]]) -> Any:
        seen.append(list(items))
        return await real(conn, items)

    monkeypatch.setattr(pgdurable._store, "complete_tasks", spy)
    return seen


async def test_a_busy_worker_records_several_outcomes_in_one_transaction(connection, batches):
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=gc_workflow, concurrency=20)
    client = Durable.Client(connection=connection)
    handles = await asyncio.gather(*(client.workflow.start(args=[i], task_queue=QUEUE,
                                                           workflow_name="gc_workflow") for i in range(60)))
    assert await asyncio.gather(*(h.result(timeout=60) for h in handles)) == [i + 1 for i in range(60)]

    items = sum(len(batch) for batch in batches)
    assert items == 60 * 3  # per workflow: two workflow tasks and one activity result
    assert max(len(batch) for batch in batches) > 1
    assert len(batches) < items
    # Within a call, runs are locked in one order: items are sorted by workflow id.
    for batch in batches:
        ids = [item["workflow_id"] for item in batch]
        assert ids == sorted(ids)


async def test_an_item_the_database_rolled_back_alone_is_sent_again_and_only_it(
        connection, batches, monkeypatch):
    real = pgdurable._store.complete_tasks
    deadlocked: list[int] = []

    async def one_deadlock(conn: Any, items: list[dict[str, Any]]) -> Any:
        """The first activity result reported as a deadlock victim (its subtransaction rolled back,
        nothing of it applied), the way complete_tasks_v1 reports one."""
        if not deadlocked:
            index = next((i for i, item in enumerate(items) if item["kind"] == "activity_completed"), None)
            if index is not None:
                deadlocked.append(items[index]["message_id"])
                rows = await real(conn, items[:index] + items[index + 1:])
                for row in rows:
                    row["item"] += row["item"] >= index
                return [*rows, {"item": index, "outcome": None, "error_code": "40P01",
                                "error_message": "deadlock detected"}]
        return await real(conn, items)

    monkeypatch.setattr(pgdurable._store, "complete_tasks", one_deadlock)
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=gc_workflow)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=[41], task_queue=QUEUE, workflow_name="gc_workflow")

    assert await handle.result(timeout=30) == 42
    assert deadlocked, "no activity result went through the group commit"
    history = await handle.history()
    assert [e["event_type"] for e in history].count("activity_completed") == 1


async def test_an_outcome_over_a_mebibyte_goes_in_a_call_of_its_own(connection, batches):
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=gc_large_workflow)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(task_queue=QUEUE, workflow_name="gc_large_workflow")

    assert await handle.result(timeout=30) == _completer.ALONE_BYTES + 1
    [large] = [batch for batch in batches if any(item["kind"] == "activity_completed" for item in batch)]
    assert len(large) == 1
