"""Workers for the metrics tests (``pgdurable worker workers.metered_app:start``): the traced
order workflow (its first charge attempt fails) and, on its activity task queue, its activities
and child workflow."""

from __future__ import annotations

from pgdurable import Connection, Durable

from . import traced_flows


async def start(connection: Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue="traced",
                                workflows=[traced_flows.traced_order])
    await Durable.Worker.create(connection=connection, task_queue=traced_flows.ACTS,
                                workflows=[traced_flows.archive_receipt], activities=traced_flows.ACTIVITIES)
