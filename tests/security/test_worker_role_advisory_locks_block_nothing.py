"""Issue 11, finding 5: the engine's advisory lock keys were derived from public source
(``hashtextextended('durable.signal/<ns>/<id>', 0)`` and the like), so any role could take them
first and hold them: every signal of an id, every start of a workflow id, every provisioning of
a namespace then waited forever. Now the engine takes no advisory lock at all: a signal id's
mailbox is a row lock on durable.mailboxes, starts race on a unique index, provisioning locks a
row of durable.secret, and no worker role can lock rows of those tables. The engine calls below
run with a short lock_timeout: they must succeed while a worker role holds every lock derivable
from public source, or any lock it saw the engine take."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest

from support.attack import NS, Owner, WorkerRole, claim_workflow_task, complete_workflow_task, signal

pytestmark = pytest.mark.sql

SHORT = {"lock_timeout": "2s", "statement_timeout": "10s"}


@pytest.fixture
def squatter(owner: Owner) -> Iterator[psycopg.Connection]:
    """A logged-in worker role of namespace ``durable`` (queue ``orders``)."""
    role = owner.provision(["orders", "orders-activity"])
    with role.login() as session:
        yield session


def _hold(session: psycopg.Connection, *keys: str) -> None:
    for key in keys:
        for seed in (0, 1, 42):  # the seed is public too; a session lock holds past the call
            session.execute("SELECT pg_advisory_lock(hashtextextended(%s, %s))", [key, seed])
        session.execute("SELECT pg_advisory_lock(hashtext(%s))", [key])
    held = session.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                           "AND pid = pg_backend_pid() AND granted").fetchone()
    assert held is not None and held[0] == 4 * len(keys)


def _as_owner(owner: Owner, statement: str, params: list[object]) -> None:
    with owner.connect(**SHORT) as conn:
        conn.execute(statement, params)


CALLS: dict[str, tuple[Callable[[str], list[str]], str, Callable[[str], list[object]]]] = {
    "a signal of another namespace": (
        lambda db: ["durable.signal/billing/inv-1"],
        "SELECT durable.send_signal_v1(%s, %s, %s)", lambda db: ["billing", "inv-1", '"paid"']),
    "a signal of its own namespace": (
        lambda db: [f"durable.signal/{NS}/approve-o-1"],
        "SELECT durable.send_signal_v1(%s, %s, %s)", lambda db: [NS, "approve-o-1", '"yes"']),
    "a start of another namespace's workflow": (
        lambda db: ["durable.workflow/billing/inv-1"],
        "SELECT * FROM durable.start_workflow_v1(%s, %s, %s, %s, %s)",
        lambda db: ["billing", "inv-1", "invoice_workflow", "invoices", "[]"]),
    "a start in its own namespace": (
        lambda db: [f"durable.workflow/{NS}/o-9"],
        "SELECT * FROM durable.start_workflow_v1(%s, %s, %s, %s, %s)",
        lambda db: [NS, "o-9", "order_workflow", "orders", "[]"]),
    "the DBA provisioning a worker role": (
        lambda db: [f"durable.worker_role/{db}/billing", f"durable.worker_role/{db}/{NS}"],
        "SELECT * FROM durable.provision_worker_role(%s, %s)", lambda db: [["invoices"], "billing"]),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_a_worker_role_holding_every_public_lock_key_blocks_nothing(call, owner, squatter):
    keys, statement, params = CALLS[call]
    _hold(squatter, *keys(owner.dbname))

    _as_owner(owner, statement, params(owner.dbname))  # lock_timeout 2 s: refused if blocked


def test_a_worker_role_cannot_read_the_lock_salt(owner, squatter):
    tables = owner.rows("SELECT c.oid::regclass::text FROM pg_class c "
                        "WHERE c.relnamespace = 'durable'::regnamespace AND c.relname = 'secret'")
    assert tables == [("durable.secret",)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        squatter.execute("SELECT * FROM durable.secret")


# -- keys a worker could learn from pg_locks, and locks it could hold through its own calls ----------

def test_a_worker_role_cannot_squat_a_lock_it_saw_the_engine_take(owner, squatter):
    with owner.connect() as engine:
        engine.execute("BEGIN")
        engine.execute("SELECT durable.send_signal_v1(%s, %s, %s)", [NS, "approve-o-1", '"first"'])
        engine.execute("SELECT * FROM durable.start_workflow_v1(%s, %s, %s, %s, %s)",
                       [NS, "o-5", "order_workflow", "orders", "[]"])
        pid = engine.info.backend_pid
        seen = squatter.execute(
            "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks "
            "WHERE locktype = 'advisory' AND pid = %s", [pid]).fetchall()
        engine.execute("COMMIT")
    assert seen == [], "the engine took an advisory lock that pg_locks shows to every role"
    # What a worker can see there are row locks of tables it may not touch.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        squatter.execute("SELECT 1 FROM durable.mailboxes FOR UPDATE")
    _as_owner(owner, "SELECT durable.send_signal_v1(%s, %s, %s)", [NS, "approve-o-1", '"second"'])


def test_a_worker_role_confined_by_signal_prefixes_keeping_its_completion_open_blocks_no_other_signal(
        owner):
    # A worker's own calls lock what they touch until it commits, and it may keep its transaction
    # open (it can SET idle_in_transaction_session_timeout = 0). With signal prefixes it touches
    # only its own signal ids, so another team's signals never wait on it. (Without prefixes it
    # may use any signal id: the README's threat model says so.)
    role: WorkerRole = owner.provision(["orders"], signal_prefixes=["orders."])
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")
    with role.login(idle_in_transaction_session_timeout="0") as session:
        task = claim_workflow_task(session, "orders", "order_workflow")
        session.execute("BEGIN")
        with pytest.raises(psycopg.Error) as refused:
            complete_workflow_task(session, task, [signal(1, "payments.approved", '"forged"')])
        assert refused.value.sqlstate == "PD005"
        session.execute("ROLLBACK")
        session.execute("BEGIN")
        complete_workflow_task(session, task, [signal(1, "orders.shipped", '"ours"')])
        # ...and the worker never commits.
        _as_owner(owner, "SELECT durable.send_signal_v1(%s, %s, %s)", [NS, "payments.approved", '"genuine"'])
        session.execute("ROLLBACK")
