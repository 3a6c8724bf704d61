"""Workflow-level retry: start(retry=RetryPolicy(...)) runs a failing workflow function again
from the start, as a new run, until the policy is exhausted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pgdurable import Durable, RetryPolicy, errors
from support.history import new_client

QUEUE = "retried"
attempts: list[int] = []


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    attempts.clear()
    connection = Durable.Connection(dsn)
    yield connection
    await Durable.shutdown(grace=5)


async def retry_note(attempt: int) -> int:
    return attempt


async def fails_until_third_attempt(succeed_on: int) -> dict:
    acts = Durable.workflow.proxy_activities(activities=[retry_note])
    info = Durable.workflow.info()
    attempts.append(info.attempt)
    noted = await acts.retry_note(info.attempt)
    if info.attempt < succeed_on:
        raise LookupError(f"attempt {info.attempt} found no stock")
    return {"attempt": noted, "run_id": info.run_id}


async def start(connection: Durable.Connection, succeed_on: int, retry: RetryPolicy | None):
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=fails_until_third_attempt)
    client = new_client(connection)
    return await client.workflow.start(args=[succeed_on], task_queue=QUEUE, retry=retry,
                                       workflow_name="fails_until_third_attempt")


async def test_a_failing_workflow_is_run_again_until_it_succeeds(connection: Durable.Connection) -> None:
    handle = await start(connection, 3, RetryPolicy(maximum_attempts=3, initial_interval=0.1))
    assert await handle.result(timeout=20) == {"attempt": 3, "run_id": 3}
    assert attempts == [1, 2, 3]
    state = await handle.state()
    assert state["status"] == "completed" and state["attempt"] == 3
    events = await handle.history(all_runs=True)
    failed = [e for e in events if e["event_type"] == "workflow_failed"]
    assert [e["run_id"] for e in failed] == [1, 2]
    assert all(e["details"]["will_retry"] for e in failed)


async def test_exhausted_workflow_retries_fail_it_with_the_original_error(
        connection: Durable.Connection) -> None:
    handle = await start(connection, 99, RetryPolicy(maximum_attempts=3, initial_interval=0.1))
    with pytest.raises(errors.WorkflowFailedError) as failed:
        await handle.result(timeout=20)
    assert failed.value.error_type == "LookupError"
    assert "attempt 3 found no stock" in failed.value.message
    assert "LookupError" in (failed.value.traceback or "")
    assert attempts == [1, 2, 3]
    assert await handle.status() == "failed"


async def test_without_a_retry_policy_one_failure_fails_the_workflow(connection: Durable.Connection) -> None:
    handle = await start(connection, 2, None)
    with pytest.raises(errors.WorkflowFailedError, match="attempt 1 found no stock"):
        await handle.result(timeout=20)
    assert attempts == [1]
    assert [e["run_id"] for e in await handle.history(all_runs=True)] == [1] * len(await handle.history())
