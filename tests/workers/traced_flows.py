"""The seed's order workflow for the tracing tests: its activities and a child workflow run on
another task queue (``ACTS``), so another worker process runs them. Its first ``charge`` attempt
fails, so the trace shows a retried attempt."""

from __future__ import annotations

from pgdurable import Durable, RetryPolicy

ACTS = "traced-acts"


async def charge(order_id: str) -> str:
    if Durable.activity.get_context().attempt == 1:
        raise ConnectionError("card network timed out")
    return f"receipt-{order_id}"


async def notify(order_id: str, receipt: str) -> None:
    return None


async def archive(receipt: str) -> str:
    return f"archived {receipt}"


ACTIVITIES = [charge, notify, archive]


async def traced_order(order_id: str) -> str:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES, task_queue=ACTS,
                                             retry=RetryPolicy(maximum_attempts=3, initial_interval=0.1))
    receipt = await acts.charge(order_id)
    await Durable.workflow.sleep("200ms")
    await acts.notify(order_id, receipt)
    await Durable.workflow.execute_child(workflow_name="archive_receipt", args=[receipt], task_queue=ACTS,
                                         workflow_id=f"{order_id}-archive")
    return receipt


async def archive_receipt(receipt: str) -> str:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    return await acts.archive(receipt)
