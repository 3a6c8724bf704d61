"""Signals under concurrency.

Signals and workflow tasks take their locks in one order (the run, then the signal id), so a
client's signal racing a worker's completion never deadlocks: neither side sees a deadlock error,
and the server counts none. (In the style of Absurd's lock-order test: one side holds its first
lock, the other is made to wait on it, then the first goes on; a short deadlock_timeout makes a
cycle show at once.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from support.polling import wait_until

pytestmark = pytest.mark.sql  # also run on Debian Postgres 15 by scripts/test

QUEUE = "lock-order"


def _connect(dsn: str) -> psycopg.Connection:
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("SET deadlock_timeout = '10ms'")  # a lock cycle is found (and reported) at once
    return conn


@pytest.fixture
def connections(dsn: str) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    worker, client = _connect(dsn), _connect(dsn)
    yield worker, client
    worker.close()
    client.close()


def _deadlocks(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").fetchone()
    assert row is not None
    return int(row[0])


def _complete(conn: psycopg.Connection, task: dict[str, Any], commands: list[dict[str, Any]]) -> str:
    processed = max(e["event_id"] for e in task["events"])
    row = conn.execute("SELECT status FROM durable.complete_workflow_task_v1(%s, %s, %s, %s)",
                       (task["message_id"], task["lease_token"], processed, Jsonb(commands))).fetchone()
    assert row is not None
    return str(row[0])


def _claim(conn: psycopg.Connection, batch: int) -> dict[str, dict[str, Any]]:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    rows = cur.execute("SELECT * FROM durable.claim_workflow_tasks_v1('durable', %s, %s, %s)",
                       ([QUEUE], ["waiter"], batch)).fetchall()
    return {row["workflow_id"]: row for row in rows}


def _waiting_runs_with_a_held_task(conn: psycopg.Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each workflow waits on signal ``sig-<id>`` (seq 1) and holds a new workflow task (a 0 s timer
    fired), the way a worker holds a run it is about to complete."""
    for workflow_id in ids:
        conn.execute("SELECT durable.start_workflow_v1('durable', %s, 'waiter', %s, '[]')",
                     (workflow_id, QUEUE))
    for workflow_id, task in _claim(conn, len(ids)).items():
        assert _complete(conn, task, [
            {"type": "condition", "seq": 1, "signal_id": f"sig-{workflow_id}", "timeout": None},
            {"type": "timer", "seq": 2, "seconds": 0},
        ]) == "ok"
    tasks = _claim(conn, len(ids))
    assert sorted(tasks) == sorted(ids)
    return tasks


def _wait_until_blocked(observer: psycopg.Connection, pid: int) -> None:
    def blocked() -> bool:
        row = observer.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                               (pid,)).fetchone()
        return bool(row and row[0] == "Lock")
    wait_until(blocked, "the signal to wait on a lock (else the test did not set up the race)",
               timeout=10, interval=0.005)


def test_a_signal_waiting_on_a_run_a_worker_holds_lets_that_worker_register_its_condition(
        dsn: str, connections: tuple[psycopg.Connection, psycopg.Connection]) -> None:
    worker, client = connections
    task = _waiting_runs_with_a_held_task(worker, ["w1"])["w1"]
    deadlocks_before = _deadlocks(worker)

    # The worker is completing w1: it holds the run (the first lock every completion takes) ...
    worker.execute("BEGIN")
    worker.execute("SELECT 1 FROM durable.workflows WHERE workflow_id = 'w1' FOR UPDATE")
    # ... while a client signals w1's condition: the signal must wait for the run.
    outcome: dict[str, Any] = {}

    def send() -> None:
        try:
            row = client.execute("SELECT durable.send_signal_v1('durable', 'sig-w1', '\"go\"')").fetchone()
            outcome["result"] = row[0] if row else None
        except psycopg.Error as exc:  # pragma: no cover - what the test exists to catch
            outcome["error"] = exc

    sender = threading.Thread(target=send)
    sender.start()
    _wait_until_blocked(_connect(dsn), client.info.backend_pid)

    # Now the worker registers another condition on the same signal id: it takes the signal's
    # lock after the run's, the order the sender follows too, so it goes on at once.
    condition = {"type": "condition", "seq": 3, "signal_id": "sig-w1", "timeout": None}
    assert _complete(worker, task, [condition]) == "ok"
    worker.execute("COMMIT")
    sender.join(10)

    assert "error" not in outcome, outcome
    assert outcome["result"] == "delivered"
    assert _deadlocks(worker) == deadlocks_before
    received = worker.execute("SELECT seq FROM durable.history WHERE workflow_id = 'w1' "
                              "AND event_type = 'signal_received'").fetchall()
    assert received == [(1,)], "the oldest waiting condition took the signal, once"


def test_a_hundred_signals_racing_a_hundred_completions_on_their_signal_ids_never_deadlock(
        dsn: str, connections: tuple[psycopg.Connection, psycopg.Connection]) -> None:
    worker, client = connections
    ids = [f"r{i:03}" for i in range(100)]
    tasks = _waiting_runs_with_a_held_task(worker, ids)
    deadlocks_before = _deadlocks(worker)
    errors: list[BaseException] = []

    for workflow_id in ids:
        start = threading.Barrier(2)

        def send(workflow_id: str = workflow_id, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                client.execute("SELECT durable.send_signal_v1('durable', %s, '\"go\"')",
                               (f"sig-{workflow_id}",))
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        start.wait()
        try:  # abandon the first condition and wait anew on the same id, racing the signal
            _complete(worker, tasks[workflow_id], [
                {"type": "cancel_wait", "seq": 1, "signal_id": f"sig-{workflow_id}"},
                {"type": "condition", "seq": 3, "signal_id": f"sig-{workflow_id}", "timeout": None},
            ])
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        sender.join(10)

    assert errors == []
    assert _deadlocks(worker) == deadlocks_before
    # Whichever went first, the live condition (seq 3) got the signal, once: a signal the
    # abandoned condition (seq 1) took first went back to the head of the mailbox for it.
    rows = worker.execute("""
        SELECT w.workflow_id,
               (SELECT count(*) FROM durable.history h WHERE h.workflow_id = w.workflow_id
                  AND h.event_type = 'signal_received' AND h.seq = 3),
               (SELECT count(*) FROM durable.signals s WHERE s.signal_id = 'sig-' || w.workflow_id)
        FROM durable.workflows w WHERE w.task_queue = %s""", (QUEUE,)).fetchall()
    assert len(rows) == 100
    assert all((received, buffered) == (1, 0) for _, received, buffered in rows), rows


def test_signals_put_back_at_the_head_of_two_mailboxes_at_once_both_keep_their_place(
        connections: tuple[psycopg.Connection, psycopg.Connection]) -> None:
    first, second = connections
    first.execute("SELECT durable.send_signal_v1('durable', 'box-a', '\"a-queued\"')")
    first.execute("SELECT durable.send_signal_v1('durable', 'box-b', '\"b-queued\"')")
    # Two abandoned conditions hand their signals back at the same moment, on different ids.
    first.execute("BEGIN")
    first.execute("SELECT durable._send_signal('durable', 'box-a', '\"a-back\"', '7 days', true)")
    second.execute("SET lock_timeout = '5s'")
    second.execute("SELECT durable._send_signal('durable', 'box-b', '\"b-back\"', '7 days', true)")
    first.execute("COMMIT")
    order = first.execute("SELECT signal_id, array_agg(data ORDER BY position, id) FROM durable.signals "
                          "GROUP BY signal_id ORDER BY signal_id").fetchall()
    assert order == [("box-a", ['"a-back"', '"a-queued"']), ("box-b", ['"b-back"', '"b-queued"'])]
