"""Group commits: many callers' items, one stored-function call, each item its own outcome.

A :class:`Batcher` sends an item at once when fewer than ``max_in_flight`` calls are under way;
otherwise the item waits for the next call, which takes every waiting item (up to ``max_items``).
A lone caller therefore pays no added latency, and under load the items that arrive while one
transaction commits share the next one ("natural" batching, as a database's own group commit).
A call takes its items when its task first runs, not when it is scheduled: items submitted in the
same turn of the event loop (callers woken together, e.g. by one NOTIFY) go in one call.

Nothing is buffered past its caller: an item's future resolves only once the call that carried
it returned (its transaction committed), so a crash loses only what no caller was told about.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 - an item
R = TypeVar("R")  # an item's result

Send = Callable[[list[I]], Awaitable[Sequence[R | BaseException]]]
"""Sends one batch; returns, in order, each item's result or the error that item alone raised.
An error it raises fails every item of the batch."""


class Batcher(Generic[I, R]):
    """Gathers concurrent submissions into calls of ``send``, at most ``max_in_flight`` at once."""

    def __init__(self, send: Send[I, R], *, max_items: int, max_in_flight: int = 1,
                 name: str = "batch") -> None:
        if max_items < 1 or max_in_flight < 1:
            raise ValueError("max_items and max_in_flight must be >= 1")
        self._send = send
        self._max_items = max_items
        self._max_in_flight = max_in_flight
        self._name = name
        self._waiting: list[tuple[I, asyncio.Future[R]]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._starting: set[asyncio.Task[None]] = set()  # calls that have not taken their items yet

    async def submit(self, item: I) -> R:
        """The result of ``item``, once the call that carried it returned."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        # Items a scheduled call will take when it runs need no call of their own.
        while (len(self._waiting) > len(self._starting) * self._max_items
               and len(self._in_flight) < self._max_in_flight):
            task = asyncio.create_task(self._take_and_call(), name=f"pgdurable {self._name}")
            self._starting.add(task)
            self._in_flight.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._starting.discard(task)  # cancelled before it ran
        self._in_flight.discard(task)
        self._dispatch()

    async def _take_and_call(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._starting.discard(task)
        batch = self._waiting[:self._max_items]
        del self._waiting[:self._max_items]
        if batch:
            await self._call(batch)

    async def _call(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        # The items whose callers gave up (cancelled) still go: their outcome may be needed by
        # nobody, but a half-sent batch would be a worse surprise than a result nobody reads.
        try:
            outcomes = await self._send([item for item, _ in batch])
        except GeneratorExit:
            raise  # the event loop is gone (closed with this call pending): nobody is left to tell
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of the batch
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
