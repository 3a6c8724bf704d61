"""Interceptors end to end: inbound (around each workflow execution), outbound (around each
proxied activity call) and activity (around the real function); order; clearing; and a
side effect that happens once although the workflow replays."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from pgdurable import Durable
from support.history import event_types, new_client

QUEUE = "intercepted"
audits: list[str] = []
inbound_runs: list[dict[str, Any]] = []
activity_log: list[str] = []
Next = Callable[[], Awaitable[Any]]


@pytest.fixture(autouse=True)
def no_interceptors_leak() -> Any:
    Durable.clear_interceptors()
    audits.clear()
    inbound_runs.clear()
    activity_log.clear()
    yield
    Durable.clear_interceptors()


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    connection = Durable.Connection(dsn)
    yield connection
    await Durable.shutdown(grace=5)


async def icpt_audit(workflow_id: str) -> str:
    audits.append(workflow_id)
    return "audited"


async def icpt_echo(tags: list[str], text: str) -> dict[str, Any]:
    activity_log.append(f"fn:{Durable.activity.get_context().activity_name}")
    return {"tags": tags, "text": text}


ACTIVITIES = [icpt_audit, icpt_echo]


async def intercepted_flow(text: str) -> dict[str, Any]:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    echoed = await acts.icpt_echo([], text)
    await Durable.workflow.sleep(0.1)
    return echoed


class AuditingInbound:
    """Audits each workflow through an activity, then wraps its result."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def execute(self, ctx: dict[str, Any], next: Next) -> Any:
        inbound_runs.append({"name": self.name, "workflow_id": ctx["workflow_id"],
                             "workflow_name": ctx["workflow_name"], "task_queue": ctx["task_queue"]})
        if self.name == "outer":
            acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
            await acts.icpt_audit(ctx["workflow_id"])
        return {self.name: await next()}


class TaggingOutbound:
    """Changes the args of icpt_echo calls: adds its tag, and may upper-case the text."""

    def __init__(self, tag: str, upper: bool = False) -> None:
        self.tag, self.upper = tag, upper

    async def execute(self, activity_ctx: dict[str, Any], workflow_ctx: dict[str, Any], next: Next) -> Any:
        if activity_ctx["activity_name"] == "icpt_echo":
            tags, text = activity_ctx["args"]
            activity_ctx["args"] = [[*tags, f"{self.tag}@{workflow_ctx['workflow_name']}"],
                                    text.upper() if self.upper else text]
        return await next()


class LoggingActivity:
    """Logs around the real function, reading the activity context."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def execute(self, activity_ctx: dict[str, Any], next: Next) -> Any:
        ctx = Durable.activity.get_context()
        activity_log.append(f"{self.name}>{ctx.activity_name}:{activity_ctx['activity_name']}")
        result = await next()
        activity_log.append(f"<{self.name}")
        return result


async def run_flow(connection: Durable.Connection, text: str, **worker_kwargs: Any) -> Any:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=intercepted_flow,
                                **worker_kwargs)
    client = new_client(connection)
    handle = await client.workflow.start(args=[text], task_queue=QUEUE, workflow_name="intercepted_flow",
                                         workflow_id=f"flow-{text}")
    return handle, await handle.result(timeout=20)


async def test_inbound_interceptors_wrap_the_workflow_first_registered_outermost(
        connection: Durable.Connection) -> None:
    Durable.register_inbound_interceptor(AuditingInbound("outer"))
    Durable.register_inbound_interceptor(AuditingInbound("inner"))
    handle, result = await run_flow(connection, "in")
    assert result == {"outer": {"inner": {"tags": [], "text": "in"}}}
    assert audits == ["flow-in"]
    assert inbound_runs[0] == {"name": "outer", "workflow_id": "flow-in", "workflow_name": "intercepted_flow",
                               "task_queue": QUEUE}
    assert [r["name"] for r in inbound_runs[:2]] == ["outer", "inner"]


async def test_outbound_interceptors_change_activity_args_first_registered_outermost(
        connection: Durable.Connection) -> None:
    Durable.register_outbound_interceptor(TaggingOutbound("first"))
    Durable.register_outbound_interceptor(TaggingOutbound("second", upper=True))
    handle, result = await run_flow(connection, "out")
    assert result == {"tags": ["first@intercepted_flow", "second@intercepted_flow"], "text": "OUT"}
    scheduled = [e for e in await handle.history() if e["event_type"] == "activity_scheduled"]
    assert scheduled[0]["details"]["args"] == [["first@intercepted_flow", "second@intercepted_flow"], "OUT"]


async def test_activity_interceptors_run_around_the_function_inside_its_context(
        connection: Durable.Connection) -> None:
    Durable.register_activity_interceptor(LoggingActivity("A"))
    Durable.register_activity_interceptor(LoggingActivity("B"))
    _, result = await run_flow(connection, "act")
    assert result == {"tags": [], "text": "act"}
    assert activity_log == ["A>icpt_echo:icpt_echo", "B>icpt_echo:icpt_echo", "fn:icpt_echo", "<B", "<A"]


async def test_cleared_interceptors_no_longer_run(connection: Durable.Connection) -> None:
    Durable.register_inbound_interceptor(AuditingInbound("outer"))
    Durable.register_outbound_interceptor(TaggingOutbound("t", upper=True))
    Durable.register_activity_interceptor(LoggingActivity("A"))
    Durable.clear_interceptors()
    _, result = await run_flow(connection, "plain")
    assert result == {"tags": [], "text": "plain"}
    assert audits == [] and inbound_runs == [] and activity_log == ["fn:icpt_echo"]


async def test_an_interceptors_durable_side_effect_happens_once_although_it_runs_on_every_replay(
        connection: Durable.Connection) -> None:
    Durable.register_inbound_interceptor(AuditingInbound("outer"))
    handle, result = await run_flow(connection, "replayed", max_cached_workflows=0)
    assert result == {"outer": {"tags": [], "text": "replayed"}}
    # No cache: every workflow task (start, audit done, echo done, timer fired) replays from the start.
    assert len(inbound_runs) >= 3
    assert audits == ["flow-replayed"]
    scheduled = [e["details"]["activity_name"] for e in await handle.history()
                 if e["event_type"] == "activity_scheduled"]
    assert scheduled == ["icpt_audit", "icpt_echo"]
    assert "workflow_task_failed" not in await event_types(handle)
