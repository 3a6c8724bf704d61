"""What the dashboard's pages show, read through the client API and the store's stored-function
wrappers (no SQL here): payloads decoded through the registered codec where it can (shown encoded,
and labelled so, where it cannot), a run's timeline, its children as a tree."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import _store as store
from .. import errors, payloads
from ..client import Client, history_event

RESET_POINTS = ("activity_scheduled", "timer_started", "child_started", "signal_wait_started")
"""The events a workflow may be reset (or forked) to (``handle.reset``)."""

_TREE_DEPTH = 4
_TREE_NODES = 60


@dataclass
class Payload:
    """A stored value for a page: decoded, or left encoded (and labelled so) when the codec this
    dashboard runs with cannot decode it."""

    value: Any
    encoded: bool = False

    @property
    def text(self) -> str:
        if self.encoded:
            return str(self.value)
        return json.dumps(self.value, indent=2, ensure_ascii=False, default=str)


def utc_time(value: Any) -> str:
    """A timestamp (or its ISO text) in UTC, to the millisecond; other values as text."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return "" if value is None else str(value)


def decode(stored: str | None) -> Payload:
    """A stored payload as JSON values; the stored text itself when it cannot be decoded."""
    if stored is None:
        return Payload(None)
    try:
        return Payload(payloads.to_json_value(stored))
    except errors.PayloadError:
        return Payload(stored, encoded=True)


def decode_error(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored error as {type, message, traceback, encoded}."""
    if not error:
        return None
    try:
        error_type, message, tb = payloads.error_from_json(error)
        return {"type": error_type, "message": message, "traceback": tb, "encoded": False}
    except errors.PayloadError:
        return {"type": error.get("type") or "Error", "message": error.get("message"),
                "traceback": error.get("traceback"), "encoded": True}


def event_of(row: dict[str, Any]) -> dict[str, Any]:
    """One history row as the dashboard shows it: ``history_event``'s dict (its event id the run's
    own, the one ``handle.reset`` takes), payloads left encoded when they cannot be decoded."""
    try:
        event = history_event(row["event_id"], row)
        event["encoded"] = False
    except errors.PayloadError:
        event = {"event_id": row["event_id"], "run_id": row["run_id"], "event_type": row["event_type"],
                 "timestamp": row["created_at"].isoformat(), "seq": row["seq"],
                 "details": dict(row["data"]), "encoded": True}
    event["at"] = row["created_at"].astimezone(UTC)
    return event


# -- the timeline of a run ------------------------------------------------------------------

@dataclass
class Bar:
    """One bar (or span) of a timeline row; ``left`` and ``width`` in percent of the run."""

    label: str
    state: str  # ok | failed | pending | cancelled
    start: datetime
    end: datetime
    left: float = 0.0
    width: float = 0.0
    title: str = ""


@dataclass
class Row:
    kind: str  # activity | timer | signal | child | task
    label: str
    seq: int | None
    bars: list[Bar] = field(default_factory=list)


@dataclass
class Timeline:
    start: datetime
    end: datetime
    rows: list[Row]
    hidden: int = 0  # durable calls past TIMELINE_ROWS

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def ticks(self) -> list[tuple[float, str]]:
        """The axis: (percent, seconds since the run started) at five even steps."""
        return [(p * 25.0, _span(self.seconds * p / 4)) for p in range(5)]


def duration(value: timedelta | None) -> str:
    """An interval as the dashboard writes it (60 s, 4.2 min); empty for None."""
    return "" if value is None else _span(value.total_seconds())


def _span(seconds: float) -> str:
    """A duration for an axis: 0.5 s, 12 s, 4.2 min, 1.5 h."""
    if seconds < 10:
        return f"{seconds:.1f}".rstrip("0").rstrip(".") + " s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


TIMELINE_ROWS = 300
"""A timeline shows at most this many durable calls (the first ones); the history has them all."""
HISTORY_ROWS = 2000
"""The history table shows at most this many events (``?format=json`` has them all)."""


def timeline(events: list[dict[str, Any]], now: datetime, running: bool) -> Timeline | None:
    """A run's history as rows of bars: each activity attempt a bar (from when it was due to its
    outcome), each timer, signal wait and awaited child a span, failed workflow tasks as marks."""
    if not events:
        return None
    by_seq: dict[int | None, list[dict[str, Any]]] = {}
    for event in events:
        by_seq.setdefault(event["seq"], []).append(event)

    def outcomes(seq: int | None, *types: str) -> list[dict[str, Any]]:
        return [e for e in by_seq.get(seq, ()) if e["event_type"] in types]

    start = events[0]["at"]
    end = max(now, events[-1]["at"]) if running else events[-1]["at"]
    rows: list[Row] = []
    for event in events:
        if len(rows) >= TIMELINE_ROWS:
            break
        etype, seq, d = event["event_type"], event["seq"], event.get("details") or {}
        if etype == "activity_scheduled":
            row = Row("activity", str(d.get("activity_name") or "activity"), seq)
            begin = event["at"]
            attempt = 1
            closed = False
            for outcome in outcomes(seq, "activity_failed", "activity_completed"):
                if outcome["event_type"] == "activity_completed":
                    row.bars.append(Bar(f"#{d_attempt(outcome, attempt)} ✓", "ok", begin, outcome["at"],
                                        title="completed"))
                    closed = True
                    break
                od = outcome.get("details") or {}
                error = od.get("error") if isinstance(od.get("error"), dict) else {}
                why = "lease lost" if od.get("lease_lost") else f"{error.get('type')}: {error.get('message')}"
                row.bars.append(Bar(f"#{d_attempt(outcome, attempt)} ✗", "failed", begin, outcome["at"],
                                    title=why))
                if od.get("maxed"):
                    closed = True
                    break
                attempt = d_attempt(outcome, attempt) + 1
                begin = outcome["at"] + timedelta(seconds=float(od.get("retry_in_seconds") or 0))
            if not closed:
                row.bars.append(Bar(f"#{attempt} …", "pending" if running else "cancelled", begin,
                                    max(begin, end), title="no outcome yet" if running else "never finished"))
            rows.append(row)
        elif etype == "timer_started":
            seconds = float(d.get("seconds") or 0)
            row = Row("timer", f"timer {seconds:g} s", seq)
            outcome = next(iter(outcomes(seq, "timer_fired", "timer_cancelled")), None)
            if outcome is None:
                due = event["at"] + timedelta(seconds=seconds)
                row.bars.append(Bar("sleeping", "pending" if running else "cancelled", event["at"],
                                    min(max(due, event["at"]), end) if running else end, title=f"due {due}"))
            else:
                fired = outcome["event_type"] == "timer_fired"
                row.bars.append(Bar("fired" if fired else "cancelled", "ok" if fired else "cancelled",
                                    event["at"], outcome["at"]))
            rows.append(row)
        elif etype == "signal_wait_started":
            row = Row("signal", f"signal {d.get('signal_id')!s}", seq)
            outcome = next(iter(outcomes(seq, "signal_received", "signal_timed_out")), None)
            if outcome is None:
                row.bars.append(Bar("waiting", "pending" if running else "cancelled", event["at"], end))
            else:
                got = outcome["event_type"] == "signal_received"
                row.bars.append(Bar("received" if got else "timed out", "ok" if got else "failed",
                                    event["at"], outcome["at"]))
            rows.append(row)
        elif etype == "child_started":
            row = Row("child", f"child {d.get('workflow_name') or ''} {d.get('workflow_id')}", seq)
            outcome = next(iter(outcomes(seq, "child_completed", "child_failed")), None)
            if outcome is None:
                row.bars.append(Bar("running", "pending" if running else "cancelled", event["at"], end))
            else:
                ok = outcome["event_type"] == "child_completed"
                row.bars.append(Bar("completed" if ok else "failed", "ok" if ok else "failed",
                                    event["at"], outcome["at"]))
            rows.append(row)
        elif etype == "workflow_task_failed":
            error = d.get("error") if isinstance(d.get("error"), dict) else {}
            rows.append(Row("task", "workflow task failed", seq,
                            [Bar("✗", "failed", event["at"], event["at"],
                                 title=f"{error.get('type')}: {error.get('message')}")]))
    total = max((end - start).total_seconds(), 1e-3)
    for row in rows:
        for bar in row.bars:
            bar.left = max(0.0, min(100.0, (bar.start - start).total_seconds() / total * 100))
            bar.width = max(0.6, min(100.0 - bar.left, (bar.end - bar.start).total_seconds() / total * 100))
            seconds = (bar.end - bar.start).total_seconds()
            bar.title = f"{bar.label} ({seconds:.2f} s)" + (f": {bar.title}" if bar.title else "")
    calls = sum(e["event_type"] in _CALLS for e in events)
    return Timeline(start, end, rows, hidden=max(0, calls - len(rows)))


_CALLS = ("activity_scheduled", "timer_started", "signal_wait_started", "child_started",
          "workflow_task_failed")


def d_attempt(event: dict[str, Any], default: int) -> int:
    """The attempt an activity outcome event names (``default`` when it names none)."""
    value = (event.get("details") or {}).get("attempt")
    return int(value) if isinstance(value, int) else default


# -- a workflow page -------------------------------------------------------------------------

async def describe(client: Client, workflow_id: str) -> dict[str, Any]:
    """``describe_workflow_v1`` of the latest run (as ``handle.state()`` reads it), its result and
    error decoded where the codec can (WorkflowNotFoundError for an unknown id)."""
    state = await client.connection.run(
        lambda conn: store.describe_workflow(conn, client.namespace, workflow_id))
    if state is None:
        raise errors.WorkflowNotFoundError(
            f"workflow {workflow_id!r} not found in namespace {client.namespace!r}")
    state["result"] = decode(state.get("result")) if state.get("status") == "completed" else None
    state["error"] = decode_error(state.get("error"))
    return state


async def children_tree(client: Client, state: dict[str, Any]) -> list[dict[str, Any]]:
    """The children of a run, each with its own children (a few levels, a few dozen nodes)."""
    budget = [_TREE_NODES]

    async def grow(children: list[dict[str, Any]], depth: int) -> list[dict[str, Any]]:
        nodes = []
        for child in children:
            if budget[0] <= 0:
                break
            budget[0] -= 1
            node = {**child, "children": [], "more": False}
            if depth < _TREE_DEPTH:
                try:
                    sub = await client.connection.run(
                        lambda conn, c=child: store.describe_workflow(conn, client.namespace,
                                                                      c["workflow_id"]))
                except errors.DurableError:
                    sub = None
                if sub:
                    node["children"] = await grow(sub.get("children") or [], depth + 1)
            else:
                node["more"] = True
            nodes.append(node)
        return nodes

    return await grow(state.get("children") or [], 1)


async def workflow_page(client: Client, workflow_id: str, run: int | None) -> dict[str, Any]:
    """Everything the workflow page shows: state, runs (continue-as-new, resets), the selected
    run's input, history, timeline and reset points, the children tree."""
    state = await describe(client, workflow_id)

    latest = state["run_id"]

    async def read(conn: Any) -> tuple[list[dict[str, Any]], int, list[dict[str, Any]], datetime]:
        runs = await store.workflow_runs(conn, client.namespace, workflow_id, True)
        selected = run if run is not None and any(r["run_id"] == run for r in runs) else latest
        # The owner reads any run's history (a worker role only that of a task it holds).
        rows = await store.run_history(conn, client.namespace, workflow_id, selected, None)
        return runs, selected, rows, await store.engine_now(conn)

    runs, selected, rows, now = await client.connection.run(read)
    this_run = next((r for r in runs if r["run_id"] == selected), None)
    events = [event_of({**row, "run_id": selected}) for row in rows]
    run_status = this_run["status"] if this_run else state["status"]
    return {
        "state": state,
        "runs": runs,
        "run_id": selected,
        "latest_run_id": latest,
        "run_status": run_status,
        "input": decode(this_run.get("args")) if this_run else Payload(None),
        "events": events[:HISTORY_ROWS],
        "events_hidden": max(0, len(events) - HISTORY_ROWS),
        "timeline": timeline(events, now, run_status == "running"),
        "reset_points": [e for e in events if e["event_type"] in RESET_POINTS] if selected == latest else [],
        "children": await children_tree(client, state),
        "raw_history": json.dumps([{k: v for k, v in e.items() if k != "at"} for e in events], indent=2,
                                  ensure_ascii=False, default=str),
        "waits_on_signals": [p.get("signal_id") for p in state.get("pending") or []
                             if p.get("type") == "condition"],
    }


def pending_text(item: dict[str, Any]) -> str:
    """What a workflow waits on (one item of ``pending``) in words (the CLI's, times in UTC)."""
    from ..cli.tables import pending_text as cli_pending_text

    return cli_pending_text(item, time=utc_time)


def describe_event(event: dict[str, Any]) -> str:
    """One history event's details in one line (the CLI's words)."""
    from ..cli.tables import describe_event as cli_describe

    if event.get("encoded"):
        return "(payloads encoded: start the dashboard with the codec they were written with, --codec)"
    return cli_describe(event)
