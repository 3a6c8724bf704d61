"""now(), random(), uuid4() and info() return the same values on every replay."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pgdurable import Durable
from support.db import sql
from support.history import events

recorded: dict[str, Any] = {}


async def det_record(key: str, values: dict[str, Any]) -> None:
    recorded[key] = values


def snapshot() -> dict[str, Any]:
    info = Durable.workflow.info()
    return {"now": Durable.workflow.now(), "random": [Durable.workflow.random() for _ in range(3)],
            "uuid": Durable.workflow.uuid4(),
            "info": [info.workflow_id, info.workflow_name, info.namespace, info.task_queue, info.attempt,
                     info.parent_workflow_id],
            "same_context": Durable.workflow.get_context() == info}


async def deterministic_workflow(key: str) -> dict[str, Any]:
    acts = Durable.workflow.proxy_activities(activities=[det_record])
    first = snapshot()
    await acts.det_record(key, first)  # the values as first computed, recorded in history
    await Durable.workflow.sleep(0.2)
    second = snapshot()
    return {"first": first, "second": second}


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    yield Durable.Connection(dsn)
    await Durable.shutdown()


@pytest.mark.parametrize("cache", [0, 1000], ids=["replayed", "cached"])
async def test_now_random_uuid4_and_info_return_the_same_values_on_replay(connection, cache):
    await Durable.Worker.create(connection=connection, task_queue="det", workflow=deterministic_workflow,
                                max_cached_workflows=cache)
    client = Durable.Client(connection=connection)
    key = Durable.guid()
    handle = await client.workflow.start(args=[key], task_queue="det", workflow_name="deterministic_workflow",
                                         workflow_id=f"det-{key}")
    result = await handle.result(timeout=20)
    first, second = result["first"], result["second"]

    # What the code computed before the sleep (recorded then) is what the final replay computed.
    assert first == recorded[key]
    scheduled = (await events(handle, "activity_scheduled"))[0]
    assert scheduled["details"]["args"][1]["random"] == first["random"]

    assert isinstance(first["now"], datetime) and first["now"].utcoffset() == timedelta(0)
    assert first["now"].tzinfo is not None
    started = datetime.fromisoformat((await events(handle, "workflow_started"))[0]["timestamp"])
    assert abs(first["now"] - started) < timedelta(seconds=1)
    assert second["now"] - first["now"] >= timedelta(seconds=0.2)
    assert second["now"] <= datetime.now(UTC) + timedelta(seconds=1)

    assert all(0 <= r < 1 for r in first["random"]) and len(set(first["random"])) == 3
    assert first["random"] != second["random"]  # the stream goes on; it does not restart
    assert isinstance(first["uuid"], uuid.UUID) and first["uuid"].version == 4
    assert first["uuid"] != second["uuid"]
    expected_info = [f"det-{key}", "deterministic_workflow", "durable", "det", 1, None]
    assert first["info"] == second["info"] == expected_info
    assert first["same_context"] is True


@pytest.mark.parametrize("cache", [0, 1000], ids=["replayed", "cached"])
async def test_now_is_utc_whatever_the_sessions_time_zone(dsn, cache):
    database = sql(dsn, "SELECT current_database()")[0][0]
    sql(dsn, f'ALTER DATABASE "{database}" SET timezone = \'America/New_York\'')
    connection = Durable.Connection(dsn)
    try:
        await Durable.Worker.create(connection=connection, task_queue="det", workflow=deterministic_workflow,
                                    max_cached_workflows=cache)
        client = Durable.Client(connection=connection)
        handle = await client.workflow.start(args=[Durable.guid()], task_queue="det",
                                             workflow_name="deterministic_workflow")
        result = await handle.result(timeout=20)
    finally:
        await Durable.shutdown()
    assert result["first"]["now"].utcoffset() == timedelta(0)
    assert result["second"]["now"].utcoffset() == timedelta(0)


async def test_random_differs_between_workflows(connection):
    await Durable.Worker.create(connection=connection, task_queue="det", workflow=deterministic_workflow)
    client = Durable.Client(connection=connection)
    handles = [await client.workflow.start(args=[Durable.guid()], task_queue="det",
                                           workflow_name="deterministic_workflow") for _ in range(2)]
    a, b = [await h.result(timeout=20) for h in handles]
    assert a["first"]["random"] != b["first"]["random"]
    assert a["first"]["uuid"] != b["first"]["uuid"]
