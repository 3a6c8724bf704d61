"""The seed's order workflow, with a short sleep so the tests stay fast."""

from __future__ import annotations

from pgdurable import Durable, RetryPolicy

from . import order_activities


async def order_workflow(order_id: str) -> str:
    acts = Durable.workflow.proxy_activities(activities=order_activities,
                                             retry=RetryPolicy(maximum_attempts=3))
    receipt = await acts.charge(order_id)
    await Durable.workflow.sleep("200ms")
    await acts.notify(order_id, receipt)
    return receipt
