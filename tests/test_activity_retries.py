"""Activity retries: backoff from the policy, exhaustion, fatal and non-retryable errors."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pgdurable import Durable, RetryPolicy, errors, payloads
from support.history import events, timestamp

attempts: Counter[str] = Counter()


class PaymentDeclined(Exception):
    pass


class CardExpired(PaymentDeclined):
    pass


class OutOfStock(errors.DurableFatalError):
    pass


async def retry_flaky(key: str, failures: int) -> str:
    attempts[key] += 1
    if attempts[key] <= failures:
        raise ConnectionError(f"flaky failure {attempts[key]} of {key}")
    return f"ok after {attempts[key]}"


async def retry_always_fails(key: str) -> None:
    attempts[key] += 1
    raise ValueError(f"card {key} refused")


async def retry_fatal(key: str, subclass: bool = False) -> None:
    attempts[key] += 1
    raise (OutOfStock if subclass else errors.DurableFatalError)(f"account {key} closed")


def retry_declined(key: str, kind: str) -> None:
    attempts[key] += 1
    error = {"declined": PaymentDeclined, "expired": CardExpired, "perm": PermissionError}[kind]
    raise error(f"{kind} {key}")


async def retry_too_large(key: str) -> str:
    attempts[key] += 1
    return "x" * payloads.MAX_PAYLOAD_BYTES  # over the limit once JSON-quoted


ACTIVITIES = [retry_flaky, retry_always_fails, retry_fatal, retry_declined, retry_too_large]


async def flaky_workflow(key: str) -> str:
    acts = Durable.workflow.proxy_activities(
        activities=ACTIVITIES, retry=RetryPolicy(maximum_attempts=3, initial_interval=0.2))
    return await acts.retry_flaky(key, 2)


async def exhausted_caught_workflow(key: str) -> dict[str, Any]:
    acts = Durable.workflow.proxy_activities(
        activities=ACTIVITIES, retry=RetryPolicy(maximum_attempts=2, initial_interval=0.05))
    try:
        await acts.retry_always_fails(key)
    except errors.DurableMaxedError as exc:
        return {"class": type(exc).__name__, "error_type": exc.error_type, "message": exc.message,
                "traceback": exc.traceback, "attempts": exc.attempts, "str": str(exc),
                "is_exception": isinstance(exc, Exception), "did_interrupt": Durable.did_interrupt(exc)}
    return {"class": None}


async def exhausted_uncaught_workflow(key: str) -> None:
    acts = Durable.workflow.proxy_activities(
        activities=ACTIVITIES, retry=RetryPolicy(maximum_attempts=2, initial_interval=0.05))
    await acts.retry_always_fails(key)


async def fatal_workflow(key: str, subclass: bool = False) -> dict[str, Any]:
    acts = Durable.workflow.proxy_activities(
        activities=ACTIVITIES, retry=RetryPolicy(maximum_attempts=5, initial_interval=0.05))
    try:
        await acts.retry_fatal(key, subclass)
    except errors.DurableError as exc:
        return {"class": type(exc).__name__, "error_type": exc.error_type, "message": exc.message}
    return {"class": None}


async def non_retryable_workflow(key: str, kind: str, by: str) -> dict[str, Any]:
    rule: Any = {"class": PaymentDeclined, "name": "PaymentDeclined",
                 "qualified": "builtins.PermissionError", "builtin": PermissionError}[by]
    acts = Durable.workflow.proxy_activities(
        activities=ACTIVITIES,
        retry=RetryPolicy(maximum_attempts=4, initial_interval=0.05, non_retryable_errors=[rule]))
    try:
        await acts.retry_declined(key, kind)
    except errors.DurableMaxedError as exc:
        return {"error_type": exc.error_type, "attempts": exc.attempts}
    return {"error_type": None}


async def too_large_workflow(key: str) -> dict[str, Any]:
    acts = Durable.workflow.proxy_activities(
        activities=ACTIVITIES, retry=RetryPolicy(maximum_attempts=3, initial_interval=0.05))
    try:
        await acts.retry_too_large(key)
    except errors.DurableMaxedError as exc:
        return {"error_type": exc.error_type, "attempts": exc.attempts, "message": exc.message}
    return {"error_type": None}


@pytest.fixture
async def client(dsn: str) -> AsyncIterator[Durable.Client]:
    connection = Durable.Connection(dsn)
    await Durable.Worker.create(
        connection=connection, task_queue="retries",
        workflows=[flaky_workflow, exhausted_caught_workflow, exhausted_uncaught_workflow, fatal_workflow,
                   non_retryable_workflow, too_large_workflow])
    yield Durable.Client(connection=connection)
    await Durable.shutdown()


async def run(client: Durable.Client, workflow: Any, *args: Any) -> Any:
    return await client.workflow.start(args=list(args), task_queue="retries", workflow_name=workflow.__name__)


async def test_activity_failing_twice_then_succeeding_runs_three_times_with_backoff(client):
    key = Durable.guid()
    handle = await run(client, flaky_workflow, key)
    assert await handle.result(timeout=20) == "ok after 3"
    assert attempts[key] == 3

    failed = await events(handle, "activity_failed")
    completed = await events(handle, "activity_completed")
    backoff = [(e["details"]["attempt"], e["details"]["retry_in_seconds"]) for e in failed]
    assert backoff == [(1, 0.2), (2, 0.4)]
    assert [e["details"]["error"]["type"] for e in failed] == ["ConnectionError", "ConnectionError"]
    assert len(completed) == 1 and completed[0]["details"]["attempt"] == 3
    # The retry is not claimable before its backoff: the next outcome comes at least that much later.
    assert (timestamp(failed[1]) - timestamp(failed[0])).total_seconds() >= 0.2
    assert (timestamp(completed[0]) - timestamp(failed[1])).total_seconds() >= 0.4


async def test_exhausted_retries_raise_durable_maxed_error_in_the_workflow(client):
    key = Durable.guid()
    handle = await run(client, exhausted_caught_workflow, key)
    caught = await handle.result(timeout=20)
    assert attempts[key] == 2
    assert caught["class"] == "DurableMaxedError"
    assert caught["error_type"] == "ValueError"
    assert caught["message"] == f"card {key} refused"
    assert f"card {key} refused" in caught["str"]
    assert "retry_always_fails" in caught["traceback"] and "ValueError" in caught["traceback"]
    assert caught["attempts"] == 2
    assert caught["is_exception"] is True and caught["did_interrupt"] is False


async def test_exhausted_retries_fail_the_workflow_with_workflow_failed_error_at_the_client(client):
    key = Durable.guid()
    handle = await run(client, exhausted_uncaught_workflow, key)
    with pytest.raises(errors.WorkflowFailedError) as info:
        await handle.result(timeout=20)
    failure = info.value
    assert failure.error_type in ("DurableMaxedError", "ValueError")
    assert f"card {key} refused" in failure.message
    assert f"card {key} refused" in str(failure)
    assert isinstance(failure.traceback, str) and "exhausted_uncaught_workflow" in failure.traceback
    assert "retry_always_fails" in failure.traceback  # where it really failed, in the activity
    assert await handle.status() == "failed"
    state = await handle.state()
    assert state["status"] == "failed" and f"card {key} refused" in state["error"]["message"]


async def test_durable_fatal_error_is_not_retried(client):
    key = Durable.guid()
    handle = await run(client, fatal_workflow, key)
    caught = await handle.result(timeout=20)
    assert attempts[key] == 1
    assert caught["class"] == "DurableFatalError"
    assert caught["message"] == f"account {key} closed"
    failed = await events(handle, "activity_failed")
    assert [e["details"]["attempt"] for e in failed] == [1]


async def test_subclass_of_durable_fatal_error_is_not_retried_and_reaches_the_workflow_as_fatal(client):
    key = Durable.guid()
    handle = await run(client, fatal_workflow, key, True)
    caught = await handle.result(timeout=20)
    assert attempts[key] == 1
    assert caught == {"class": "DurableFatalError", "error_type": "OutOfStock",
                      "message": f"account {key} closed"}


@pytest.mark.parametrize(("kind", "by", "error_type"), [
    ("declined", "class", "PaymentDeclined"),
    ("expired", "class", "CardExpired"),      # a subclass of the listed class
    ("expired", "name", "CardExpired"),       # the listed name of a base class
    ("perm", "qualified", "PermissionError"),
    ("perm", "builtin", "PermissionError"),
])
async def test_non_retryable_errors_by_class_and_by_name_are_not_retried(client, kind, by, error_type):
    key = Durable.guid()
    handle = await run(client, non_retryable_workflow, key, kind, by)
    assert await handle.result(timeout=20) == {"error_type": error_type, "attempts": 1}
    assert attempts[key] == 1


async def test_errors_not_listed_as_non_retryable_are_retried(client):
    key = Durable.guid()
    # PermissionError is not a PaymentDeclined: it is retried until the policy is exhausted.
    handle = await run(client, non_retryable_workflow, key, "perm", "class")
    assert await handle.result(timeout=20) == {"error_type": "PermissionError", "attempts": 4}
    assert attempts[key] == 4


async def test_an_activity_result_over_the_payload_limit_fails_at_once_and_is_not_retried(client):
    key = Durable.guid()
    handle = await run(client, too_large_workflow, key)
    caught = await handle.result(timeout=30)
    assert attempts[key] == 1
    assert caught["error_type"] == "InvalidArgumentError" and caught["attempts"] == 1
    assert caught["message"].endswith("exceeds the 16777216 byte limit: store large data elsewhere and pass "
                                      "a reference")
    failed = await events(handle, "activity_failed")
    assert [(e["details"]["attempt"], e["details"]["maxed"]) for e in failed] == [(1, True)]
