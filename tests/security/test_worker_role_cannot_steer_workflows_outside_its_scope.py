"""A worker role's workflows steer other workflows (external handles: signal_external,
cancel_external, interrupt_external commands) only on the task queues the role may produce to.
Any other workflow id is refused alike, whether it exists or not (its workflow cannot probe other
teams' ids), with a clear message recorded as the call's outcome; nothing reaches the target.
A signal id outside the role's signal prefixes is refused as for its own signals (PD005)."""

from __future__ import annotations

import json
import threading

import pytest

from support.attack import Owner, claim_workflow_task, complete_workflow_task, refused
from support.polling import wait_until

pytestmark = pytest.mark.sql


def steer(seq: int, kind: str, workflow_id: str, **extra: str) -> dict[str, object]:
    return {"type": kind, "seq": seq, "workflow_id": workflow_id, **extra}


@pytest.fixture
def held(owner: Owner):
    """A worker role of ``orders``, logged in, holding the workflow task of order ``o-1``; ``o-2``
    runs on ``orders`` and ``p-1`` on ``payments``."""
    role = owner.provision(["orders", "orders-activity"])
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")
    with role.login() as session:
        task = claim_workflow_task(session, "orders", "order_workflow")
        owner.start("o-2", task_queue="orders", workflow_name="order_workflow")
        owner.start("p-1", task_queue="payments", workflow_name="payment_workflow")
        yield role, session, task


def outcomes(owner: Owner, workflow_id: str) -> list[dict[str, object]]:
    return [e["data"] for e in owner.events(workflow_id) if e["event_type"].startswith("external_")]


def test_steering_a_workflow_outside_the_produce_scope_is_refused_alike_for_known_and_unknown_ids(
        held, owner):
    role, session, task = held
    complete_workflow_task(session, task, [
        steer(1, "signal_external", "p-1", signal_id="pay", data=json.dumps("forged")),
        steer(2, "cancel_external", "p-1"),
        steer(3, "interrupt_external", "p-1", reason="hostile"),
        steer(4, "signal_external", "no-such-id", signal_id="pay", data=json.dumps("forged")),
    ])
    seen = outcomes(owner, task.workflow_id)
    assert [o["outcome"] for o in seen] == ["refused"] * 4
    for outcome in seen:
        assert f"worker role {role.name} may not steer workflow" in str(outcome["message"])
        assert "task queue the role may produce to (orders)" in str(outcome["message"])
    # The same words for an id that exists elsewhere and one that does not exist at all.
    assert seen[0]["message"].replace("'p-1'", "X") == seen[3]["message"].replace("'no-such-id'", "X")
    # Nothing reached p-1: still running, no cancel request, no signal buffered for it.
    assert owner.outcome("p-1")[1] == "running"
    assert owner.value("SELECT cancel_requested FROM durable.workflows WHERE workflow_id = 'p-1'") is False
    assert owner.value("SELECT count(*) FROM durable.signals") == 0


def test_steering_a_workflow_on_its_own_queues_works(held, owner):
    role, session, task = held
    complete_workflow_task(session, task, [
        steer(1, "signal_external", "o-2", signal_id="approve", data=json.dumps("yes")),
        steer(2, "cancel_external", "o-2"),
    ])
    assert [o["outcome"] for o in outcomes(owner, task.workflow_id)] == ["buffered", "requested"]
    assert owner.value("SELECT cancel_requested FROM durable.workflows WHERE workflow_id = 'o-2'") is True


def test_a_signal_id_outside_the_roles_prefixes_is_refused(owner):
    role = owner.provision(["orders"], signal_prefixes=["orders."])
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")
    with role.login() as session:
        task = claim_workflow_task(session, "orders", "order_workflow")
        owner.start("o-2", task_queue="orders", workflow_name="order_workflow")
        with refused("PD005") as refusal:
            complete_workflow_task(session, task, [
                steer(1, "signal_external", "o-2", signal_id="payments.approve", data=json.dumps(1))])
    assert "may not wait on signal 'payments.approve' nor send it" in refusal.message


def test_no_workflow_cancels_or_interrupts_itself_through_a_command(held, owner):
    role, session, task = held
    with refused("PD004") as refusal:
        complete_workflow_task(session, task, [steer(1, "interrupt_external", task.workflow_id)])
    assert "cannot interrupt itself" in refusal.message
    assert owner.outcome(task.workflow_id)[1] == "running"


def test_a_run_started_on_another_queue_while_the_command_waits_for_the_lock_is_not_steered(held, owner):
    """The race of a check before the lock: o-2 (on ``orders``, in scope) is locked by another
    session while the worker's signal_external to it waits; that session closes o-2 and starts a
    new run of o-2 on ``payments``. The command must not reach the new run: the run whose task
    queue was checked is the run steered."""
    role, session, task = held
    with owner.connect() as blocker:
        blocker.execute("BEGIN")
        blocker.execute("SELECT 1 FROM durable.workflows WHERE workflow_id = 'o-2' AND status = 'running' "
                        "FOR UPDATE")
        done: list[object] = []
        worker = threading.Thread(target=lambda: done.append(complete_workflow_task(session, task, [
            steer(1, "signal_external", "o-2", signal_id="pay", data=json.dumps("forged")),
            steer(2, "cancel_external", "o-2")])))
        worker.start()
        try:
            wait_until(lambda: owner.value(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND wait_event_type = 'Lock'",
                [role.name]) == 1, "the worker's command waiting for o-2's lock")
            blocker.execute("SELECT durable.interrupt_workflow_v1('durable', 'o-2')")
            blocker.execute("SELECT durable.start_workflow_v1('durable', 'o-2', 'payment_workflow', "
                            "'payments', '[]')")
            blocker.execute("COMMIT")
        finally:
            worker.join(timeout=30)
    assert done, "the worker's workflow task did not complete"
    assert [o["outcome"] for o in outcomes(owner, task.workflow_id)] == ["refused", "refused"]
    # The new run on payments got nothing: no signal buffered, no cancellation requested.
    assert owner.value("SELECT count(*) FROM durable.signals") == 0
    assert owner.value("SELECT cancel_requested FROM durable.workflows WHERE workflow_id = 'o-2' "
                       "AND status = 'running'") is False
