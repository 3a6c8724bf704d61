"""The database as its owner sees it: one-off queries, private Postgres servers, and the
exactly-once checks every fault test ends with."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg


def _port_range() -> range:
    low, _, high = os.environ.get("PGDURABLE_TEST_PORT_RANGE", "55600-55799").partition("-")
    return range(int(low), int(high) + 1)


TEST_PORTS = _port_range()
"""Ports tests give the extra servers they start (``PGDURABLE_TEST_PORT_RANGE``, default
55600-55799)."""


def sql(dsn: str, query: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
    """Runs one statement as the database owner (the test's superuser); returns its rows (if any)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def try_sql(dsn: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]] | None:
    """Like :func:`sql`, but ``None`` while the server is unreachable."""
    try:
        return sql(dsn, query, params)
    except psycopg.OperationalError:
        return None


def free_port(ports: range = TEST_PORTS) -> int:
    """A free port among ``ports``."""
    from pgdurable.embedded import free_port_in

    return free_port_in(ports)


@contextlib.contextmanager
def own_server(prefix: str, ports: range | None = TEST_PORTS) -> Iterator[Any]:
    """A private, started embedded Postgres in ``/tmp/<prefix>-*`` (on a free port of ``ports``,
    or any free port if None), stopped and deleted afterwards (only this one: it is ours)."""
    from pgdurable.embedded import EmbeddedPostgres

    data_dir = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir="/tmp"))
    server = EmbeddedPostgres(data_dir / "data", None if ports is None else free_port(ports),
                              settings={"fsync": "off"})
    try:
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def closed_count(dsn: str, workflow_ids: list[str]) -> int | None:
    """How many of these workflows are closed (None while the server is down)."""
    rows = await asyncio.to_thread(
        try_sql, dsn,
        "SELECT count(*) FROM durable.workflows WHERE workflow_id = ANY(%s) AND status <> 'running'",
        (workflow_ids,))
    return None if rows is None else int(rows[0][0])


def assert_each_ran_exactly_once(dsn: str, workflow_ids: list[str]) -> None:
    """No workflow lost (each completed), none completed twice, every activity recorded once."""
    rows = sql(dsn, """
        SELECT w.workflow_id, w.status,
               (SELECT count(*) FROM durable.history h
                 WHERE h.namespace = w.namespace AND h.workflow_id = w.workflow_id
                   AND h.event_type = 'workflow_completed')
        FROM durable.workflows w WHERE w.workflow_id = ANY(%s)""", (workflow_ids,))
    by_id = {r[0]: (r[1], r[2]) for r in rows}
    missing = set(workflow_ids) - set(by_id)
    assert not missing, f"{len(missing)} workflows lost, e.g. {sorted(missing)[:3]}"
    not_done = {k: v for k, v in by_id.items() if v[0] != "completed"}
    assert not not_done, f"{len(not_done)} workflows not completed: {list(not_done.items())[:3]}"
    twice = {k: v[1] for k, v in by_id.items() if v[1] != 1}
    assert not twice, f"workflow_completed recorded more than once: {list(twice.items())[:3]}"
    dup = sql(dsn, """
        SELECT workflow_id, run_id, seq, count(*) FROM durable.history
        WHERE event_type = 'activity_completed' AND workflow_id = ANY(%s)
        GROUP BY 1, 2, 3 HAVING count(*) > 1""", (workflow_ids,))
    assert not dup, f"activity results recorded twice: {dup[:3]}"
    scheduled_unresolved = sql(dsn, """
        SELECT s.workflow_id, s.seq FROM durable.history s
        WHERE s.event_type = 'activity_scheduled' AND s.workflow_id = ANY(%s)
          AND NOT EXISTS (SELECT 1 FROM durable.history r
                          WHERE r.workflow_id = s.workflow_id AND r.run_id = s.run_id
                            AND r.seq = s.seq AND r.event_type = 'activity_completed')""", (workflow_ids,))
    assert not scheduled_unresolved, f"scheduled activities never completed: {scheduled_unresolved[:3]}"
