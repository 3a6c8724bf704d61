"""Tracing (``pgdurable.otel``): one trace covers the client's start, every workflow task, every
activity attempt and a child workflow, across two worker processes, with each span under the one
that caused it. Spans are caught by the OpenTelemetry SDK's in-memory exporter in each process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from pgdurable import Durable, errors, otel
from support.history import wait_event
from support.polling import wait_for
from support.subprocess_workers import TESTS_DIR, finish, wait_ready
from workers.traced_worker import span_json


@pytest.fixture
async def traced() -> AsyncIterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.instrument(tracer_provider=provider)
    yield provider, exporter
    otel.uninstrument()
    await Durable.shutdown()


async def spawn(dsn: str, role: str, spans: Path, until: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR),
                                                                      os.environ.get("PYTHONPATH")]))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.traced_worker", dsn, role, str(spans), until, cwd=TESTS_DIR, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    await wait_ready(proc)
    return proc


def read_spans(process: str, path: Path) -> list[dict[str, Any]]:
    return [{**json.loads(line), "process": process} for line in path.read_text().splitlines()]


def write_tree(tree: str, path: Path) -> None:
    """Writes the rendered tree (also to $PGDURABLE_TRACE_OUT: the README's trace comes from it)."""
    path.write_text(tree + "\n")
    if os.environ.get("PGDURABLE_TRACE_OUT"):
        Path(os.environ["PGDURABLE_TRACE_OUT"]).write_text(tree + "\n")


def render(spans: list[dict[str, Any]]) -> str:
    """The span tree as text: names and pgdurable attributes, children in start order."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in sorted(spans, key=lambda s: s["start"]):
        children.setdefault(span["parent_id"], []).append(span)
    lines: list[str] = []

    def walk(span: dict[str, Any], prefix: str, last: bool, root: bool) -> None:
        attrs = span["attributes"]
        words = [span["name"]]
        for key in ("pgdurable.workflow_name", "pgdurable.activity_name", "pgdurable.attempt",
                    "pgdurable.signal_id"):
            if key in attrs:
                words.append(f"{key.removeprefix('pgdurable.')}={attrs[key]}")
        if span["status"] == "ERROR":
            words.append("ERROR (" + ", ".join(span["events"]) + ")")
        words.append(f"[{span['process']}]")
        lines.append(("" if root else prefix + ("└─ " if last else "├─ ")) + "  ".join(words))
        kids = children.get(span["span_id"], [])
        for i, kid in enumerate(kids):
            walk(kid, "" if root else prefix + ("   " if last else "│  "), i == len(kids) - 1, False)

    for root in children.get(None, []):
        walk(root, "", True, True)
    return "\n".join(lines)


async def test_one_trace_covers_the_client_workflow_tasks_activities_and_a_child_across_two_processes(
        dsn, traced, tmp_path):
    provider, exporter = traced
    workflows_file, acts_file = tmp_path / "workflows.jsonl", tmp_path / "acts.jsonl"
    workflows = await spawn(dsn, "workflows", workflows_file, "order-7")
    acts = await spawn(dsn, "acts", acts_file, "order-7")
    client = Durable.Client(connection=Durable.Connection(dsn))
    with provider.get_tracer("shop").start_as_current_span("checkout"):
        handle = await client.workflow.start(args=["order-7"], task_queue="traced",
                                             workflow_name="traced_order", workflow_id="order-7")
        await client.workflow.signal("order-notes", {"gift": True})
    assert await handle.result(timeout=60) == "receipt-order-7"
    for proc in (workflows, acts):
        code, err = await finish(proc)
        assert code == 0, err[-3000:]

    spans = [{**span_json(s), "process": "client"} for s in exporter.get_finished_spans()]
    spans += read_spans("worker 1", workflows_file) + read_spans("worker 2", acts_file)
    by_id = {s["span_id"]: s for s in spans}
    tree = render(spans)
    write_tree(tree, tmp_path / "trace.txt")

    def named(name: str, **attrs: Any) -> list[dict[str, Any]]:
        return [s for s in spans if s["name"] == name
                and all(s["attributes"].get(f"pgdurable.{k}") == v for k, v in attrs.items())]

    def parent(span: dict[str, Any]) -> dict[str, Any]:
        return by_id[span["parent_id"]]

    assert {s["trace_id"] for s in spans} == {spans[0]["trace_id"]}, tree
    assert {s["process"] for s in spans} == {"client", "worker 1", "worker 2"}, tree
    (checkout,) = named("checkout")
    (start,) = named("pgdurable.start_workflow", workflow_id="order-7", workflow_name="traced_order")
    (signal,) = named("pgdurable.signal", signal_id="order-notes")
    assert parent(start) is checkout and parent(signal) is checkout
    order_tasks = named("pgdurable.workflow_task", workflow_name="traced_order")
    assert len(order_tasks) >= 3, tree
    assert all(parent(t) is start and t["process"] == "worker 1" for t in order_tasks), tree
    assert all(t["attributes"]["pgdurable.workflow_id"] == "order-7" for t in order_tasks)

    charges = sorted(named("pgdurable.activity", activity_name="charge"), key=lambda s: s["start"])
    assert [c["attributes"]["pgdurable.attempt"] for c in charges] == [1, 2], tree
    assert charges[0]["status"] == "ERROR" and "exception" in charges[0]["events"], tree
    assert charges[1]["status"] != "ERROR"
    assert parent(charges[0]) is parent(charges[1]) and parent(charges[0]) in order_tasks, tree
    (notify,) = named("pgdurable.activity", activity_name="notify", attempt=1)
    assert parent(notify) in order_tasks and parent(notify) is not parent(charges[0]), tree
    assert all(a["process"] == "worker 2" and a["attributes"]["pgdurable.workflow_id"] == "order-7"
               and a["attributes"]["pgdurable.workflow_name"] == "traced_order" for a in charges + [notify])

    child_tasks = named("pgdurable.workflow_task", workflow_name="archive_receipt",
                        workflow_id="order-7-archive")
    assert child_tasks and all(parent(t) in order_tasks and t["process"] == "worker 2"
                               for t in child_tasks), tree
    (archive,) = named("pgdurable.activity", activity_name="archive")
    assert parent(archive) in child_tasks, tree


async def waits_for_go() -> str:
    return await Durable.workflow.condition("go")


async def test_a_workflow_task_after_a_worker_restart_still_joins_the_trace_its_start_began(dsn, traced):
    provider, exporter = traced
    connection = Durable.Connection(dsn)
    worker = await Durable.Worker.create(connection=connection, task_queue="restart", workflow=waits_for_go)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(task_queue="restart", workflow_name="waits_for_go")
    await wait_event(handle, "signal_wait_started")
    await worker.shutdown()
    # A new instrumentation remembers no run: like a restarted process, it reads the trace
    # context from the run's history.
    otel.instrument(tracer_provider=provider)
    await Durable.Worker.create(connection=connection, task_queue="restart", workflow=waits_for_go)
    await handle.signal("go", "went")
    assert await handle.result(timeout=30) == "went"

    # The last task's span ends once the worker has recorded it: a moment after the client sees it.
    def both_tasks() -> Any:
        spans = exporter.get_finished_spans()
        return spans if sum(s.name == "pgdurable.workflow_task" for s in spans) >= 2 else None

    spans = await wait_for(both_tasks, "the second workflow task's span to end")
    (start,) = [s for s in spans if s.name == "pgdurable.start_workflow"]
    tasks = [s for s in spans if s.name == "pgdurable.workflow_task"]
    assert len(tasks) == 2
    assert all(t.context.trace_id == start.context.trace_id and t.parent.span_id == start.context.span_id
               for t in tasks)


async def refuses(order_id: str) -> str:
    raise ValueError(f"order {order_id} is not payable")


async def test_a_failed_workflow_marks_its_closing_task_span_as_an_error(dsn, traced):
    provider, exporter = traced
    connection = Durable.Connection(dsn)
    await Durable.Worker.create(connection=connection, task_queue="failing", workflow=refuses)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=["o-9"], task_queue="failing", workflow_name="refuses")
    with pytest.raises(errors.WorkflowFailedError):
        await handle.result(timeout=30)

    def task_span() -> Any:
        return [s for s in exporter.get_finished_spans() if s.name == "pgdurable.workflow_task"]

    (task,) = await wait_for(task_span, "the workflow task's span to end")
    assert task.status.status_code is StatusCode.ERROR
    assert "ValueError" in task.status.description and task.attributes["pgdurable.outcome"] == "fail"
