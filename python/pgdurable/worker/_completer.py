"""Group commits of a worker's outcomes: workflow-task completions, activity results and activity
failures from every task of the worker go to the database together, in one call of
``durable.complete_tasks_v1`` and one transaction, each item with its own outcome (a lost lease
fails that item only).

Batching is natural (:class:`~pgdurable._batching.Batcher`): an outcome goes at once when fewer
than ``IN_FLIGHT`` calls are under way, else with the next call. A caller hears of its outcome
only once the transaction that recorded it committed, so nothing is acknowledged before it is
durable, and a crash loses only outcomes no caller was told of (their leases expire and the tasks
run again, as after any crash).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .. import _faults, errors
from .. import _store as store
from .._batching import Batcher
from ._calls import Calls

MAX_ITEMS = 50
"""At most this many outcomes per call (``complete_tasks_v1``'s bound)."""
IN_FLIGHT = 2
"""Calls under way at once: while one commits, the next gathers."""
ALONE_BYTES = 1 << 20
"""An outcome with more payload than this goes in a call of its own: one large result does not
make a whole batch heavy."""

Item = dict[str, Any]
"""One outcome, as ``complete_tasks_v1`` takes it (plus the workflow id: the order runs are locked in)."""


class Completer:
    """Records one worker's outcomes as group commits, through its :class:`Calls` (retried through
    database failures until the lease deadline, as every recording call)."""

    def __init__(self, calls: Calls) -> None:
        self._calls = calls
        self._batcher: Batcher[Item, dict[str, Any]] = Batcher(
            self._send, max_items=MAX_ITEMS, max_in_flight=IN_FLIGHT, name="completions")

    async def complete_workflow_task(self, workflow_id: str, message_id: int, lease_token: Any,
                                     processed_event_id: int, commands: list[dict[str, Any]],
                                     eager: dict[str, Any] | None) -> dict[str, Any]:
        """Records a workflow task's commands: what ``complete_workflow_task_v1`` returns."""
        return await self._record({
            "kind": "workflow_task", "workflow_id": workflow_id, "message_id": message_id,
            "lease_token": str(lease_token),
            "processed_event_id": processed_event_id, "commands": commands, "eager": eager})

    async def complete_activity(self, workflow_id: str, message_id: int, lease_token: Any, result: str,
                                eager: dict[str, Any] | None) -> dict[str, Any]:
        """Records an activity attempt's result: what ``complete_activity_v1`` returns."""
        return await self._record({
            "kind": "activity_completed", "workflow_id": workflow_id, "message_id": message_id,
            "lease_token": str(lease_token),
            "result": result, "eager": eager})

    async def fail_activity(self, workflow_id: str, message_id: int, lease_token: Any, error: dict[str, Any],
                            eager: dict[str, Any] | None) -> dict[str, Any]:
        """Records an activity attempt's failure: what ``fail_activity_v1`` returns."""
        return await self._record({
            "kind": "activity_failed", "workflow_id": workflow_id, "message_id": message_id,
            "lease_token": str(lease_token),
            "error": error, "eager": eager})

    async def _record(self, item: Item) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._calls.lease.total_seconds()
        while True:
            try:
                if _payload_bytes(item) > ALONE_BYTES:
                    [outcome] = await self._send([item])
                else:
                    outcome = await self._batcher.submit(item)
            except errors.TransientDatabaseError:
                # This item alone was rolled back (a deadlock with another session): nothing of it
                # was applied, so it goes again while its lease lasts.
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.01)
                continue
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome

    async def _send(self, batch: list[Item]) -> list[dict[str, Any] | BaseException]:
        # Sorted by workflow id: two batches that share runs lock them in the same order.
        order = sorted(range(len(batch)), key=lambda i: batch[i]["workflow_id"])
        items = [batch[i] for i in order]
        _faults.point("completions_gathered")
        rows = await self._calls.record(lambda c: store.complete_tasks(c, items))
        _faults.point("completions_committed")
        outcomes: list[dict[str, Any] | BaseException] = [errors.DurableError("no outcome")] * len(batch)
        for row in rows:
            index = order[row["item"]]
            if row["error_code"] is None:
                outcomes[index] = row["outcome"]
            else:
                outcomes[index] = store.item_error(row["error_code"], row["error_message"])
        return outcomes


def _payload_bytes(item: Item) -> int:
    size = len(item.get("result") or "")
    for command in item.get("commands") or ():
        for key in ("args", "result", "data"):
            value = command.get(key)
            if isinstance(value, str):
                size += len(value)
    return size
