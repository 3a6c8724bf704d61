"""Crash recovery: a worker process killed with SIGKILL mid-activity, right after an activity,
or while a timer runs loses nothing: another worker finishes the workflow, each activity
result is recorded exactly once, and timers fire while no worker is up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pgdurable import Durable
from support.db import sql
from support.history import events, timestamp, wait_event, wait_pending
from support.polling import wait_for
from support.subprocess_workers import Process, kill, ready_workers
from workers import crash_app

QUEUE = "crash"


@pytest.fixture
async def spawn(dsn: str) -> AsyncIterator[Callable[..., Awaitable[Process]]]:
    """Starts worker subprocesses serving crash_app on QUEUE with a 2 s lease, so a killed
    worker's tasks are claimable again soon (killed at teardown if still alive)."""
    async with ready_workers(dsn, QUEUE, workflows=",".join(fn.__name__ for fn in crash_app.WORKFLOWS),
                             activities=",".join(fn.__name__ for fn in crash_app.ACTIVITIES),
                             lease=2, timeout=300) as start:
        yield start


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    yield Durable.Connection(dsn)
    await Durable.shutdown(grace=5)


async def new_worker(connection: Durable.Connection) -> Any:
    return await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflows=crash_app.WORKFLOWS,
                                       activities=crash_app.ACTIVITIES)


def expire_leases(dsn: str) -> None:
    """Moves the engine clock past the dead worker's leases instead of waiting for them."""
    sql(dsn, "SELECT durable.advance_clock('5 seconds')")


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


async def test_worker_killed_mid_activity_is_replaced_and_the_result_is_recorded_once(
        connection, spawn, tmp_path):
    log = tmp_path / "executions.log"
    proc = await spawn()
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=[str(log), 21], task_queue=QUEUE,
                                         workflow_name="crash_mid_activity_workflow")
    await wait_for(lambda: "start 21 attempt 1" in lines(log), "the first attempt to start")
    running = await wait_pending(handle, "activity", activity_name="crash_block_first_attempt")
    assert running["running"] is True and running["attempt"] == 1
    await kill(proc)

    await new_worker(connection)
    assert await handle.result(timeout=30) == 43
    assert lines(log) == ["start 21 attempt 1", "start 21 attempt 2", "done 21 attempt 2"]
    completed = await events(handle, "activity_completed")
    assert [(e["seq"], e["details"]["attempt"]) for e in completed] == [(1, 2)]
    assert len(await events(handle, "activity_scheduled")) == 1


async def test_an_attempt_lost_with_a_killed_worker_is_recorded_in_the_history(connection, spawn, tmp_path):
    log = tmp_path / "executions.log"
    proc = await spawn()
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=[str(log), 5], task_queue=QUEUE,
                                         workflow_name="crash_mid_activity_workflow")
    await wait_for(lambda: "start 5 attempt 1" in lines(log), "the first attempt to start")
    await kill(proc)

    await new_worker(connection)
    assert await handle.result(timeout=30) == 11
    history = await handle.history()
    steps = [(e["event_type"], e["seq"], e["details"].get("attempt")) for e in history
             if e["event_type"].startswith("activity_")]
    assert steps == [("activity_scheduled", 1, None), ("activity_failed", 1, 1), ("activity_completed", 1, 2)]
    [lost] = [e for e in history if e["event_type"] == "activity_failed"]
    assert lost["details"]["lease_lost"] is True and lost["details"]["maxed"] is False
    assert lost["details"]["error"]["type"] == "ActivityLeaseExpired"
    assert "attempt 1 of 3 was lost" in lost["details"]["error"]["message"]


async def test_worker_killed_after_an_activity_but_before_its_workflow_task_completed(
        connection, spawn, tmp_path, dsn):
    log, marker = tmp_path / "executions.log", tmp_path / "hanging"
    proc = await spawn(env={crash_app.HANG_ENV: "1"})
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=[str(log), str(marker)], task_queue=QUEUE,
                                         workflow_name="crash_after_activity_workflow")
    await wait_for(marker.exists, "the workflow task to hang after the activity")
    assert [e["seq"] for e in await events(handle, "activity_completed")] == [1]
    await kill(proc)
    assert lines(log) == ["ran one"]
    expire_leases(dsn)

    await new_worker(connection)
    assert await handle.result(timeout=30) == ["ONE", "TWO"]
    assert lines(log) == ["ran one", "ran two"]  # the first activity did not run again
    completed = await events(handle, "activity_completed")
    assert [e["seq"] for e in completed] == [1, 2]
    kinds = [e["event_type"] for e in await handle.history()]
    assert kinds == ["workflow_started", "activity_scheduled", "activity_completed", "activity_scheduled",
                     "activity_completed", "workflow_completed"]


async def test_timer_survives_all_workers_being_down_for_its_whole_duration(connection, spawn, dsn):
    proc = await spawn()
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=["slept through"], task_queue=QUEUE,
                                         workflow_name="crash_timer_workflow")
    started = (await wait_event(handle, "timer_started"))[0]
    await kill(proc)

    # The hour passes with no worker up (the engine clock is the database's).
    sql(dsn, "SELECT durable.advance_clock('1 hour 1 second')")
    assert await handle.status() == "running"
    assert await events(handle, "timer_fired") == []

    await new_worker(connection)
    assert await handle.result(timeout=30) == ["slept through", 3600.0]
    fired = (await events(handle, "timer_fired"))[0]
    assert fired["seq"] == started["seq"]
    assert timestamp(fired) - timestamp(started) >= timedelta(hours=1)


FAULT_POINTS = {  # where the worker process dies -> the activity executions the workflow ends with
    "workflow_task_claimed": ["ran one", "ran two"],
    "workflow_task_ran": ["ran one", "ran two"],      # replayed, commands not yet recorded
    "workflow_task_recorded": ["ran one", "ran two"],
    "activity_claimed": ["ran one", "ran two"],
    "activity_ran": ["ran one", "ran one", "ran two"],  # finished, not recorded: at least once
    "activity_recorded": ["ran one", "ran two"],      # recorded, its workflow task not yet run
}


@pytest.mark.parametrize("point", sorted(FAULT_POINTS))
async def test_worker_dying_at_any_step_loses_nothing_and_records_each_result_once(
        connection, spawn, tmp_path, dsn, point):
    log, marker = tmp_path / "executions.log", tmp_path / "unused"
    proc = await spawn(env={"PGDURABLE_CRASH_AT": point})
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=[str(log), str(marker)], task_queue=QUEUE,
                                         workflow_name="crash_after_activity_workflow")
    assert await asyncio.wait_for(proc.wait(), 30) == 70  # the process died at the fault point
    expire_leases(dsn)

    await new_worker(connection)
    assert await handle.result(timeout=30) == ["ONE", "TWO"]
    assert lines(log) == FAULT_POINTS[point]
    history = await handle.history()
    for kind in ("activity_scheduled", "activity_completed"):
        assert [e["seq"] for e in history if e["event_type"] == kind] == [1, 2]
    assert [e["event_type"] for e in history].count("workflow_completed") == 1
