"""Flow control: a third-party email API that takes at most 5 calls a second and 2 at once.

    python examples/rate_limited.py

The limits live in the database (``durable.set_stream_limits``) and hold across every worker
process; a DBA can read and change them in psql while the workers run. The campaign below sends
12 emails in parallel; the limits pace them. A second start with the same ``dedup_id`` returns
the campaign already running instead of sending twice.

Uses $PGDURABLE_DSN (or $DATABASE_URL), else the embedded dev Postgres, and
migrates it first. ``main(dsn)`` is what the tests call.
"""

from __future__ import annotations

import asyncio
import time

from pgdurable import Durable

STARTS: list[float] = []  # when each call began (this process runs them all)
RUNNING = {"now": 0, "peak": 0}


# The activity: a call to the rate-limited API (here, a short sleep).
async def send_email(address: str) -> str:
    STARTS.append(time.monotonic())
    RUNNING["now"] += 1
    RUNNING["peak"] = max(RUNNING["peak"], RUNNING["now"])
    try:
        await asyncio.sleep(0.3)
        return f"sent to {address}"
    finally:
        RUNNING["now"] -= 1


# The workflow: every email at once; the stream limits decide when each one runs.
async def campaign(addresses: list[str]) -> int:
    acts = Durable.workflow.proxy_activities(activities=[send_email])
    sent = await asyncio.gather(*(acts.send_email(address) for address in addresses))
    return len(sent)


async def main(dsn: str) -> dict[str, object]:
    connection = Durable.Connection(dsn)
    try:
        client = Durable.Client(connection=connection)
        # Activities of task queue "mail" run on the stream "mail-activity".
        await client.set_stream_limits("mail-activity", max_running=2, rate_limit=5, rate_period="1 second")
        await Durable.Worker.create(connection=connection, task_queue="mail", workflow=campaign)
        addresses = [f"user{i}@example.com" for i in range(12)]
        handle = await client.workflow.start(args=[addresses], task_queue="mail", workflow_name="campaign",
                                             dedup_id="spring-campaign", priority=5)
        again = await client.workflow.start(args=[addresses], task_queue="mail", workflow_name="campaign",
                                            dedup_id="spring-campaign", id_reuse="return_existing")
        sent = await handle.result()
        # The engine counts its claims in its own clock; here each call's start is seen a little
        # later (a few ms, not the same for each): count in windows of 0.9 s to allow for that.
        busiest = max(sum(1 for t in STARTS if start <= t < start + 0.9) for start in STARTS)
        return {"sent": sent, "same_campaign": again.workflow_id == handle.workflow_id,
                "most_at_once": RUNNING["peak"], "most_in_one_second": busiest,
                "limits": await client.stream_limits()}
    finally:
        await Durable.shutdown()


if __name__ == "__main__":
    from pgdurable.embedded import dev_server

    with dev_server() as dsn:  # $PGDURABLE_DSN / $DATABASE_URL, else the embedded Postgres
        Durable.migrate(dsn)
        print(asyncio.run(main(dsn)))
