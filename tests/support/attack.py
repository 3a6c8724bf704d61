"""The attack harness of ``tests/security``: the engine owner's side and a worker role's side
of one test database.

The owner is the test server's superuser (the role that loaded the engine). A worker role is
provisioned by the owner and then used only through a real login over TCP with its password
(``host=127.0.0.1``), never ``SET ROLE``: the engine trusts ``session_user``, so only a real
login shows what a compromised worker can do. Both sides call the engine's SQL functions
directly, as an attacker holding the role's password would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

NS = "durable"
PAYLOAD_LIMIT = 16 * 1024 * 1024  # the contract's limit, in bytes


def payload_message(size: int) -> str:
    """The contract's refusal of a payload of ``size`` bytes (the SDK's text, word for word)."""
    return (f"payload of {size} bytes exceeds the {PAYLOAD_LIMIT} byte limit: "
            "store large data elsewhere and pass a reference")


@dataclass
class Refusal:
    """What ``refused`` caught: the SQLSTATE and the primary message of the error."""

    sqlstate: str | None = None
    message: str = ""
    error: psycopg.Error | None = None


@contextlib.contextmanager
def refused(sqlstate: str) -> Iterator[Refusal]:
    """Asserts the block raises a database error with this SQLSTATE (PD005, 42501, ...)."""
    refusal = Refusal()
    try:
        yield refusal
    except psycopg.Error as exc:
        refusal.sqlstate, refusal.error = exc.sqlstate, exc
        refusal.message = exc.diag.message_primary or str(exc)
        assert exc.sqlstate == sqlstate, f"expected SQLSTATE {sqlstate}, got {exc.sqlstate}: {exc}"
        return
    pytest.fail(f"expected an error with SQLSTATE {sqlstate}; the call succeeded")


@dataclass(frozen=True)
class Task:
    """A leased task as its claim returned it (``seen``: the last event id the worker was handed)."""

    message_id: int
    lease_token: Any
    workflow_id: str | None = None
    run_id: int | None = None
    seen: int = 0
    stream: str | None = None


def claim_workflow_task(conn: psycopg.Connection, queue: str, name: str, *, namespace: str = NS,
                        lease: str = "30 seconds") -> Task:
    """Claims the one claimable workflow task of workflow ``name`` on ``queue`` (fails if none)."""
    rows = conn.execute(
        "SELECT message_id, lease_token, workflow_id, run_id, processed_event_id, events, task_queue "
        "FROM durable.claim_workflow_tasks_v1(%s, %s, %s, 1, %s::interval)",
        [namespace, [queue], [name], lease]).fetchall()
    assert rows, f"no claimable workflow task of {name} on {queue} in namespace {namespace}"
    message_id, token, workflow_id, run_id, processed, events, task_queue = rows[0]
    seen = max([processed] + [event["event_id"] for event in events])
    return Task(message_id, token, workflow_id, run_id, seen, task_queue)


def complete_workflow_task(conn: psycopg.Connection, task: Task, commands: Sequence[dict[str, Any]],
                           eager: dict[str, Any] | None = None) -> str:
    """Completes a held workflow task with these commands; returns the engine's status."""
    row = conn.execute(
        "SELECT status FROM durable.complete_workflow_task_v1(%s, %s, %s, %s, %s)",
        [task.message_id, task.lease_token, task.seen, Jsonb(list(commands)),
         None if eager is None else Jsonb(eager)]).fetchone()
    assert row is not None
    return str(row[0])


def claim_activity_task(conn: psycopg.Connection, stream: str, name: str, *, namespace: str = NS) -> Task:
    """Claims the one claimable activity task named ``name`` on ``stream`` (fails if none)."""
    rows = conn.execute(
        "SELECT message_id, lease_token, workflow_id, run_id, stream "
        "FROM durable.claim_activity_tasks_v1(%s, %s, %s, 1)", [namespace, [stream], [name]]).fetchall()
    assert rows, f"no claimable activity {name} on {stream} in namespace {namespace}"
    message_id, token, workflow_id, run_id, task_stream = rows[0]
    return Task(message_id, token, workflow_id, run_id, 0, task_stream)


def activity(seq: int, name: str, task_queue: str | None = None, args: str = "[]") -> dict[str, Any]:
    command: dict[str, Any] = {"type": "activity", "seq": seq, "name": name, "args": args}
    if task_queue is not None:
        command["task_queue"] = task_queue
    return command


def child(seq: int, workflow_id: str, workflow_name: str, task_queue: str | None = None,
          args: str = "[]", awaited: bool = True) -> dict[str, Any]:
    command: dict[str, Any] = {"type": "child", "seq": seq, "workflow_id": workflow_id,
                               "workflow_name": workflow_name, "args": args, "awaited": awaited}
    if task_queue is not None:
        command["task_queue"] = task_queue
    return command


def condition(seq: int, signal_id: str) -> dict[str, Any]:
    return {"type": "condition", "seq": seq, "signal_id": signal_id}


def signal(seq: int, signal_id: str, data: str = '"forged"') -> dict[str, Any]:
    return {"type": "signal", "seq": seq, "signal_id": signal_id, "data": data}


def complete(result: str = '"done"') -> dict[str, Any]:
    return {"type": "complete", "result": result}


@dataclass
class WorkerRole:
    """A provisioned worker role: its name, its password and the DSN of its database."""

    name: str
    password: str
    dsn: str = field(repr=False)

    def conninfo(self, password: str | None = None) -> str:
        """The role's login over TCP (never the Unix socket, never the superuser)."""
        return make_conninfo(self.dsn, host="127.0.0.1", user=self.name,
                             password=self.password if password is None else password, connect_timeout=10)

    def login(self, password: str | None = None, **settings: str) -> psycopg.Connection:
        """A new autocommit session of this role, logged in with its password."""
        options = " ".join(f"-c {name}={value}" for name, value in settings.items())
        info = self.conninfo(password)
        if options:
            info = make_conninfo(info, options=options)
        conn = psycopg.connect(info, autocommit=True)
        row = conn.execute("SELECT session_user::text, current_user::text").fetchone()
        assert row == (self.name, self.name), row  # really logged in as the role, no SET ROLE
        return conn


class Owner:
    """The engine owner (the test server's superuser) on one test database."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.dbname = conninfo_to_dict(dsn).get("dbname")

    def connect(self, **settings: str) -> psycopg.Connection:
        info = self.dsn
        if settings:
            info = make_conninfo(info, options=" ".join(f"-c {k}={v}" for k, v in settings.items()))
        return psycopg.connect(info, autocommit=True)

    def rows(self, query: str | sql.Composable, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def value(self, query: str | sql.Composable, params: Sequence[Any] = ()) -> Any:
        rows = self.rows(query, params)
        return rows[0][0] if rows else None

    def provision(self, streams: Sequence[str], *, namespace: str = NS, **options: Any) -> WorkerRole:
        """provision_worker_role as the DBA; ``options`` go by name (``produce=`` -> ``p_produce =>``)."""
        names = ["p_stream_names", "p_namespace", *(f"p_{name}" for name in options)]
        args = sql.SQL(", ").join(sql.SQL("{} => {}").format(sql.Identifier(n), sql.Placeholder())
                                  for n in names)
        query = sql.SQL("SELECT role_name, password FROM durable.provision_worker_role({})").format(args)
        [(role, password)] = self.rows(query, [list(streams), namespace, *options.values()])
        return WorkerRole(role, password, self.dsn)

    def start(self, workflow_id: str, *, task_queue: str, workflow_name: str | None = None,
              namespace: str = NS, args: str = "[]") -> int:
        return int(self.value("SELECT run_id FROM durable.start_workflow_v1(%s, %s, %s, %s, %s)",
                              [namespace, workflow_id, workflow_name or workflow_id, task_queue, args]))

    def run_to_completion(self, workflow_id: str, *, task_queue: str, workflow_name: str | None = None,
                          namespace: str = NS, result: str = '"original result"') -> None:
        """Starts a workflow and completes it at once (as a trusted worker would)."""
        name = workflow_name or workflow_id
        self.start(workflow_id, task_queue=task_queue, workflow_name=name, namespace=namespace)
        with self.connect() as conn:
            task = claim_workflow_task(conn, task_queue, name, namespace=namespace)
            assert complete_workflow_task(conn, task, [complete(result)]) == "closed"

    def send_signal(self, signal_id: str, data: str = '"genuine"', namespace: str = NS) -> str:
        return str(self.value("SELECT durable.send_signal_v1(%s, %s, %s)", [namespace, signal_id, data]))

    def outcome(self, workflow_id: str, namespace: str = NS) -> tuple[Any, ...] | None:
        rows = self.rows("SELECT run_id, status, result FROM durable.workflow_outcome_v1(%s, %s)",
                         [namespace, workflow_id])
        return rows[0] if rows else None

    def runs(self, workflow_id: str, namespace: str = NS) -> list[tuple[Any, ...]]:
        return self.rows("SELECT run_id, workflow_name, task_queue, status, result FROM durable.workflows "
                         "WHERE namespace = %s AND workflow_id = %s ORDER BY run_id",
                         [namespace, workflow_id])

    def events(self, workflow_id: str, namespace: str = NS) -> list[dict[str, Any]]:
        rows = self.rows("SELECT event_type, seq, inbound, data FROM durable.workflow_history_v1(%s, %s)",
                         [namespace, workflow_id])
        return [{"event_type": t, "seq": s, "inbound": i, "data": d} for t, s, i, d in rows]

    def event_types(self, workflow_id: str, namespace: str = NS) -> list[str]:
        return [event["event_type"] for event in self.events(workflow_id, namespace)]

    def messages(self, stream: str, namespace: str = NS) -> list[tuple[Any, ...]]:
        return self.rows("SELECT id, kind, name, workflow_id FROM durable.messages "
                         "WHERE namespace = %s AND stream = %s ORDER BY id", [namespace, stream])

    def sessions_of(self, role: str) -> int:
        return int(self.value("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", [role]))
