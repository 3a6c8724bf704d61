"""Issue 16: per-stream limits hold exactly, globally, with several worker processes claiming at
once: max_running (sampled from inside the activities and from pg_stat_activity), a sliding
rate limit (counted from the claims themselves), priorities and ordered partitions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from pgdurable import Durable
from support.db import sql
from support.subprocess_workers import ready_workers
from workers.flow_flows import MARKER, PROBE_DSN

WORKFLOWS = "flow_fan,flow_ticks,flow_partitioned,flow_ordered"
ACTIVITIES = "flow_hold,flow_tick,flow_mark"


@pytest.fixture
async def client(dsn: str) -> AsyncIterator[Any]:
    sql(dsn, "CREATE TABLE flow_marks (what text, key text, n integer, seen integer, "
             "at timestamptz NOT NULL DEFAULT clock_timestamp())")
    sql(dsn, "CREATE TABLE flow_running (n integer NOT NULL)")
    sql(dsn, "INSERT INTO flow_running VALUES (0)")
    # Every lease taken on a task (a claim, or a hand-over), with its time: the starts, counted.
    sql(dsn, """CREATE TABLE flow_claims (kind text, workflow_id text, at timestamptz)""")
    sql(dsn, """CREATE FUNCTION public.flow_record_claim() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    INSERT INTO public.flow_claims VALUES (NEW.kind, NEW.workflow_id, clock_timestamp());
                    RETURN NULL;
                END $$""")
    sql(dsn, """CREATE TRIGGER flow_record_claim AFTER UPDATE ON durable.messages FOR EACH ROW
                WHEN (NEW.lease_token IS NOT NULL AND NEW.lease_token IS DISTINCT FROM OLD.lease_token)
                EXECUTE FUNCTION public.flow_record_claim()""")
    # An activity handed to the worker that scheduled it (eager dispatch) is born leased.
    sql(dsn, """CREATE TRIGGER flow_record_handed AFTER INSERT ON durable.messages FOR EACH ROW
                WHEN (NEW.lease_token IS NOT NULL) EXECUTE FUNCTION public.flow_record_claim()""")
    yield Durable.Client(connection=Durable.Connection(dsn))
    await Durable.shutdown(grace=5)


def workers(dsn: str, queue: str) -> Any:
    """Worker subprocesses serving the flow control workflows on ``queue`` (a 30 s lease: a
    heartbeat late on a busy machine must not free a running slot)."""
    return ready_workers(dsn, queue, workflows=WORKFLOWS, activities=ACTIVITIES, lease=30, timeout=300)


async def test_max_running_3_on_an_activity_stream_is_never_exceeded_by_4_worker_processes(dsn, client):
    queue = "capped"
    await client.set_stream_limits(f"{queue}-activity", max_running=3)
    handles = [await client.workflow.start(args=[6, 0.3], task_queue=queue, workflow_name="flow_fan")
               for _ in range(4)]
    sampled: list[int] = []
    async with workers(dsn, queue) as start:
        for _ in range(4):
            await start(env={PROBE_DSN: dsn})
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as probe:
            results = asyncio.gather(*(handle.result(timeout=120) for handle in handles))
            while not results.done():
                cur = await probe.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND state = 'active' "
                    "AND query LIKE 'SELECT pg_sleep%%'", [MARKER])
                sampled.append((await cur.fetchone())[0])  # type: ignore[index]
                await asyncio.sleep(0.01)
            assert await results == [6, 6, 6, 6]
    seen = sql(dsn, "SELECT count(*), max(seen) FROM flow_marks WHERE what = 'hold'")[0]
    assert seen == (24, 3), "each activity counted how many ran with it: the peak must be exactly 3"
    assert max(sampled) <= 3, f"pg_stat_activity showed {max(sampled)} holding at once"
    assert max(sampled) >= 2, "the sampler never saw the activities run: it proves nothing"
    assert sql(dsn, "SELECT n FROM flow_running") == [(0,)]


async def test_a_rate_of_20_per_second_starts_200_in_10_seconds_across_worker_processes(dsn, client):
    queue = "rated"
    await client.set_stream_limits(f"{queue}-activity", rate_limit=20, rate_period="1 second")
    handles = [await client.workflow.start(args=[60], task_queue=queue, workflow_name="flow_ticks")
               for _ in range(4)]
    async with workers(dsn, queue) as start:
        for _ in range(2):
            await start()
        assert await asyncio.gather(*(handle.result(timeout=120) for handle in handles)) == [60] * 4
    claims = [row[0] for row in sql(dsn, "SELECT extract(epoch FROM at)::float8 FROM flow_claims "
                                         "WHERE kind = 'activity' ORDER BY at")]
    assert len(claims) == 240
    first = claims[0]
    in_ten = sum(1 for at in claims if at < first + 10.0)
    assert 199 <= in_ten <= 201, f"{in_ten} activities started in the first 10 s at 20/s"
    # Sliding: no window of a second (less the recording's jitter) holds more than 20.
    busiest = max(sum(1 for other in claims if at - 0.95 < other <= at) for at in claims)
    assert busiest <= 20, f"{busiest} activities started within one second"


async def test_priorities_order_the_claims_of_concurrent_worker_processes(dsn, client):
    """Three processes race for the workflow tasks; max_running 1 on the task queue makes the
    claims one at a time, so the order of the runs' first claims is observable: by priority,
    higher first, and in start order within a priority."""
    queue = "prio"
    await client.set_stream_limits(queue, max_running=1)
    priorities = [0, 5, -1, 5, 9, 0, 2, 9, 5, -1, 0, 2]
    ids = []
    for n, priority in enumerate(priorities):
        handle = await client.workflow.start(args=[n], task_queue=queue, workflow_name="flow_ordered",
                                             workflow_id=f"prio-{n:02}", priority=priority)
        ids.append(handle.workflow_id)
    async with workers(dsn, queue) as start:
        for _ in range(3):
            await start(env={PROBE_DSN: dsn})
        handles = [client.workflow.get_handle(workflow_id) for workflow_id in ids]
        await asyncio.gather(*(handle.result(timeout=120) for handle in handles))
    first_claims = [row[0] for row in sql(
        dsn, "SELECT workflow_id FROM flow_claims WHERE kind = 'workflow' "
             "GROUP BY workflow_id ORDER BY min(at)")]
    order = sorted(enumerate(priorities), key=lambda item: (-item[1], item[0]))
    expected = [f"prio-{n:02}" for n, _ in order]
    assert first_claims == expected


async def test_runs_of_one_partition_key_run_one_at_a_time_in_start_order(dsn, client):
    queue = "parts"
    keys = ["acct-a", "acct-b", "acct-c"]
    handles = []
    for n in range(4):
        for key in keys:
            handles.append(await client.workflow.start(args=[key, n], task_queue=queue,
                                                       workflow_name="flow_partitioned", partition_key=key))
    async with workers(dsn, queue) as start:
        for _ in range(3):
            await start(env={PROBE_DSN: dsn})
        await asyncio.gather(*(handle.result(timeout=120) for handle in handles))
    for key in keys:
        marks = sql(dsn, "SELECT what, n FROM flow_marks WHERE key = %s ORDER BY at", [key])
        assert marks == [(what, n) for n in range(4) for what in ("start", "end")], (
            f"runs of partition {key} overlapped or ran out of start order: {marks}")
    # The partitions are independent: runs of different keys did overlap.
    overlaps = sql(dsn, """
        SELECT count(*) FROM flow_marks s1
        JOIN flow_marks e1 ON e1.key = s1.key AND e1.n = s1.n AND e1.what = 'end'
        JOIN flow_marks s2 ON s2.key <> s1.key AND s2.what = 'start'
        WHERE s1.what = 'start' AND s2.at > s1.at AND s2.at < e1.at""")[0][0]
    assert overlaps > 0
    assert sql(dsn, "SELECT count(*) FROM durable.partitions") == [(0,)]
    assert sql(dsn, "SELECT count(*) FROM durable.partition_waiters") == [(0,)]


async def test_a_limit_changed_while_workers_run_applies_at_once(dsn, client):
    queue = "paused"
    await client.set_stream_limits(f"{queue}-activity", max_running=0)
    handle = await client.workflow.start(args=[3], task_queue=queue, workflow_name="flow_ticks")
    async with workers(dsn, queue) as start:
        await start()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # paused: its activities wait (and the run with them)
            assert sql(dsn, "SELECT count(*) FROM flow_claims WHERE kind = 'activity'") == [(0,)]
            await asyncio.sleep(0.1)
        assert await handle.status() == "running"
        await client.set_stream_limits(f"{queue}-activity", max_running=2)
        assert await handle.result(timeout=30) == 3
    assert await client.stream_limits() == [
        {"stream": f"{queue}-activity", "max_running": 2, "rate_limit": None, "rate_period": None}]
