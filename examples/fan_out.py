"""Fan out and in: parallel activities, then one child workflow per order line.

    python examples/fan_out.py

``asyncio.gather`` of durable calls runs them in parallel and replays
deterministically: the activities' commands are committed together, the
children run on any worker serving their task queue.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pgdurable import Durable

TASK_QUEUE = "fulfilment"
STOCK = {"apple": 50, "pear": 20, "plum": 5}


async def check_stock(sku: str) -> int:
    return STOCK.get(sku, 0)


async def reserve(sku: str, quantity: int) -> str:
    return f"res-{sku}-{quantity}"


async def reserve_line(line: dict[str, Any]) -> dict[str, Any]:
    """Child workflow: reserves one order line."""
    acts = Durable.workflow.proxy_activities(activities=[reserve])
    reservation = await acts.reserve(line["sku"], line["quantity"])
    return {**line, "reservation": reservation, "by": Durable.workflow.info().workflow_id}


async def fulfil_order(lines: list[dict[str, Any]]) -> dict[str, Any]:
    acts = Durable.workflow.proxy_activities(activities=[check_stock])
    # Fan out activities ...
    stock = await asyncio.gather(*(acts.check_stock(line["sku"]) for line in lines))
    short = [line["sku"] for line, have in zip(lines, stock, strict=True) if have < line["quantity"]]
    if short:
        return {"status": "backordered", "short": short}
    # ... then child workflows, and gather their results.
    reservations = await asyncio.gather(*(
        Durable.workflow.execute_child(workflow_name="reserve_line", args=[line]) for line in lines))
    return {"status": "reserved", "lines": reservations}


async def main(dsn: str) -> dict[str, Any]:
    connection = Durable.Connection(dsn)
    try:
        await Durable.Worker.create(connection=connection, task_queue=TASK_QUEUE,
                                    workflows=[fulfil_order, reserve_line])
        client = Durable.Client(connection=connection)
        handle = await client.workflow.start(
            args=[[{"sku": "apple", "quantity": 10}, {"sku": "pear", "quantity": 4},
                   {"sku": "plum", "quantity": 5}]],
            task_queue=TASK_QUEUE, workflow_name="fulfil_order", workflow_id=f"order-{Durable.guid(8)}")
        return await handle.result()
    finally:
        await Durable.shutdown()


if __name__ == "__main__":
    from pgdurable.embedded import dev_server

    with dev_server() as dsn:  # $PGDURABLE_DSN / $DATABASE_URL, else the embedded Postgres
        Durable.migrate(dsn)
        print(asyncio.run(main(dsn)))
