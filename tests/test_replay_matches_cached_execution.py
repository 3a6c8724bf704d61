"""A full replay from history gives the same execution as a warm cache: the same workflow,
run by a caching worker and by one that replays every step, yields the same result and history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from pgdurable import Durable, RetryPolicy, errors
from support.history import comparable, wait_pending

runs: dict[str, int] = {}


async def rep_lookup(item: str) -> dict[str, Any]:
    return {"item": item, "price": len(item)}


async def rep_flaky(key: str) -> str:
    runs[key] = runs.get(key, 0) + 1
    if runs[key] == 1:
        raise TimeoutError("first attempt times out")
    return "second time lucky"


async def rep_refuse(item: str) -> None:
    raise ValueError(f"{item} refused")


async def replay_workflow(items: list[str], signal_id: str) -> dict[str, Any]:
    acts = Durable.workflow.proxy_activities(
        activities=[rep_lookup, rep_flaky, rep_refuse],
        retry=RetryPolicy(maximum_attempts=2, initial_interval=0.05))
    start = Durable.workflow.now()
    looked_up = await asyncio.gather(*(acts.rep_lookup(i) for i in items))
    total = sum(x["price"] for x in looked_up)
    slept = await Durable.workflow.sleep(0.1)
    lucky = await acts.rep_flaky(Durable.workflow.info().workflow_id)
    try:
        await acts.rep_refuse(items[0])
        refused = None
    except errors.DurableMaxedError as exc:
        refused = exc.message
    approval = await Durable.workflow.condition(signal_id)
    timed_out = await Durable.workflow.condition(signal_id + "-never", timeout=0.1)
    draws = [Durable.workflow.random(), str(Durable.workflow.uuid4())]
    await asyncio.sleep(0.05)
    elapsed = (Durable.workflow.now() - start).total_seconds()
    return {"looked_up": looked_up, "total": total, "slept": slept, "lucky": lucky, "refused": refused,
            "approval": approval, "timed_out": timed_out, "draws": draws,
            "waited_long_enough": elapsed >= 0.25}


COMMANDS = {"activity_scheduled", "timer_started", "signal_wait_started", "signal_sent", "child_started",
            "patch_marker", "workflow_completed", "workflow_failed"}


def commands(history: list[dict[str, Any]]) -> list[tuple[str, Any, str]]:
    return [e for e in comparable(history) if e[0] in COMMANDS]


@pytest.fixture
async def shutdown() -> AsyncIterator[None]:
    yield
    await Durable.shutdown()


async def execute(dsn: str, cache: int) -> tuple[Any, list[dict[str, Any]]]:
    connection = Durable.Connection(dsn)
    worker = await Durable.Worker.create(connection=connection, task_queue="replay", workflow=replay_workflow,
                                         max_cached_workflows=cache)
    client = Durable.Client(connection=connection)
    # The same workflow id in both databases: the deterministic random() and uuid4() agree too.
    handle = await client.workflow.start(args=[["apple", "kiwi", "banana"], "rep-approve"],
                                         task_queue="replay", workflow_name="replay_workflow",
                                         workflow_id="replay-1")
    await wait_pending(handle, "condition", signal_id="rep-approve")
    await client.workflow.signal("rep-approve", {"ok": True})
    result = await handle.result(timeout=20)
    history = await handle.history()
    await worker.shutdown()
    await connection.close()
    return result, history


async def test_full_replay_gives_the_same_result_and_history_as_the_warm_cache(
        make_database: Callable[..., str], pg_template: str, shutdown):
    runs.clear()
    cached_result, cached_history = await execute(make_database(template=pg_template), cache=1000)
    runs.clear()
    replayed_result, replayed_history = await execute(make_database(template=pg_template), cache=0)

    assert cached_result == replayed_result
    assert cached_result["looked_up"][1] == {"item": "kiwi", "price": 4}
    assert cached_result["refused"] == "apple refused"
    assert cached_result["approval"] == {"ok": True} and cached_result["timed_out"] is False
    assert cached_result["waited_long_enough"] is True
    # Commands come from the workflow code: same order. Outcomes race (a gather's activities finish
    # in any order), so those are compared as a whole.
    assert commands(cached_history) == commands(replayed_history)
    assert sorted(comparable(cached_history), key=repr) == sorted(comparable(replayed_history), key=repr)
    assert "workflow_task_failed" not in [e["event_type"] for e in replayed_history]


async def test_a_fresh_worker_per_step_completes_the_workflow_like_one_worker(dsn: str, shutdown):
    """Each step is taken by a new worker (the old one shut down), so each one replays."""
    connection = Durable.Connection(dsn)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=[["fig"], "fresh-approve"], task_queue="replay",
                                         workflow_name="replay_workflow")
    worker = await Durable.Worker.create(connection=connection, task_queue="replay", workflow=replay_workflow)
    await wait_pending(handle, "condition", signal_id="fresh-approve")
    await worker.shutdown()
    await client.workflow.signal("fresh-approve", "fine")
    worker = await Durable.Worker.create(connection=connection, task_queue="replay", workflow=replay_workflow)
    result = await handle.result(timeout=20)
    assert result["approval"] == "fine" and result["lucky"] == "second time lucky"
    assert result["refused"] == "fig refused" and result["total"] == 3
