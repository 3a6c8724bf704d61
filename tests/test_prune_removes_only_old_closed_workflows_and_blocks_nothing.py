"""Retention (``durable.prune``): old closed workflows and their history go, running and recent
ones stay, each call is bounded by its batch, and pruning alongside live work never blocks it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import psycopg
import pytest

from pgdurable import Durable
from support.db import assert_each_ran_exactly_once, sql
from support.polling import wait_for
from workers.rel_flows import rel_chain


def make_workflows(dsn: str, prefix: str, n: int, *, close: bool, queue: str = "rel-prune-q") -> list[str]:
    """``n`` workflows started (and, with ``close``, completed) through the engine's own functions."""
    ids = [f"{prefix}-{i}" for i in range(n)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        for wid in ids:
            conn.execute("SELECT durable.start_workflow_v1('durable', %s, 'rel_pruned', %s, '[1]')",
                         (wid, queue))
        if close:
            tasks = conn.execute("""
                SELECT message_id, lease_token FROM durable.claim_workflow_tasks_v1(
                    'durable', ARRAY[%s], ARRAY['rel_pruned'], %s, '30 seconds', 'rel-test')""",
                                 (queue, n)).fetchall()
            assert len(tasks) == n
            for message_id, token in tasks:
                conn.execute("""SELECT durable.complete_workflow_task_v1(%s, %s, 1,
                                    '[{"type": "complete", "result": "1"}]')""", (message_id, token))
    return ids


def counts(dsn: str, ids: list[str]) -> tuple[int, int]:
    """(workflow rows, history rows) of these workflow ids."""
    row = sql(dsn, """SELECT (SELECT count(*) FROM durable.workflows WHERE workflow_id = ANY(%s)),
                             (SELECT count(*) FROM durable.history WHERE workflow_id = ANY(%s))""",
              (ids, ids))
    return int(row[0][0]), int(row[0][1])


@pytest.mark.sql
def test_prune_removes_old_closed_workflows_with_their_history_in_bounded_batches(dsn):
    old = make_workflows(dsn, "old", 120, close=True)
    old_running = make_workflows(dsn, "old-running", 5, close=False, queue="rel-prune-running")
    sql(dsn, "SELECT durable.advance_clock('31 days')")
    recent = make_workflows(dsn, "recent", 30, close=True)
    assert counts(dsn, old) == (120, 240)  # workflow_started + workflow_completed each

    assert sql(dsn, "SELECT durable.prune('30 days', 'another-namespace', 50)") == [(0,)]
    assert counts(dsn, old) == (120, 240)

    deleted = []
    while True:
        n = sql(dsn, "SELECT durable.prune('30 days', 'durable', 50)")[0][0]
        assert n <= 50, f"one prune call deleted {n} runs, more than its batch of 50"
        deleted.append(n)
        if n == 0:
            break
    assert deleted == [50, 50, 20, 0]
    assert counts(dsn, old) == (0, 0), "old closed workflows or their history survived"
    assert counts(dsn, recent) == (30, 60), "recently closed workflows were pruned"
    assert counts(dsn, old_running) == (5, 5), "running workflows were pruned, however old"
    tasks = sql(dsn, "SELECT count(*) FROM durable.messages WHERE workflow_id = ANY(%s)", (old_running,))
    assert tasks == [(5,)], "the tasks of running workflows were pruned"

    with pytest.raises(psycopg.Error, match="invalid retention"):
        sql(dsn, "SELECT durable.prune('-1 day')")


def test_prune_expires_old_buffered_signals_and_keeps_live_ones(dsn):
    sql(dsn, "SELECT durable.send_signal_v1('durable', 'rel-old-signal', '1', '1 day')")
    sql(dsn, "SELECT durable.advance_clock('2 days')")
    sql(dsn, "SELECT durable.send_signal_v1('durable', 'rel-new-signal', '2', '1 day')")
    sql(dsn, "SELECT durable.prune('30 days')")
    assert sql(dsn, "SELECT signal_id FROM durable.signals") == [("rel-new-signal",)]


async def test_pruning_in_a_loop_does_not_block_live_workflows(dsn):
    old = await asyncio.to_thread(make_workflows, dsn, "old", 400, close=True)
    await asyncio.to_thread(sql, dsn, "SELECT durable.advance_clock('31 days')")
    stop = asyncio.Event()
    calls: list[tuple[int, float]] = []

    def prune_once() -> tuple[int, float]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            began = time.monotonic()
            n = conn.execute("SELECT durable.prune('30 days', 'durable', 25)").fetchone()[0]
            return n, time.monotonic() - began

    async def pruner() -> None:
        while not stop.is_set():
            calls.append(await asyncio.to_thread(prune_once))
            await asyncio.sleep(0.02)

    connection = Durable.Connection(dsn)
    try:
        await Durable.Worker.create(connection=connection, task_queue="rel-prune-live", workflow=rel_chain,
                                    concurrency=20)
        client = Durable.Client(connection=connection)
        prune_task = asyncio.create_task(pruner())
        live = [await client.workflow.start(args=[i], task_queue="rel-prune-live", workflow_name="rel_chain")
                for i in range(60)]
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in live)), 90)
        assert results == [i + 3 for i in range(60)]

        async def old_gone() -> bool:
            return (await asyncio.to_thread(counts, dsn, old)) == (0, 0)
        await wait_for(old_gone, "the pruner to remove every old workflow", timeout=60)
        stop.set()
        await prune_task
    finally:
        stop.set()
        await Durable.shutdown(grace=5)
    assert_each_ran_exactly_once(dsn, [h.workflow_id for h in live])
    assert all(n <= 25 for n, _ in calls)
    assert sum(n for n, _ in calls) == 400, "live (recent) workflows were pruned too"
    print(f"{len(calls)} prune calls, slowest {max(t for _, t in calls) * 1000:.0f} ms")


def prune_cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgdurable.cli", "db", "prune", *args, "--dsn", dsn],
                          capture_output=True, text=True, timeout=120)


def test_pgdurable_db_prune_removes_what_durable_prune_would(dsn):
    old = make_workflows(dsn, "old", 20, close=True)
    running = make_workflows(dsn, "running", 3, close=False, queue="rel-prune-running")
    sql(dsn, "SELECT durable.advance_clock('31 days')")
    recent = make_workflows(dsn, "recent", 4, close=True)

    bad = prune_cli(dsn, "--older-than", "5 parsecs")
    assert bad.returncode != 0 and "--older-than" in bad.stderr + bad.stdout
    assert counts(dsn, old) == (20, 40), "a refused prune removed something"

    done = prune_cli(dsn, "--older-than", "30 days", "--batch", "7", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["removed_runs"] == 20
    assert counts(dsn, old) == (0, 0)
    assert counts(dsn, recent) == (4, 8) and counts(dsn, running) == (3, 3)


async def test_durable_prune_loops_over_batches_until_nothing_older_is_left(dsn):
    old = make_workflows(dsn, "sdk-old", 12, close=True)
    running = make_workflows(dsn, "sdk-running", 2, close=False, queue="rel-prune-running")
    sql(dsn, "SELECT durable.advance_clock('31 days')")
    recent = make_workflows(dsn, "sdk-recent", 3, close=True)
    connection = Durable.Connection(dsn)
    try:
        with pytest.raises(ValueError, match="batch must be a positive integer"):
            await Durable.prune(connection, "30 days", batch=0)
        with pytest.raises(ValueError, match="older_than"):
            await Durable.prune(connection, "5 parsecs")
        assert await Durable.prune(connection, "30 days", namespace="another-namespace", batch=5) == 0
        assert counts(dsn, old) == (12, 24), "a prune of another namespace removed something"

        assert await Durable.prune(connection, "30 days", batch=5) == 12  # batches of 5, 5, 2
        assert counts(dsn, old) == (0, 0)
        assert counts(dsn, recent) == (3, 6) and counts(dsn, running) == (2, 2)
        assert await Durable.prune(connection, "30 days") == 0
    finally:
        await connection.close()
