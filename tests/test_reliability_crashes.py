"""A worker that dies at any step boundary (``PGDURABLE_CRASH_AT``) loses nothing: a second,
clean worker finishes the workflow, and its history is the same as a crash-free run's."""

from __future__ import annotations

import asyncio

import pytest

from pgdurable import Durable
from pgdurable._faults import POINTS
from support.history import comparable
from support.subprocess_workers import finish, spawn_worker
from workers.rel_flows import rel_crash_flow

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


@pytest.fixture
async def connection(dsn):
    yield Durable.Connection(dsn)
    await Durable.shutdown(grace=5)


async def test_a_worker_crash_at_every_step_boundary_changes_nothing_but_the_time_taken(dsn, connection):
    client = Durable.Client(connection=connection)
    points = sorted(POINTS)

    # The crash-free reference run, in-process.
    await Durable.Worker.create(connection=connection, task_queue="rel-crash-ref", workflow=rel_crash_flow,
                                lease_seconds=1)
    ref = await client.workflow.start(args=["o-1"], task_queue="rel-crash-ref",
                                      workflow_name="rel_crash_flow", workflow_id="rel-crash-ref")
    assert await ref.result(timeout=30) == "b(o-1,a(o-1))"
    reference = essential(await ref.history())

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
