"""continue_as_new end to end: same id, new run, old runs kept, bounded history per run."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from pgdurable import Durable
from support.history import new_client

QUEUE = "continue"


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    connection = Durable.Connection(dsn)
    yield connection
    await Durable.shutdown(grace=5)


async def step_echo(value: int) -> int:
    return value


seen_after_continue: list[int] = []


async def counts_down(n: int, total: int) -> dict:
    acts = Durable.workflow.proxy_activities(activities=[step_echo])
    total += await acts.step_echo(n)
    if n > 0:
        Durable.workflow.continue_as_new(n - 1, total)
        seen_after_continue.append(n)  # never reached: continue_as_new does not return
    return {"total": total, "run_id": Durable.workflow.info().run_id}


async def loops_many_times(i: int, limit: int) -> int:
    if i < limit:
        await Durable.workflow.continue_as_new(i + 1, limit)  # the seed's spelling works too
    return i


async def test_continue_as_new_keeps_the_id_starts_new_runs_and_result_follows_to_the_last(
        connection: Durable.Connection) -> None:
    seen_after_continue.clear()
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=counts_down)
    client = new_client(connection)
    handle = await client.workflow.start(args=[3, 0], task_queue=QUEUE, workflow_name="counts_down",
                                         workflow_id="countdown")
    assert await handle.result(timeout=20) == {"total": 6, "run_id": 4}
    assert seen_after_continue == []

    all_events = await handle.history(all_runs=True)
    assert sum(e["event_type"] == "workflow_continued_as_new" for e in all_events) == 3
    assert {e["run_id"] for e in all_events} == {1, 2, 3, 4}
    assert sum(e["event_type"] == "workflow_started" for e in all_events) == 4
    # The latest run's own history is fresh: it starts with workflow_started.
    latest = await handle.history()
    assert {e["run_id"] for e in latest} == {4}
    assert latest[0]["event_type"] == "workflow_started"
    assert latest[-1]["event_type"] == "workflow_completed"

    state = await handle.state()
    assert state["run_id"] == 4 and state["status"] == "completed"
    runs = [row for row in await client.workflow.list() if row["workflow_id"] == "countdown"]
    assert Counter(row["status"] for row in runs) == {"continued": 3, "completed": 1}


async def test_a_thousand_iterations_by_continue_as_new_complete_with_bounded_runs(
        connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=loops_many_times)
    client = new_client(connection)
    started = time.monotonic()
    handle = await client.workflow.start(args=[0, 1000], task_queue=QUEUE, workflow_name="loops_many_times",
                                         workflow_id="thousand")
    assert await handle.result(timeout=120) == 1000
    elapsed = time.monotonic() - started
    events = await handle.history(all_runs=True)
    per_run = Counter(e["run_id"] for e in events)
    assert len(per_run) == 1001
    assert max(per_run.values()) <= 3, per_run.most_common(3)
    assert sum(e["event_type"] == "workflow_continued_as_new" for e in events) == 1000
    assert elapsed < 60, f"1,000 continue-as-new iterations took {elapsed:.1f} s"
