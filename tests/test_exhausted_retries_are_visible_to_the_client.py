"""When an activity's retries run out and the workflow lets ``DurableMaxedError`` escape, the
client's ``WorkflowFailedError`` keeps the original error type and message, says
``retries_exhausted`` and exposes the chain in ``cause``; a plain error says neither, and
``raise ... from ...`` shows its cause. HotMesh ports: ``maximum_attempts`` counts every attempt."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pgdurable import Durable, RetryPolicy, errors
from support.history import events, new_client

QUEUE = "porting-retries"
charged: list[int] = []


async def charge_card(order_id: str) -> str:
    charged.append(Durable.activity.get_context().attempt)
    raise ValueError(f"card declined for {order_id}")


async def lets_retries_escape(order_id: str) -> str:
    acts = Durable.workflow.proxy_activities(
        activities=[charge_card], retry=RetryPolicy(maximum_attempts=3, initial_interval=0.05))
    return await acts.charge_card(order_id)


async def fails_plainly(order_id: str) -> str:
    raise KeyError(order_id)


async def fails_from_a_cause(order_id: str) -> str:
    try:
        {}[order_id]
    except KeyError as exc:
        raise RuntimeError("lookup failed") from exc
    return "unreachable"


@pytest.fixture
async def client(dsn: str) -> AsyncIterator[Durable.Client]:
    charged.clear()
    connection = Durable.Connection(dsn)
    await Durable.Worker.create(connection=connection, task_queue=QUEUE,
                                workflows=[lets_retries_escape, fails_plainly, fails_from_a_cause])
    yield new_client(connection)
    await Durable.shutdown()


async def test_exhausted_retries_keep_the_original_error_and_say_so(client: Durable.Client) -> None:
    handle = await client.workflow.start(args=["o-1"], task_queue=QUEUE, workflow_name="lets_retries_escape")
    with pytest.raises(errors.WorkflowFailedError) as caught:
        await handle.result(timeout=30)
    error = caught.value
    assert error.error_type == "ValueError" and error.message == "card declined for o-1"
    assert error.retries_exhausted is True
    assert charged == [1, 2, 3]  # maximum_attempts counts every attempt, the first included
    cause = error.cause
    assert cause is not None
    assert {k: cause[k] for k in ("type", "activity_name", "attempts")} == {
        "type": "DurableMaxedError", "activity_name": "charge_card", "attempts": 3}
    assert cause["cause"]["type"] == "ValueError"
    assert cause["cause"]["message"] == "card declined for o-1"
    assert "charge_card" in cause["cause"]["traceback"]
    assert len(await events(handle, "activity_failed")) == 3


async def test_a_plain_error_is_not_retries_exhausted_and_has_no_cause(client: Durable.Client) -> None:
    handle = await client.workflow.start(args=["o-2"], task_queue=QUEUE, workflow_name="fails_plainly")
    with pytest.raises(errors.WorkflowFailedError) as caught:
        await handle.result(timeout=30)
    assert caught.value.error_type == "KeyError"
    assert caught.value.retries_exhausted is False and caught.value.cause is None


async def test_raise_from_shows_its_cause(client: Durable.Client) -> None:
    handle = await client.workflow.start(args=["o-3"], task_queue=QUEUE, workflow_name="fails_from_a_cause")
    with pytest.raises(errors.WorkflowFailedError) as caught:
        await handle.result(timeout=30)
    assert caught.value.error_type == "RuntimeError" and caught.value.retries_exhausted is False
    assert caught.value.cause == {"type": "KeyError", "message": "'o-3'"}
