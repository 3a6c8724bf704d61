"""A saga: book a trip step by step; undo the finished steps if a later one fails
or the trip is cancelled.

    python examples/saga.py

Each booking pushes its compensation. On failure (an activity raising
DurableFatalError) or cancellation (``handle.cancel()`` raises CancelledFailure
at the workflow's current durable await), the compensations run in reverse,
inside ``CancellationScope.non_cancellable()``, and the error is re-raised.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pgdurable import CancellationScope, Durable, RetryPolicy, errors

TASK_QUEUE = "trips"


async def book_flight(trip: dict[str, Any]) -> str:
    return f"flight-{trip['id']}"


async def book_hotel(trip: dict[str, Any]) -> str:
    return f"hotel-{trip['id']}"


async def book_car(trip: dict[str, Any]) -> str:
    if trip.get("no_cars"):
        raise errors.DurableFatalError("no cars left at the destination")  # never retried
    return f"car-{trip['id']}"


async def cancel_flight(booking: str) -> None:
    print(f"  compensate: cancel {booking}")


async def cancel_hotel(booking: str) -> None:
    print(f"  compensate: cancel {booking}")


async def cancel_car(booking: str) -> None:
    print(f"  compensate: cancel {booking}")


async def trip_workflow(trip: dict[str, Any]) -> dict[str, str]:
    acts = Durable.workflow.proxy_activities(
        activities=[book_flight, book_hotel, book_car, cancel_flight, cancel_hotel, cancel_car],
        retry=RetryPolicy(maximum_attempts=3, initial_interval="200ms"))
    compensations: list[tuple[Any, str]] = []
    try:
        flight = await acts.book_flight(trip)
        compensations.append((acts.cancel_flight, flight))
        hotel = await acts.book_hotel(trip)
        compensations.append((acts.cancel_hotel, hotel))
        car = await acts.book_car(trip)
        compensations.append((acts.cancel_car, car))
        # Hold the bookings until the traveller confirms.
        await Durable.workflow.condition(f"confirm-{trip['id']}", timeout="1 day")
        return {"flight": flight, "hotel": hotel, "car": car}
    except (Exception, errors.CancelledFailure):
        # Engine control flow derives from BaseException and is not caught here.
        async with CancellationScope.non_cancellable():
            for undo, booking in reversed(compensations):
                await undo(booking)
        raise


async def _compensations(handle: Any) -> list[str]:
    names = [e["details"]["activity_name"] for e in await handle.history()
             if e["event_type"] == "activity_scheduled"]
    return [name for name in names if name.startswith("cancel_")]


async def main(dsn: str) -> dict[str, dict[str, Any]]:
    connection = Durable.Connection(dsn)
    try:
        await Durable.Worker.create(connection=connection, task_queue=TASK_QUEUE, workflow=trip_workflow)
        client = Durable.Client(connection=connection)
        trips = {"confirmed": {"id": f"lisbon-{Durable.guid(6)}"},
                 "failed": {"id": f"oslo-{Durable.guid(6)}", "no_cars": True},
                 "cancelled": {"id": f"rome-{Durable.guid(6)}"}}
        handles = {kind: await client.workflow.start(args=[trip], task_queue=TASK_QUEUE,
                                                    workflow_name="trip_workflow", workflow_id=trip["id"])
                   for kind, trip in trips.items()}
        await client.workflow.signal(f"confirm-{trips['confirmed']['id']}", True)  # buffered until it waits
        # Cancel the Rome trip once all three bookings are made and it waits for confirmation.
        cancelled = handles["cancelled"]
        for _ in range(400):
            if any(p.get("type") == "condition" for p in (await cancelled.state())["pending"]):
                break
            await asyncio.sleep(0.05)
        await cancelled.cancel()

        outcome: dict[str, dict[str, Any]] = {}
        for kind, handle in handles.items():
            try:
                outcome[kind] = {"status": "completed", "result": await handle.result()}
            except (errors.WorkflowFailedError, errors.WorkflowCancelledError) as exc:
                outcome[kind] = {"status": await handle.status(), "error": str(exc)}
            outcome[kind]["compensations"] = await _compensations(handle)
        return outcome
    finally:
        await Durable.shutdown()


if __name__ == "__main__":
    from pgdurable.embedded import dev_server

    with dev_server() as dsn:  # $PGDURABLE_DSN / $DATABASE_URL, else the embedded Postgres
        Durable.migrate(dsn)
        for kind, result in asyncio.run(main(dsn)).items():
            print(f"{kind}: {result}")
