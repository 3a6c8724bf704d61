"""Payloads: JSON plus datetime, date, UUID, Decimal and bytes round-trip exactly through
workflow args, activity args and results, and workflow results; anything else is refused
before any state changes; a database without the schema is refused with what to run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from pgdurable import Durable, errors
from support.history import events

VALUES: dict[str, Any] = {
    "aware": datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    "aware_utc": datetime(2030, 1, 1, tzinfo=UTC),
    "naive": datetime(1999, 12, 31, 23, 59, 59, 999999),
    "day": date(2000, 2, 29),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "money": Decimal("12.10"),
    "tiny": Decimal("-1E-30"),
    "blob": bytes(range(256)),
    "empty_blob": b"",
    "nested": {"list": [1, 2.5, "three", None, True, [Decimal("4.0"), {"deep": date(2020, 1, 1)}]],
               "unicode": "naïve ☃ \u2028", "empty": {}},
    "tagged_key": {"$pd": "bytes", "v": "not really bytes"},
    "big": 2 ** 80,
}


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (Decimal('12.10') is not Decimal('12.1'))."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (Decimal, datetime)):
        return str(a) == str(b) and a == b
    return a == b


async def payload_echo(value: Any) -> Any:
    return {"seen": value, "types": sorted({type(v).__name__ for v in value.values()})}


async def payload_workflow(values: dict[str, Any], pair: tuple[int, str]) -> dict[str, Any]:
    acts = Durable.workflow.proxy_activities(activities=[payload_echo])
    echoed = await acts.payload_echo(values)
    return {"workflow_saw": values, "activity_saw": echoed["seen"], "types": echoed["types"],
            "pair": pair, "pair_type": type(pair).__name__, "tuple_result": (1, (2, 3))}


async def payload_noop() -> None:
    return None


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    yield Durable.Connection(dsn)
    await Durable.shutdown()


async def test_payload_types_round_trip_exactly(connection):
    await Durable.Worker.create(connection=connection, task_queue="payloads", workflow=payload_workflow,
                                max_cached_workflows=0)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=[VALUES, (7, "seven")], task_queue="payloads",
                                         workflow_name="payload_workflow")
    result = await handle.result(timeout=20)
    assert same(result["workflow_saw"], VALUES)
    assert same(result["activity_saw"], VALUES)
    assert result["types"] == ["Decimal", "UUID", "bytes", "date", "datetime", "dict", "int"]
    assert result["workflow_saw"]["naive"].tzinfo is None
    assert result["workflow_saw"]["aware"].utcoffset() == timedelta(hours=5, minutes=30)
    # Tuples come back as lists.
    assert result["pair"] == [7, "seven"] and result["pair_type"] == "list"
    assert result["tuple_result"] == [1, [2, 3]]
    state = await handle.state()
    assert same(state["result"]["activity_saw"], VALUES)


async def test_history_payloads_are_json_values(connection):
    await Durable.Worker.create(connection=connection, task_queue="payloads", workflow=payload_workflow)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=[{"n": Decimal("1.5")}, (1, "a")], task_queue="payloads",
                                         workflow_name="payload_workflow")
    await handle.result(timeout=20)
    scheduled = (await events(handle, "activity_scheduled"))[0]
    assert scheduled["details"]["args"] == [{"n": {"$pd": "decimal", "v": "1.5"}}]


class Opaque:
    pass


@pytest.mark.parametrize(("bad", "named"), [
    (Opaque(), "Opaque"),
    ({1, 2}, "set"),
    ({"when": timedelta(seconds=1)}, "timedelta"),
    ([complex(1, 2)], "complex"),
])
async def test_non_serialisable_args_raise_type_error_naming_the_type_and_start_nothing(
        connection, bad, named):
    client = Durable.Client(connection=connection)
    with pytest.raises(TypeError, match=named):
        await client.workflow.start(args=[bad], task_queue="payloads", workflow_name="payload_noop",
                                    workflow_id="never-started")
    assert await client.workflow.list() == []
    handle = client.workflow.get_handle("payloads", "payload_noop", "never-started")
    with pytest.raises(errors.WorkflowNotFoundError):
        await handle.status()


async def test_non_serialisable_signal_data_raises_type_error(connection):
    client = Durable.Client(connection=connection)
    with pytest.raises(TypeError, match="Opaque"):
        await client.workflow.signal("sig", {"x": Opaque()})


async def test_database_without_the_schema_raises_schema_version_error_naming_the_upgrade(empty_dsn):
    connection = Durable.Connection(empty_dsn)
    try:
        client = Durable.Client(connection=connection)
        with pytest.raises(errors.SchemaVersionError, match="pgdurable db upgrade"):
            await client.workflow.start(task_queue="payloads", workflow_name="payload_noop")
        with pytest.raises(errors.SchemaVersionError, match="pgdurable db upgrade"):
            await Durable.Worker.create(connection=connection, task_queue="payloads", workflow=payload_noop)
    finally:
        await Durable.shutdown()


def test_a_payload_over_the_limit_raises_invalid_argument_error_with_the_documented_message():
    from pgdurable import payloads

    size = payloads.MAX_PAYLOAD_BYTES + 1
    with pytest.raises(errors.InvalidArgumentError) as caught:
        payloads.dumps("x" * (size - 2))  # the JSON string's quotes make it one byte over
    assert str(caught.value) == (f"payload of {size} bytes exceeds the 16777216 byte limit: "
                                 "store large data elsewhere and pass a reference")
    assert isinstance(caught.value, ValueError)
