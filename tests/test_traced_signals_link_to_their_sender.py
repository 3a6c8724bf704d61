"""Tracing (``pgdurable.otel``) of signals: a signal that workflow code sends gets its own
``pgdurable.signal`` span under the sending workflow task's, and every traced signal (from workflow
code or a client, delivered at once or buffered first) carries its sender's trace context to the
run that receives it: the receiving workflow task's span links to the sender's span. A workflow
task that fails (and is retried) marks its span as an error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from pgdurable import Durable, otel
from support.history import events, wait_event, wait_pending
from support.polling import wait_for


@pytest.fixture
async def traced() -> AsyncIterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.instrument(tracer_provider=provider)
    yield provider, exporter
    otel.uninstrument()
    await Durable.shutdown()


async def waits_for_parcel() -> str:
    return await Durable.workflow.condition("parcel")


async def sends_parcel() -> str:
    await Durable.workflow.signal("parcel", "a parcel")
    return "sent"


def finished(exporter: InMemorySpanExporter, name: str, workflow_id: str | None = None) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name
            and (workflow_id is None or s.attributes.get("pgdurable.workflow_id") == workflow_id)]


def linked_tasks(exporter: InMemorySpanExporter, workflow_id: str,
                 sender: ReadableSpan) -> list[ReadableSpan]:
    """The receiver's workflow task spans that link to the span ``sender``."""
    return [t for t in finished(exporter, "pgdurable.workflow_task", workflow_id)
            if any(link.context.span_id == sender.context.span_id
                   and link.context.trace_id == sender.context.trace_id for link in t.links)]


async def test_a_signal_sent_by_workflow_code_has_a_span_under_its_task_and_the_receiving_task_links_to_it(
        dsn, traced):
    _, exporter = traced
    connection = Durable.Connection(dsn)
    await Durable.Worker.create(connection=connection, task_queue="parcels",
                                workflows=[waits_for_parcel, sends_parcel])
    client = Durable.Client(connection=connection)
    receiver = await client.workflow.start(task_queue="parcels", workflow_name="waits_for_parcel",
                                           workflow_id="receiver-1")
    await wait_pending(receiver, "condition", signal_id="parcel")
    sender = await client.workflow.start(task_queue="parcels", workflow_name="sends_parcel",
                                         workflow_id="sender-1")
    assert await sender.result(timeout=30) == "sent"
    assert await receiver.result(timeout=30) == "a parcel"

    (signal,) = await wait_for(lambda: finished(exporter, "pgdurable.signal"), "the signal's span to end")
    assert signal.attributes["pgdurable.signal_id"] == "parcel"
    assert signal.attributes["pgdurable.workflow_id"] == "sender-1"
    assert signal.attributes["pgdurable.workflow_name"] == "sends_parcel"
    sender_tasks = finished(exporter, "pgdurable.workflow_task", "sender-1")
    assert signal.parent is not None and signal.parent.span_id in {t.context.span_id for t in sender_tasks}
    assert signal.status.status_code is not StatusCode.ERROR

    (receiving,) = await wait_for(lambda: linked_tasks(exporter, "receiver-1", signal),
                                  "the receiving task's span to end")
    (link,) = receiving.links
    assert link.attributes["pgdurable.signal_id"] == "parcel"
    # A link, not parentage: the receiving task stays in the trace its own start began.
    assert receiving.context.trace_id != signal.context.trace_id
    (received,) = await events(receiver, "signal_received")
    sender_span_id = received["details"]["headers"]["traceparent"].split("-")[2]
    assert sender_span_id == format(signal.context.span_id, "016x")


async def test_a_clients_signal_buffered_before_the_condition_is_linked_from_the_task_that_receives_it(
        dsn, traced):
    _, exporter = traced
    connection = Durable.Connection(dsn)
    client = Durable.Client(connection=connection)
    await client.workflow.signal("parcel", "an early parcel")  # buffered: nobody waits yet
    (signal,) = finished(exporter, "pgdurable.signal")
    await Durable.Worker.create(connection=connection, task_queue="parcels", workflow=waits_for_parcel)
    receiver = await client.workflow.start(task_queue="parcels", workflow_name="waits_for_parcel",
                                           workflow_id="receiver-2")
    assert await receiver.result(timeout=30) == "an early parcel"

    (receiving,) = await wait_for(lambda: linked_tasks(exporter, "receiver-2", signal),
                                  "the receiving task's span to end")
    assert receiving.links[0].attributes["pgdurable.signal_id"] == "parcel"


async def test_a_signal_sent_untraced_is_received_without_headers_or_links(dsn):
    connection = Durable.Connection(dsn)
    try:
        await Durable.Worker.create(connection=connection, task_queue="parcels", workflow=waits_for_parcel)
        client = Durable.Client(connection=connection)
        receiver = await client.workflow.start(task_queue="parcels", workflow_name="waits_for_parcel",
                                               workflow_id="receiver-3")
        await wait_pending(receiver, "condition", signal_id="parcel")
        await receiver.signal("parcel", "plain")
        assert await receiver.result(timeout=30) == "plain"
        (received,) = await events(receiver, "signal_received")
        assert "headers" not in received["details"]
    finally:
        await Durable.shutdown()


async def nd_parcel_a() -> str:
    return await Durable.workflow.condition("nd-parcel")


async def nd_parcel_b() -> str:
    # The same workflow redeployed with a different first durable call: its replay fails the task.
    await Durable.workflow.sleep(0.05)
    return await Durable.workflow.condition("nd-parcel")


nd_parcel_a.__name__ = nd_parcel_b.__name__ = "nd_parcel"


async def test_a_failed_workflow_task_marks_its_span_as_an_error_with_the_exception(dsn, traced):
    _, exporter = traced
    connection = Durable.Connection(dsn)
    worker_a = await Durable.Worker.create(connection=connection, task_queue="nd-parcels",
                                           workflow=nd_parcel_a)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(task_queue="nd-parcels", workflow_name="nd_parcel",
                                         workflow_id="nd-parcel-1")
    await wait_pending(handle, "condition", signal_id="nd-parcel")
    await worker_a.shutdown()
    await Durable.Worker.create(connection=connection, task_queue="nd-parcels", workflow=nd_parcel_b)
    await handle.signal("nd-parcel", "go")
    await wait_event(handle, "workflow_task_failed")

    def failed_task() -> Any:
        return [s for s in finished(exporter, "pgdurable.workflow_task", "nd-parcel-1")
                if s.status.status_code is StatusCode.ERROR]

    task = (await wait_for(failed_task, "the failed workflow task's span to end"))[0]
    assert "NonDeterminismError" in task.status.description
    (exception,) = [e for e in task.events if e.name == "exception"]
    assert exception.attributes["exception.type"] == "pgdurable.errors.NonDeterminismError"
    assert "pgdurable.outcome" not in task.attributes  # retried: the run did not close
    ok = [s for s in finished(exporter, "pgdurable.workflow_task", "nd-parcel-1") if s is not task]
    assert ok and all(s.status.status_code is not StatusCode.ERROR for s in ok)
