"""Human in the loop: an expense waits for a manager's decision, with a deadline.

    python examples/approval.py

Small expenses are approved at once. Larger ones wait on a condition (a
durable wait for a signal) with a timeout: the client's signal decides, or the
request expires. Signal ids are namespace-wide mailbox keys: a signal sent
before the workflow waits is buffered, never lost.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pgdurable import Durable

TASK_QUEUE = "expenses"


async def ask_manager(request: dict[str, Any]) -> None:
    print(f"  ask_manager: please decide on {request['id']} ({request['amount']} EUR)")


async def record_decision(request_id: str, status: str) -> None:
    print(f"  record_decision: {request_id} {status}")


async def expense_workflow(request: dict[str, Any]) -> str:
    acts = Durable.workflow.proxy_activities(activities=[ask_manager, record_decision])
    if request["amount"] <= 100:
        status = "auto-approved"
    else:
        await acts.ask_manager(request)
        # The signal's data, or False when the timeout wins.
        decision = await Durable.workflow.condition(f"expense-{request['id']}",
                                                   timeout=request.get("timeout", "1 hour"))
        if decision is False:
            status = "expired"
        else:
            status = "approved" if decision["approved"] else "rejected"
    await acts.record_decision(request["id"], status)
    return status


async def wait_until_waiting(handle: Any, signal_id: str) -> None:
    """Polls handle.state() until the workflow waits on ``signal_id`` (only for the printout:
    the signal would be buffered anyway)."""
    for _ in range(400):
        pending = (await handle.state())["pending"]
        if any(item.get("signal_id") == signal_id for item in pending):
            print(f"  {handle.workflow_id} waits on signal {signal_id!r}")
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{handle.workflow_id} never waited on {signal_id!r}")


async def main(dsn: str) -> dict[str, str]:
    connection = Durable.Connection(dsn)
    try:
        await Durable.Worker.create(connection=connection, task_queue=TASK_QUEUE, workflow=expense_workflow)
        client = Durable.Client(connection=connection)
        requests = [
            {"id": f"coffee-{Durable.guid(6)}", "amount": 12},
            {"id": f"laptop-{Durable.guid(6)}", "amount": 2400},
            {"id": f"yacht-{Durable.guid(6)}", "amount": 250000, "timeout": "2 seconds"},
        ]
        handles = {}
        for request in requests:
            handles[request["id"]] = await client.workflow.start(
                args=[request], task_queue=TASK_QUEUE, workflow_name="expense_workflow",
                workflow_id=f"expense-{request['id']}")
        laptop = requests[1]["id"]
        await wait_until_waiting(handles[laptop], f"expense-{laptop}")
        await client.workflow.signal(f"expense-{laptop}", {"approved": True, "by": "manager"})
        # Nobody answers for the yacht: its condition times out after 2 seconds.
        return {request_id: await handle.result() for request_id, handle in handles.items()}
    finally:
        await Durable.shutdown()


if __name__ == "__main__":
    from pgdurable.embedded import dev_server

    with dev_server() as dsn:  # $PGDURABLE_DSN / $DATABASE_URL, else the embedded Postgres
        Durable.migrate(dsn)
        print(asyncio.run(main(dsn)))
