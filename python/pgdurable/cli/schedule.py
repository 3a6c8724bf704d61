"""``pgdurable schedule create|list|describe|pause|resume|trigger|delete``: schedules through the
client API (``client.schedule``). Tables by default; ``--json`` for scripts."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

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
from pgdurable.cli.tables import format_time, print_rows
from pgdurable.cli.workflow import parse_json

if TYPE_CHECKING:
    from pgdurable.client import Client

schedule_app = typer.Typer(
    help="Schedules: start a workflow on a cron expression or an interval (create, list, describe, "
    "pause, resume, trigger, delete). The workers of the schedule's task queue fire it.",
    no_args_is_help=True,
)

ScheduleId = Annotated[str, typer.Argument(help="The schedule's id.", show_default=False)]


@schedule_app.command("create")
@friendly_errors
def schedule_create(
    schedule_id: ScheduleId,
    workflow: Annotated[str, typer.Option("--workflow", "-w", help="The workflow name to start.",
                                          show_default=False)],
    task_queue: Annotated[str, typer.Option("--task-queue", "-q", help="Its task queue.",
                                            show_default=False)],
    cron: Annotated[str | None, typer.Option(help="A 5-field cron expression, e.g. '0 3 * * *'.")] = None,
    every: Annotated[str | None, typer.Option(help="An interval instead of cron, e.g. '15 minutes'.")] = None,
    args: Annotated[str | None, typer.Option(help="The workflow's arguments as a JSON array.")] = None,
    timezone: Annotated[str, typer.Option("--timezone", "--tz", help="The cron's IANA time zone.")] = "UTC",
    overlap: Annotated[str, typer.Option(
        help="skip | buffer_one | allow_all | cancel_other | terminate_other.")] = "skip",
    catchup_window: Annotated[str, typer.Option(help="Ticks later than this after downtime are skipped.")]
    = "1 minute",
    jitter: Annotated[str | None, typer.Option(help="Delay each tick by a deterministic offset below this.")]
    = None,
    start_at: Annotated[str | None, typer.Option(help="No tick before this ISO 8601 time (with its offset).")]
    = None,
    end_at: Annotated[str | None, typer.Option(help="No tick after this ISO 8601 time (with its offset).")]
    = None,
    as_json: JsonOption = False,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """Create a schedule (exactly one of --cron and --every)."""
    values = parse_json(args, "--args")
    if values is not None and not isinstance(values, list):
        raise CliError("--args must be a JSON array of the workflow's arguments, e.g. '[\"eu\", 3]'")

    bounds = {name: _instant(text, option) for name, text, option in
              (("start_at", start_at, "--start-at"), ("end_at", end_at, "--end-at"))}

    async def body(client: Client) -> dict[str, Any]:
        handle = await client.schedule.create(
            schedule_id, workflow_name=workflow, task_queue=task_queue, args=values or [], cron=cron,
            every=every, timezone=timezone, overlap=overlap, catchup_window=catchup_window, jitter=jitter,
            **bounds)
        return await handle.describe()

    described = with_client(dsn, namespace, body)
    if as_json:
        print_json(described)
        return
    first = described["next_fire_times"][0] if described["next_fire_times"] else None
    console.print(f"schedule {escape(schedule_id)} created; next fire: "
                  f"{format_time(first) if first else 'none'}", highlight=False)


def _instant(text: str | None, option: str) -> datetime | None:
    """An ISO 8601 time with its UTC offset (``Z`` or ``+02:00``); a usage error otherwise."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("not an ISO 8601 time, e.g. 2026-01-31T03:00:00+01:00",
                                 param_hint=option) from None
    if value.tzinfo is None:
        raise typer.BadParameter("give its UTC offset too (e.g. Z or +01:00)", param_hint=option)
    return value


@schedule_app.command("list")
@friendly_errors
def schedule_list(as_json: JsonOption = False, namespace: NamespaceOption = "durable",
                  dsn: DsnOption = None) -> None:
    """List the namespace's schedules."""
    rows = with_client(dsn, namespace, lambda client: client.schedule.list())
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print(f"no schedules in namespace {namespace!r}", highlight=False)
        return
    print_rows(console, ["schedule id", "workflow", "task queue", "spec", "overlap", "state", "next fire",
                         "last run"], [_list_row(row) for row in rows], whole={"schedule id"})


def _list_row(row: dict[str, Any]) -> list[str]:
    spec = f"{row['cron']} ({row['timezone']})" if row["cron"] else f"every {row['every']:g} s"
    state = ("paused" + (f": {row['note']}" if row["note"] else "")) if row["paused"] else "active"
    return [escape(row["schedule_id"]), escape(row["workflow_name"]), escape(row["task_queue"]), escape(spec),
            row["overlap"], escape(state), format_time(row["next_fire_at"]) if row["next_fire_at"] else "",
            escape(row["last_workflow_id"] or "")]


@schedule_app.command("describe")
@friendly_errors
def schedule_describe(schedule_id: ScheduleId, as_json: JsonOption = False,
                      namespace: NamespaceOption = "durable", dsn: DsnOption = None) -> None:
    """Show a schedule: its spec, next fire times and recent ticks."""
    described = with_client(dsn, namespace, lambda client: client.schedule.get_handle(schedule_id).describe())
    if as_json:
        print_json(described)
        return
    spec = described["spec"]
    console.print(f"schedule {escape(schedule_id)}: {escape(spec['workflow_name'])} on "
                  f"{escape(spec['task_queue'])}, "
                  + (f"cron {escape(spec['cron'])} ({escape(spec['timezone'])})" if spec["cron"]
                     else f"every {spec['every']:g} s")
                  + f", overlap {spec['overlap']}"
                  + (f"; paused: {escape(described['note'] or '')}" if described["paused"] else ""),
                  highlight=False)
    for fire in described["next_fire_times"]:
        console.print(f"  next: {format_time(fire)}", highlight=False)
    if described["recent_runs"]:
        print_rows(console, ["tick", "trigger", "action", "workflow id", "detail"],
                   [[format_time(run["tick"]), run["trigger"], run["action"],
                     escape(run["workflow_id"] or ""), escape(run["detail"] or "")]
                    for run in described["recent_runs"]], whole={"workflow id"})


@schedule_app.command("pause")
@friendly_errors
def schedule_pause(schedule_id: ScheduleId,
                   note: Annotated[str | None, typer.Option(help="Why it is paused.")] = None,
                   namespace: NamespaceOption = "durable", dsn: DsnOption = None) -> None:
    """Pause a schedule (no tick fires until it is resumed)."""
    with_client(dsn, namespace, lambda client: client.schedule.get_handle(schedule_id).pause(note))
    console.print(f"schedule {escape(schedule_id)} paused", highlight=False)


@schedule_app.command("resume")
@friendly_errors
def schedule_resume(schedule_id: ScheduleId, namespace: NamespaceOption = "durable",
                    dsn: DsnOption = None) -> None:
    """Resume a paused schedule from now on (the ticks of the pause are not caught up)."""
    nxt = with_client(dsn, namespace, lambda client: client.schedule.get_handle(schedule_id).resume())
    console.print(f"schedule {escape(schedule_id)} resumed; next fire: {format_time(nxt) if nxt else 'none'}",
                  highlight=False)


@schedule_app.command("trigger")
@friendly_errors
def schedule_trigger(schedule_id: ScheduleId, as_json: JsonOption = False,
                     namespace: NamespaceOption = "durable", dsn: DsnOption = None) -> None:
    """Start a run now, under the schedule's overlap policy."""
    started = with_client(dsn, namespace, lambda client: client.schedule.get_handle(schedule_id).trigger())
    if as_json:
        print_json({"workflow_id": started})
        return
    console.print(f"started {escape(started)}" if started
                  else "not started: the overlap policy skipped or buffered it (see describe)",
                  highlight=False)


@schedule_app.command("delete")
@friendly_errors
def schedule_delete(schedule_id: ScheduleId, namespace: NamespaceOption = "durable",
                    dsn: DsnOption = None) -> None:
    """Delete a schedule (the runs it started are untouched)."""
    with_client(dsn, namespace, lambda client: client.schedule.get_handle(schedule_id).delete())
    console.print(f"schedule {escape(schedule_id)} deleted", highlight=False)
