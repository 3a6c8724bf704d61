"""OpenTelemetry for pgdurable (extra ``pgdurable[otel]``): one trace per workflow, and metrics.

``pgdurable.otel.instrument()`` in every process (clients and workers) turns on:

- spans ``pgdurable.start_workflow`` and ``pgdurable.signal`` around a client's start and
  signals; ``pgdurable.workflow_task`` around each workflow task a worker runs, with a
  ``pgdurable.signal`` child for each signal its workflow code sends;
  ``pgdurable.activity`` around each activity attempt. Attributes ``pgdurable.workflow_id``,
  ``pgdurable.workflow_name``, ``pgdurable.activity_name``, ``pgdurable.attempt``; a failed
  attempt or workflow task records its exception and an error status.
- the trace context travels with what is stored: a traced start keeps it in the run's
  ``workflow_started`` event (so every workflow task, in any process, after any restart, joins
  the client's trace), a workflow task passes its own to the activities it schedules (their
  ``headers``) and to the child workflows it starts (their ``workflow_started``); a run continued
  as new or retried keeps its run's. A signal carries its sender's (the client's or the sending
  task's ``pgdurable.signal`` span) to the run that receives it, whose workflow task span links to
  it (a span link: a signal is not the receiving run's cause, its start is).
- metrics (:mod:`pgdurable.metrics`) exported through the OpenTelemetry meter.

Spans and metrics go to the global tracer and meter providers (or those given): configure the
OpenTelemetry SDK and its exporters as usual. Only this module imports ``opentelemetry``.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from . import _observe, interceptors
from . import _store as store
from . import activity as activity_api

log = logging.getLogger("pgdurable.otel")

TRACER_NAME = "pgdurable"
WORKFLOW_ID = "pgdurable.workflow_id"
WORKFLOW_NAME = "pgdurable.workflow_name"
ACTIVITY_NAME = "pgdurable.activity_name"
ATTEMPT = "pgdurable.attempt"
SIGNAL_ID = "pgdurable.signal_id"

_MAX_CARRIERS = 10_000
"""Trace contexts of runs remembered per process (read again from history when forgotten)."""


class _Tracing(_observe.Observer):
    """The observer that makes the spans and carries the trace context."""

    def __init__(self, tracer_provider: Any = None) -> None:
        self.tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
        self.carriers: OrderedDict[tuple[str, int], dict[str, str]] = OrderedDict()
        self.task_spans: dict[tuple[str, int], Span] = {}  # the running workflow task of each run
        self.signal_spans: dict[tuple[str, int], list[Span]] = {}  # signals its workflow code sent

    # -- client ---------------------------------------------------------------------
    @contextlib.contextmanager
    def start_workflow(self, workflow_id: str, workflow_name: str,
                       task_queue: str) -> Iterator[dict[str, str] | None]:
        attributes = {WORKFLOW_ID: workflow_id, WORKFLOW_NAME: workflow_name,
                      "pgdurable.task_queue": task_queue}
        with self.tracer.start_as_current_span("pgdurable.start_workflow", kind=SpanKind.PRODUCER,
                                               attributes=attributes):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            yield carrier

    @contextlib.contextmanager
    def signal(self, signal_id: str, workflow_id: str | None) -> Iterator[dict[str, str] | None]:
        attributes = {SIGNAL_ID: signal_id}
        if workflow_id is not None:
            attributes[WORKFLOW_ID] = workflow_id
        with self.tracer.start_as_current_span("pgdurable.signal", kind=SpanKind.PRODUCER,
                                               attributes=attributes):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            yield carrier

    # -- workflow tasks ---------------------------------------------------------------
    def workflow_task(self, calls: Any, namespace: str, row: dict[str, Any],
                      coro: Coroutine[Any, Any, None]) -> Coroutine[Any, Any, None]:
        return self._traced_task(calls, namespace, row, coro)

    async def _traced_task(self, calls: Any, namespace: str, row: dict[str, Any],
                           coro: Coroutine[Any, Any, None]) -> None:
        key = (row["workflow_id"], row["run_id"])
        try:
            carrier = await self._carrier(calls, namespace, row)
        except Exception as exc:  # noqa: BLE001 - a span without its parent beats no workflow task
            log.warning("workflow %s: trace context not read (%s); its task span starts a new trace",
                        row["workflow_id"], exc)
            carrier = {}
        attributes = {WORKFLOW_ID: row["workflow_id"], WORKFLOW_NAME: row["workflow_name"],
                      ATTEMPT: row.get("task_attempt") or 1, "pgdurable.run_id": row["run_id"]}
        with self.tracer.start_as_current_span("pgdurable.workflow_task", context=propagate.extract(carrier),
                                               kind=SpanKind.CONSUMER, attributes=attributes,
                                               links=_signal_links(row)) as span:
            self.task_spans[key] = span
            try:
                await coro
            finally:
                if self.task_spans.get(key) is span:
                    del self.task_spans[key]
                for sent in self.signal_spans.pop(key, ()):
                    sent.end()

    async def _carrier(self, calls: Any, namespace: str, row: dict[str, Any]) -> dict[str, str]:
        """The trace context the run's start stored (its workflow_started event)."""
        key = (row["workflow_id"], row["run_id"])
        carrier = self.carriers.get(key)
        if carrier is None:
            started = [e for e in row.get("events") or () if e["event_type"] == "workflow_started"]
            if not started:  # a run this process has not seen start: read its first event
                history = await calls.record(lambda c: store.run_history(
                    c, namespace, row["workflow_id"], row["run_id"], row["lease_token"]))
                started = [e for e in history if e["event_type"] == "workflow_started"]
            data = started[0].get("data") if started else None
            carrier = dict((data or {}).get("headers") or {})
            self.carriers[key] = carrier
            while len(self.carriers) > _MAX_CARRIERS:
                self.carriers.popitem(last=False)
        self.carriers.move_to_end(key)
        return carrier

    def workflow_task_failed(self, row: dict[str, Any], exc: BaseException) -> None:
        key = (row["workflow_id"], row["run_id"])
        span = self.task_spans.get(key)
        if span is not None:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        for sent in self.signal_spans.get(key, ()):  # its commands were not recorded: nothing was sent
            sent.set_status(Status(StatusCode.ERROR,
                                   f"not sent: the workflow task failed ({type(exc).__name__})"))

    def workflow_task_continued(self, row: dict[str, Any]) -> None:
        """Signals delivered while the task ran (a condition that took a buffered one, say): its
        span links to their senders too."""
        span = self.task_spans.get((row["workflow_id"], row["run_id"]))
        for link in (_signal_links(row) if span is not None else None) or ():
            span.add_link(link.context, link.attributes)

    def workflow_closed(self, row: dict[str, Any], commands: list[dict[str, Any]]) -> None:
        self.carriers.pop((row["workflow_id"], row["run_id"]), None)
        span = self.task_spans.get((row["workflow_id"], row["run_id"]))
        last = commands[-1] if commands else {}
        if span is None or not last:
            return
        span.set_attribute("pgdurable.outcome", last.get("type", ""))
        if last.get("type") == "fail":
            error = last.get("error") or {}
            span.set_status(Status(StatusCode.ERROR, f"workflow failed: {error.get('type')}: "
                                                     f"{error.get('message')}"))

    def _context_of(self, workflow_id: str, run_id: int) -> dict[str, str]:
        span = self.task_spans.get((workflow_id, run_id))
        if span is None:
            return {}
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        return carrier

    def child_headers(self, info: Any) -> dict[str, str] | None:
        return self._context_of(info.workflow_id, info.run_id) or None

    def workflow_signal(self, info: Any, signal_id: str) -> dict[str, str] | None:
        """A ``pgdurable.signal`` span, child of the sending workflow task's, ended with that task
        (when its commands, the signal among them, were recorded); its context goes with the signal."""
        key = (info.workflow_id, info.run_id)
        task = self.task_spans.get(key)
        if task is None:
            return None
        span = self.tracer.start_span("pgdurable.signal", context=trace.set_span_in_context(task),
                                      kind=SpanKind.PRODUCER,
                                      attributes={SIGNAL_ID: signal_id, WORKFLOW_ID: info.workflow_id,
                                                  WORKFLOW_NAME: info.workflow_name})
        self.signal_spans.setdefault(key, []).append(span)
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        return carrier


def _signal_links(row: dict[str, Any]) -> list[Link] | None:
    """Links to the senders of the signals a workflow task delivers (those whose sender was traced)."""
    links = []
    for event in row.get("events") or ():
        if event["event_type"] != "signal_received":
            continue
        data = event.get("data") or {}
        headers = data.get("headers")
        if not headers:
            continue
        sender = trace.get_current_span(propagate.extract(dict(headers))).get_span_context()
        if sender.is_valid:
            links.append(Link(sender, {SIGNAL_ID: data.get("signal_id", "")}))
    return links or None


class _ScheduleWithContext:
    """Outbound interceptor: an activity a workflow task schedules carries that task's trace
    context in its headers. (On replay the headers of calls already recorded are not used.)"""

    def __init__(self, tracing: _Tracing) -> None:
        self._tracing = tracing

    async def execute(self, activity_ctx: dict[str, Any], workflow_ctx: dict[str, Any],
                      next: Callable[[], Awaitable[Any]]) -> Any:
        carrier = self._tracing._context_of(workflow_ctx["workflow_id"], workflow_ctx["run_id"])
        if carrier:
            options = activity_ctx["options"]
            activity_ctx["options"] = {**options, "headers": {**(options.get("headers") or {}), **carrier}}
        return await next()


class _ActivitySpan:
    """Activity interceptor: a span per attempt, child of the workflow task that scheduled it."""

    def __init__(self, tracing: _Tracing) -> None:
        self._tracing = tracing

    async def execute(self, ctx: dict[str, Any], next: Callable[[], Awaitable[Any]]) -> Any:
        attributes = {ACTIVITY_NAME: ctx["activity_name"], ATTEMPT: ctx["attempt"]}
        if ctx.get("workflow_id"):
            attributes[WORKFLOW_ID] = ctx["workflow_id"]
        with contextlib.suppress(RuntimeError):  # not inside an activity
            name = activity_api.get_context().workflow_name
            if name:
                attributes[WORKFLOW_NAME] = name
        parent = propagate.extract(dict(ctx.get("headers") or {}))
        with self._tracing.tracer.start_as_current_span("pgdurable.activity", context=parent,
                                                        kind=SpanKind.CONSUMER, attributes=attributes):
            return await next()


_installed: list[Any] = []


def instrument(*, tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Turns on pgdurable's spans and metrics in this process (again: replaces the providers).

    Call it in every process whose part of the trace you want: the client's and each worker's.
    Tracing uses ``tracer_provider`` (default: the global one), metrics ``meter_provider``."""
    uninstrument()
    tracing = _Tracing(tracer_provider)
    outbound, activity = _ScheduleWithContext(tracing), _ActivitySpan(tracing)
    interceptors.register_outbound_interceptor(outbound)
    interceptors.register_activity_interceptor(activity)
    _observe.install(tracing)
    from . import metrics

    meter = metrics.OtelMetrics(meter_provider)
    meter.install()
    _installed.extend([tracing, outbound, activity, meter])


def uninstrument() -> None:
    """Turns off what :func:`instrument` turned on."""
    for item in _installed:
        _observe.uninstall(item)
        if hasattr(item, "uninstall"):
            item.uninstall()
        for chain in (interceptors.outbound, interceptors.activity):
            chain[:] = [i for i in chain if i is not item]
    _installed.clear()
