"""``pgdurable workflow list|show|history|export|start|signal|cancel|interrupt|reset|fork``: inspect,
steer and repair workflows through the client API. Tables by default; ``--json`` for scripts."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pgdurable.cli._common import (
    CliError,
    DsnOption,
    JsonOption,
    NamespaceOption,
    console,
    friendly_errors,
    print_json,
    with_client,
)
from pgdurable.cli.tables import format_time, history_table, pending_text, print_rows, short, styled_status

if TYPE_CHECKING:
    from pgdurable.client import Client

workflow_app = typer.Typer(
    help="Inspect, steer and repair workflows: list, show, history, export, start, signal, cancel, "
    "interrupt, reset, fork. "
    "Tables by default; --json for scripts. An id that starts with '-' goes after '--' "
    "(pgdurable workflow show -- -x1).",
    no_args_is_help=True,
)


class Status(StrEnum):
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"
    interrupted = "interrupted"
    continued = "continued"


def parse_json(text: str | None, what: str) -> Any:
    """``text`` parsed as JSON (None stays None); bad JSON is a usage error naming ``what``."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON ({exc.msg} at character {exc.pos})", param_hint=what) \
            from None


@workflow_app.command("list")
@friendly_errors
def workflow_list(
    status: Annotated[Status | None, typer.Option(help="Only workflows with this status.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Only workflows of this name.")] = None,
    limit: Annotated[int, typer.Option(min=0, help="At most this many rows.")] = 50,
    as_json: JsonOption = False,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """List workflow runs, most recently updated first."""
    rows = with_client(dsn, namespace, lambda client: client.workflow.list(
        status=None if status is None else status.value, workflow_name=name, limit=limit))
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print(f"no workflows in namespace {namespace!r}" + (" with that filter" if status or name
                                                                       else ""))
        return
    print_rows(console, ["workflow id", "workflow", "task queue", "status", "run", "created", "updated"],
               [[escape(row["workflow_id"]), escape(row["workflow_name"]), escape(row["task_queue"]),
                 styled_status(row["status"]), str(row.get("run_id", "")), format_time(row["created_at"]),
                 format_time(row["updated_at"])] for row in rows],
               whole={"workflow id"})


@workflow_app.command("show")
@friendly_errors
def workflow_show(
    workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW_ID", help="The workflow id.")],
    as_json: JsonOption = False,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """Show a workflow's state (handle.state()): status, result or error, what it waits on."""
    state = with_client(dsn, namespace,
                         lambda client: client.workflow.get_handle(workflow_id).state())
    if as_json:
        print_json(state)
        return
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("workflow id", escape(state["workflow_id"]))
    table.add_row("workflow", escape(state["workflow_name"]))
    table.add_row("task queue", escape(state["task_queue"]))
    table.add_row("status", styled_status(state["status"])
                  + (" (cancel requested)" if state.get("cancel_requested") and state["status"] == "running"
                     else ""))
    table.add_row("run / attempt", f"{state.get('run_id')} / {state.get('attempt')}")
    if state.get("parent_workflow_id"):
        table.add_row("parent", escape(state["parent_workflow_id"]))
    table.add_row("created", format_time(state.get("created_at")))
    table.add_row("updated", format_time(state.get("updated_at")))
    if state.get("closed_at"):
        table.add_row("closed", format_time(state.get("closed_at")))
    if state["status"] == "completed":
        table.add_row("result", escape(short(state.get("result"), 500)))
    error = state.get("error")
    if error:
        text = f"{error.get('type')}: {error.get('message')}"
        table.add_row("error", f"[red]{escape(text)}[/red]")
    for item in state.get("pending") or []:
        table.add_row("waiting on", escape(pending_text(item)))
    for child in state.get("children") or []:
        table.add_row("child", f"{escape(child['workflow_id'])} ({escape(child['workflow_name'])}) "
                      + styled_status(child["status"]))
    failure = state.get("last_task_failure")
    if failure:
        times = state.get("task_failures")
        table.add_row("last task failure",
                      f"[red]{escape(short(failure, 300))}[/red] (task failed {times}×)")
    console.print(table)
    # A failure's traceback helps; a cancellation is an outcome the workflow chose, not a crash:
    # its CancelledFailure's stack says nothing (--json still carries it).
    if error and error.get("traceback") and state["status"] == "failed":
        console.print("[bold]traceback[/bold]")
        console.print(escape(error["traceback"].rstrip()), highlight=False, soft_wrap=True)


@workflow_app.command("history")
@friendly_errors
def workflow_history(
    workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW_ID", help="The workflow id.")],
    all_runs: Annotated[bool, typer.Option("--all-runs", help="Every run of a continued chain.")] = False,
    as_json: JsonOption = False,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """Print a workflow's history: every durable step and its outcome, in order."""
    events = with_client(dsn, namespace,
                          lambda client: client.workflow.get_handle(workflow_id).history(all_runs))
    if as_json:
        print_json(events)
        return
    console.print(history_table(events, all_runs=all_runs))



@workflow_app.command("export")
@friendly_errors
def workflow_export(
    workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW_ID", help="The workflow id.")],
    all_runs: Annotated[bool, typer.Option("--all-runs", help="Every run of a continued chain.")] = False,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """Print a workflow's history as a versioned JSON document on stdout (redirect it to a file):
    `pgdurable replay` and pgdurable.testing.Replayer check new workflow code against it."""
    document = with_client(dsn, namespace,
                           lambda client: client.workflow.get_handle(workflow_id).export_history(all_runs))
    print_json(document)

@workflow_app.command("start")
@friendly_errors
def workflow_start(
    workflow_name: Annotated[str, typer.Argument(help="The workflow function's name.")],
    task_queue: Annotated[str, typer.Option("--task-queue", "-q", help="Task queue its worker serves.")],
    args: Annotated[str, typer.Option("--args", help="The arguments, a JSON array.")] = "[]",
    workflow_id: Annotated[str | None, typer.Option("--id", help="Workflow id (default: a new guid).")]
    = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the result and print it.")] = False,
    timeout: Annotated[float | None, typer.Option(help="With --wait: give up after this many seconds.")]
    = None,
    priority: Annotated[int, typer.Option("--priority", help="Higher runs first (FIFO within a priority).")]
    = 0,
    partition_key: Annotated[str | None, typer.Option(
        "--partition-key", help="Runs with the same key run one at a time, in start order.")] = None,
    dedup_id: Annotated[str | None, typer.Option(
        "--dedup-id", help="Refused while a run started with this dedup id is running.")] = None,
    start_delay: Annotated[str | None, typer.Option(
        "--start-delay", help="Start later: seconds or e.g. '5 minutes'.")] = None,
    as_json: JsonOption = False,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """Start a workflow (a worker serving it must be running, e.g. `pgdurable worker`)."""
    from pgdurable.durations import to_seconds

    try:
        delay = None if start_delay is None else to_seconds(start_delay, what="start delay")
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--start-delay") from None
    arguments = parse_json(args, "--args")
    if not isinstance(arguments, list):
        raise typer.BadParameter("must be a JSON array, e.g. '[\"order-1\"]'", param_hint="--args")

    async def body(client: Client) -> dict[str, Any]:
        handle = await client.workflow.start(args=arguments, task_queue=task_queue,
                                             workflow_name=workflow_name, workflow_id=workflow_id,
                                             priority=priority, partition_key=partition_key,
                                             dedup_id=dedup_id, start_delay=delay)
        out: dict[str, Any] = {"workflow_id": handle.workflow_id}
        if wait:
            try:
                out["result"] = await handle.result(timeout=timeout)
                out["status"] = "completed"
            except TimeoutError:
                out["status"] = "running"
                out["timed_out"] = True
                out["waiting_for"] = _what_it_waits_for(await handle.state())
            except Exception as exc:
                from pgdurable import errors

                if not isinstance(exc, (errors.WorkflowFailedError, errors.WorkflowCancelledError,
                                        errors.WorkflowInterruptedError)):
                    raise
                out["status"] = await handle.status()
                out["error"] = str(exc)
        return out

    out = with_client(dsn, namespace, body)
    if as_json:
        print_json(out)
    else:
        console.print(f"started {escape(workflow_name)} as [bold]{escape(out['workflow_id'])}[/bold]",
                      highlight=False)
        if "status" in out:
            console.print(f"status: {styled_status(out['status'])}")
        if out.get("timed_out"):
            console.print(f"timed out after {timeout:g} s: the workflow is still running; it waits for "
                          f"{escape(out['waiting_for'])}", highlight=False, soft_wrap=True)
        if "result" in out:
            console.print(f"result: {escape(short(out['result'], 2000))}", highlight=False)
        if "error" in out:
            console.print(f"error: {escape(out['error'])}", highlight=False)
    if wait and out.get("status") != "completed":
        raise typer.Exit(1)


def _what_it_waits_for(state: dict[str, Any]) -> str:
    """Why a workflow is still running, in words: the worker its task waits for (and that no live
    worker serves it), else the durable calls it waits on."""
    if state.get("waiting_for"):
        return str(state["waiting_for"])
    pending = [pending_text(item) for item in state.get("pending") or []]
    return "; ".join(pending) if pending else "its next workflow task"


@workflow_app.command("signal")
@friendly_errors
def workflow_signal(
    signal_id: Annotated[str, typer.Argument(help="The signal id (a namespace-wide key).")],
    data: Annotated[str | None, typer.Option("--data", help="The signal's data as JSON (default null).")]
    = None,
    as_json: JsonOption = False,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """Send a signal: the oldest condition waiting on SIGNAL_ID gets it, else it is buffered."""
    payload = parse_json(data, "--data")
    with_client(dsn, namespace, lambda client: client.workflow.signal(signal_id, payload))
    if as_json:
        print_json({"signal_id": signal_id, "sent": True})
    else:
        console.print(f"sent signal {escape(repr(signal_id))}", highlight=False)


async def _running_handle(client: Client, workflow_id: str, action: str) -> Any:
    handle = client.workflow.get_handle(workflow_id)
    status = await handle.status()  # WorkflowNotFoundError for an unknown id
    if status != "running":
        raise CliError(f"workflow {workflow_id!r} is {status}, not running: nothing to {action}")
    return handle


@workflow_app.command("cancel")
@friendly_errors
def workflow_cancel(
    workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW_ID", help="The workflow id.")],
    as_json: JsonOption = False,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """Request cooperative cancellation: the workflow gets CancelledFailure at its next durable await.

    Exits 1 if the workflow is not running.
    """

    async def body(client: Client) -> None:
        handle = await _running_handle(client, workflow_id, "cancel")
        await handle.cancel()

    with_client(dsn, namespace, body)
    if as_json:
        print_json({"workflow_id": workflow_id, "cancel_requested": True})
    else:
        console.print(f"cancellation requested for {escape(workflow_id)}: it ends when a worker runs "
                      "its cleanup", highlight=False)


@workflow_app.command("interrupt")
@friendly_errors
def workflow_interrupt(
    workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW_ID", help="The workflow id.")],
    reason: Annotated[str | None, typer.Option(help="Why (kept as the workflow's error).")] = None,
    as_json: JsonOption = False,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """Stop a workflow hard: nothing of it runs again, its pending activities are dropped.

    Exits 1 if the workflow is not running.
    """

    async def body(client: Client) -> str:
        handle = await _running_handle(client, workflow_id, "interrupt")
        await handle.interrupt(reason)
        return await handle.status()

    status = with_client(dsn, namespace, body)
    if as_json:
        print_json({"workflow_id": workflow_id, "status": status})
    else:
        console.print(f"{escape(workflow_id)}: {styled_status(status)}", highlight=False)


@workflow_app.command("reset")
@friendly_errors
def workflow_reset(
    workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW_ID", help="The workflow id.")],
    event: Annotated[int, typer.Option(
        "--event", help="Restart from this event of its history (`workflow history`): an "
        "activity_scheduled, timer_started, child_started or signal_wait_started event.")],
    reason: Annotated[str | None, typer.Option(help="Why (kept in both runs' workflow_reset event).")] = None,
    as_json: JsonOption = False,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """Restart a workflow from one of its durable calls, in a new run of the same id.

    The new run keeps the history below the event: calls resolved there are not made again.
    A running run ends (status continued) and its pending work is dropped.
    """

    async def body(client: Client) -> int:
        return await client.workflow.get_handle(workflow_id).reset(event, reason=reason)

    run_id = with_client(dsn, namespace, body)
    if as_json:
        print_json({"workflow_id": workflow_id, "run_id": run_id, "from_event_id": event})
    else:
        console.print(f"{escape(workflow_id)}: reset to event {event}, running as run {run_id}",
                      highlight=False)


@workflow_app.command("fork")
@friendly_errors
def workflow_fork(
    workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW_ID", help="The workflow id to copy.")],
    from_event: Annotated[int, typer.Option(
        "--from-event", help="Copy the history below this event (the same points as `workflow reset`).")],
    new_id: Annotated[str | None, typer.Option(
        "--new-id", help="The copy's workflow id (default a new uuid).")] = None,
    as_json: JsonOption = False,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """Start a copy of a workflow from one of its durable calls, under a new id.

    The original is left alone.
    """

    async def body(client: Client) -> str:
        handle = await client.workflow.fork(workflow_id, from_event_id=from_event, new_workflow_id=new_id)
        return handle.workflow_id

    forked = with_client(dsn, namespace, body)
    if as_json:
        print_json({"workflow_id": forked, "forked_from": workflow_id, "from_event_id": from_event})
    else:
        console.print(f"{escape(forked)}: forked from {escape(workflow_id)} at event {from_event}",
                      highlight=False)
