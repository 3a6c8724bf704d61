"""SQL-level concurrency: many real claimers drain one stream, each message exactly once.

Also checks that the Python side names the same NOTIFY channels as the SQL side.
"""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg.types.json import Jsonb

pytestmark = pytest.mark.sql

NAMESPACE = "conc"
STREAM = "jobs"
MESSAGES = 10_000
CLAIMERS = 8
BATCH = 50


def _claimer(dsn: str, start: threading.Barrier, claimed: list[int], errors: list[BaseException]) -> None:
    """Claims batches until the stream is empty, acking each batch in one transaction."""
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            start.wait()
            while True:
                rows = conn.execute(
                    "SELECT id, lease_token FROM durable.claim_v1(%s, %s, %s, %s, interval '10 minutes', %s)",
                    [NAMESPACE, [STREAM], ["job"], BATCH, threading.current_thread().name],
                ).fetchall()
                if not rows:
                    return
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany("SELECT durable.ack_v1(%s, %s)", rows)
                claimed.extend(row[0] for row in rows)
    except BaseException as exc:  # reported by the test, not lost in the thread
        errors.append(exc)
        start.abort()


def test_eight_concurrent_claimers_deliver_every_message_exactly_once(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        enqueued = [
            row[0]
            for row in conn.execute(
                "SELECT * FROM durable.enqueue_batch_v1(%s, %s, %s)",
                [NAMESPACE, STREAM, Jsonb([{"name": "job", "payload": {"i": i}} for i in range(MESSAGES)])],
            )
        ]
    assert len(set(enqueued)) == MESSAGES

    start = threading.Barrier(CLAIMERS)
    per_claimer: list[list[int]] = [[] for _ in range(CLAIMERS)]
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_claimer, args=(dsn, start, per_claimer[i], errors), name=f"claimer-{i}")
        for i in range(CLAIMERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not any(thread.is_alive() for thread in threads), "a claimer is stuck"
    assert not errors, errors

    delivered = [message_id for ids in per_claimer for message_id in ids]
    duplicates = len(delivered) - len(set(delivered))
    assert duplicates == 0, f"{duplicates} messages were delivered twice"
    missing = set(enqueued) - set(delivered)
    assert not missing, f"{len(missing)} messages were never delivered"
    assert set(delivered) == set(enqueued)
    assert sum(1 for ids in per_claimer if ids) >= 2, "the claimers did not run concurrently"
    with psycopg.connect(dsn, autocommit=True) as conn:
        left = conn.execute(
            "SELECT count(*) FROM durable.messages WHERE namespace = %s", [NAMESPACE]
        ).fetchone()
    assert left == (0,), "acked messages are deleted"


NAMES = [
    pytest.param("orders", id="ascii"),
    pytest.param("commandes-été/注文-🚀", id="unicode"),
    pytest.param("q" * 150 + "é" * 150, id="300-characters"),
]


@pytest.mark.parametrize("name", NAMES)
def test_notify_channels_fit_in_63_bytes_and_are_salted_per_database(dsn: str, name: str) -> None:
    query = ("SELECT durable.stream_channel(%s, %s), durable.stream_channel(%s, %s),"
             " durable.closed_channel(%s)")
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query, ["durable", name, name, "jobs", name]).fetchone()
        assert row is not None
        # Another database gets another secret, so other channel names.
        conn.execute("UPDATE durable.secret SET key = 'another-secret'")
        other = conn.execute(query, ["durable", name, name, "jobs", name]).fetchone()
    assert len(set(row)) == 3, "a stream's, another stream's and the closings' channels differ"
    assert all(len(channel.encode()) <= 63 for channel in row), "NOTIFY channel names are at most 63 bytes"
    assert set(row).isdisjoint(other or ())
