"""Issue 11, finding 9: namespaces leaked to any role. The run-closed channel was
``'pgd_c_' || md5(namespace)`` (and a stream's ``'pgd_s_' || md5(namespace/stream)``), so
anyone could LISTEN to another namespace's traffic; the errors on another namespace's message
named that namespace and its streams. Now channels are salted with a per-database secret and
worker roles get the channels of their own streams from ``durable.stream_channels_v1`` only;
errors on a message outside the role's scope say only that."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from support.attack import (
    Owner,
    activity,
    claim_activity_task,
    claim_workflow_task,
    complete_workflow_task,
    refused,
)

pytestmark = pytest.mark.sql

SENTINEL = "security_sentinel"
SECRETS = ("hidden-ns", "hidden-queue", "secret-payments")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _listen(session: psycopg.Connection, *channels: str) -> None:
    for channel in channels:
        session.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))


def _received_until_sentinel(session: psycopg.Connection, owner: Owner) -> list[tuple[str, str]]:
    """Every notification the session got before the owner's sentinel, which is sent last (so
    anything committed earlier has arrived by then: notifications come in commit order)."""
    owner.rows(sql.SQL("NOTIFY {}").format(sql.Identifier(SENTINEL)))
    got: list[tuple[str, str]] = []
    for notify in session.notifies(timeout=10):
        if notify.channel == SENTINEL:
            return got
        got.append((notify.channel, notify.payload))
    raise AssertionError(f"the sentinel never arrived (got {got})")


def test_listening_on_md5_channels_of_another_namespace_hears_nothing(owner):
    role = owner.provision(["orders"])
    with role.login() as spy, owner.connect() as engine_listener:
        _listen(spy, f"pgd_c_{_md5('billing')}", f"pgd_s_{_md5('billing/invoices')}",
                f"pgd_s_{_md5('billing/invoices-activity')}", SENTINEL)
        # Control: the engine's own channel (owner-only) does hear the run close.
        closed = owner.value("SELECT durable.closed_channel('billing')")
        _listen(engine_listener, closed, SENTINEL)

        owner.start("inv-1", namespace="billing", task_queue="invoices", workflow_name="invoice_workflow")
        owner.value("SELECT durable.interrupt_workflow_v1('billing', 'inv-1', 'test')")

        assert (closed, "inv-1") in _received_until_sentinel(engine_listener, owner)
        assert _received_until_sentinel(spy, owner) == []


def test_a_worker_role_gets_the_channels_of_its_own_streams_only(owner):
    role = owner.provision(["orders", "orders-activity"])
    with role.login() as worker:
        [(channels,)] = worker.execute(
            "SELECT durable.stream_channels_v1('durable', ARRAY['orders', 'orders-activity'])").fetchall()
        assert len(channels) == 2 and len(set(channels)) == 2
        assert channels[0] != f"pgd_s_{_md5('durable/orders')}"
        assert all(len(channel.encode()) <= 63 for channel in channels)

        _listen(worker, channels[0], SENTINEL)
        owner.start("o-1", task_queue="orders", workflow_name="order_workflow")
        assert [c for c, _ in _received_until_sentinel(worker, owner)] == [channels[0]]

        for namespace, streams in (("durable", ["payments"]), ("durable", ["orders", "payments"]),
                                   ("billing", ["orders"])):
            with refused("PD005"):
                worker.execute("SELECT durable.stream_channels_v1(%s, %s)", [namespace, streams])
        for owner_only in ("SELECT durable.stream_channel('durable', 'payments')",
                           "SELECT durable.closed_channel('durable')"):
            with refused("42501"):
                worker.execute(owner_only)


# -- error texts ----------------------------------------------------------------------------------

@pytest.fixture
def foreign(owner: Owner) -> dict[str, Any]:
    """Held work outside the worker's scope, in another namespace and on another stream of its own
    namespace; the attacker even knows every lease token."""
    owner.start("h-1", namespace="hidden-ns", task_queue="hidden-queue", workflow_name="h-1")
    owner.start("h-2", namespace="hidden-ns", task_queue="hidden-queue", workflow_name="h-2")
    owner.start("s-1", task_queue="secret-payments", workflow_name="s-1")
    with owner.connect() as conn:
        h2 = claim_workflow_task(conn, "hidden-queue", "h-2", namespace="hidden-ns")
        complete_workflow_task(conn, h2, [activity(1, "charge")])
        message_id = conn.execute("SELECT durable.enqueue_v1('hidden-ns', 'hidden-queue', 'job')").fetchone()
        assert message_id is not None
        [(plain_id, plain_token)] = conn.execute(
            "SELECT id, lease_token FROM durable.claim_v1('hidden-ns', ARRAY['hidden-queue'], ARRAY['job'])")
        return {
            "workflow": claim_workflow_task(conn, "hidden-queue", "h-1", namespace="hidden-ns"),
            "same_namespace_workflow": claim_workflow_task(conn, "secret-payments", "s-1"),
            "activity": claim_activity_task(conn, "hidden-queue-activity", "charge", namespace="hidden-ns"),
            "message": (plain_id, plain_token),
        }


COMPLETE = "SELECT * FROM durable.complete_workflow_task_v1(%s, %s, 1, %s)"
CALLS = {
    "release_v1": ("message", "SELECT durable.release_v1(%s, %s)", lambda i, t: [i, t]),
    "extend_lease_v1": ("message", "SELECT durable.extend_lease_v1(%s, %s, '30 seconds')",
                        lambda i, t: [[i], [t]]),
    "complete_workflow_task_v1": ("workflow", COMPLETE, lambda i, t: [i, t, Jsonb([])]),
    "complete_workflow_task_v1 (same namespace)": ("same_namespace_workflow", COMPLETE,
                                                   lambda i, t: [i, t, Jsonb([])]),
    "fail_workflow_task_v1": ("workflow", "SELECT durable.fail_workflow_task_v1(%s, %s, '{}')",
                              lambda i, t: [i, t]),
    "complete_activity_v1": ("activity", "SELECT * FROM durable.complete_activity_v1(%s, %s, '1')",
                             lambda i, t: [i, t]),
    "fail_activity_v1": ("activity", "SELECT * FROM durable.fail_activity_v1(%s, %s, '{}')",
                         lambda i, t: [i, t]),
    "heartbeat_activity_v1": ("activity", "SELECT durable.heartbeat_activity_v1(%s, %s, NULL)",
                              lambda i, t: [i, t]),
}


def _full_text(error: psycopg.Error | None) -> str:
    assert error is not None
    diag = error.diag
    return " ".join(str(part) for part in (error, diag.message_detail, diag.message_hint) if part)


@pytest.fixture
def spy(owner: Owner) -> Iterator[psycopg.Connection]:
    role = owner.provision(["orders", "orders-activity"])
    with role.login() as session:
        yield session


@pytest.mark.parametrize("call", list(CALLS))
def test_an_error_on_a_message_outside_the_roles_scope_names_no_namespace_or_stream(
        call, foreign, spy, owner):
    which, statement, params = CALLS[call]
    held = foreign[which]
    message_id, token = held if isinstance(held, tuple) else (held.message_id, held.lease_token)
    before = owner.rows("SELECT id, visible_at, lease_token FROM durable.messages ORDER BY id")

    with refused("PD005") as refusal:
        spy.execute(statement, params(message_id, token))

    text = _full_text(refusal.error)
    assert not [secret for secret in SECRETS if secret in text], text
    assert owner.rows("SELECT id, visible_at, lease_token FROM durable.messages ORDER BY id") == before


def test_a_group_commit_refuses_each_item_outside_the_roles_scope_alone_and_names_nothing(
        foreign, spy, owner):
    """complete_tasks_v1 runs each item as its own function would: a foreign item fails alone with
    the same PD005 (naming no namespace or stream) and nothing of it is applied."""
    workflow, activity_task = foreign["workflow"], foreign["activity"]
    items = [
        {"kind": "workflow_task", "message_id": workflow.message_id, "lease_token": str(workflow.lease_token),
         "processed_event_id": 1, "commands": [{"type": "complete", "result": "1"}]},
        {"kind": "activity_completed", "message_id": activity_task.message_id,
         "lease_token": str(activity_task.lease_token), "result": "1"},
        {"kind": "activity_failed", "message_id": activity_task.message_id,
         "lease_token": str(activity_task.lease_token), "error": {}},
    ]
    before = owner.rows("SELECT id, visible_at, lease_token FROM durable.messages ORDER BY id")

    rows = spy.execute("SELECT item, outcome, error_code, error_message FROM durable.complete_tasks_v1(%s)",
                       [Jsonb(items)]).fetchall()

    assert [(item, outcome, code) for item, outcome, code, _ in rows] == [
        (0, None, "PD005"), (1, None, "PD005"), (2, None, "PD005")]
    texts = " ".join(message for *_, message in rows)
    assert not [secret for secret in SECRETS if secret in texts], texts
    assert owner.rows("SELECT id, visible_at, lease_token FROM durable.messages ORDER BY id") == before


def test_run_history_of_another_namespace_names_none_of_its_streams_nor_tells_what_exists(foreign, spy):
    """The caller names the namespace itself here, so the error may echo it; it must name none of
    that namespace's streams, and read the same whether the workflow exists there or not."""
    task = foreign["workflow"]
    texts = []
    for workflow_id in ("h-1", "no-such-workflow"):
        history = f"SELECT * FROM durable.run_history_v1('hidden-ns', '{workflow_id}', 1"
        for call, params in ((history + ")", []), (history + ", %s)", [None]),
                             (history + ", %s)", [task.lease_token])):
            with refused("PD005") as refusal:
                spy.execute(call, params)
            text = _full_text(refusal.error)
            assert not [secret for secret in ("hidden-queue", "secret-payments") if secret in text], text
            texts.append(refusal.message.replace(workflow_id, "<id>"))
    assert texts[:3] == texts[3:]


# -- the role catalog ------------------------------------------------------------------------------

def test_a_worker_role_cannot_learn_other_namespaces_from_the_role_catalog(owner):
    """pg_roles is readable by every role: worker role names must not carry their namespace."""
    owner.provision(["invoices"], namespace="billingsecret")
    role = owner.provision(["orders"])
    with role.login() as spy:
        names = [row[0] for row in spy.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'pgdw%'")]
    assert len(names) >= 2, names  # it does see the other role...
    assert not [name for name in names if "billingsecret" in name], names  # ...but not its namespace
