"""Issue 16: the start options of flow control from Python (dedup ids, start delays, priorities and
partition keys, also through ``start_many`` and the sync client), and stream limits set, read and
cleared from Python; bad input (a priority that is not an int, negative limits, half a rate) gets a
clear typed error and changes nothing."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import psycopg
import pytest

import pgdurable.sync
from pgdurable import Durable, errors
from support.db import sql

QUEUE = "opts"


async def opts_echo(value: str) -> str:
    return value


async def opts_wait(signal_id: str) -> str:
    return await Durable.workflow.condition(signal_id)


@pytest.fixture
async def client(dsn):
    yield Durable.Client(connection=Durable.Connection(dsn))
    await Durable.shutdown(grace=5)


def counts(dsn: str) -> tuple[int, int, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM durable.workflows), "
                           "(SELECT count(*) FROM durable.messages), "
                           "(SELECT count(*) FROM durable.flow_limits)").fetchone()
    assert row is not None
    return row


async def test_a_second_start_with_a_running_dedup_id_is_refused_or_returns_the_first(dsn, client):
    first = await client.workflow.start(args=["o-1"], task_queue=QUEUE, workflow_name="opts_wait",
                                        dedup_id="order-1")
    with pytest.raises(errors.DuplicateWorkflowError,
                       match="dedup id 'order-1' is taken by running workflow"):
        await client.workflow.start(args=["o-1"], task_queue=QUEUE, workflow_name="opts_wait",
                                    dedup_id="order-1")
    again = await client.workflow.start(args=["o-1"], task_queue=QUEUE, workflow_name="opts_wait",
                                        dedup_id="order-1", id_reuse="return_existing")
    assert again.workflow_id == first.workflow_id
    assert len(await client.workflow.list()) == 1
    assert await first.interrupt("done") is True
    later = await client.workflow.start(args=["o-1"], task_queue=QUEUE, workflow_name="opts_wait",
                                        dedup_id="order-1")
    assert later.workflow_id != first.workflow_id, "once the run closed, its dedup id is free"


async def test_a_start_delay_makes_the_first_workflow_task_due_later(dsn, client):
    await Durable.Worker.create(connection=client.connection, task_queue=QUEUE, workflows=[opts_echo])
    began = time.monotonic()
    handle = await client.workflow.start(args=["late"], task_queue=QUEUE, workflow_name="opts_echo",
                                         start_delay="1.5 seconds")
    assert await handle.result(timeout=30) == "late"
    assert time.monotonic() - began >= 1.5
    soon = await client.workflow.start(args=["soon"], task_queue=QUEUE, workflow_name="opts_echo",
                                       start_delay=timedelta(0))
    assert await soon.result(timeout=30) == "soon"


async def test_start_many_and_the_sync_client_take_the_same_options(dsn, client):
    handles = await client.workflow.start_many([
        {"args": ["a"], "task_queue": QUEUE, "workflow_name": "opts_echo", "priority": 3,
         "partition_key": "k"},
        {"args": ["b"], "task_queue": QUEUE, "workflow_name": "opts_echo", "partition_key": "k",
         "start_delay": 60, "dedup_id": "d"}])
    rows = sql(dsn, "SELECT w.workflow_id, w.priority, w.partition_key, w.dedup_id, "
                    "m.visible_at > now() + interval '1000 years' FROM durable.workflows w "
                    "JOIN durable.messages m ON m.workflow_id = w.workflow_id ORDER BY w.created_at")
    assert rows == [(handles[0].workflow_id, 3, "k", None, False),
                    (handles[1].workflow_id, 0, "k", "d", True)]
    second = await handles[1].state()
    assert (second["partition_key"], second["dedup_id"], second["priority"]) == ("k", "d", 0)
    holder = handles[0].workflow_id
    assert second["waiting_for"] == f"its turn in partition 'k' (workflow '{holder}' runs in it now)"
    with pytest.raises(errors.StartManyError) as info:
        await client.workflow.start_many([{"args": [], "task_queue": QUEUE, "workflow_name": "opts_echo",
                                           "dedup_id": "d"}])
    assert isinstance(info.value.errors[0], errors.DuplicateWorkflowError)

    def sync_side() -> list[dict]:
        with pgdurable.sync.Client(dsn) as sync_client:
            handle = sync_client.start(args=["c"], task_queue=QUEUE, workflow_name="opts_echo", priority=-4,
                                       dedup_id="sync-1")
            assert sql(dsn, "SELECT priority FROM durable.workflows WHERE workflow_id = %s",
                       [handle.workflow_id]) == [(-4,)]
            sync_client.set_stream_limits(f"{QUEUE}-activity", max_running=4)
            return sync_client.stream_limits()

    assert await asyncio.to_thread(sync_side) == [
        {"stream": f"{QUEUE}-activity", "max_running": 4, "rate_limit": None, "rate_period": None}]


async def test_stream_limits_are_set_read_and_cleared_from_python(dsn, client):
    await client.set_stream_limits("pay-activity", max_running=3, rate_limit=10,
                                   rate_period=timedelta(seconds=2))
    await client.set_stream_limits("mail", rate_limit=100, rate_period="1 minute")
    assert await client.stream_limits() == [
        {"stream": "mail", "max_running": None, "rate_limit": 100, "rate_period": 60.0},
        {"stream": "pay-activity", "max_running": 3, "rate_limit": 10, "rate_period": 2.0}]
    other = Durable.Client(connection=client.connection, namespace="elsewhere")
    assert await other.stream_limits() == []
    await client.set_stream_limits("pay-activity", max_running=3)
    assert [row["rate_limit"] for row in await client.stream_limits()] == [100, None]
    await client.set_stream_limits("pay-activity")
    await client.set_stream_limits("mail")
    assert await client.stream_limits() == []


@pytest.mark.parametrize(("options", "error", "needle"), [
    ({"priority": "high"}, TypeError, "priority must be an int"),
    ({"priority": True}, TypeError, "priority must be an int"),
    ({"priority": 1.5}, TypeError, "priority must be an int"),
    ({"priority": 40000}, ValueError, "out of range"),
    ({"start_delay": -1}, ValueError, "invalid start_delay"),
    ({"start_delay": "soon"}, ValueError, "invalid start_delay"),
    ({"partition_key": ""}, ValueError, "invalid partition_key"),
    ({"dedup_id": 7}, ValueError, "invalid dedup_id"),
])
async def test_bad_start_options_get_a_clear_typed_error_and_start_nothing(dsn, client, options, error,
                                                                          needle):
    with pytest.raises(error, match=needle):
        await client.workflow.start(args=[], task_queue=QUEUE, workflow_name="opts_echo", **options)
    with pytest.raises(error, match=needle):
        await client.workflow.start_many([{"args": [], "task_queue": QUEUE, "workflow_name": "opts_echo",
                                           **options}])
    assert counts(dsn) == (0, 0, 0)


@pytest.mark.parametrize(("limits", "error", "needle"), [
    ({"max_running": -1}, ValueError, "max_running -1 is negative"),
    ({"max_running": "3"}, TypeError, "max_running must be an int"),
    ({"rate_limit": 10}, ValueError, "needs both rate_limit and rate_period"),
    ({"rate_period": "1 second"}, ValueError, "needs both rate_limit and rate_period"),
    ({"rate_limit": 0, "rate_period": 1}, ValueError, "rate_limit 0 is out of range"),
    ({"rate_limit": -5, "rate_period": 1}, ValueError, "rate_limit -5 is out of range"),
    ({"rate_limit": 5, "rate_period": 0}, ValueError, "must be longer than zero"),
    ({"rate_limit": 5, "rate_period": "fast"}, ValueError, "invalid rate_period"),
])
async def test_bad_stream_limits_get_a_clear_typed_error_and_change_nothing(dsn, client, limits, error,
                                                                           needle):
    await client.set_stream_limits("s", max_running=2)
    with pytest.raises(error, match=needle):
        await client.set_stream_limits("s", **limits)
    assert await client.stream_limits() == [{"stream": "s", "max_running": 2, "rate_limit": None,
                                             "rate_period": None}]


async def test_the_engine_refuses_bad_limits_the_sdk_did_not_check(dsn, client):
    """The same checks in SQL (a DBA in psql, an older SDK): InvalidArgumentError, nothing changed."""
    from pgdurable import _store as store

    with pytest.raises(errors.InvalidArgumentError, match="max_running -2 is negative"):
        await client.connection.run(
            lambda conn: store.set_stream_limits(conn, "durable", "s", -2, None, None))
    with pytest.raises(errors.InvalidArgumentError, match="priority 99999 is out of range"):
        await client.connection.run(lambda conn: store.start_workflow(
            conn, "durable", "w", "opts_echo", QUEUE, "[]", None, "reject", priority=99999))
    assert counts(dsn) == (0, 0, 0)
