"""Durable timers and conditions: sleep, condition, signals, and asyncio's own timers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from pgdurable import Durable, errors
from pgdurable._runtime import WorkflowInfo, WorkflowRun
from support.db import sql
from support.history import events, timestamp, wait_event, wait_pending


async def sleep_returns_workflow() -> list[float]:
    return [await Durable.workflow.sleep(0.1), await Durable.workflow.sleep("150ms"),
            await Durable.workflow.sleep(timedelta(milliseconds=50)), await Durable.workflow.sleep(0)]


async def bad_duration_caught_workflow(duration: Any) -> str:
    try:
        await Durable.workflow.sleep(duration)
    except ValueError as exc:
        return f"ValueError: {exc}"
    return "no error"


async def bad_duration_uncaught_workflow() -> None:
    await Durable.workflow.sleep("soon-ish")


async def condition_workflow(signal_id: str) -> Any:
    return await Durable.workflow.condition(signal_id)


async def condition_timeout_workflow(signal_id: str) -> Any:
    return await Durable.workflow.condition(signal_id, timeout="200ms")


async def asyncio_timers_workflow(signal_id: str) -> dict[str, Any]:
    before = Durable.workflow.now()
    slept = await asyncio.sleep(0.2, result="slept")
    after = Durable.workflow.now()
    try:
        await asyncio.wait_for(Durable.workflow.condition(signal_id + "-never"), timeout=0.1)
        timed_out = False
    except TimeoutError:
        timed_out = True
    data = await asyncio.wait_for(Durable.workflow.condition(signal_id), timeout=30)
    return {"slept": slept, "elapsed": (after - before).total_seconds(), "timed_out": timed_out,
            "data": data}


async def signalling_workflow(signal_id: str, data: Any) -> str:
    await Durable.workflow.signal(signal_id, data)
    return "sent"


async def abandoned_condition_workflow(signal_id: str) -> Any:
    try:
        await asyncio.wait_for(Durable.workflow.condition(signal_id), timeout=0.1)
    except TimeoutError:
        pass
    return await Durable.workflow.condition(signal_id)


async def timer_quick_step() -> str:
    return "quick"


async def abandoned_timeout_workflow(signal_id: str) -> list[Any]:
    acts = Durable.workflow.proxy_activities(activities=[timer_quick_step])
    quick = await asyncio.wait_for(acts.timer_quick_step(), timeout=3600)  # its timer is abandoned
    return [quick, await Durable.workflow.condition(signal_id)]


async def abandoned_sleep_workflow(signal_id: str) -> list[Any]:
    try:
        await asyncio.wait_for(Durable.workflow.sleep("1 hour"), timeout=0.1)  # the hour is abandoned
        timed_out = False
    except TimeoutError:
        timed_out = True
    return [timed_out, await Durable.workflow.condition(signal_id)]


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    yield Durable.Connection(dsn)
    await Durable.shutdown()


async def start(connection: Any, workflow: Any, *args: Any, cache: int = 1000, **kw: Any) -> Any:
    await Durable.Worker.create(connection=connection, task_queue="timers", workflow=workflow,
                                max_cached_workflows=cache)
    client = Durable.Client(connection=connection)
    return await client.workflow.start(args=list(args), task_queue="timers",
                                       workflow_name=workflow.__name__, **kw)


async def test_sleep_returns_the_requested_seconds(connection):
    handle = await start(connection, sleep_returns_workflow)
    assert await handle.result(timeout=20) == [0.1, 0.15, 0.05, 0.0]
    started = await events(handle, "timer_started")
    fired = await events(handle, "timer_fired")
    assert [e["details"]["seconds"] for e in started] == [0.1, 0.15, 0.05, 0.0]
    for begin, end in zip(started, fired, strict=True):
        assert end["seq"] == begin["seq"]
        assert (timestamp(end) - timestamp(begin)).total_seconds() >= begin["details"]["seconds"]


@pytest.mark.parametrize("duration", ["soon-ish", "5 fortnights", -1, "", [1]])
async def test_bad_sleep_duration_raises_value_error_at_the_call(connection, duration):
    handle = await start(connection, bad_duration_caught_workflow, duration)
    result = await handle.result(timeout=20)
    assert result.startswith("ValueError: invalid duration")
    assert await events(handle, "timer_started") == []


async def test_uncaught_bad_sleep_duration_fails_the_workflow_with_value_error(connection):
    handle = await start(connection, bad_duration_uncaught_workflow)
    with pytest.raises(errors.WorkflowFailedError) as info:
        await handle.result(timeout=20)
    assert info.value.error_type == "ValueError"
    assert "soon-ish" in info.value.message
    assert "bad_duration_uncaught_workflow" in (info.value.traceback or "")
    assert await handle.status() == "failed"


async def test_condition_resumes_with_the_signal_data(connection):
    handle = await start(connection, condition_workflow, "approve-1")
    await wait_pending(handle, "condition", signal_id="approve-1")
    client = Durable.Client(connection=connection)
    await client.workflow.signal("approve-1", {"approved": True, "by": "ana"})
    assert await handle.result(timeout=20) == {"approved": True, "by": "ana"}
    received = await events(handle, "signal_received")
    assert [e["details"]["data"] for e in received] == [{"approved": True, "by": "ana"}]


async def test_condition_with_timeout_returns_false_when_no_signal_comes(connection):
    handle = await start(connection, condition_timeout_workflow, "nobody-sends-this")
    assert await handle.result(timeout=20) is False
    assert [e["event_type"] for e in await events(handle)] == [
        "workflow_started", "signal_wait_started", "signal_timed_out", "workflow_completed"]


async def test_signal_arriving_after_a_condition_timed_out_stays_buffered(connection):
    handle = await start(connection, condition_timeout_workflow, "late-signal")
    assert await handle.result(timeout=20) is False
    client = Durable.Client(connection=connection)
    await client.workflow.signal("late-signal", "late")
    second = await client.workflow.start(args=["late-signal"], task_queue="timers",
                                         workflow_name="condition_timeout_workflow")
    assert await second.result(timeout=20) == "late"


async def test_signal_sent_before_condition_is_not_lost(connection):
    await Durable.Worker.create(connection=connection, task_queue="timers", workflow=condition_workflow,
                                concurrency=20)
    client = Durable.Client(connection=connection)

    async def start_and_signal(i: int) -> Any:
        handle = await client.workflow.start(args=[f"early-{i}"], task_queue="timers",
                                             workflow_name="condition_workflow", workflow_id=f"early-wf-{i}")
        await client.workflow.signal(f"early-{i}", {"n": i})
        return handle

    handles = await asyncio.gather(*(start_and_signal(i) for i in range(100)))
    results = await asyncio.gather(*(h.result(timeout=60) for h in handles))
    assert results == [{"n": i} for i in range(100)]


async def test_asyncio_sleep_and_wait_for_inside_a_workflow_are_durable_timers(connection):
    # No cache: each step replays from history, so the timers must be durable to get this far.
    handle = await start(connection, asyncio_timers_workflow, "go", cache=0)
    await wait_pending(handle, "condition", signal_id="go")
    await Durable.Client(connection=connection).workflow.signal("go", 42)
    result = await handle.result(timeout=20)
    assert result["slept"] == "slept"
    assert result["elapsed"] >= 0.2
    assert result["timed_out"] is True
    assert result["data"] == 42
    timers = await events(handle, "timer_started")
    assert [e["details"]["seconds"] for e in timers][:2] == [0.2, 0.1]
    assert len(timers) == 3  # asyncio.sleep, and one timer per wait_for
    fired = {e["seq"] for e in await events(handle, "timer_fired")}
    assert timers[0]["seq"] in fired and timers[1]["seq"] in fired


async def test_condition_with_timeout_resumes_with_the_data_when_the_signal_comes_first(connection):
    await Durable.Worker.create(connection=connection, task_queue="timers",
                                workflow=condition_timeout_workflow)
    client = Durable.Client(connection=connection)
    await client.workflow.signal("in-time", [1, 2])  # buffered: the condition takes it at once
    handle = await client.workflow.start(args=["in-time"], task_queue="timers",
                                         workflow_name="condition_timeout_workflow")
    assert await handle.result(timeout=20) == [1, 2]
    assert await events(handle, "signal_timed_out") == []


async def test_signal_sent_from_a_workflow_wakes_another_workflows_condition(connection):
    await Durable.Worker.create(connection=connection, task_queue="timers",
                                workflows=[condition_workflow, signalling_workflow])
    client = Durable.Client(connection=connection)
    waiter = await client.workflow.start(args=["from-wf"], task_queue="timers",
                                         workflow_name="condition_workflow")
    await wait_pending(waiter, "condition", signal_id="from-wf")
    sender = await client.workflow.start(args=["from-wf", {"hello": "there"}], task_queue="timers",
                                         workflow_name="signalling_workflow")
    assert await sender.result(timeout=20) == "sent"
    assert await waiter.result(timeout=20) == {"hello": "there"}
    sent = await events(sender, "signal_sent")
    assert [(e["details"]["signal_id"], e["details"]["data"]) for e in sent] == [
        ("from-wf", {"hello": "there"})]


async def test_condition_abandoned_by_wait_for_does_not_swallow_a_later_signal(connection):
    handle = await start(connection, abandoned_condition_workflow, "abandoned")
    await wait_event(handle, "signal_wait_started", count=2)
    await Durable.Client(connection=connection).workflow.signal("abandoned", "for the live condition")
    assert await handle.result(timeout=2) == "for the live condition"


async def durable_timers_of(dsn: str, workflow_id: str) -> list[Any]:
    return sql(dsn, "SELECT payload->>'seq' FROM durable.messages WHERE workflow_id = %s AND kind = 'timer'",
               (workflow_id,))


@pytest.mark.parametrize("cache", [1000, 0])
async def test_timeout_abandoned_by_wait_for_cancels_its_durable_timer(connection, dsn, cache):
    handle = await start(connection, abandoned_timeout_workflow, "after-timeout", cache=cache)
    await wait_pending(handle, "condition", signal_id="after-timeout")
    [started] = await events(handle, "timer_started")
    assert started["details"]["seconds"] == 3600
    [cancelled] = await events(handle, "timer_cancelled")
    assert cancelled["seq"] == started["seq"]
    assert [p["type"] for p in (await handle.state())["pending"]] == ["condition"]
    assert await durable_timers_of(dsn, handle.workflow_id) == []

    await Durable.Client(connection=connection).workflow.signal("after-timeout", "go")
    assert await handle.result(timeout=20) == ["quick", "go"]
    assert await events(handle, "workflow_task_failed") == []
    assert len(await events(handle, "timer_cancelled")) == 1


async def test_durable_sleep_abandoned_by_wait_for_cancels_its_timer(connection, dsn):
    handle = await start(connection, abandoned_sleep_workflow, "after-sleep", cache=0)
    await wait_pending(handle, "condition", signal_id="after-sleep")
    hour = [e for e in await events(handle, "timer_started") if e["details"]["seconds"] == 3600]
    assert [e["seq"] for e in await events(handle, "timer_cancelled")] == [hour[0]["seq"]]
    assert [p["type"] for p in (await handle.state())["pending"]] == ["condition"]
    assert await durable_timers_of(dsn, handle.workflow_id) == []
    await Durable.Client(connection=connection).workflow.signal("after-sleep", "go")
    assert await handle.result(timeout=20) == [True, "go"]
    assert await events(handle, "workflow_task_failed") == []


async def test_replaying_a_history_with_a_cancelled_timer_produces_no_new_command(connection, dsn):
    handle = await start(connection, abandoned_timeout_workflow, "replayed")
    await wait_pending(handle, "condition", signal_id="replayed")
    rows = sql(dsn, "SELECT event_id, event_type, seq, inbound, data, created_at "
                    "FROM durable.run_history_v1('durable', %s, 1)", (handle.workflow_id,))
    history = [dict(zip(("event_id", "event_type", "seq", "inbound", "data", "created_at"), row, strict=True))
               for row in rows]
    assert "timer_cancelled" in [e["event_type"] for e in history]
    info = WorkflowInfo(workflow_id=handle.workflow_id, workflow_name="abandoned_timeout_workflow",
                        namespace="durable", task_queue="timers", attempt=1, parent_workflow_id=None,
                        run_id=1)
    run = WorkflowRun(info, abandoned_timeout_workflow, ["replayed"], history[0]["created_at"])
    try:
        assert run.activate(run.load_history(history)) == []
        assert run.failure is None
    finally:
        run.evict()
