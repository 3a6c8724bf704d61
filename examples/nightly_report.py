"""Schedules: a report every night at 03:00 Paris time, and a heartbeat every second.

    python examples/nightly_report.py

A schedule lives in the database: the workers of its task queue fire its ticks
on their timer path (no scheduler process), each tick starting one run whose
workflow id is ``<schedule id>-<tick in UTC>``. Here the nightly report is
triggered once by hand (it would otherwise wait for 03:00), and a one-second
heartbeat schedule is fired by the worker a few times, then paused.
"""

from __future__ import annotations

import asyncio
from typing import Any
from zoneinfo import ZoneInfo

from pgdurable import Durable

TASK_QUEUE = "reports"


async def build_report(region: str) -> str:
    return f"report for {region}: all green"


async def nightly_report(region: str) -> str:
    acts = Durable.workflow.proxy_activities(activities=[build_report])
    return await acts.build_report(region)


async def heartbeat() -> str:
    return f"alive at {Durable.workflow.now():%H:%M:%S}"


async def main(dsn: str) -> dict[str, Any]:
    connection = Durable.Connection(dsn)
    suffix = Durable.guid(6)
    try:
        await Durable.Worker.create(connection=connection, task_queue=TASK_QUEUE,
                                    workflows=[nightly_report, heartbeat])
        client = Durable.Client(connection=connection)

        nightly = await client.schedule.create(
            f"nightly-report-{suffix}", workflow_name="nightly_report", task_queue=TASK_QUEUE, args=["eu"],
            cron="0 3 * * *", timezone="Europe/Paris", overlap="skip", catchup_window="1 hour")
        fires = (await nightly.describe())["next_fire_times"]
        paris = ZoneInfo("Europe/Paris")
        print("nightly report fires at", [f.astimezone(paris).isoformat() for f in fires[:3]])
        # Run it now, under its overlap policy (skip: not while the previous run still runs).
        workflow_id = await nightly.trigger()
        report = await client.workflow.get_handle(workflow_id).result(timeout=30)
        print(f"triggered {workflow_id}: {report}")

        beat = await client.schedule.create(f"heartbeat-{suffix}", workflow_name="heartbeat",
                                            task_queue=TASK_QUEUE, every="1 second")
        for _ in range(200):  # the worker fires a tick every second
            started = [r for r in (await beat.describe())["recent_runs"] if r["action"] == "started"]
            if len(started) >= 3:
                break
            await asyncio.sleep(0.05)
        await beat.pause(note="example over")
        for run in reversed(started[:3]):
            print(f"tick {run['tick']:%H:%M:%S} started {run['workflow_id']}")
        listed = {s["schedule_id"]: s["paused"] for s in await client.schedule.list()}
        print("schedules (paused?):", listed)
        await nightly.delete()
        await beat.delete()
        return {"fires": fires, "report": report, "heartbeats": len(started), "listed": listed}
    finally:
        await Durable.shutdown()


if __name__ == "__main__":
    from pgdurable.embedded import dev_server

    with dev_server() as dsn:  # $PGDURABLE_DSN / $DATABASE_URL, else the embedded Postgres
        Durable.migrate(dsn)
        print(asyncio.run(main(dsn)))
