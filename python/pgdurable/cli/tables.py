"""How the CLI (and ``pgdurable demo``) render workflows for a terminal: short values, local
times, coloured statuses, history events as one line each, a history as a rich table."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from pgdurable.cli._common import to_jsonable

__all__ = ["describe_event", "format_time", "history_table", "pending_text", "print_rows", "short",
           "styled_status"]


def short(value: Any, width: int = 60) -> str:
    """``value`` (JSON unless a string) cut to ``width`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=to_jsonable, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def format_time(value: Any) -> str:
    """A timestamp (or its ISO text) in local time, to the millisecond; other values as text."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return "" if value is None else str(value)


_STATUS_STYLE = {"running": "yellow", "completed": "green", "failed": "red", "cancelled": "magenta",
                 "interrupted": "red", "continued": "cyan"}


def styled_status(status: str) -> str:
    """A status coloured for a rich table."""
    style = _STATUS_STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def describe_event(event: dict[str, Any]) -> str:
    """One history event's details as a short line (the history table's last column)."""
    etype, d = event["event_type"], event.get("details") or {}
    error = d.get("error") if isinstance(d.get("error"), dict) else None
    err = f"{error.get('type')}: {error.get('message')}" if error else ""
    if etype == "workflow_started":
        return f"{d.get('workflow_name')} on {d.get('task_queue')!r}, attempt {d.get('attempt')}"
    if etype == "activity_scheduled":
        args = json.dumps(d.get("args") or [], default=to_jsonable, ensure_ascii=False)[1:-1]
        return f"{d.get('activity_name')}({short(args, 50)})"
    if etype == "activity_failed":
        tail = "no more attempts" if d.get("maxed") else f"retry in {d.get('retry_in_seconds')} s"
        return f"attempt {d.get('attempt')}: {err} ({tail})"
    if etype == "activity_completed":
        return f"attempt {d.get('attempt')} → {short(d.get('result'))}"
    if etype == "timer_started":
        return f"{d.get('seconds')} s"
    if etype == "timer_fired":
        return f"due at {format_time(d.get('due_at'))}" if d.get("due_at") else ""
    if etype == "signal_wait_started":
        timeout = d.get("timeout")
        return f"{d.get('signal_id')!r}" + (f", timeout {timeout} s" if timeout is not None else "")
    if etype in ("signal_received", "signal_sent"):
        return f"{d.get('signal_id')!r}: {short(d.get('data'))}"
    if etype in ("child_started", "child_completed", "child_failed"):
        outcome = short(d.get("result")) if etype == "child_completed" else err
        return " ".join(str(x) for x in (d.get("workflow_name") or "", d.get("workflow_id"), outcome) if x)
    if etype == "workflow_completed":
        return f"→ {short(d.get('result'))}"
    if etype in ("workflow_failed", "workflow_task_failed", "workflow_cancelled", "workflow_interrupted"):
        return err or short(d.get("reason") or "")
    if etype == "workflow_continued_as_new":
        return f"args {short(d.get('args'))}"
    if etype == "patch_marker":
        return str(d.get("patch_id"))
    if etype == "workflow_reset":
        source = f"{d.get('from_workflow_id')} run {d.get('from_run_id')}"
        verb = "forked from" if d.get("fork") else f"reset to run {d.get('new_run_id')} from"
        reason = f": {d['reason']}" if d.get("reason") else ""
        return f"{verb} {source} at event {d.get('event_id')}{reason}"
    return short({k: v for k, v in d.items() if k != "traceback"}) if d else ""


def pending_text(item: dict[str, Any], time: Callable[[Any], str] = format_time) -> str:
    """What a workflow waits on (one item of ``state()["pending"]``) as a short line; ``time``
    writes its timestamps (local time here, UTC in the dashboard)."""
    kind = item.get("type")
    if kind == "activity":
        running = "running" if item.get("running") else "queued"
        return f"activity {item.get('activity_name')} ({running}, attempt {item.get('attempt')})"
    if kind == "timer":
        return f"timer due {time(item.get('due_at'))}"
    if kind == "condition":
        return f"signal {item.get('signal_id')!r}"
    if kind == "child":
        return f"child workflow {item.get('workflow_id')}"
    if kind == "workflow_task":
        return item.get("waiting_for") or f"workflow task ({'running' if item.get('running') else 'queued'})"
    return short(item)


def history_table(events: list[dict[str, Any]], title: str | None = None, all_runs: bool = False) -> Table:
    """A workflow's history as a rich table."""
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    if all_runs:
        table.add_column("run", justify="right")
    table.add_column("time")
    table.add_column("event")
    table.add_column("details", overflow="fold")
    for event in events:
        cells = [str(event["event_id"])]
        if all_runs:
            cells.append(str(event.get("run_id")))
        style = "red" if event["event_type"].endswith("failed") else None
        cells += [format_time(event["timestamp"]), event["event_type"], escape(describe_event(event))]
        table.add_row(*cells, style=style)
    return table


def print_rows(console: Console, columns: list[str], rows: list[list[str]], *, whole: set[str]) -> None:
    """Prints ``rows`` (rich markup) as a table whose ``whole`` columns (ids) are never cut or
    folded; when the output is too narrow for that (80 columns when not a terminal), one plain
    line per row instead, header first."""
    table = Table()
    for column in columns:
        table.add_column(column, no_wrap=column in whole, overflow="ignore" if column in whole else "fold")
    for row in rows:
        table.add_row(*row)
    needed = Measurement.get(console, console.options.update(max_width=1_000_000), table).minimum
    if needed <= console.width:
        console.print(table)
        return
    console.print("  ".join(escape(column) for column in columns), style="bold", soft_wrap=True)
    for row in rows:
        console.print("  ".join(row), soft_wrap=True)
