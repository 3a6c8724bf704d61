"""Issue 11, finding 10: run_history_v1 let a worker role read a run's whole history as soon as
*someone* held that run's workflow task. Now a worker role must pass the lease token of the
task it holds (unexpired); any other token, or none, is PD005."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from support.attack import Owner, Task, claim_workflow_task, refused

pytestmark = pytest.mark.sql

HISTORY = "SELECT event_type FROM durable.run_history_v1('durable', %s, %s, %s)"


@pytest.fixture
def reader(owner: Owner) -> Iterator[psycopg.Connection]:
    """A worker role of ``orders``: the one that wants to read histories."""
    role = owner.provision(["orders", "orders-activity"])
    with role.login() as session:
        yield session


def _held_by_someone_else(owner: Owner, workflow_id: str) -> Task:
    owner.start(workflow_id, task_queue="orders", workflow_name="order_workflow", args='["card 4242"]')
    with owner.connect() as conn:
        return claim_workflow_task(conn, "orders", "order_workflow")


def test_a_run_whose_task_someone_else_holds_is_not_readable_without_its_token(owner, reader):
    task = _held_by_someone_else(owner, "o-1")
    with refused("PD005"):
        reader.execute("SELECT * FROM durable.run_history_v1('durable', 'o-1', 1)")
    for token in (None, uuid.uuid4()):
        with refused("PD005"):
            reader.execute(HISTORY, ["o-1", 1, token])
    assert task.lease_token is not None


def test_the_token_of_another_runs_task_opens_no_history(owner, reader):
    _held_by_someone_else(owner, "o-1")
    owner.start("o-2", task_queue="orders", workflow_name="order_workflow")
    mine = claim_workflow_task(reader, "orders", "order_workflow")
    assert mine.workflow_id == "o-2"

    with refused("PD005"):
        reader.execute(HISTORY, ["o-1", 1, mine.lease_token])
    assert [row[0] for row in reader.execute(HISTORY, ["o-2", 1, mine.lease_token])] == ["workflow_started"]


def test_the_holders_own_token_reads_the_history_until_the_lease_expires(owner, reader):
    owner.start("o-3", task_queue="orders", workflow_name="order_workflow")
    task = claim_workflow_task(reader, "orders", "order_workflow", lease="30 seconds")
    assert [row[0] for row in reader.execute(HISTORY, ["o-3", 1, task.lease_token])] == ["workflow_started"]

    owner.value("SELECT durable.advance_clock('31 seconds')")
    with refused("PD005"):
        reader.execute(HISTORY, ["o-3", 1, task.lease_token])


def test_the_engine_owner_reads_any_history_without_a_token(owner):
    _held_by_someone_else(owner, "o-4")
    assert owner.rows("SELECT event_type FROM durable.run_history_v1('durable', 'o-4', 1)") == [
        ("workflow_started",)]
