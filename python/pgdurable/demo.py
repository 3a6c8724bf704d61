"""``pgdurable demo``: the seed's order workflow, end to end, with live progress.

The workflows and activities below are ordinary pgdurable code; :func:`run`
starts a worker for them in this process, starts several orders (one
payment fails once and is retried), one order that waits for a manager's
approval signal, shows their progress and prints the results and one
workflow's history.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from pgdurable import Durable, RetryPolicy
from pgdurable.cli.tables import history_table, short, styled_status

TASK_QUEUE = "pgdurable-demo"
DEADLINE_SECONDS = 50.0


# -- activities: where side effects live ---------------------------------------------

async def charge(order: dict[str, Any]) -> str:
    """Charges the card. The payment gateway of a "flaky" order times out on the first attempt."""
    attempt = Durable.activity.get_context().attempt
    if order.get("flaky") and attempt == 1:
        raise ConnectionError("payment gateway timed out (simulated, transient)")
    await asyncio.sleep(0.3)  # a real call to the gateway would be here
    return f"rcpt-{order['order_id']}"


async def notify(order: dict[str, Any], receipt: str) -> str:
    """Emails the customer their receipt."""
    await asyncio.sleep(0.1)
    return f"emailed {order['customer']} receipt {receipt}"


# -- workflows: deterministic orchestration ---------------------------------------------

async def order_workflow(order: dict[str, Any]) -> dict[str, Any]:
    """The seed's order workflow: charge, wait (durably), notify."""
    acts = Durable.workflow.proxy_activities(
        activities=[charge, notify],
        retry=RetryPolicy(maximum_attempts=3, initial_interval="1 second"),
    )
    receipt = await acts.charge(order)
    await Durable.workflow.sleep("2 seconds")  # the seed sleeps "1 hour"; a durable timer either way
    sent = await acts.notify(order, receipt)
    return {"order_id": order["order_id"], "receipt": receipt, "notified": sent}


async def approval_order_workflow(order: dict[str, Any]) -> dict[str, Any]:
    """A large order: waits for a manager's approval signal (or gives up after 30 s), then runs
    the ordinary order workflow's steps."""
    decision = await Durable.workflow.condition(f"approve-{order['order_id']}", timeout="30 seconds")
    if not decision or not decision.get("approved"):
        return {"order_id": order["order_id"], "rejected": True, "decision": decision}
    result = await order_workflow(order)
    return {**result, "approved_by": decision.get("by")}


# -- the show ---------------------------------------------------------------------------

def _step(events: list[dict[str, Any]]) -> str:
    """What the workflow is doing, from its last history event."""
    if not events:
        return "queued"
    event = events[-1]
    etype, d = event["event_type"], event.get("details") or {}
    if etype == "workflow_started":
        return "started"
    if etype == "activity_scheduled":
        return f"running activity {d.get('activity_name')}"
    if etype == "activity_failed":
        error = d.get("error") or {}
        if d.get("maxed"):
            return f"[red]{d.get('activity_name', 'activity')} failed for good: {error.get('type')}[/red]"
        return (f"[red]attempt {d.get('attempt')} failed ({error.get('type')})[/red], "
                f"retrying in {d.get('retry_in_seconds')} s")
    if etype == "activity_completed":
        name = next((e["details"].get("activity_name") for e in reversed(events)
                     if e["event_type"] == "activity_scheduled" and e.get("seq") == event.get("seq")),
                    "activity")
        return f"{name} done (attempt {d.get('attempt')})"
    if etype == "timer_started":
        return f"sleeping {d.get('seconds'):g} s (durable timer)"
    if etype == "timer_fired":
        return "timer fired"
    if etype == "signal_wait_started":
        return f"[yellow]waiting for signal {d.get('signal_id')!r}[/yellow]"
    if etype == "signal_received":
        return f"signal {d.get('signal_id')!r} received"
    if etype == "signal_timed_out":
        return "no signal: timed out"
    if etype == "workflow_completed":
        result = d.get("result")
        receipt = result.get("receipt") if isinstance(result, dict) else None
        return f"[green]done[/green], receipt {receipt}" if receipt else "[green]done[/green]"
    return etype.replace("_", " ")


def _progress(rows: dict[str, dict[str, Any]], elapsed: float) -> Table:
    table = Table(title=f"pgdurable demo: {len(rows)} workflows on task queue {TASK_QUEUE!r} "
                  f"({elapsed:4.1f} s)", title_justify="left")
    table.add_column("workflow id", no_wrap=True, overflow="ignore")  # ids are copied: never cut
    table.add_column("workflow", overflow="fold")
    table.add_column("status")
    table.add_column("step", overflow="fold")
    table.add_column("retries", justify="right")
    for workflow_id, row in rows.items():
        table.add_row(escape(workflow_id), row["workflow"], styled_status(row["status"]), row["step"],
                      str(row["retries"]))
    return table


async def run(dsn: str, *, console: Console | None = None, orders: int = 5) -> bool:
    """Runs the demo against a migrated database; True when every workflow completed."""
    console = console or Console()
    suffix = Durable.guid(6).replace("_", "x").replace("-", "x").lower()
    connection = Durable.Connection(dsn)
    client = Durable.Client(connection=connection)
    try:
        await Durable.Worker.create(connection=connection, task_queue=TASK_QUEUE,
                                    workflows=[order_workflow, approval_order_workflow])
        console.print(f"worker started on task queue [bold]{TASK_QUEUE}[/bold] "
                      "(workflows order_workflow, approval_order_workflow; activities charge, notify)")
        customers = ["ada", "grace", "alan", "edsger", "barbara", "ken", "dennis", "linus"]
        handles = {}
        flaky_id = None
        for n in range(1, orders + 1):
            order = {"order_id": f"{n}-{suffix}", "customer": customers[(n - 1) % len(customers)],
                     "amount": 20 * n, "flaky": n == min(3, orders)}
            handle = await client.workflow.start(args=[order], task_queue=TASK_QUEUE,
                                                 workflow_name="order_workflow",
                                                 workflow_id=f"demo-order-{order['order_id']}")
            handles[handle.workflow_id] = handle
            if order["flaky"]:
                flaky_id = handle.workflow_id
        big = {"order_id": f"{orders + 1}-{suffix}", "customer": "margaret", "amount": 5000}
        approval = await client.workflow.start(args=[big], task_queue=TASK_QUEUE,
                                               workflow_name="approval_order_workflow",
                                               workflow_id=f"demo-order-{big['order_id']}")
        handles[approval.workflow_id] = approval
        console.print(f"started {orders} order workflows and 1 that waits for approval; "
                      f"{flaky_id}'s payment gateway will time out once")

        rows: dict[str, dict[str, Any]] = {
            wid: {"workflow": "approval_order_workflow" if h is approval else "order_workflow",
                  "status": "running", "step": "queued", "retries": 0} for wid, h in handles.items()}
        started = time.monotonic()
        waiting_since: float | None = None
        signalled = False
        retry_seen: set[str] = set()
        with Live(_progress(rows, 0.0), console=console, refresh_per_second=8, transient=False) as live:
            while True:
                elapsed = time.monotonic() - started
                for wid, handle in handles.items():
                    events = await handle.history()
                    status = await handle.status()
                    failures = [e for e in events if e["event_type"] == "activity_failed"]
                    rows[wid].update(status=status, step=_step(events), retries=len(failures))
                    if failures and wid not in retry_seen:
                        retry_seen.add(wid)
                        error = failures[0]["details"].get("error") or {}
                        live.console.print(
                            f"[red]✗[/red] {wid}: charge attempt 1 failed: {escape(str(error.get('type')))}: "
                            f"{escape(str(error.get('message')))}; the engine retries it in "
                            f"{failures[0]['details'].get('retry_in_seconds')} s (RetryPolicy)",
                            highlight=False)
                    if (handle is approval and waiting_since is None and events
                            and events[-1]["event_type"] == "signal_wait_started"):
                        waiting_since = elapsed
                live.update(_progress(rows, elapsed))
                if not signalled and waiting_since is not None and elapsed - waiting_since >= 1.5:
                    signal_id = f"approve-{big['order_id']}"
                    await client.workflow.signal(signal_id, {"approved": True, "by": "manager"})
                    signalled = True
                    live.console.print(
                        f"[green]→[/green] the manager approves: "
                        f"client.workflow.signal({signal_id!r}, {{'approved': True, 'by': 'manager'}})",
                        highlight=False)
                if all(row["status"] != "running" for row in rows.values()):
                    break
                if elapsed > DEADLINE_SECONDS:
                    live.console.print("[red]the demo did not finish in time[/red] "
                                       "(is another worker stealing its tasks?)")
                    return False
                await asyncio.sleep(0.25)
        console.print()

        results = Table(title="results (handle.result())", title_justify="left")
        results.add_column("workflow id")
        results.add_column("result", overflow="fold")
        ok = True
        for wid, handle in handles.items():
            try:
                value = short(await handle.result(timeout=5), 200)
            except Exception as exc:  # the demo reports a failed workflow rather than stopping
                ok, value = False, f"[red]{escape(type(exc).__name__)}: {escape(str(exc))}[/red]"
            results.add_row(escape(wid), value if value.startswith("[red]") else escape(value))
        console.print(results)
        if flaky_id is not None:
            events = await handles[flaky_id].history()
            console.print(history_table(events, title=f"history of {flaky_id} "
                                        "(the failed attempt, its retry, the durable timer)"))
        return ok
    finally:
        await Durable.shutdown()
