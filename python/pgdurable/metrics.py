"""Metrics: what a worker process measures, exported through OpenTelemetry
(:func:`pgdurable.otel.instrument`) or as Prometheus text (``pgdurable worker --metrics-port``).

Measured in the worker process (names as Prometheus shows them; OpenTelemetry uses the same
names with dots, e.g. ``pgdurable.schedule_to_start``):

- ``pgdurable_schedule_to_start_seconds`` (histogram; ``task_type`` = ``workflow_task`` or
  ``activity``, ``task_queue``): from the moment a task was due to its start on a worker. A
  workflow task is due when the oldest event it delivers was recorded; an activity when it was
  scheduled (its first attempt; a retry's wait is its backoff).
- ``pgdurable_workflow_end_to_end_seconds`` (histogram; ``workflow_name``, ``outcome``): from a
  run's start to its close, observed by the worker that closes it.
- ``pgdurable_task_failures_total`` (``task_type``, ``error_type``) and
  ``pgdurable_task_retries_total`` (``task_type``): failed attempts, and attempts after the first.
- From ``durable.stream_stats`` (read every ``interval`` seconds by :class:`StreamStatsPoller`;
  it needs the owner's or a DBA's connection): ``pgdurable_stream_queued``, ``_delayed``,
  ``_running``, ``_oldest_queued_age_seconds``, ``_started_last_minute``,
  ``_failed_last_minute`` (gauges; ``namespace``, ``stream``).

Timestamps come from the database's clock and durations are measured against this machine's:
keep the clocks in sync (NTP).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from . import _observe, interceptors
from . import _store as store

log = logging.getLogger("pgdurable.metrics")

STREAM_GAUGES = ("queued", "delayed", "running", "oldest_queued_age", "started_last_minute",
                 "failed_last_minute")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


def _at(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return _at(datetime.fromisoformat(value))
    return None


def _since(value: Any) -> float | None:
    at = _at(value)
    return None if at is None else max((datetime.now(UTC) - at).total_seconds(), 0.0)


class Recorder(_observe.Observer, abc.ABC):
    """Turns observation points into measurements; a subclass says where they go."""

    @abc.abstractmethod
    def histogram(self, name: str, value: float, labels: dict[str, str]) -> None:
        """Records ``value`` in histogram ``name`` (seconds) under ``labels``."""

    @abc.abstractmethod
    def count(self, name: str, labels: dict[str, str]) -> None:
        """Adds one to counter ``name`` under ``labels``."""

    # -- observation points -----------------------------------------------------------
    def workflow_task(self, calls: Any, namespace: str, row: dict[str, Any], coro: Any) -> Any:
        due = [e.get("at") or e.get("created_at") for e in row.get("events") or ()]
        waited = [s for s in (_since(at) for at in due) if s is not None]
        if waited:
            self.histogram("schedule_to_start", max(waited),
                           {"task_type": "workflow_task", "task_queue": row.get("task_queue") or ""})
        if (row.get("task_attempt") or 1) > 1:
            self.count("task_retries", {"task_type": "workflow_task"})
        return coro

    def workflow_task_failed(self, row: dict[str, Any], exc: BaseException) -> None:
        self.count("task_failures", {"task_type": "workflow_task", "error_type": type(exc).__name__})

    def workflow_closed(self, row: dict[str, Any], commands: list[dict[str, Any]]) -> None:
        took = _since(row.get("started_at"))
        if took is not None:
            outcome = commands[-1].get("type", "closed") if commands else "closed"
            self.histogram("workflow_end_to_end", took,
                           {"workflow_name": row.get("workflow_name") or "", "outcome": outcome})

    def activity_started(self, row: dict[str, Any], payload: dict[str, Any]) -> None:
        if (row.get("attempt") or 1) > 1:
            self.count("task_retries", {"task_type": "activity"})
            return
        waited = _since(payload.get("scheduled_at"))
        if waited is not None:
            self.histogram("schedule_to_start", waited,
                           {"task_type": "activity", "task_queue": payload.get("task_queue") or ""})

    # The activity interceptor: counts failed attempts by error type.
    async def execute(self, ctx: dict[str, Any], next: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await next()
        except Exception as exc:
            self.count("task_failures", {"task_type": "activity", "error_type": type(exc).__name__})
            raise

    def install(self) -> None:
        _observe.install(self)
        if not any(i is self for i in interceptors.activity):
            interceptors.register_activity_interceptor(self)

    def uninstall(self) -> None:
        _observe.uninstall(self)
        interceptors.activity[:] = [i for i in interceptors.activity if i is not self]


class StreamStatsPoller:
    """Reads ``durable.stream_stats`` every ``interval`` seconds into :attr:`rows` (the last
    answer; kept through a failed read, which is logged once) and :attr:`read_at`.

    ``connection`` is a :class:`pgdurable.Connection` of the schema's owner or a DBA (the function
    is not a worker role's); ``namespace`` None reads every namespace. To export the stream
    gauges from your own process (``pgdurable worker --metrics-port`` does it for you), run one
    as an async context manager, which starts it and :func:`watch_streams` it, then stops and
    unwatches it::

        pgdurable.otel.instrument(meter_provider=...)
        async with pgdurable.metrics.StreamStatsPoller(connection, interval=10) as poller:
            ...  # pgdurable.stream.queued & co. are observed from poller.rows
    """

    def __init__(self, connection: Any, namespace: str | None = None, interval: float = 10.0) -> None:
        self.connection = connection
        self.namespace = namespace
        self.interval = interval
        self.rows: list[dict[str, Any]] = []
        self.read_at: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def __aenter__(self) -> StreamStatsPoller:
        await self.refresh()  # the gauges have values from the start
        self.start()
        watch_streams(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        unwatch_streams(self)
        await self.stop()

    async def refresh(self) -> None:
        """Reads the statistics once now (a failed read keeps the last answer)."""
        try:
            rows = await self.connection.run(lambda c: store.stream_stats(c, self.namespace))
        except Exception as exc:  # noqa: BLE001 - metrics must not stop the worker
            if not self._failing:
                log.warning("stream statistics not read (%s); durable.stream_stats needs the owner's "
                            "or a DBA's connection", exc)
            self._failing = True
            return
        self._failing = False
        self.rows, self.read_at = rows, datetime.now(UTC)

    def start(self) -> None:
        """Reads them every ``interval`` seconds in a task of the running event loop, until :meth:`stop`."""
        self._task = asyncio.create_task(self._loop(), name="pgdurable-stream-stats")

    async def _loop(self) -> None:
        if self.read_at is not None:  # just read (entering the context manager)
            await asyncio.sleep(self.interval)
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        """Stops the reads :meth:`start` began (the last answer stays in :attr:`rows`)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def samples(self) -> Iterable[tuple[str, dict[str, str], float]]:
        """(gauge, labels, value) of the last answer."""
        for row in self.rows:
            labels = {"namespace": row["namespace"], "stream": row["stream"]}
            for gauge in STREAM_GAUGES:
                value = row[gauge]
                if gauge == "oldest_queued_age":
                    value = 0.0 if value is None else value.total_seconds()
                yield gauge, labels, float(value)


_pollers: list[StreamStatsPoller] = []
_lock = threading.Lock()


def watch_streams(poller: StreamStatsPoller) -> None:
    """Exports ``poller``'s stream statistics through every metrics exporter of the process."""
    with _lock:
        _pollers.append(poller)


def unwatch_streams(poller: StreamStatsPoller) -> None:
    """Stops exporting ``poller``'s stream statistics (see :func:`watch_streams`)."""
    with _lock:
        _pollers[:] = [p for p in _pollers if p is not poller]


def stream_samples() -> list[tuple[str, dict[str, str], float]]:
    """(gauge, labels, value) of every watched poller's last answer: what the exporters observe."""
    with _lock:
        pollers = list(_pollers)
    return [sample for poller in pollers for sample in poller.samples()]


class OtelMetrics(Recorder):
    """Measurements as OpenTelemetry instruments (meter ``pgdurable``)."""

    def __init__(self, meter_provider: Any = None) -> None:
        from opentelemetry import metrics as otel_metrics

        meter = otel_metrics.get_meter("pgdurable", meter_provider=meter_provider)
        self._histograms = {
            "schedule_to_start": meter.create_histogram(
                "pgdurable.schedule_to_start", unit="s", description="From a task due to its start"),
            "workflow_end_to_end": meter.create_histogram(
                "pgdurable.workflow_end_to_end", unit="s", description="From a run's start to its close"),
        }
        self._counters = {
            "task_failures": meter.create_counter("pgdurable.task_failures", description="Failed attempts"),
            "task_retries": meter.create_counter("pgdurable.task_retries",
                                                 description="Attempts after the first"),
        }
        for gauge in STREAM_GAUGES:
            unit = "s" if gauge == "oldest_queued_age" else "1"
            meter.create_observable_gauge(f"pgdurable.stream.{gauge}", callbacks=[self._observer(gauge)],
                                          unit=unit, description=f"durable.stream_stats {gauge}")

    @staticmethod
    def _observer(gauge: str) -> Callable[[Any], Iterable[Any]]:
        from opentelemetry.metrics import Observation

        def observe(_options: Any) -> Iterable[Any]:
            return [Observation(value, labels) for name, labels, value in stream_samples() if name == gauge]

        return observe

    def histogram(self, name: str, value: float, labels: dict[str, str]) -> None:
        self._histograms[name].record(value, labels)

    def count(self, name: str, labels: dict[str, str]) -> None:
        self._counters[name].add(1, labels)


class PrometheusMetrics(Recorder):
    """Measurements in a ``prometheus_client`` registry, and its ``/metrics`` endpoint."""

    def __init__(self) -> None:
        import prometheus_client as prom

        self.registry = prom.CollectorRegistry()
        self._histograms = {
            "schedule_to_start": prom.Histogram(
                "pgdurable_schedule_to_start_seconds", "From a task due to its start on a worker",
                ["task_type", "task_queue"], registry=self.registry, buckets=LATENCY_BUCKETS),
            "workflow_end_to_end": prom.Histogram(
                "pgdurable_workflow_end_to_end_seconds", "From a run's start to its close",
                ["workflow_name", "outcome"], registry=self.registry, buckets=LATENCY_BUCKETS),
        }
        self._counters = {
            "task_failures": prom.Counter("pgdurable_task_failures", "Failed attempts",
                                          ["task_type", "error_type"], registry=self.registry),
            "task_retries": prom.Counter("pgdurable_task_retries", "Attempts after the first",
                                         ["task_type"], registry=self.registry),
        }
        self.registry.register(_StreamCollector())
        self._server: Any = None

    def histogram(self, name: str, value: float, labels: dict[str, str]) -> None:
        self._histograms[name].labels(**labels).observe(value)

    def count(self, name: str, labels: dict[str, str]) -> None:
        self._counters[name].labels(**labels).inc()

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        """Serves Prometheus text on ``http://host:port/metrics`` (a daemon thread)."""
        import prometheus_client as prom

        self._server, _thread = prom.start_http_server(port, addr=host, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _StreamCollector:
    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        families: dict[str, Any] = {}
        for gauge in STREAM_GAUGES:
            name = "pgdurable_stream_oldest_queued_age_seconds" if gauge == "oldest_queued_age" \
                else f"pgdurable_stream_{gauge}"
            families[gauge] = GaugeMetricFamily(name, f"durable.stream_stats {gauge}",
                                                labels=["namespace", "stream"])
        for gauge, labels, value in stream_samples():
            families[gauge].add_metric([labels["namespace"], labels["stream"]], value)
        return list(families.values())
