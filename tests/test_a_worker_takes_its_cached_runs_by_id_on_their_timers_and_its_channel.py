"""A worker that caches a parked run takes that run's task by id (``claim_workflow_task_v1``): when
the run's timer is due (an asyncio timer armed from the completion's ``wake_in``) and when its own
salted channel says the run has new events (it is the run's sticky worker). The claim loop stays
the backstop: a worker that is gone, or a run it no longer caches, costs a poll interval at most.

To see the by-id path alone, a test stops the worker's claim loop once the run is parked: then
nothing else in that worker could take the task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest

from pgdurable import Durable
from pgdurable import _store as store
from pgdurable.worker import _calls
from support.db import sql
from support.history import events, timestamp, wait_pending
from support.polling import wait_for

QUEUE = "sticky"


async def sleeping_workflow(seconds: float) -> str:
    await Durable.workflow.sleep(seconds)
    return "woke"


async def waiting_workflow(signal_id: str) -> Any:
    return await Durable.workflow.condition(signal_id)


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    yield Durable.Connection(dsn)
    await Durable.shutdown()


@pytest.fixture
def taken_by_id(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The workflow ids whose task a worker of this process took by id (a spy on the store call)."""
    taken: list[str] = []
    original = store.claim_workflow_task

    async def spy(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        rows = await original(*args, **kwargs)
        taken.extend(row["workflow_id"] for row in rows)
        return rows

    monkeypatch.setattr(store, "claim_workflow_task", spy)
    return taken


async def worker(connection: Any, workflow: Any, **kw: Any) -> Any:
    return await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=workflow, **kw)


async def start(connection: Any, workflow: Any, *args: Any) -> Any:
    client = Durable.Client(connection=connection)
    return await client.workflow.start(args=list(args), task_queue=QUEUE, workflow_name=workflow.__name__)


async def parked(w: Any, handle: Any, armed: bool = False) -> None:
    """Waits until ``w`` caches the run of ``handle`` (with its timer armed, if ``armed``)."""
    wf = w._workflow_worker
    key = (handle.workflow_id, 1)
    await wait_for(lambda: key in wf._cache and (not armed or key in wf._timers),
                   f"worker to cache {handle.workflow_id}" + (" with its timer armed" if armed else ""))


async def stop_claim_loop(w: Any) -> None:
    claimer = w._workflow_worker.claimer
    claimer.cancel()
    await asyncio.gather(claimer, return_exceptions=True)


async def lateness(handle: Any) -> float:
    """Seconds between a run's timer falling due and its timer_fired event."""
    fired = (await events(handle, "timer_fired"))[0]
    return (timestamp(fired) - datetime.fromisoformat(fired["details"]["due_at"])).total_seconds()


async def test_a_parked_runs_timer_is_fired_on_time_by_the_worker_that_caches_it(connection, taken_by_id):
    w = await worker(connection, sleeping_workflow)
    handle = await start(connection, sleeping_workflow, 1.0)
    await parked(w, handle, armed=True)
    await stop_claim_loop(w)
    assert await handle.result(timeout=20) == "woke"
    assert taken_by_id == [handle.workflow_id]
    assert 0 <= await lateness(handle) < 0.5


async def test_the_database_still_fires_the_timer_when_the_worker_that_parked_the_run_is_gone(
        connection, taken_by_id):
    first = await worker(connection, sleeping_workflow)
    handle = await start(connection, sleeping_workflow, 1.5)
    await parked(first, handle, armed=True)
    await first.shutdown()
    await worker(connection, sleeping_workflow)
    assert await handle.result(timeout=20) == "woke"
    assert taken_by_id == []  # the new worker never cached it: its claim loop fired the timer
    assert 0 <= await lateness(handle) < _calls.POLL_INTERVAL + 1.0


async def test_a_signal_reaches_the_sticky_worker_on_its_own_channel_and_it_takes_the_task_by_id(
        connection, dsn, taken_by_id):
    w = await worker(connection, waiting_workflow)
    handle = await start(connection, waiting_workflow, "sticky-go")
    await wait_pending(handle, "condition", signal_id="sticky-go")
    await parked(w, handle)
    assert sql(dsn, "SELECT sticky_worker FROM durable.workflows WHERE workflow_id = %s",
               (handle.workflow_id,)) == [(w._owner,)]
    await stop_claim_loop(w)
    await Durable.Client(connection=connection).workflow.signal("sticky-go", {"n": 1})
    assert await handle.result(timeout=20) == {"n": 1}
    assert taken_by_id == [handle.workflow_id]


async def test_stale_stickiness_costs_at_most_the_normal_path(connection, dsn, taken_by_id):
    first = await worker(connection, waiting_workflow)
    handle = await start(connection, waiting_workflow, "stale-go")
    await wait_pending(handle, "condition", signal_id="stale-go")
    await parked(first, handle)
    await first.shutdown()
    await worker(connection, waiting_workflow)
    assert sql(dsn, "SELECT sticky_worker FROM durable.workflows WHERE workflow_id = %s",
               (handle.workflow_id,)) == [(first._owner,)]  # it names a worker that is gone
    began = time.monotonic()
    await Durable.Client(connection=connection).workflow.signal("stale-go", "late?")
    assert await handle.result(timeout=20) == "late?"
    assert time.monotonic() - began < _calls.POLL_INTERVAL + 1.0
    assert taken_by_id == []


async def test_a_sticky_notify_for_a_run_the_worker_no_longer_caches_is_left_to_its_claim_loop(
        connection, taken_by_id):
    await worker(connection, waiting_workflow, max_cached_workflows=0)  # evicts every run at once
    handle = await start(connection, waiting_workflow, "evicted-go")
    await wait_pending(handle, "condition", signal_id="evicted-go")
    await Durable.Client(connection=connection).workflow.signal("evicted-go", 7)
    assert await handle.result(timeout=20) == 7
    assert taken_by_id == []
