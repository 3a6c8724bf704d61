"""Failures are reported as what they are: a release at shutdown that did not happen is not
logged as done, and a stored payload that cannot be decoded is a PayloadError, not raw text."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from pgdurable import Durable, errors, payloads
from support.polling import wait_for

started: list[str] = []
gate: dict[str, asyncio.Event] = {}


async def report_blocker() -> str:
    started.append("blocker")
    await gate["release"].wait()
    return "done"


async def report_blocking_workflow() -> str:
    acts = Durable.workflow.proxy_activities(activities=[report_blocker])
    return await acts.report_blocker()


async def report_secret_workflow() -> str:
    return "the secret result"


class Base64Codec:
    def encode(self, data: str) -> str:
        return base64.b64encode(data.encode()).decode()

    def decode(self, data: str) -> str:
        return base64.b64decode(data.encode(), validate=True).decode()


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    started.clear()
    gate["release"] = asyncio.Event()
    yield Durable.Connection(dsn)
    gate["release"].set()
    await Durable.shutdown(grace=1)


@pytest.fixture
def no_codec_afterwards() -> Iterator[None]:
    yield
    payloads.register_codec(None)


async def _worker_running_the_blocking_activity(connection: Durable.Connection) -> Durable.Worker:
    worker = await Durable.Worker.create(connection=connection, task_queue="report",
                                         workflow=report_blocking_workflow)
    client = Durable.Client(connection=connection)
    await client.workflow.start(task_queue="report", workflow_name="report_blocking_workflow")
    await wait_for(lambda: started, "the activity to start")
    return worker


async def test_release_at_shutdown_of_a_lease_already_lost_is_logged_as_lost_not_as_released(
        connection, conn: psycopg.Connection, caplog):
    caplog.set_level(logging.INFO, logger="pgdurable.worker")
    worker = await _worker_running_the_blocking_activity(connection)
    # Another worker took the task over meanwhile (its lease token changed).
    conn.execute("UPDATE durable.messages SET lease_token = gen_random_uuid() WHERE kind = 'activity'")

    await worker.shutdown(grace=0.2)
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "report_blocker released" in m], messages
    assert [m for m in messages if "report_blocker" in m and "lease" in m and "not released" in m], messages


async def test_release_at_shutdown_of_a_held_lease_is_logged_as_released(connection, conn, caplog):
    caplog.set_level(logging.INFO, logger="pgdurable.worker")
    worker = await _worker_running_the_blocking_activity(connection)

    await worker.shutdown(grace=0.2)
    assert [r for r in caplog.records if "report_blocker released" in r.getMessage()], caplog.text
    row = conn.execute("SELECT lease_token FROM durable.messages WHERE kind = 'activity'").fetchone()
    assert row == (None,)


def test_to_json_value_of_an_undecodable_payload_raises_payload_error():
    with pytest.raises(errors.PayloadError, match="codec"):
        payloads.to_json_value("not JSON, perhaps ciphertext")
    assert payloads.to_json_value('{"a": [1]}') == {"a": [1]}
    assert payloads.to_json_value(None) is None


async def test_history_of_a_payload_written_with_another_codec_raises_payload_error(
        connection, no_codec_afterwards):
    payloads.register_codec(Base64Codec())
    await Durable.Worker.create(connection=connection, task_queue="report", workflow=report_secret_workflow)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(task_queue="report", workflow_name="report_secret_workflow")
    assert await handle.result(timeout=20) == "the secret result"
    assert (await handle.history())[-1]["details"]["result"] == "the secret result"

    payloads.register_codec(None)
    with pytest.raises(errors.PayloadError, match="same codec"):
        await handle.history()
