"""Poison and stuck work: an activity that kills every worker stops after its attempts, a
workflow task that always fails backs off visibly and quietly, a long activity keeps its lease
on a live worker, and a dead worker's lease expires so its task runs elsewhere."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from pgdurable import Durable, RetryPolicy
from pgdurable import _store as store
from support.db import sql
from support.history import wait_event
from support.polling import wait_for
from support.subprocess_workers import finish, spawn_worker
from workers.rel_flows import rel_hang_flow, rel_maybe_hang


@pytest.fixture
async def connection(dsn):
    yield Durable.Connection(dsn)
    await Durable.shutdown(grace=5)


async def test_an_activity_that_kills_its_worker_every_time_stops_after_maximum_attempts(dsn, connection,
                                                                                          tmp_path):
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(task_queue="rel-poison", workflow_name="rel_poison_flow",
                                         workflow_id="rel-poison")
    marker = tmp_path / "poison-runs"
    deaths = []
    for _ in range(6):  # a new worker each time the last one died, as a supervisor would
        # Registered up front: a fresh process would otherwise only learn the activity from
        # workflow code, and no workflow task comes while the workflow waits on it.
        proc = await spawn_worker(dsn, "rel-poison", workflows="rel_poison_flow", activities="rel_poison",
                                  lease=1, until="rel-poison", env={"REL_POISON_MARKER": str(marker)})
        code, err = await finish(proc, 60)
        if code == 0:
            break
        assert code == 13, f"worker exited {code}, not by the poison activity:\n{err}"
        deaths.append(code)
    assert len(deaths) == 3, f"{len(deaths)} workers died; maximum_attempts is 3"
    assert len(marker.read_text().split()) == 3, "the poison activity ran more often than its attempts"

    outcome = await handle.result(timeout=30)
    assert outcome == {"caught": "DurableMaxedError", "error_type": "ActivityLeaseExpired", "attempts": 3}
    history = await handle.history()
    failed = [e for e in history if e["event_type"] == "activity_failed"]
    # Attempts 1 and 2 are recorded as lost; the loss of attempt 3 fails the activity.
    assert [(e["details"]["attempt"], e["details"]["maxed"]) for e in failed] == [
        (1, False), (2, False), (3, True)]
    assert {e["details"]["error"]["type"] for e in failed} == {"ActivityLeaseExpired"}
    assert not [e for e in history if e["event_type"] == "activity_completed"]


class _RefusingCodec:
    """Identity, except that it cannot decode the payload it is asked about (a poison payload)."""

    def encode(self, data: str) -> str:
        return data

    def decode(self, data: str) -> str:
        if "poison-pill" in data:
            raise ValueError("this payload cannot be decoded here")
        return data


@pytest.fixture
def refusing_codec():
    Durable.register_codec(_RefusingCodec())
    yield
    Durable.register_codec(None)


async def test_a_workflow_task_that_always_fails_backs_off_visibly_without_burning_cpu(dsn, connection,
                                                                                        refusing_codec,
                                                                                        monkeypatch):
    async def rel_undecodable(arg: str) -> str:
        return arg

    await Durable.Worker.create(connection=connection, task_queue="rel-undecodable", workflow=rel_undecodable)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=["poison-pill"], task_queue="rel-undecodable",
                                         workflow_name="rel_undecodable")
    [(channel,)] = await asyncio.to_thread(
        sql, dsn, "SELECT durable.stream_channel('durable', 'rel-undecodable')")
    expected = [1, 2, 4, 8, 16, 32, 60, 60]
    for n in range(1, len(expected) + 1):
        await wait_event(handle, "workflow_task_failed", count=n)
        if n < len(expected):
            # Skip the backoff: the engine clock moves past it, and a NOTIFY wakes the worker.
            await asyncio.to_thread(sql, dsn, "SELECT durable.advance_clock('61 seconds'), pg_notify(%s, '')",
                                    (channel,))
    failures = [e for e in await handle.history() if e["event_type"] == "workflow_task_failed"]
    assert [e["details"]["retry_in_seconds"] for e in failures] == expected
    assert failures[-1]["details"]["type"] == "PayloadError"

    state = await handle.state()
    assert state["status"] == "running"
    failure = state["last_task_failure"]
    assert failure["type"] == "PayloadError" and "cannot be decoded" in failure["message"]
    assert failure["failures"] == len(expected)

    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pgdurable.cli", "workflow", "show", handle.workflow_id, "--json", "--dsn", dsn,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await cli.communicate()
    assert cli.returncode == 0, err.decode()
    shown = json.loads(out)
    assert shown["last_task_failure"]["type"] == "PayloadError"
    assert shown["last_task_failure"]["failures"] == len(expected)

    # Now it waits 60 s for its next try: the worker must idle, not spin.
    claims = 0
    real_claim = store.claim_workflow_tasks

    async def counting_claim(*args, **kwargs):
        nonlocal claims
        claims += 1
        return await real_claim(*args, **kwargs)

    monkeypatch.setattr(store, "claim_workflow_tasks", counting_claim)
    cpu = time.process_time()
    await asyncio.sleep(2.0)
    cpu = time.process_time() - cpu
    print(f"idle for 2 s: {claims} claims, {cpu:.3f} s CPU")
    assert claims <= 5, f"{claims} claims in 2 s of idle: the worker busy-loops"


_long_runs: list[int] = []


async def rel_long_activity(x: int) -> int:
    _long_runs.append(x)
    await asyncio.sleep(3)
    return x + 1


async def rel_long_flow(x: int) -> int:
    acts = Durable.workflow.proxy_activities(activities=[rel_long_activity],
                                             retry=RetryPolicy(maximum_attempts=5, initial_interval=0.1))
    return await acts.rel_long_activity(x)


async def test_a_long_activity_on_a_live_worker_keeps_its_lease(connection):
    _long_runs.clear()
    await Durable.Worker.create(connection=connection, task_queue="rel-long", workflow=rel_long_flow,
                                lease_seconds=1)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=[41], task_queue="rel-long", workflow_name="rel_long_flow")
    assert await handle.result(timeout=30) == 42
    assert _long_runs == [41], f"the activity ran {len(_long_runs)} times: its lease was lost while it ran"
    history = await handle.history()
    done = [e for e in history if e["event_type"] == "activity_completed"]
    assert [e["details"]["attempt"] for e in done] == [1]
    assert not [e for e in history if e["event_type"] == "activity_failed"]


async def test_a_dead_workers_lease_expires_and_its_activity_runs_elsewhere(dsn, connection, tmp_path):
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=[21], task_queue="rel-hang", workflow_name="rel_hang_flow")
    marker = tmp_path / "hanging"
    proc = await spawn_worker(dsn, "rel-hang", workflows="rel_hang_flow", lease=1, until=handle.workflow_id,
                              env={"REL_HANG": "1", "REL_HANG_MARKER": str(marker)})
    try:
        await wait_for(_exists(marker), "the activity to start in the subprocess worker", timeout=60)
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)  # no shutdown: its lease is simply never renewed
        await finish(proc, 30)
    killed_at = time.monotonic()

    await Durable.Worker.create(connection=connection, task_queue="rel-hang", workflow=rel_hang_flow,
                                activities=[rel_maybe_hang], lease_seconds=1)
    assert await handle.result(timeout=30) == 42
    took = time.monotonic() - killed_at
    done = [e for e in await handle.history() if e["event_type"] == "activity_completed"]
    assert [e["details"]["attempt"] for e in done] == [2]
    print(f"the dead worker's activity ran elsewhere {took:.1f} s after the kill")


def _exists(path: Path):
    async def check() -> bool:
        return await asyncio.to_thread(path.exists)
    return check
