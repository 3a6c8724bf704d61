"""Each tick of a schedule starts exactly one run, whose workflow id is derived from the schedule
and the tick, with three worker processes racing to fire it and a Postgres restart in between:
no tick lost (the catch-up window covers the outage), none started twice."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from pgdurable import Durable
from pgdurable._migrate import migrate
from support.db import assert_each_ran_exactly_once, own_server, sql, try_sql
from support.polling import wait_for
from support.subprocess_workers import ready_workers

QUEUE = "sched-race"


def started_ticks(dsn: str) -> list[str] | None:
    rows = try_sql(dsn, "SELECT workflow_id FROM durable.workflows WHERE workflow_id LIKE %s ORDER BY 1",
                   ("race-%",))
    return None if rows is None else [r[0] for r in rows]


def tick_of(workflow_id: str) -> datetime:
    return datetime.fromisoformat(workflow_id.removeprefix("race-"))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_each_tick_starts_exactly_one_run_with_three_racing_workers_and_a_postgres_restart(mode):
    # immediate: a crash. A tick's start commits with the claim that fired it, without waiting for
    # the WAL flush: a lost one is lost whole (the run and the schedule's move) and fires again.
    with own_server("sched-restart") as server:
        dsn = server.dsn()
        await asyncio.to_thread(migrate, dsn)
        client = Durable.Client(connection=Durable.Connection(dsn))
        try:
            async with ready_workers(dsn, QUEUE, workflows="rel_chain", timeout=180) as start:
                for _ in range(3):
                    await start()
                await client.schedule.create("race", workflow_name="rel_chain", task_queue=QUEUE, args=[1],
                                             every="1 second", overlap="allow_all", catchup_window="1 hour")
                await wait_for(lambda: len(started_ticks(dsn) or []) >= 5, "5 ticks before the restart",
                               timeout=60)

                await asyncio.to_thread(server.stop, mode)
                await asyncio.sleep(3.0)  # ticks fall due while the server is down
                await asyncio.to_thread(server.start)
                restarted_at = datetime.fromisoformat(sql(dsn, "SELECT durable.now()::text")[0][0])

                await wait_for(lambda: any(tick_of(t) > restarted_at + timedelta(seconds=3)
                                           for t in started_ticks(dsn) or []),
                               "ticks after the restart", timeout=90)
                await client.schedule.get_handle("race").pause(note="test over")
                ids = started_ticks(dsn)
                assert ids is not None
                await wait_for(lambda: sql(dsn, "SELECT count(*) FROM durable.workflows WHERE workflow_id "
                                                "LIKE %s AND status = 'running'", ("race-%",))[0][0] == 0,
                               "every scheduled run to finish", timeout=90)
        finally:
            await Durable.shutdown(grace=5)

        ticks = [tick_of(t) for t in ids]
        # One run per tick, each tick of the whole stretch (outage included), one second apart.
        assert all(b - a == timedelta(seconds=1) for a, b in zip(ticks, ticks[1:], strict=False)), ids
        assert ticks[0] < restarted_at - timedelta(seconds=3) < ticks[-1], (ticks, restarted_at)
        assert sql(dsn, "SELECT count(*), max(run_id) FROM durable.workflows WHERE workflow_id LIKE %s",
                   ("race-%",))[0] == (len(ids), 1)
        # The schedule recorded one start per tick (the newest 50 are kept), never a repeated one.
        recorded = sql(dsn, "SELECT tick, count(*) FROM durable.schedule_runs WHERE action = 'started' "
                            "GROUP BY tick HAVING count(*) > 1 OR bool_or(detail IS NOT NULL)")
        assert recorded == []
        assert_each_ran_exactly_once(dsn, ids)
        print(f"{len(ids)} ticks, one run each, across a restart with 3 racing workers")
