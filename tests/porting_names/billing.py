"""An activity named like one of :mod:`porting_names.shipping`'s (a port's two modules)."""


async def send_porting_receipt(order_id: str) -> str:
    return f"billing notified of {order_id}"
