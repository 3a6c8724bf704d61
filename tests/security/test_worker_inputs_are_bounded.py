"""Issue 11, finding 8: the worker functions took any size: a 1000-year lease (a task nobody else
can ever claim), a batch of a million, a completion with 50,000 commands, payloads of hundreds
of MiB in every text argument. Each is now refused with PD004 and a clear message: claims take
a batch of 1..1000 and a lease of at most 1 hour (so do lease extensions and heartbeats), a
completion at most 2000 commands, a payload at most 16 MiB, with the SDK's very message."""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.types.json import Jsonb

from pgdurable import payloads
from support.attack import (
    PAYLOAD_LIMIT,
    Owner,
    Task,
    activity,
    claim_activity_task,
    claim_workflow_task,
    complete_workflow_task,
    payload_message,
    refused,
    signal,
)

pytestmark = pytest.mark.sql

OVERSIZED = "x" * (PAYLOAD_LIMIT + 1)
OVERSIZED_JSON = '"' + "x" * (PAYLOAD_LIMIT - 1) + '"'  # one byte over, as JSON text
ANY_PAYLOAD_MESSAGE = re.compile(r"^payload of \d+ bytes exceeds the 16777216 byte limit: "
                                 r"store large data elsewhere and pass a reference$")


@pytest.fixture
def worker(owner: Owner) -> Iterator[psycopg.Connection]:
    role = owner.provision(["orders", "orders-activity"])
    with role.login() as session:
        yield session


def _activity_task(owner: Owner, worker: psycopg.Connection, workflow_id: str = "o-1") -> Task:
    """An activity task of ``orders``, held by the worker."""
    owner.start(workflow_id, task_queue="orders", workflow_name="order_workflow")
    with owner.connect() as conn:
        complete_workflow_task(conn, claim_workflow_task(conn, "orders", "order_workflow"),
                               [activity(1, "charge")])
    return claim_activity_task(worker, "orders-activity", "charge")


# -- claims and leases ----------------------------------------------------------------------------

CLAIMS = {
    "claim_workflow_tasks_v1": "SELECT * FROM durable.claim_workflow_tasks_v1('durable', ARRAY['orders'], "
                               "ARRAY['order_workflow'], %s, %s::interval)",
    "claim_activity_tasks_v1": "SELECT * FROM durable.claim_activity_tasks_v1('durable', "
                               "ARRAY['orders-activity'], ARRAY['charge'], %s, %s::interval)",
}


@pytest.mark.parametrize("claim", list(CLAIMS))
@pytest.mark.parametrize(("batch", "lease"), [
    (1, "1000 years"), (1, "1 hour 1 second"), (1, "0 seconds"),
    (1_000_000, "30 seconds"), (1001, "30 seconds"), (0, "30 seconds")])
def test_a_claim_with_an_absurd_batch_or_lease_is_refused(claim, batch, lease, worker, owner):
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")
    with refused("PD004") as refusal:
        worker.execute(CLAIMS[claim], [batch, lease])
    assert refusal.message
    assert owner.value("SELECT count(*) FROM durable.messages WHERE lease_token IS NOT NULL") == 0


@pytest.mark.parametrize("claim", list(CLAIMS))
def test_a_claim_at_the_bounds_is_accepted(claim, worker):
    worker.execute(CLAIMS[claim], [1000, "1 hour"]).fetchall()


def test_a_lease_extension_beyond_an_hour_is_refused(owner, worker):
    task = _activity_task(owner, worker)
    with refused("PD004"):
        worker.execute("SELECT durable.extend_lease_v1(%s, %s, '1000 years')",
                       [[task.message_id], [task.lease_token]]).fetchall()
    with refused("PD004"):
        worker.execute("SELECT durable.heartbeat_activity_v1(%s, %s, NULL, '1000 years')",
                       [task.message_id, task.lease_token])
    assert owner.value("SELECT visible_at <= durable.now() + interval '1 hour' FROM durable.messages "
                       "WHERE id = %s", [task.message_id])
    assert worker.execute("SELECT durable.heartbeat_activity_v1(%s, %s, NULL, '1 hour')",
                          [task.message_id, task.lease_token]).fetchone() == (True,)


def test_no_lease_longer_than_an_hour_can_be_had_through_eager_dispatch(owner, worker):
    """The spec bounds claims, extend_lease_v1 and heartbeat_activity_v1; p_eager's lease_seconds
    (complete_workflow_task_v1, complete_activity_v1, fail_activity_v1) is a lease request too."""
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")
    task = claim_workflow_task(worker, "orders", "order_workflow")
    eager = {"owner": "w", "lease_seconds": 1000 * 365 * 86400, "activity_stream": "orders-activity",
             "activity_names": ["charge"]}
    try:
        complete_workflow_task(worker, task, [activity(1, "charge")], eager=eager)
    except psycopg.Error as exc:  # refusing the long lease is as good as capping it
        assert exc.sqlstate == "PD004", exc
    assert owner.value("SELECT coalesce(bool_and(visible_at <= durable.now() + interval '1 hour'), true) "
                       "FROM durable.messages") is True


# -- completions ----------------------------------------------------------------------------------

@pytest.mark.parametrize("count", [50_000, 2001])
def test_a_completion_with_too_many_commands_is_refused_and_applies_none(count, owner, worker):
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")
    task = claim_workflow_task(worker, "orders", "order_workflow")
    with refused("PD004") as refusal:
        complete_workflow_task(worker, task, [activity(seq, "charge") for seq in range(1, count + 1)])
    assert "2000" in refusal.message
    assert owner.messages("orders-activity") == []


def test_a_completion_with_2000_commands_is_accepted(owner, worker):
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")
    task = claim_workflow_task(worker, "orders", "order_workflow")
    assert complete_workflow_task(worker, task, [activity(seq, "charge") for seq in range(1, 2001)]) == "ok"


# -- payloads -------------------------------------------------------------------------------------

def test_a_heartbeat_with_details_over_16_mib_is_refused_with_the_sdk_message(owner, worker):
    task = _activity_task(owner, worker)
    with refused("PD004") as refusal:
        worker.execute("SELECT durable.heartbeat_activity_v1(%s, %s, %s)",
                       [task.message_id, task.lease_token, OVERSIZED])
    assert refusal.message == payload_message(len(OVERSIZED))
    assert owner.value("SELECT payload ? 'heartbeat_details' FROM durable.messages WHERE id = %s",
                       [task.message_id]) is False


def test_an_activity_result_over_16_mib_is_refused_with_the_sdk_message(owner, worker):
    task = _activity_task(owner, worker)
    with refused("PD004") as refusal:
        worker.execute("SELECT * FROM durable.complete_activity_v1(%s, %s, %s)",
                       [task.message_id, task.lease_token, OVERSIZED_JSON])
    assert refusal.message == payload_message(len(OVERSIZED_JSON))
    assert "activity_completed" not in owner.event_types("o-1")


def test_a_result_of_exactly_16_mib_is_accepted(owner, worker):
    task = _activity_task(owner, worker)
    exact = '"' + "x" * (PAYLOAD_LIMIT - 2) + '"'
    assert worker.execute("SELECT recorded FROM durable.complete_activity_v1(%s, %s, %s)",
                          [task.message_id, task.lease_token, exact]).fetchone() == (True,)


def test_an_activity_error_over_16_mib_is_refused(owner, worker):
    task = _activity_task(owner, worker)
    with refused("PD004") as refusal:
        worker.execute("SELECT * FROM durable.fail_activity_v1(%s, %s, %s)",
                       [task.message_id, task.lease_token, Jsonb({"type": "Boom", "message": OVERSIZED})])
    assert ANY_PAYLOAD_MESSAGE.match(refusal.message), refusal.message


def test_a_workflow_task_failure_over_16_mib_is_refused(owner, worker):
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")
    task = claim_workflow_task(worker, "orders", "order_workflow")
    with refused("PD004") as refusal:
        worker.execute("SELECT durable.fail_workflow_task_v1(%s, %s, %s)",
                       [task.message_id, task.lease_token, Jsonb({"type": "Boom", "message": OVERSIZED})])
    assert ANY_PAYLOAD_MESSAGE.match(refusal.message), refusal.message


@pytest.mark.parametrize("command", ["activity args", "child args", "signal data", "result",
                                     "continue_as_new args", "fail error"])
def test_a_command_carrying_a_payload_over_16_mib_is_refused(command, owner, worker):
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")
    task = claim_workflow_task(worker, "orders", "order_workflow")
    commands = {
        "activity args": [activity(1, "charge", args=OVERSIZED_JSON)],
        "child args": [{"type": "child", "seq": 1, "workflow_id": "kid", "workflow_name": "order_workflow",
                        "args": OVERSIZED_JSON, "awaited": True}],
        "signal data": [signal(1, "orders.big", OVERSIZED_JSON)],
        "result": [{"type": "complete", "result": OVERSIZED_JSON}],
        "continue_as_new args": [{"type": "continue_as_new", "args": OVERSIZED_JSON}],
        "fail error": [{"type": "fail", "error": {"type": "Boom", "message": OVERSIZED}}],
    }[command]
    with refused("PD004") as refusal:
        complete_workflow_task(worker, task, commands)
    assert ANY_PAYLOAD_MESSAGE.match(refusal.message), refusal.message
    assert owner.event_types("o-1") == ["workflow_started"]


def test_the_owners_start_and_signal_take_no_payload_over_16_mib_either(owner):
    with owner.connect() as conn:
        with refused("PD004") as refusal:
            conn.execute("SELECT * FROM durable.start_workflow_v1('durable', 'big', 'order_workflow', "
                         "'orders', %s)", [OVERSIZED_JSON])
        assert refusal.message == payload_message(len(OVERSIZED_JSON))
        with refused("PD004") as refusal:
            conn.execute("SELECT durable.send_signal_v1('durable', 'big', %s)", [OVERSIZED_JSON])
        assert refusal.message == payload_message(len(OVERSIZED_JSON))


def test_the_sdk_limit_and_message_are_the_engines(owner, worker):
    assert payloads.MAX_PAYLOAD_BYTES == PAYLOAD_LIMIT
    value = "ä" * (PAYLOAD_LIMIT // 2)  # two bytes each in UTF-8: over the limit with the quotes
    with pytest.raises(Exception) as sdk:  # noqa: PT011 - the SDK's error type is not the point
        payloads.dumps(value)
    stored = '"' + value + '"'
    assert str(sdk.value) == payload_message(len(stored.encode("utf-8")))

    task = _activity_task(owner, worker)
    with refused("PD004") as refusal:
        worker.execute("SELECT * FROM durable.complete_activity_v1(%s, %s, %s)",
                       [task.message_id, task.lease_token, stored])
    assert refusal.message == str(sdk.value)
