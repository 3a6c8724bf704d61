"""Issue 11, finding 6: any role can exhaust the server's NOTIFY queue: it LISTENs, stays idle in a
transaction (so the queue's tail cannot advance past it) and floods NOTIFYs until Postgres
refuses more ("too many notifications in the NOTIFY queue"). Before, every engine call that
NOTIFYs then failed: no workflow could start, no signal be sent. Now NOTIFY is only a hint: the
engine skips it when the queue is more than half full, and workers finish by polling.

Runs on an embedded Postgres 18 of its own started with the smallest queue
(``max_notify_queue_pages = 64``, 512 kB), so filling it takes a moment and hurts nobody else;
never skipped: the embedded server is the wheel's Postgres 18."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from pgdurable import Durable
from pgdurable._resources import engine_sql
from support.attack import Owner
from support.db import own_server
from support.polling import wait_for

pytestmark = pytest.mark.sql

DATABASE = "pgdurable_notify"


@pytest.fixture(scope="module")
def small_notify_queue_server() -> Iterator[str]:
    """A migrated database on an embedded server whose NOTIFY queue holds 64 pages; its DSN."""
    with own_server("notify-queue") as server:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            known = conn.execute("SELECT 1 FROM pg_settings WHERE name = 'max_notify_queue_pages'").fetchone()
            # The embedded server is always the wheel's Postgres 18: never skip, fail if it lacks it.
            assert known is not None, "the embedded Postgres has no max_notify_queue_pages (Postgres 17+)"
            conn.execute("ALTER SYSTEM SET max_notify_queue_pages = 64")
        server.restart()
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            assert conn.execute("SHOW max_notify_queue_pages").fetchone() == ("64",)
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        with psycopg.connect(server.dsn(DATABASE), autocommit=True) as conn, conn.transaction():
            conn.execute(engine_sql())  # type: ignore[arg-type]
        yield server.dsn(DATABASE)


async def notify_flood_workflow(order_id: str) -> str:
    approval = await Durable.workflow.condition(f"go-{order_id}")
    return f"{order_id}:{approval}"


def _flood_until_refused(session: psycopg.Connection) -> int:
    """NOTIFYs big payloads, one transaction each, until Postgres refuses; returns how many went."""
    payload = "x" * 7900
    for sent in range(10_000):
        try:
            session.execute("SELECT pg_notify('flood', %s)", [f"{payload}{sent}"])
        except psycopg.errors.ProgramLimitExceeded as exc:
            assert "too many notifications in the NOTIFY queue" in str(exc)
            return sent
    raise AssertionError("the NOTIFY queue never filled up")


async def _outcome(owner: Owner, workflow_id: str) -> tuple[object, ...]:
    def finished() -> tuple[object, ...] | None:
        outcome = owner.outcome(workflow_id)
        return outcome if outcome is not None and outcome[1] != "running" else None
    return await wait_for(finished, f"{workflow_id} to finish", interval=0.1)


async def _waiting(owner: Owner, workflow_id: str) -> None:
    await wait_for(lambda: owner.value("SELECT count(*) FROM durable.signal_waits WHERE workflow_id = %s",
                                       [workflow_id]),
                   f"{workflow_id} to wait on its condition", interval=0.1)


async def test_a_full_notify_queue_fails_no_start_signal_or_completion(small_notify_queue_server):
    owner = Owner(small_notify_queue_server)
    role = owner.provision(["flood", "flood-activity"])
    squatter = role.login(idle_in_transaction_session_timeout="0")
    flooder = role.login()
    connection = Durable.Connection(small_notify_queue_server)
    try:
        squatter.execute("LISTEN anything")
        squatter.execute("BEGIN")
        squatter.execute("SELECT 1")  # ...and it stays idle in this transaction
        assert _flood_until_refused(flooder) > 0
        assert owner.value("SELECT pg_notification_queue_usage()") > 0.5

        # A start and a signal (buffered) succeed although the queue is full.
        owner.start("n-1", task_queue="flood", workflow_name="notify_flood_workflow", args='["n-1"]')
        assert owner.send_signal("go-n-1", '"approved"') == "buffered"

        # A worker (no NOTIFY reaches it) finishes the run by polling.
        await Durable.Worker.create(connection=connection, task_queue="flood", workflow=notify_flood_workflow,
                                    worker_credentials={"user": role.name, "password": role.password})
        assert await _outcome(owner, "n-1") == (1, "completed", '"n-1:approved"')

        # A signal delivered to a waiting condition, and the completion it wakes, succeed too.
        owner.start("n-2", task_queue="flood", workflow_name="notify_flood_workflow", args='["n-2"]')
        await _waiting(owner, "n-2")
        assert owner.send_signal("go-n-2", '"late"') == "delivered"
        assert await _outcome(owner, "n-2") == (1, "completed", '"n-2:late"')

        # The queue was full all along: the engine did not get through by draining it.
        with pytest.raises(psycopg.errors.ProgramLimitExceeded):
            flooder.execute("SELECT pg_notify('flood', %s)", ["y" * 7900])
    finally:
        await Durable.shutdown(grace=1)
        await connection.close()
        squatter.close()
        flooder.close()
