"""An activity named like one of :mod:`porting_names.billing`'s, and a workflow named like another."""


async def send_porting_receipt(order_id: str) -> str:
    return f"shipping notified of {order_id}"


async def porting_order_workflow(order_id: str) -> str:
    return f"shipping workflow for {order_id}"
