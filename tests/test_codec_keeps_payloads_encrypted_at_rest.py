"""register_codec end to end: an AES-GCM codec encrypts every persisted payload (args,
results, signals, errors, heartbeat details, child args): a scan of every engine table
finds no plaintext, while the workflow sees its values as they were."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg import sql

from pgdurable import Durable, RetryPolicy, errors
from support.history import new_client, wait_pending
from support.polling import wait_for

QUEUE = "encrypted"
MARKER = "PLAINTEXT-MARKER-7f3a"
gate = threading.Event()


class AesGcmCodec:
    """AES-GCM with a random 12-byte nonce; stored text is base64(nonce + ciphertext)."""

    def __init__(self) -> None:
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self.encoded = 0

    def encode(self, data: str) -> str:
        self.encoded += 1
        nonce = os.urandom(12)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, data.encode("utf-8"), None)).decode("ascii")

    def decode(self, data: str) -> str:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
        return self._aead.decrypt(raw[:12], raw[12:], None).decode("utf-8")


@pytest.fixture
def codec() -> Iterator[AesGcmCodec]:
    codec = AesGcmCodec()
    Durable.register_codec(codec)
    yield codec
    Durable.register_codec(None)


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    gate.clear()
    connection = Durable.Connection(dsn)
    yield connection
    gate.set()
    await Durable.shutdown(grace=5)


def tables_holding(conn: psycopg.Connection, needle: str) -> list[str]:
    """Every table of schema durable whose rows, as text, contain ``needle``."""
    tables = [row[0] for row in conn.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'durable' AND table_type = 'BASE TABLE' ORDER BY table_name")]
    assert {"workflows", "history", "messages", "signals"} <= set(tables)
    found = []
    for table in tables:
        query = sql.SQL("SELECT count(*) FROM {}.{} t WHERE strpos(t::text, %s) > 0").format(
            sql.Identifier("durable"), sql.Identifier(table))
        row = conn.execute(query, [needle]).fetchone()
        if row and row[0]:
            found.append(table)
    return found


async def codec_enrich(order: dict[str, Any]) -> dict[str, Any]:
    return {**order, "note": f"enriched {MARKER}"}


def codec_flaky(label: str) -> str:
    ctx = Durable.activity.get_context()
    if ctx.attempt == 1:
        Durable.activity.heartbeat({"progress": f"halfway {MARKER}"})
        gate.wait(20)
        raise ConnectionError(f"upstream dropped {MARKER}")
    return f"{label} resumed from {ctx.heartbeat_details['progress']}"


async def codec_rejects(label: str) -> str:
    raise ValueError(f"refused {label} {MARKER}")


async def codec_child(secret: str) -> str:
    return f"child saw {secret}"


ACTIVITIES = [codec_enrich, codec_flaky, codec_rejects]


async def secret_order(order: dict[str, Any]) -> dict[str, Any]:
    acts = Durable.workflow.proxy_activities(
        activities=ACTIVITIES, retry=RetryPolicy(maximum_attempts=2, initial_interval=0.1))
    enriched = await acts.codec_enrich(order)
    resumed = await acts.codec_flaky(f"flaky {MARKER}")
    try:
        await acts.codec_rejects(f"order {MARKER}")
        error = None
    except errors.DurableMaxedError as exc:
        error = exc.message
    child = await Durable.workflow.execute_child(workflow_name="codec_child", args=[f"child arg {MARKER}"])
    await Durable.workflow.signal("codec-buffered", {"buffered": MARKER})
    approval = await Durable.workflow.condition("codec-approval")
    return {"enriched": enriched, "resumed": resumed, "error": error, "child": child, "approval": approval}


async def fails_with_a_secret(label: str) -> None:
    raise RuntimeError(f"workflow failed: {label}")


async def waits_forever() -> None:
    await Durable.workflow.condition("codec-never")


async def run_secret_order(connection: Durable.Connection, conn: psycopg.Connection,
                           scans: list[list[str]]) -> dict[str, Any]:
    """Runs secret_order to its end, scanning the tables at its midpoints."""
    await Durable.Worker.create(connection=connection, task_queue=QUEUE,
                                workflows=[secret_order, codec_child], lease_seconds=0.6)
    client = new_client(connection)
    handle = await client.workflow.start(args=[{"id": "o-1", "card": MARKER}], task_queue=QUEUE,
                                         workflow_name="secret_order")

    async def heartbeat_flushed() -> bool:
        row = conn.execute("SELECT bool_or(payload ? 'heartbeat_details') FROM durable.messages "
                           "WHERE workflow_id = %s", [handle.workflow_id]).fetchone()
        return bool(row and row[0])

    await wait_for(heartbeat_flushed, "the heartbeat details to be stored")
    scans.append(tables_holding(conn, MARKER))  # activity args and heartbeat details in flight
    gate.set()
    await wait_pending(handle, "condition", signal_id="codec-approval")
    scans.append(tables_holding(conn, MARKER))  # a buffered signal
    await client.workflow.signal("codec-approval", f"approved {MARKER}")
    result = await handle.result(timeout=20)
    history = await handle.history()
    assert any(MARKER in str(e["details"]) for e in history)  # history() decodes for its reader
    scans.append(tables_holding(conn, MARKER))
    return result


async def test_with_a_codec_no_table_holds_plaintext_and_the_workflow_sees_its_values(
        codec: AesGcmCodec, connection: Durable.Connection, conn: psycopg.Connection) -> None:
    scans: list[list[str]] = []
    result = await run_secret_order(connection, conn, scans)
    assert result == {
        "enriched": {"id": "o-1", "card": MARKER, "note": f"enriched {MARKER}"},
        "resumed": f"flaky {MARKER} resumed from halfway {MARKER}",
        "error": f"refused order {MARKER} {MARKER}",
        "child": f"child saw child arg {MARKER}",
        "approval": f"approved {MARKER}",
    }
    assert codec.encoded > 0
    assert scans == [[], [], []]
    # A failed workflow's error is encrypted too, and decrypted for result().
    client = new_client(connection)
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=fails_with_a_secret)
    failing = await client.workflow.start(args=[MARKER], task_queue=QUEUE,
                                          workflow_name="fails_with_a_secret")
    with pytest.raises(errors.WorkflowFailedError, match=MARKER):
        await failing.result(timeout=20)
    assert (await failing.state())["error"]["message"] == f"workflow failed: {MARKER}"
    assert tables_holding(conn, MARKER) == []


async def test_without_a_codec_the_same_scan_finds_the_plaintext(
        connection: Durable.Connection, conn: psycopg.Connection) -> None:
    scans: list[list[str]] = []
    result = await run_secret_order(connection, conn, scans)
    assert result["approval"] == f"approved {MARKER}"
    assert "messages" in scans[0] and "signals" in scans[1]
    assert {"history", "workflows"} <= set(scans[2])


async def test_an_interrupted_workflows_outcome_reads_back_under_a_codec(
        codec: AesGcmCodec, connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=waits_forever)
    client = new_client(connection)
    handle = await client.workflow.start(task_queue=QUEUE, workflow_name="waits_forever")
    await wait_pending(handle, "condition", signal_id="codec-never")
    await handle.interrupt("stopped by the operator")
    with pytest.raises(errors.WorkflowInterruptedError, match="stopped by the operator"):
        await asyncio.wait_for(handle.result(), 20)
    assert (await handle.state())["status"] == "interrupted"
