"""Metrics: ``pgdurable worker --metrics-port`` serves Prometheus text (latency histograms,
failures and retries by type, the stream statistics) while it runs; ``pgdurable.otel.instrument``
records the same measurements through an OpenTelemetry meter."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client.parser import text_string_to_metric_families

from pgdurable import Durable, metrics, otel
from support.polling import wait_for, wait_until
from support.subprocess_workers import TESTS_DIR
from workers import traced_flows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def metrics_port(dsn: str) -> Iterator[int]:
    """`pgdurable worker workers.metered_app:start --metrics-port PORT`, serving once yielded;
    stopped with SIGTERM (it must exit 0)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PGDURABLE_DSN", "DATABASE_URL")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, "-m", "pgdurable.cli", "worker", "workers.metered_app:start",
                             "--dsn", dsn, "--grace", "5", "--metrics-port", str(port),
                             "--metrics-interval", "0.2"],
                            cwd=TESTS_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stderr is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("serving task queue(s)" in line for line in lines) or proc.poll() is not None,
                 "the worker to serve")
        assert proc.poll() is None, "".join(lines)
        yield port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(5)
    assert proc.returncode == 0, "".join(lines)


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
async def client(dsn: str) -> AsyncIterator[Durable.Client]:
    yield Durable.Client(connection=Durable.Connection(dsn))
    await Durable.shutdown()


async def test_the_metrics_endpoint_shows_latencies_failures_retries_and_stream_statistics_during_a_run(
        metrics_port, client):
    handle = await client.workflow.start(args=["o-1"], task_queue="traced", workflow_name="traced_order")
    # Nobody serves this task queue: its task stays queued, and the stream statistics say so.
    await client.workflow.start(task_queue="nobody-serves", workflow_name="waits")
    assert await handle.result(timeout=60) == "receipt-o-1"

    def scraped() -> dict | None:
        samples = scrape(metrics_port)
        ended = value(samples, "pgdurable_workflow_end_to_end_seconds_count",
                      workflow_name="traced_order", outcome="complete")
        queued = value(samples, "pgdurable_stream_queued", namespace="durable", stream="nobody-serves")
        ready = ended == 1 and queued == 1
        return samples if ready else None

    samples = await wait_for(lambda: asyncio.to_thread(scraped),
                             "the endpoint to show the run and the queued task")
    assert value(samples, "pgdurable_schedule_to_start_seconds_count",
                 task_type="workflow_task", task_queue="traced") >= 4
    assert value(samples, "pgdurable_schedule_to_start_seconds_count",
                 task_type="activity", task_queue=traced_flows.ACTS) == 3  # first attempts only
    assert value(samples, "pgdurable_task_failures_total", task_type="activity",
                 error_type="ConnectionError") == 1
    assert value(samples, "pgdurable_task_retries_total", task_type="activity") == 1
    assert value(samples, "pgdurable_stream_started_last_minute", namespace="durable", stream="traced") == 1
    assert value(samples, "pgdurable_stream_failed_last_minute", namespace="durable",
                 stream=f"{traced_flows.ACTS}-activity") == 1
    assert value(samples, "pgdurable_stream_oldest_queued_age_seconds", namespace="durable",
                 stream="nobody-serves") > 0


async def test_instrument_records_the_same_measurements_through_an_opentelemetry_meter(dsn, client):
    reader = InMemoryMetricReader()
    otel.instrument(meter_provider=MeterProvider(metric_readers=[reader]))
    try:
        from workers.metered_app import start

        await start(client.connection)
        handle = await client.workflow.start(args=["o-2"], task_queue="traced", workflow_name="traced_order")
        assert await handle.result(timeout=60) == "receipt-o-2"

        def collected() -> dict | None:
            data = reader.get_metrics_data()
            points = {metric.name: list(metric.data.data_points)
                      for rm in data.resource_metrics for sm in rm.scope_metrics for metric in sm.metrics}
            ends = points.get("pgdurable.workflow_end_to_end", [])
            # The worker measures a run's end after recording it: a moment after the client sees it.
            return points if any(p.attributes["workflow_name"] == "traced_order" for p in ends) else None

        points = await wait_for(collected, "the worker to measure the run's end")
    finally:
        otel.uninstrument()
    ends = points["pgdurable.workflow_end_to_end"]
    assert sorted((p.attributes["workflow_name"], p.count) for p in ends
                  if p.attributes["outcome"] == "complete") == [("archive_receipt", 1), ("traced_order", 1)]
    assert {p.attributes["task_type"] for p in points["pgdurable.schedule_to_start"]} == {"workflow_task",
                                                                                          "activity"}
    assert [(p.attributes["error_type"], p.value) for p in points["pgdurable.task_failures"]] \
        == [("ConnectionError", 1)]
    assert [(p.attributes["task_type"], p.value) for p in points["pgdurable.task_retries"]] \
        == [("activity", 1)]


async def test_a_stream_stats_poller_in_your_own_process_feeds_the_opentelemetry_stream_gauges(dsn, client):
    # Nobody serves this task queue: its task stays queued.
    await client.workflow.start(task_queue="nobody-serves-otel", workflow_name="never_run")
    reader = InMemoryMetricReader()
    otel.instrument(meter_provider=MeterProvider(metric_readers=[reader]))
    try:
        async with metrics.StreamStatsPoller(client.connection, namespace="durable", interval=0.2) as poller:
            assert poller.read_at is not None  # read once on entering

            def queued() -> float | None:
                for rm in reader.get_metrics_data().resource_metrics:
                    for metric in (m for sm in rm.scope_metrics for m in sm.metrics):
                        if metric.name == "pgdurable.stream.queued":
                            for point in metric.data.data_points:
                                if point.attributes == {"namespace": "durable",
                                                        "stream": "nobody-serves-otel"}:
                                    return point.value
                return None

            assert await wait_for(queued, "the queued gauge of the unserved stream") == 1
        assert metrics.stream_samples() == []  # unwatched on leaving
    finally:
        otel.uninstrument()
