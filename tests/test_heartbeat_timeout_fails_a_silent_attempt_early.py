"""Ported from Temporal's ``hello_activity_heartbeat``: with ``heartbeat_timeout``, an attempt that
stops heartbeating for that long is failed as a ``DurableTimeoutError`` (recorded in the history)
and retried per the policy, long before its ``start_to_close_timeout``; its heartbeat details reach
the next attempt, and the silent attempt's late result is discarded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pgdurable import Durable, RetryPolicy
from support.history import events, new_client
from support.polling import wait_for

QUEUE = "porting-heartbeat"
seen: list[dict[str, Any]] = []


async def compose_greeting(greeting: str, name: str) -> str:
    ctx = Durable.activity.get_context()
    seen.append({"attempt": ctx.attempt, "details": ctx.heartbeat_details})
    if ctx.attempt == 1:
        Durable.activity.heartbeat("step 1")
        # Goes silent, like a hung call: the engine times the attempt out; the worker then finds the
        # lease lost (after the engine retried it) and this attempt's result is discarded.
        await wait_for(lambda: ctx.lease_lost, "the silent attempt to lose its lease", timeout=30)
        seen.append({"attempt": 1, "noticed": "lease lost"})
        return "late and discarded"
    for step in range(3):
        Durable.activity.heartbeat(f"step {step + 2}")
        await asyncio.sleep(0.1)
    return f"{greeting}, {name}!"


async def greeting_workflow(name: str) -> str:
    acts = Durable.workflow.proxy_activities(
        activities=[compose_greeting], start_to_close_timeout="60 seconds", heartbeat_timeout="1 second",
        retry=RetryPolicy(maximum_attempts=3, initial_interval=0.1))
    return await acts.compose_greeting("Hello", name)


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    seen.clear()
    yield Durable.Connection(dsn)
    await Durable.shutdown(grace=5)


async def test_an_attempt_that_stops_heartbeating_is_timed_out_and_retried(
        connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=greeting_workflow)
    client = new_client(connection)
    began = time.monotonic()
    handle = await client.workflow.start(args=["World"], task_queue=QUEUE, workflow_name="greeting_workflow")
    assert await handle.result(timeout=30) == "Hello, World!"
    assert time.monotonic() - began < 20  # far below the 60 s start_to_close_timeout
    # The silent attempt's worker learns it lost the lease (a renewal each third of the timeout).
    await wait_for(lambda: len(seen) == 3, "the silent attempt to notice it lost its lease", timeout=10)
    assert seen[0] == {"attempt": 1, "details": None}
    assert {"attempt": 2, "details": "step 1"} in seen[1:]  # heartbeat details reach the next attempt
    assert {"attempt": 1, "noticed": "lease lost"} in seen[1:]
    failures = await events(handle, "activity_failed")
    assert len(failures) == 1
    assert failures[0]["details"]["error"]["type"] == "DurableTimeoutError"
    message = failures[0]["details"]["error"]["message"]
    assert "sent no heartbeat within its heartbeat_timeout of 1.0 s" in message
    scheduled = (await events(handle, "activity_scheduled"))[0]
    assert scheduled["details"]["heartbeat_timeout"] == 1.0
    completed = await events(handle, "activity_completed")
    assert [c["details"]["result"] for c in completed] == ["Hello, World!"]


def test_heartbeat_timeout_must_be_positive() -> None:
    from pgdurable.workflow import ActivityProxy

    with pytest.raises(ValueError, match="heartbeat_timeout"):
        ActivityProxy(None, None, RetryPolicy(), None, None, heartbeat_timeout=0)
