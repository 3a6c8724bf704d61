"""Workers ride out a Postgres restart and killed connections: no workflow is lost, none
completes twice, every activity result is recorded once, and an outage is logged once per
worker, not once per message."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter

import pytest

from pgdurable import Durable
from pgdurable._migrate import migrate
from support.db import assert_each_ran_exactly_once, closed_count, own_server, sql
from support.polling import wait_for
from workers.rel_flows import rel_chain

QUEUE = "rel-load"
UNREACHABLE = re.compile(r"worker (\S+): database unreachable")


def unreachable_warnings(caplog: pytest.LogCaptureFixture) -> Counter[str]:
    """How many "database unreachable" warnings each worker logged."""
    found: Counter[str] = Counter()
    for record in caplog.records:
        match = UNREACHABLE.search(record.getMessage())
        if match and record.levelno == logging.WARNING:
            found[match.group(1)] += 1
    return found


async def start_load(dsn: str, count: int, workers: int = 2) -> tuple[list[str], list[Durable.Handle]]:
    """``workers`` workers (each with its own pool and LISTEN connection) and ``count`` workflows."""
    for _ in range(workers):
        await Durable.Worker.create(connection=Durable.Connection(dsn), task_queue=QUEUE, workflow=rel_chain,
                                    concurrency=20, lease_seconds=5)
    client = Durable.Client(connection=Durable.Connection(dsn))
    handles = [await client.workflow.start(args=[i], task_queue=QUEUE, workflow_name="rel_chain",
                                           workflow_id=f"rel-{i}") for i in range(count)]
    return [h.workflow_id for h in handles], handles


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_workflows_survive_a_postgres_restart_under_load_and_the_outage_is_logged_once(caplog, mode):
    # immediate: a crash. Claims, lease extensions and heartbeats commit without waiting for the
    # WAL flush, so the last ones may be lost: their tasks become visible again, nothing else.
    caplog.set_level(logging.WARNING, logger="pgdurable")
    with own_server("rel-restart") as server:
        dsn = server.dsn()
        await asyncio.to_thread(migrate, dsn)
        try:
            ids, handles = await start_load(dsn, 200)
            # A few clients wait on results across the outage.
            waiting = asyncio.gather(*(h.result(timeout=150) for h in handles[-10:]), return_exceptions=True)
            await wait_for(lambda: _at_least(dsn, ids, 20), "20 workflows to finish before the restart",
                           timeout=60)

            outage_started = time.monotonic()
            await asyncio.to_thread(server.stop, mode)
            assert await closed_count(dsn, ids) is None, "the server is still reachable after stop()"
            await asyncio.sleep(1.0)
            await asyncio.to_thread(server.start)
            print(f"outage: {time.monotonic() - outage_started:.1f} s")
            mid = await closed_count(dsn, ids)
            assert mid is not None and mid < len(ids), "every workflow ended before the restart: no load hit"

            await wait_for(lambda: _at_least(dsn, ids, len(ids)),
                             "all workflows to finish after the restart", timeout=150)
            results = await waiting
            assert results == [i + 3 for i in range(190, 200)], results
            assert_each_ran_exactly_once(dsn, ids)

            # A worker whose calls only waited for the pool to reconnect logs nothing of its own;
            # one whose calls failed says so once, not once per call.
            warnings = unreachable_warnings(caplog)
            assert all(n <= 3 for n in warnings.values()), f"outage logged per message, not once: {warnings}"
            # Three LISTEN connections (two workers, one client) each came back, and said so once.
            listen_lost = sum("LISTEN connection lost" in r.getMessage() for r in caplog.records)
            listen_back = sum("LISTEN connection back" in r.getMessage() for r in caplog.records)
            assert listen_back >= 3, f"only {listen_back} LISTEN connections came back"
            assert 3 <= listen_lost <= 2 * 3, f"LISTEN outage logged {listen_lost} times"
            print(f"unreachable warnings per worker: {dict(warnings)}; "
                  f"LISTEN lost/back: {listen_lost}/{listen_back}")
        finally:
            await Durable.shutdown(grace=5)


async def _at_least(dsn: str, ids: list[str], n: int) -> bool:
    done = await closed_count(dsn, ids)
    return done is not None and done >= n


async def test_workflows_survive_repeated_kills_of_every_connection(dsn, caplog):
    caplog.set_level(logging.WARNING, logger="pgdurable")
    try:
        ids, handles = await start_load(dsn, 100)
        waiting = asyncio.gather(*(h.result(timeout=90) for h in handles[-5:]), return_exceptions=True)
        await wait_for(lambda: _at_least(dsn, ids, 5), "5 workflows to finish before the first kill",
                       timeout=60)
        killed, mid = 0, None
        for _ in range(5):
            rows = await asyncio.to_thread(sql, dsn, """
                SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()""")
            killed += rows[0][0]
            if mid is None:  # the load was still running when the kills began
                mid = await closed_count(dsn, ids)
            await asyncio.sleep(0.5)
        assert killed >= 5 and mid is not None and mid < len(ids), (killed, mid)

        await wait_for(lambda: _at_least(dsn, ids, len(ids)), "every workflow to finish after the kills",
                         timeout=90)
        assert await waiting == [i + 3 for i in range(95, 100)]
        assert_each_ran_exactly_once(dsn, ids)
        warnings = unreachable_warnings(caplog)
        assert all(n <= 3 * 5 for n in warnings.values()), f"kills logged per message, not once: {warnings}"
        print(f"killed {killed} backends; unreachable warnings per worker: {dict(warnings)}")
    finally:
        await Durable.shutdown(grace=5)
