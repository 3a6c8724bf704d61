"""The replay runtime: workflow code on a deterministic event loop.

A :class:`WorkflowRun` owns one run's coroutine. ``activate(events)`` feeds
it inbound history events one at a time, in event_id order, running the
loop until nothing is ready after each — so a live run and any later replay
see exactly the same interleaving. Each durable call gets the next sequence
number; a call whose number history already recorded must match it (else
:class:`NonDeterminismError`), and is resolved when its outcome event is
delivered (:mod:`._runtime_events` says how, per event type); a new call
becomes a command for ``complete_workflow_task_v1``. Every durable timer —
``Durable.workflow.sleep``'s and asyncio's (``asyncio.sleep``, ``wait_for``'s
timeout) — is a :class:`asyncio.TimerHandle` from :meth:`WorkflowRun.start_timer`.
A timer the code abandons before it fires (a timeout whose awaitable finished
first, a cancelled sleep) becomes a ``cancel_timer`` command, once: a replay
finds it in the history.
A suspended run stays parked in the worker's cache: the next activation
only feeds it the new events.
"""

from __future__ import annotations

import asyncio
import asyncio.futures
import contextvars
import hashlib
import logging
import random as _random
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import _runtime_events, errors, interceptors, payloads
from ._store import as_utc

log = logging.getLogger("pgdurable.replay")

_shielded: contextvars.ContextVar[bool] = contextvars.ContextVar("pgdurable_shielded", default=False)

# History event type that records each command type, and what names it.
_RECORDING = {
    "activity_scheduled": ("activity", "activity_name"),
    "timer_started": ("timer", None),
    "signal_wait_started": ("condition", "signal_id"),
    "signal_sent": ("signal", "signal_id"),
    "child_started": ("child", "workflow_name"),
    "external_signal_sent": ("external_signal", "workflow_id"),
    "external_cancel_sent": ("external_cancel", "workflow_id"),
    "external_interrupt_sent": ("external_interrupt", "workflow_id"),
}


@dataclass(frozen=True)
class WorkflowInfo:
    """What a workflow knows about itself (``Durable.workflow.info()``)."""

    workflow_id: str
    workflow_name: str
    namespace: str
    task_queue: str
    attempt: int
    parent_workflow_id: str | None
    run_id: int


@dataclass
class _Call:
    """A pending durable call: a future its outcome event resolves, or a timer its timer_fired runs."""

    seq: int
    future: asyncio.Future[Any] | None = None
    timer: asyncio.TimerHandle | None = None
    cancellable: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class WorkflowLoop(asyncio.AbstractEventLoop):
    """An event loop with no I/O whose clock is the workflow's history time."""

    def __init__(self, run: WorkflowRun) -> None:
        self.run = run
        self._ready: deque[asyncio.Handle] = deque()
        self.tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()

    # -- what asyncio needs ---------------------------------------------------
    def call_soon(self, callback: Callable[..., Any], *args: Any,
                  context: contextvars.Context | None = None) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any,
                   context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        return self.run.start_timer(max(float(delay), 0.0), callback, args, context)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any,
                context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        return self.call_later(when - self.time(), callback, *args, context=context)

    def time(self) -> float:
        return self.run.now.timestamp()

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None,
                    context: contextvars.Context | None = None) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=self, name=name, context=context)
        self.tasks.add(task)
        return task

    def get_debug(self) -> bool:
        return False

    def is_running(self) -> bool:
        return True

    def is_closed(self) -> bool:
        return False

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        self.run.timer_handle_cancelled(handle)

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        if self.run.evicted:
            return
        log.debug("workflow %s: %s", self.run.info.workflow_id, context.get("message"))

    def get_exception_handler(self) -> None:
        return None

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.call_exception_handler(context)

    def drain(self) -> None:
        """Runs ready callbacks until none is left."""
        while self._ready:
            handle = self._ready.popleft()
            if not handle._cancelled:
                handle._run()

    # -- what a workflow may not do -----------------------------------------
    def _no_io(self, *args: Any, **kwargs: Any) -> Any:
        raise errors.WorkflowIOError("real I/O is not allowed inside a workflow (replay must be "
                                     "deterministic): do it in an activity")

    run_in_executor = create_connection = create_server = getaddrinfo = _no_io  # type: ignore[assignment]
    sock_connect = sock_recv = sock_sendall = add_reader = add_writer = _no_io  # type: ignore[assignment]
    subprocess_exec = subprocess_shell = open_connection = _no_io  # type: ignore[assignment]


class WorkflowRun:
    """One run of a workflow function, replayed from history and driven by new events."""

    def __init__(self, info: WorkflowInfo, fn: Callable[..., Coroutine[Any, Any, Any]], args: list[Any],
                 started_at: datetime) -> None:
        self.info = info
        self.fn = fn
        self.args = args
        self.now: datetime = as_utc(started_at)
        self.loop = WorkflowLoop(self)
        self.seq = 0
        self.recorded: dict[int, tuple[str, str | None]] = {}
        self.recorded_event: dict[int, int] = {}  # call seq -> the event id that recorded it
        self.max_recorded = 0
        self.recorded_patches: set[str] = set()
        self.cancelled_timers: set[int] = set()  # timers withdrawn (recorded, or commanded in this run)
        self.cancelled_activities: set[int] = set()  # activity calls abandoned (commanded in this run)
        self.patch_memo: dict[str, bool] = {}
        self.pending: dict[int, _Call] = {}
        self.resolved: set[int] = set()
        self.commands: list[dict[str, Any]] = []
        self.processed_event_id = 0
        self.main: asyncio.Task[Any] | None = None
        self.closing: dict[str, Any] | None = None
        self.failure: BaseException | None = None
        self.evicted = False
        self.cancel_pending = False
        self._rng: _random.Random | None = None

    @property
    def rng(self) -> _random.Random:
        """The run's deterministic random generator, seeded by its identity; made on first use (a
        parked run that never asks for one holds none: 2.5 KiB each)."""
        if self._rng is None:
            seed = hashlib.sha256(
                f"{self.info.namespace}/{self.info.workflow_id}/{self.info.run_id}".encode()).digest()
            self._rng = _random.Random(int.from_bytes(seed[:16], "big"))
        return self._rng

    # -- history ------------------------------------------------------------------
    def load_history(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Learns the recorded commands of a full history; returns its inbound events."""
        for event in events:
            kind = _RECORDING.get(event["event_type"])
            if kind is not None and event["seq"] is not None and event["seq"] not in self.recorded:
                command, name_key = kind
                name = event["data"].get(name_key) if name_key else None
                self.recorded[event["seq"]] = (command, name)
                self.recorded_event[event["seq"]] = event["event_id"]
                self.max_recorded = max(self.max_recorded, event["seq"])
            elif event["event_type"] == "patch_marker":
                self.recorded_patches.add(event["data"].get("patch_id"))
            elif event["event_type"] == "timer_cancelled" and event["seq"] is not None:
                self.cancelled_timers.add(event["seq"])
            if event["inbound"] and event["seq"] is not None:
                self.resolved.add(event["seq"])
        return [event for event in events if event["inbound"]]

    def activate(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Delivers inbound events (oldest first) and returns the new commands."""
        outer = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self.loop)
        try:
            for event in events:
                if self.closing is not None or self.failure is not None:
                    break
                if event["event_id"] <= self.processed_event_id:
                    continue
                self.now = as_utc(event["at"] if "at" in event else event["created_at"])
                try:
                    _runtime_events.deliver(self, event)
                    self.loop.drain()
                except errors.DurableReplayAbortedError:
                    break  # self.failure says why
                self.processed_event_id = event["event_id"]
                self._check_done()
        finally:
            asyncio.events._set_running_loop(outer)
        commands, self.commands = self.commands, []
        if self.closing is not None and self.failure is None:
            commands.append(self.closing)
        return commands

    def _check_done(self) -> None:
        main = self.main
        if main is None or not main.done() or self.closing is not None or self.failure is not None:
            return
        if self.seq < self.max_recorded:
            missing = min((seq for seq in self.recorded if seq > self.seq), default=self.max_recorded)
            expected = _call_text(*self.recorded[missing]) if missing in self.recorded else None
            self.failure = errors.NonDeterminismError(
                f"workflow {self.info.workflow_name} ({self.info.workflow_id}): the workflow finished after "
                f"{self.seq} durable calls but its history recorded {self.max_recorded}"
                + (f" (event {self.recorded_event[missing]}: {expected})" if expected else "")
                + ": a call was removed (guard the change with Durable.workflow.patched())",
                event_id=self.recorded_event.get(missing), expected=expected, actual="the workflow finished")
            return
        if main.cancelled():
            self.closing = {"type": "fail", "error": _error(RuntimeError("workflow task was cancelled"))}
            return
        exc = main.exception()
        if exc is None:
            try:
                self.closing = {"type": "complete", "result": payloads.dumps(main.result())}
            except (TypeError, ValueError) as bad:
                self.closing = {"type": "fail", "error": _error(bad)}
        elif isinstance(exc, errors.DurableContinueAsNewError):
            try:
                self.closing = {"type": "continue_as_new", "args": payloads.dumps(list(exc.new_args))}
            except (TypeError, ValueError) as bad:
                self.closing = {"type": "fail", "error": _error(bad)}
        elif isinstance(exc, errors.CancelledFailure):
            self.closing = {"type": "cancelled", "error": _error(exc)}
        elif isinstance(exc, errors.DurableReplayAbortedError):
            if self.failure is None:
                self.failure = exc
        elif isinstance(exc, Exception):
            self.closing = {"type": "fail",
                            "error": _error(exc, non_retryable=isinstance(exc, errors.DurableFatalError))}
        else:
            self.failure = exc

    def start(self) -> None:
        """Starts the workflow's main task (once: a replay may deliver workflow_started again)."""
        if self.main is None:
            self.main = self.loop.create_task(self._main(), name=f"workflow {self.info.workflow_id}")

    async def _main(self) -> Any:
        ctx = {"workflow_id": self.info.workflow_id, "workflow_name": self.info.workflow_name,
               "namespace": self.info.namespace, "task_queue": self.info.task_queue,
               "attempt": self.info.attempt, "run_id": self.info.run_id,
               "parent_workflow_id": self.info.parent_workflow_id, "args": list(self.args)}

        async def body() -> Any:
            return await self.fn(*self.args)

        return await interceptors.chain(interceptors.inbound, body, ctx)()

    # -- durable calls ----------------------------------------------------------
    def next_seq(self) -> int:
        """The next durable call's number; raises if this replay is being abandoned."""
        if self.failure is not None or self.evicted:
            raise errors.DurableReplayAbortedError("this replay was stopped by the engine")
        if self.cancel_pending and not _shielded.get():
            self.cancel_pending = False
            raise errors.CancelledFailure("workflow cancelled")
        self.seq += 1
        return self.seq

    def record(self, seq: int, command: str, name: str | None,
               make: Callable[[], dict[str, Any]]) -> None:
        """Matches call ``seq`` against history, or queues its new command."""
        recorded = self.recorded.get(seq)
        if recorded is not None:
            if recorded != (command, name):
                event_id = self.recorded_event.get(seq)
                self.nondeterminism(
                    f"durable call #{seq} is {_call_text(command, name)} but history recorded "
                    f"{_call_text(*recorded)} (event {event_id}): the workflow code changed under a running "
                    "workflow (guard the change with Durable.workflow.patched())",
                    event_id=event_id, expected=_call_text(*recorded), actual=_call_text(command, name))
            return
        if seq <= self.max_recorded:
            self.nondeterminism(f"durable call #{seq} ({_call_text(command, name)}) is not in the history",
                                expected=None, actual=_call_text(command, name))
        self.commands.append(make())

    def wait(self, seq: int, **extra: Any) -> asyncio.Future[Any]:
        """A future resolved when call ``seq``'s outcome event is delivered."""
        future = self.loop.create_future()
        self.pending[seq] = _Call(seq, future=future, cancellable=not _shielded.get(), extra=extra)
        return future

    def wait_activity(self, seq: int, **extra: Any) -> asyncio.Future[Any]:
        """An activity call's future; when the workflow stops waiting for it (a cancellation, an
        abandoned await), a ``cancel_activity`` command tells the engine: the activity's heartbeats
        then say cancelled, and its late outcome is recorded as such, never delivered."""
        future = self.wait(seq, kind="activity", **extra)

        def abandoned(done: asyncio.Future[Any]) -> None:
            if self.evicted or self.failure is not None or seq in self.resolved:
                return
            if done.cancelled() or isinstance(done.exception(), errors.CancelledFailure):
                self.pending.pop(seq, None)
                if seq not in self.cancelled_activities:
                    self.cancelled_activities.add(seq)
                    self.commands.append({"type": "cancel_activity", "seq": seq})

        future.add_done_callback(abandoned)
        return future

    def wait_condition(self, seq: int, signal_id: str) -> asyncio.Future[Any]:
        """A condition's future; abandoning it (cancelling) withdraws the wait durably."""
        future = self.wait(seq)

        def abandoned(done: asyncio.Future[Any]) -> None:
            if done.cancelled() and seq not in self.resolved and not self.evicted:
                self.pending.pop(seq, None)
                self.commands.append({"type": "cancel_wait", "seq": seq, "signal_id": signal_id})

        future.add_done_callback(abandoned)
        return future

    def start_timer(self, seconds: float, callback: Callable[..., Any], args: tuple[Any, ...],
                    context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        """Starts a durable timer (the next durable call): ``callback(*args)`` runs when it fires.
        Cancelling the handle withdraws the timer; a workflow cancellation interrupts a sleep on it."""
        seq = self.next_seq()
        self.record(seq, "timer", None, lambda: {"type": "timer", "seq": seq, "seconds": seconds})
        handle = asyncio.TimerHandle(self.loop.time() + seconds, callback, args, self.loop, context)
        self.pending[seq] = _Call(seq, timer=handle, cancellable=not _shielded.get())
        return handle

    def sleep(self, seconds: float) -> asyncio.Future[Any]:
        """``Durable.workflow.sleep``'s future: resolved with ``seconds`` when its timer fires, and,
        like ``asyncio.sleep``, withdrawing the timer when it ends otherwise."""
        future = self.loop.create_future()
        handle = self.start_timer(seconds, asyncio.futures._set_result_unless_cancelled, (future, seconds))
        future.add_done_callback(lambda _: handle.cancel())
        return future

    def timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        """A timer's handle was cancelled (a sleep ended otherwise, a timeout was not needed)."""
        for seq, call in self.pending.items():
            if call.timer is handle:
                del self.pending[seq]
                self.cancel_timer(seq)
                return

    def cancel_timer(self, seq: int) -> None:
        """Withdraws the durable timer of call ``seq``, unless it fired or is withdrawn already."""
        if seq in self.resolved or seq in self.cancelled_timers or self.evicted or self.failure is not None:
            return
        self.cancelled_timers.add(seq)
        self.commands.append({"type": "cancel_timer", "seq": seq})

    def patched(self, patch_id: str, deprecated: bool = False) -> bool:
        if patch_id in self.patch_memo:
            return self.patch_memo[patch_id]
        if patch_id in self.recorded_patches:
            value = True
        elif self.seq < self.max_recorded:
            value = False  # replaying code that ran before this patch existed
        else:
            value = True
            self.commands.append({"type": "patch", "patch_id": patch_id, "deprecated": deprecated})
            self.recorded_patches.add(patch_id)
        self.patch_memo[patch_id] = value
        return value

    def nondeterminism(self, message: str, *, event_id: int | None = None, expected: str | None = None,
                       actual: str | None = None) -> None:
        """Fails the task with NonDeterminismError and stops this replay."""
        self.failure = errors.NonDeterminismError(
            f"workflow {self.info.workflow_name} ({self.info.workflow_id}): {message}",
            event_id=event_id, expected=expected, actual=actual)
        raise errors.DurableReplayAbortedError(message)

    def evict(self) -> None:
        """Drops the parked coroutine without letting it make durable calls."""
        self.evicted = True
        outer = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self.loop)
        try:
            for task in list(self.loop.tasks):
                if task.done():
                    continue
                coro = task.get_coro()
                try:
                    if coro is not None and hasattr(coro, "close"):
                        coro.close()
                except BaseException:  # noqa: BLE001 - user finally blocks may raise anything
                    pass
        finally:
            asyncio.events._set_running_loop(outer)
        self.pending.clear()


def _call_text(command: str, name: str | None) -> str:
    """A durable call in words: ``activity 'charge'``, ``timer``."""
    return command if name is None else f"{command} {name!r}"


def _error(exc: BaseException, non_retryable: bool = False) -> dict[str, Any]:
    return payloads.error_to_json(exc, non_retryable=non_retryable)


def current() -> WorkflowRun:
    """The run whose code is executing, or a clear error outside a workflow."""
    loop = asyncio.events._get_running_loop()
    if isinstance(loop, WorkflowLoop):
        return loop.run
    raise RuntimeError("this Durable.workflow function can only be called inside a workflow function")


def random_uuid(rng: _random.Random) -> uuid.UUID:
    """A version-4 UUID drawn from ``rng``."""
    return uuid.UUID(int=rng.getrandbits(128), version=4)
