"""The in-activity API end to end: get_context() in async and sync activities, heartbeat
details reaching the next attempt, and start_to_close_timeout."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from pgdurable import Durable, RetryPolicy, errors
from support.history import event_types, new_client
from support.polling import wait_for

QUEUE = "activity-context"
attempts_seen: list[dict[str, Any]] = []
gate = threading.Event()


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    attempts_seen.clear()
    gate.clear()
    connection = Durable.Connection(dsn)
    yield connection
    gate.set()
    await Durable.shutdown(grace=5)


def context_fields() -> dict[str, Any]:
    ctx = Durable.activity.get_context()
    return {"activity_name": ctx.activity_name, "args": ctx.args, "headers": ctx.headers,
            "workflow_id": ctx.workflow_id, "workflow_name": ctx.workflow_name, "task_queue": ctx.task_queue,
            "attempt": ctx.attempt, "namespace": ctx.namespace, "thread": threading.current_thread().name}


async def ctx_async_probe(order_id: str, amount: int) -> dict[str, Any]:
    return context_fields()


def ctx_sync_probe(order_id: str, amount: int) -> dict[str, Any]:
    return context_fields()


async def ctx_async_heartbeater() -> dict[str, Any]:
    ctx = Durable.activity.get_context()
    attempts_seen.append({"attempt": ctx.attempt, "details": ctx.heartbeat_details})
    if ctx.attempt == 1:
        Durable.activity.heartbeat({"processed": 3, "cursor": "row-3"})
        await asyncio.to_thread(gate.wait, 20)
        raise ConnectionError("lost the upstream after row 3")
    return {"resumed_from": ctx.heartbeat_details}


def ctx_sync_heartbeater() -> dict[str, Any]:
    ctx = Durable.activity.get_context()
    attempts_seen.append({"attempt": ctx.attempt, "details": ctx.heartbeat_details})
    if ctx.attempt == 1:
        Durable.activity.heartbeat({"processed": 7, "cursor": "row-7"})  # from the activity's thread
        gate.wait(20)
        raise ConnectionError("lost the upstream after row 7")
    return {"resumed_from": ctx.heartbeat_details}


async def ctx_sleeper(first_attempt_only: bool) -> str:
    attempt = Durable.activity.get_context().attempt
    attempts_seen.append({"attempt": attempt})
    if attempt == 1 or not first_attempt_only:
        await asyncio.sleep(30)
    return f"finished on attempt {attempt}"


ACTIVITIES = [ctx_async_probe, ctx_sync_probe, ctx_async_heartbeater, ctx_sync_heartbeater, ctx_sleeper]


async def reads_activity_contexts(order_id: str) -> dict[str, Any]:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES, headers={"tenant": "acme", "trace": 42})
    return {"async": await acts.ctx_async_probe(order_id, 10),
            "sync": await acts.ctx_sync_probe(order_id, 20)}


async def heartbeats_then_fails(which: str) -> dict[str, Any]:
    acts = Durable.workflow.proxy_activities(
        activities=ACTIVITIES, retry=RetryPolicy(maximum_attempts=2, initial_interval=0.1))
    return await getattr(acts, which)()


async def times_out(first_attempt_only: bool) -> dict[str, Any]:
    acts = Durable.workflow.proxy_activities(
        activities=ACTIVITIES, start_to_close_timeout=0.3,
        retry=RetryPolicy(maximum_attempts=2, initial_interval=0.1))
    try:
        return {"result": await acts.ctx_sleeper(first_attempt_only)}
    except errors.DurableMaxedError as exc:
        return {"caught": type(exc).__name__, "error_type": exc.error_type, "message": exc.message}


async def test_get_context_describes_the_call_in_async_and_sync_activities(
        connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=reads_activity_contexts)
    client = new_client(connection)
    handle = await client.workflow.start(args=["order-9"], task_queue=QUEUE,
                                         workflow_name="reads_activity_contexts", workflow_id="ctx-wf")
    seen = await handle.result(timeout=20)
    common = {"headers": {"tenant": "acme", "trace": 42}, "workflow_id": "ctx-wf",
              "workflow_name": "reads_activity_contexts", "task_queue": QUEUE, "attempt": 1,
              "namespace": "durable"}
    async_ctx, sync_ctx = seen["async"], seen["sync"]
    assert {k: async_ctx[k] for k in common} == common
    assert {k: sync_ctx[k] for k in common} == common
    assert async_ctx["activity_name"] == "ctx_async_probe" and async_ctx["args"] == ["order-9", 10]
    assert sync_ctx["activity_name"] == "ctx_sync_probe" and sync_ctx["args"] == ["order-9", 20]
    assert async_ctx["thread"] == threading.main_thread().name
    assert sync_ctx["thread"] != threading.main_thread().name  # plain def activities run in a thread


def test_get_context_outside_an_activity_raises() -> None:
    with pytest.raises(RuntimeError, match="inside an activity"):
        Durable.activity.get_context()


@pytest.mark.parametrize("which", ["ctx_async_heartbeater", "ctx_sync_heartbeater"])
async def test_heartbeat_details_reach_the_next_attempt(connection: Durable.Connection,
                                                        conn: psycopg.Connection, which: str) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=heartbeats_then_fails,
                                lease_seconds=0.6)
    client = new_client(connection)
    handle = await client.workflow.start(args=[which], task_queue=QUEUE,
                                         workflow_name="heartbeats_then_fails")

    async def details_stored() -> bool:
        row = conn.execute("SELECT bool_or(payload ? 'heartbeat_details') FROM durable.messages "
                           "WHERE workflow_id = %s AND kind = 'activity'", [handle.workflow_id]).fetchone()
        return bool(row and row[0])

    await wait_for(details_stored, "the worker to flush the heartbeat details")
    gate.set()  # now the first attempt fails
    row = 3 if "async" in which else 7
    expected = {"processed": row, "cursor": f"row-{row}"}
    assert await handle.result(timeout=20) == {"resumed_from": expected}
    assert attempts_seen == [{"attempt": 1, "details": None}, {"attempt": 2, "details": expected}]
    assert (await event_types(handle)).count("activity_failed") == 1


async def test_an_attempt_past_start_to_close_timeout_is_retried_then_maxed_as_a_timeout(
        connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=times_out)
    client = new_client(connection)
    handle = await client.workflow.start(args=[False], task_queue=QUEUE, workflow_name="times_out")
    outcome = await handle.result(timeout=20)  # far below the 30 s each attempt would sleep
    assert outcome["caught"] == "DurableMaxedError"
    assert outcome["error_type"] == "DurableTimeoutError"
    assert "start_to_close_timeout" in outcome["message"]
    assert [a["attempt"] for a in attempts_seen] == [1, 2]
    failures = [e for e in await handle.history() if e["event_type"] == "activity_failed"]
    assert [f["details"]["error"]["type"] for f in failures] == ["DurableTimeoutError"] * 2


async def test_a_timed_out_attempt_is_retried_and_a_later_attempt_may_succeed(
        connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=times_out)
    client = new_client(connection)
    handle = await client.workflow.start(args=[True], task_queue=QUEUE, workflow_name="times_out")
    assert await handle.result(timeout=20) == {"result": "finished on attempt 2"}
    assert [a["attempt"] for a in attempts_seen] == [1, 2]
