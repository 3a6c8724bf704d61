"""Starts and outcome reads as group commits: ``start_many`` starts many workflows in one
transaction, starts made at the same time share one, and handles read their outcomes together;
every start and every handle still gets its own outcome, and errors are those a lone call raises."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import pgdurable.sync
from pgdurable import Durable, errors
from support.db import sql

QUEUE = "nobody-serves-this"  # runs stay running: no worker serves this queue


async def gc_echo(x: Any) -> Any:
    return x


@pytest.fixture
async def client(dsn: str) -> AsyncIterator[Durable.Client]:
    yield Durable.Client(connection=Durable.Connection(dsn))
    await Durable.shutdown(grace=1)


@pytest.fixture
def dsn(dsn: str) -> str:
    """The test's database (a throwaway clone), recording the top-level transaction of each new run."""
    sql(dsn, """
        CREATE TABLE public.run_xacts (workflow_id text, xact xid8);
        CREATE FUNCTION public.record_run_xact() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO public.run_xacts VALUES (NEW.workflow_id, pg_current_xact_id());
            RETURN NEW;
        END $$;
        CREATE TRIGGER record_run_xact AFTER INSERT ON durable.workflows
            FOR EACH ROW EXECUTE FUNCTION public.record_run_xact()""")
    return dsn


def transactions_of(dsn: str, workflow_ids: list[str]) -> int:
    """How many transactions created the runs of ``workflow_ids``."""
    return sql(dsn, "SELECT count(DISTINCT xact::text) FROM public.run_xacts WHERE workflow_id = ANY(%s)",
               (workflow_ids,))[0][0]


def start_of(workflow_id: str, **kw: Any) -> dict[str, Any]:
    return {"task_queue": QUEUE, "workflow_name": "w", "workflow_id": workflow_id, **kw}


async def test_start_many_starts_every_workflow_in_one_transaction_and_returns_handles_in_order(client, dsn):
    ids = [f"many-{i}" for i in range(50)]
    handles = await client.workflow.start_many(start_of(i, args=[i]) for i in ids)
    assert [h.workflow_id for h in handles] == ids
    assert transactions_of(dsn, ids) == 1
    assert {await h.status() for h in handles} == {"running"}
    assert sql(dsn, "SELECT args FROM durable.workflows WHERE workflow_id = 'many-7'") == [('["many-7"]',)]
    assert await client.workflow.start_many([]) == []


async def test_start_many_starts_the_others_when_one_id_is_running_and_names_the_failed_index(client, dsn):
    await client.workflow.start(**start_of("taken"))
    with pytest.raises(errors.DuplicateWorkflowError) as alone:
        await client.workflow.start(**start_of("taken"))
    with pytest.raises(errors.StartManyError) as caught:
        await client.workflow.start_many([start_of("free-1"), start_of("taken"), start_of("free-2"),
                                          start_of("taken", id_reuse="return_existing")])
    exc = caught.value
    assert list(exc.errors) == [1]
    assert isinstance(exc.errors[1], errors.DuplicateWorkflowError)
    assert str(exc.errors[1]) == str(alone.value)  # the error start() raises for it, word for word
    assert "1 of 4 starts failed" in str(exc) and "starts[1] (DuplicateWorkflowError)" in str(exc)
    assert [h and h.workflow_id for h in exc.handles] == ["free-1", None, "free-2", "taken"]
    assert await exc.handles[2].status() == "running"
    assert sorted(r["workflow_id"] for r in await client.workflow.list()) == ["free-1", "free-2", "taken"]


async def test_start_many_checks_every_start_first_and_a_bad_one_names_its_index_and_starts_nothing(client):
    with pytest.raises(ValueError, match=r"starts\[1\]: invalid workflow_id ''"):
        await client.workflow.start_many([start_of("ok-1"), start_of("")])
    with pytest.raises(TypeError, match=r"starts\[0\]: .*unexpected keyword argument 'queue'"):
        await client.workflow.start_many([{"queue": "q", "workflow_name": "w"}])
    with pytest.raises(TypeError, match=r"starts\[0\] must be a dict"):
        await client.workflow.start_many(["ok-1"])  # type: ignore[list-item]
    with pytest.raises(errors.InvalidArgumentError, match=r"starts\[0\]: payload of \d+ bytes exceeds"):
        await client.workflow.start_many([start_of("big", args=["x" * (17 * 1024 * 1024)])])
    assert await client.workflow.list() == []


async def test_starts_made_at_the_same_time_share_a_transaction_and_each_gets_its_own_outcome(client, dsn):
    ids = [f"together-{i}" for i in range(20)]
    outcomes = await asyncio.gather(
        *(client.workflow.start(**start_of(i)) for i in ids),
        client.workflow.start(**start_of("together-3")),  # the same id again, in the same batch
        client.workflow.start(**start_of("")),  # refused before it is sent
        return_exceptions=True)
    handles, duplicate, invalid = outcomes[:20], outcomes[20], outcomes[21]
    assert [h.workflow_id for h in handles] == ids
    assert isinstance(duplicate, errors.DuplicateWorkflowError)
    assert "workflow id 'together-3' is already running" in str(duplicate)
    assert isinstance(invalid, ValueError)
    # Made in one turn of the event loop, they all go in the one call that turn scheduled.
    assert transactions_of(dsn, ids) == 1


async def test_handles_waiting_at_the_same_time_read_their_outcomes_together(dsn, monkeypatch):
    connection = Durable.Connection(dsn)
    await Durable.Worker.create(connection=connection, task_queue="gc", workflows=[gc_echo])
    client = Durable.Client(connection=connection)
    try:
        ids = [f"echo-{i}" for i in range(10)]
        started = await client.workflow.start_many(
            {"task_queue": "gc", "workflow_name": "gc_echo", "workflow_id": i, "args": [i]} for i in ids)
        assert [await h.result(timeout=30) for h in started] == ids

        reads: list[list[str]] = []
        read_outcomes = client._read_outcomes

        async def counted(workflow_ids: list[str]) -> Any:
            reads.append(list(workflow_ids))
            return await read_outcomes(workflow_ids)

        monkeypatch.setattr(client, "_read_outcomes", counted)
        fresh = Durable.Client(connection=connection)  # its batchers were not made yet
        monkeypatch.setattr(fresh, "_read_outcomes", counted)
        # The closed channel known and listened to: each result() reads at once, none waits first.
        await (await connection.listener()).subscribe(await fresh.closed_channel())
        handles = [fresh.workflow.get_handle(i) for i in [*ids, "echo-unknown"]]
        results = await asyncio.gather(*(h.result(timeout=30) for h in handles), return_exceptions=True)
        assert results[:10] == ids
        assert isinstance(results[10], errors.WorkflowNotFoundError)
        # Woken in one turn of the event loop, the eleven handles read in one query.
        assert [len(r) for r in reads] == [11]
        assert sorted(sum(reads, [])) == sorted([*ids, "echo-unknown"])
    finally:
        await Durable.shutdown(grace=1)


def test_the_sync_client_starts_many_and_hands_back_sync_handles_on_failure(dsn):
    with pgdurable.sync.Client(dsn) as client:
        handles = client.start_many([start_of("sync-1"), start_of("sync-2")])
        assert [h.workflow_id for h in handles] == ["sync-1", "sync-2"]
        assert handles[0].status() == "running"
        with pytest.raises(errors.StartManyError) as caught:
            client.start_many([start_of("sync-1"), start_of("sync-3")])
        assert list(caught.value.errors) == [0]
        assert isinstance(caught.value.handles[1], pgdurable.sync.WorkflowHandle)
        assert caught.value.handles[1].status() == "running"
