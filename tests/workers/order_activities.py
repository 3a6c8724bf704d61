"""The seed's activities: charge a card, then notify the customer.

``calls`` records every execution in this process, so a test can count them.
"""

from __future__ import annotations

calls: list[tuple[str, tuple[object, ...]]] = []


async def charge(order_id: str) -> str:
    calls.append(("charge", (order_id,)))
    return f"receipt-{order_id}"


def notify(order_id: str, receipt: str) -> None:
    # A plain def: pgdurable runs it in a thread.
    calls.append(("notify", (order_id, receipt)))
