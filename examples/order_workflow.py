"""The seed's example: charge a card, wait, notify the customer.

    python examples/order_workflow.py

Uses $PGDURABLE_DSN (or $DATABASE_URL), else the embedded dev Postgres, and
migrates it first. ``main(dsn)`` is what the tests call.
"""

from __future__ import annotations

import asyncio

from pgdurable import Durable, RetryPolicy


# Activities: the side effects. Each call is retried per the RetryPolicy and
# its result recorded, so a replay never runs it again.
async def charge(order_id: str) -> str:
    return f"receipt-{order_id}"


async def notify(order_id: str, receipt: str) -> None:
    print(f"  notify: order {order_id} paid, receipt {receipt}")


# The workflow: deterministic orchestration of durable steps.
async def order_workflow(order_id: str) -> str:
    acts = Durable.workflow.proxy_activities(
        activities=[charge, notify], retry=RetryPolicy(maximum_attempts=3))
    receipt = await acts.charge(order_id)
    await Durable.workflow.sleep("2 seconds")  # the seed sleeps "1 hour": a durable timer either way
    await acts.notify(order_id, receipt)
    return receipt


async def main(dsn: str) -> str:
    connection = Durable.Connection(dsn)  # lazy: no I/O yet
    try:
        await Durable.Worker.create(connection=connection, task_queue="orders", workflow=order_workflow)
        client = Durable.Client(connection=connection)
        handle = await client.workflow.start(
            args=["order-123"], task_queue="orders",
            workflow_name="order_workflow", workflow_id=Durable.guid())
        return await handle.result()
    finally:
        await Durable.shutdown()


if __name__ == "__main__":
    from pgdurable.embedded import dev_server

    with dev_server() as dsn:  # $PGDURABLE_DSN / $DATABASE_URL, else the embedded Postgres
        Durable.migrate(dsn)
        print(asyncio.run(main(dsn)))
