"""A traced worker process: ``python -m workers.traced_worker DSN ROLE SPANS_FILE UNTIL`` (cwd
``tests/``). ROLE ``workflows`` serves ``traced_order`` on task queue ``traced``; ROLE ``acts``
serves the activities and ``archive_receipt`` on ``traced_flows.ACTS``. Spans go to the
OpenTelemetry SDK's in-memory exporter and, once workflow UNTIL is closed, as JSON lines to
SPANS_FILE; then the process exits 0 (3 after 60 s). With ``--metrics-port`` it also serves
Prometheus text there (the same endpoint ``pgdurable worker --metrics-port`` serves)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pgdurable import Durable, otel

from . import traced_flows

CLOSED = {"completed", "failed", "cancelled", "interrupted"}


def span_json(span) -> dict:
    parent = span.parent
    return {"name": span.name, "trace_id": f"{span.context.trace_id:032x}",
            "span_id": f"{span.context.span_id:016x}",
            "parent_id": None if parent is None else f"{parent.span_id:016x}",
            "start": span.start_time, "end": span.end_time, "status": span.status.status_code.name,
            "events": [e.name for e in span.events], "attributes": dict(span.attributes or {}),
            "pid": os.getpid()}


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dsn")
    parser.add_argument("role", choices=["workflows", "acts"])
    parser.add_argument("spans_file")
    parser.add_argument("until")
    opts = parser.parse_args(argv)

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.instrument(tracer_provider=provider)

    connection = Durable.Connection(opts.dsn)
    if opts.role == "workflows":
        await Durable.Worker.create(connection=connection, task_queue="traced",
                                    workflows=[traced_flows.traced_order], lease_seconds=5)
    else:
        await Durable.Worker.create(connection=connection, task_queue=traced_flows.ACTS,
                                    workflows=[traced_flows.archive_receipt],
                                    activities=traced_flows.ACTIVITIES, lease_seconds=5)
    print("ready", flush=True)
    client = Durable.Client(connection=connection)
    deadline = time.monotonic() + 60
    code = 3
    try:
        while time.monotonic() < deadline:
            try:
                status = await client.workflow.get_handle(opts.until).status()
            except Exception:  # noqa: BLE001 - not started yet
                status = None
            if status in CLOSED:
                code = 0
                break
            await asyncio.sleep(0.1)
    finally:
        await Durable.shutdown(grace=5)
        dump(exporter, opts.spans_file)
    return code


def dump(exporter: InMemorySpanExporter, path: str) -> None:
    with open(path, "w") as out:
        for span in exporter.get_finished_spans():
            out.write(json.dumps(span_json(span), default=str) + "\n")


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
