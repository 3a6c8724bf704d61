"""Crash recovery: a worker process killed with SIGKILL mid-activity, right after an activity,
or while a timer runs, or dying at any step boundary (``PGDURABLE_CRASH_AT``), loses nothing:
another worker finishes the workflow, each activity result is recorded exactly once (an activity
runs again only if its result was not recorded), and timers fire while no worker is up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pgdurable import Durable
from pgdurable._faults import POINTS
from support.db import sql
from support.history import comparable, events, timestamp, wait_event, wait_pending
from support.polling import wait_for
from support.subprocess_workers import Process, finish, kill, ready_workers, spawn_worker
from workers import crash_app
from workers.rel_flows import EXECUTIONS_LOG, rel_crash_flow

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


# Where the worker process dies -> the activity executions the workflow ends with.
EXECUTIONS = {
    "workflow_task_claimed": ["rel_crash_a", "rel_crash_b"],
    "workflow_task_ran": ["rel_crash_a", "rel_crash_b"],  # replayed, commands not yet recorded
    "workflow_task_recorded": ["rel_crash_a", "rel_crash_b"],
    "activity_claimed": ["rel_crash_a", "rel_crash_b"],
    "activity_ran": ["rel_crash_a", "rel_crash_a", "rel_crash_b"],  # finished, not recorded: at least once
    "activity_recorded": ["rel_crash_a", "rel_crash_b"],  # recorded, its workflow task not yet run
    # The first group commit is the first workflow task's: gathered (not sent), then committed.
    "completions_gathered": ["rel_crash_a", "rel_crash_b"],
    "completions_committed": ["rel_crash_a", "rel_crash_b"],
}

# Lost leases leave traces a crash-free run does not have; everything else must match.
IGNORED = {"workflow_task_failed"}


def essential(history: list[dict]) -> list[tuple]:
    """Event types, seqs and details, without timestamps, task failures and lease-loss failures."""
    kept = [e for e in history if e["event_type"] not in IGNORED
            and not (e["event_type"] == "activity_failed"
                     and (e["details"].get("error") or {}).get("type") == "ActivityLeaseExpired")]
    # The attempt that finally recorded an activity differs after a crash (and each run here
    # has its own task queue); nothing else may.
    return comparable([{**e, "details": {k: v for k, v in e["details"].items()
                                         if k not in ("attempt", "task_queue")}} for e in kept])


def executions(log: Path, workflow_id: str) -> list[str]:
    """The activities ``workflow_id`` ran, in order, in any process (see ``EXECUTIONS_LOG``)."""
    return [line.split()[1] for line in lines(log) if line.split()[0] == workflow_id]


async def test_a_worker_crash_at_every_step_boundary_changes_nothing_but_the_time_taken(
        dsn, connection, tmp_path, monkeypatch):
    log = tmp_path / "executions.log"
    monkeypatch.setenv(EXECUTIONS_LOG, str(log))  # for this process and the workers it starts
    client = Durable.Client(connection=connection)
    points = sorted(POINTS)
    assert sorted(EXECUTIONS) == points, "a new fault point needs its expected executions here"

    # The crash-free reference run, in-process.
    await Durable.Worker.create(connection=connection, task_queue="rel-crash-ref", workflow=rel_crash_flow,
                                lease_seconds=1)
    ref = await client.workflow.start(args=["o-1"], task_queue="rel-crash-ref",
                                      workflow_name="rel_crash_flow", workflow_id="rel-crash-ref")
    assert await ref.result(timeout=30) == "b(o-1,a(o-1))"
    reference = essential(await ref.history())
    assert executions(log, "rel-crash-ref") == ["rel_crash_a", "rel_crash_b"]

    # One crashing worker per point, all at once, each on its own queue.
    handles, procs = {}, {}
    for point in points:
        queue = f"rel-crash-{point}"
        handles[point] = await client.workflow.start(args=["o-1"], task_queue=queue,
                                                     workflow_name="rel_crash_flow",
                                                     workflow_id=f"rel-crash-{point}")
        procs[point] = await spawn_worker(dsn, queue, workflows="rel_crash_flow", lease=1,
                                          until=f"rel-crash-{point}", env={"PGDURABLE_CRASH_AT": point})
    outcomes = dict(zip(points, await asyncio.gather(*(finish(procs[p], 60) for p in points)), strict=True))
    for point, (code, err) in outcomes.items():
        assert code == 70, f"worker armed at {point} exited {code}, not 70 (did it reach the point?):\n{err}"

    # Clean workers finish every one.
    for point in points:
        await Durable.Worker.create(connection=connection, task_queue=f"rel-crash-{point}",
                                    workflow=rel_crash_flow, lease_seconds=1)
    results = await asyncio.gather(*(handles[p].result(timeout=60) for p in points))
    assert results == ["b(o-1,a(o-1))"] * len(points)
    for point in points:
        history = await handles[point].history()
        assert essential(history) == reference, f"history after a crash at {point} differs"
        completed = [e for e in history if e["event_type"] == "workflow_completed"]
        assert len(completed) == 1
        # The crash really happened where it was armed: an activity lost before its result was
        # recorded ran again (attempt 2); one recorded before the crash did not.
        first = next(e for e in history if e["event_type"] == "activity_completed")
        if point in ("activity_claimed", "activity_ran"):
            assert first["details"]["attempt"] == 2, (point, first)
        elif point == "activity_recorded":
            assert first["details"]["attempt"] == 1, (point, first)
        assert executions(log, f"rel-crash-{point}") == EXECUTIONS[point], point


async def test_a_fresh_worker_process_runs_the_activity_its_crashed_predecessor_left_pending(dsn, connection):
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=["o-2"], task_queue="rel-fresh", workflow_name="rel_crash_flow")
    crashing = await spawn_worker(dsn, "rel-fresh", workflows="rel_crash_flow", lease=1,
                                  env={"PGDURABLE_CRASH_AT": "activity_claimed"})
    code, err = await finish(crashing, 60)
    assert code == 70, err
    # The restarted worker, as a deployment would run it: the workflow only.
    fresh = await spawn_worker(dsn, "rel-fresh", workflows="rel_crash_flow", lease=1,
                               until=handle.workflow_id, timeout=8)
    code, err = await finish(fresh, 60)
    assert code == 0, f"the workflow still waits on its activity 8 s after a fresh worker started:\n{err}"
