"""The activity worker: claims the tasks of one activity stream for the activities registered in
this process, runs each (its context, interceptors and start-to-close timeout), renews the leases
of those running (heartbeats), notices a lease lost to another worker, and records each attempt's
outcome — handing the workflow task it wakes to the workflow-task worker (eager continuation).

At most ``concurrency`` activities run at once: claims and eager dispatch both take slots.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .. import _faults, _observe, errors, interceptors, payloads
from .. import _registry as registry
from .. import _store as store
from .. import activity as activity_api
from ._calls import POLL_INTERVAL, Calls, log_crash, wait
from ._completer import Completer

if TYPE_CHECKING:
    from ._workflow import WorkflowWorker

log = logging.getLogger("pgdurable.worker.activity")

HEARTBEAT_FLUSH = 1.0
"""Seconds within which an activity's explicit heartbeat() reaches the database (at most one call per
activity per turn; a shorter heartbeat_timeout makes it sooner)."""


class ActivityWorker:
    """Serves the activity tasks of ``stream`` (``<task_queue>-activity``)."""

    def __init__(self, *, calls: Calls, completer: Completer, namespace: str, stream: str, concurrency: int,
                 eager: Callable[[int], dict[str, Any] | None]) -> None:
        self.workflows: WorkflowWorker | None = None  # where handed-over workflow tasks go
        self.claimer: asyncio.Task[None] | None = None
        self._heartbeats: asyncio.Task[None] | None = None
        self._calls = calls
        self._completer = completer
        self._namespace = namespace
        self._stream = stream
        self._concurrency = concurrency
        self._eager = eager
        # Per running attempt: its task, lease token, and what its heartbeats and lease share.
        self._activities: dict[int, tuple[asyncio.Task[None], Any, dict[str, Any]]] = {}
        self._wakeup = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._reserved = 0  # slots held for the claims and completions in flight
        self._stopping = False
        self._listener: Any = None
        self._channel = ""

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self, listener: Any, channel: str) -> None:
        """Listens on the stream's channel (and to new registrations); starts the claim and
        heartbeat loops."""
        self._listener, self._channel = listener, channel
        await listener.subscribe(channel, self._wakeup)
        registry.on_change(self._wakeup.set)
        self.claimer = asyncio.create_task(self._claim_loop(), name="pgdurable-activities")
        self._heartbeats = asyncio.create_task(self._heartbeat_loop(), name="pgdurable-heartbeats")

    def stop(self) -> None:
        """Stops claiming (the claim loop ends at its next turn); heartbeats go on while
        activities run."""
        self._stopping = True
        self._wakeup.set()
        self._slot_freed.set()
        registry.remove_listener(self._wakeup.set)

    def in_flight(self) -> list[asyncio.Task[None]]:
        return [task for task, _, _ in self._activities.values()]

    async def close(self) -> None:
        """After :meth:`stop` and the in-flight tasks: ends the loops, stops listening."""
        loops = [t for t in (self.claimer, self._heartbeats) if t is not None]
        for loop_task in loops:
            loop_task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        if self._listener is not None:
            self._listener.unsubscribe(self._channel, self._wakeup)

    # -- slots ----------------------------------------------------------------------------
    def take_slots(self, wanted: int) -> int:
        """Reserves up to ``wanted`` free slots (``concurrency`` minus the activities running and
        the slots other calls hold); returns how many it got."""
        taken = max(0, min(wanted, self._concurrency - len(self._activities) - self._reserved))
        self._reserved += taken
        return taken

    def return_slots(self, count: int) -> None:
        if count:
            self._reserved -= count
            self._slot_freed.set()

    # -- claiming and leases ----------------------------------------------------------------
    async def _claim_loop(self) -> None:
        streams = [self._stream]
        while not self._stopping:
            names = registry.names()
            self._wakeup.clear()
            if not names:
                await wait(self._wakeup, POLL_INTERVAL)
                continue
            free = self.take_slots(self._concurrency)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                rows = await self._calls.poll(lambda c, names=names, free=free: store.claim_activity_tasks(
                    c, self._namespace, streams, names, free, self._calls.lease, self._calls.owner))
            finally:
                self.return_slots(free)
            if rows is None:
                continue
            for row in rows:
                self._start(row)
            if len(rows) < free:
                await self._calls.idle(self._wakeup, self._namespace, streams, names)

    def start_leased(self, task: dict[str, Any]) -> None:
        """Runs an activity task a completing workflow task leased to this worker (as JSON), in a
        slot its caller reserved."""
        self._start({**task, "lease_token": uuid.UUID(task["lease_token"])})

    def _start(self, row: dict[str, Any]) -> None:
        task = asyncio.create_task(self._activity_task(row), name=f"activity {row['activity_name']}")
        task.add_done_callback(log_crash)
        self._activities[row["message_id"]] = (task, row["lease_token"], {})

    def _tick(self) -> float:
        """Seconds between two turns of the heartbeat loop: explicit heartbeats are sent within a
        second (within a third of the shortest heartbeat_timeout), leases renewed every third of
        the lease."""
        tick = min(self._calls.lease.total_seconds() / 3, HEARTBEAT_FLUSH)
        for _, _, beat in self._activities.values():
            timeout = beat.get("heartbeat_timeout")
            if timeout:
                tick = min(tick, timeout / 3)
        return max(tick, 0.05)

    async def _heartbeat_loop(self) -> None:
        lease = self._calls.lease
        period = max(lease.total_seconds() / 3, 0.05)
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while not self._stopping or self._activities:
            await asyncio.sleep(self._tick())
            held = [(m, h) for m, h in self._activities.items() if not h[2].get("lost")]
            if not held:
                continue
            for message_id, (_, token, beat) in held:
                if "details" in beat:
                    details = beat.pop("details")
                    kept = await self._calls.poll(lambda c, m=message_id, t=token, d=details:
                                                  store.heartbeat_activity(c, m, t, d, lease))
                    if kept is not None and not kept["held"]:
                        self._lease_lost(message_id)
                    elif kept is not None and kept["cancelled"]:
                        self._cancelled(message_id)
            # Every lease each third of it; those with a heartbeat_timeout every turn (their lease ends
            # at their heartbeat deadline: a renewal is how a silent attempt's worker learns it lost it).
            if loop.time() - renewed >= period * 0.95:
                renewed = loop.time()
            else:
                held = [(m, h) for m, h in held if h[2].get("heartbeat_timeout")]
                if not held:
                    continue
            ids, tokens = [m for m, _ in held], [h[1] for _, h in held]
            extended = await self._calls.poll(lambda c, ids=ids, tokens=tokens: store.extend_leases(
                c, ids, tokens, lease))
            for message_id in set(ids) - (set(ids) if extended is None else extended):
                self._lease_lost(message_id)

    def _cancelled(self, message_id: int) -> None:
        """A heartbeat learnt that the workflow cancelled this activity: its next heartbeat() raises."""
        entry = self._activities.get(message_id)
        ctx = entry[2].get("ctx") if entry is not None else None
        if ctx is not None and not ctx._cancelled:
            ctx._cancelled = True
            log.info("activity %s (workflow %s): cancelled by its workflow; its next heartbeat() raises "
                     "CancelledFailure", entry[2].get("name"), entry[2].get("workflow_id"))

    def _lease_lost(self, message_id: int) -> None:
        """A renewal found this activity's lease gone (it expired and another worker took the task
        over, or the task ended): stop renewing it, tell the activity, record nothing for it."""
        entry = self._activities.get(message_id)
        if entry is None or entry[2].get("lost") or entry[2].get("recording"):
            return  # gone, known, or its own recording call will tell
        beat = entry[2]
        beat["lost"] = True
        ctx = beat.get("ctx")
        if ctx is not None:
            ctx.lease_lost = True
        log.warning("activity %s (workflow %s, attempt %s): lease lost: another worker took the task over "
                    "or it ended; this worker stops renewing it and will discard its outcome "
                    "(get_context().lease_lost is now true)", beat.get("name"), beat.get("workflow_id"),
                    beat.get("attempt"))

    # -- one activity attempt -----------------------------------------------------------------
    async def _activity_task(self, row: dict[str, Any]) -> None:
        message_id, token = row["message_id"], row["lease_token"]
        name, payload = row["activity_name"], row["payload"]
        try:
            await self._run_activity(row, name, payload)
        except asyncio.CancelledError:
            await self._release(name, message_id, token)
        finally:
            self._activities.pop(message_id, None)
            self._slot_freed.set()

    async def _release(self, name: str, message_id: int, token: Any) -> None:
        """Gives back the lease of an activity cut short by shutdown, and logs what really happened."""
        try:
            await self._calls.once(lambda c: store.release(c, message_id, token))
        except errors.LeaseLostError:
            log.info("activity %s: not released at shutdown: its lease was already lost (another worker "
                     "took the task over, or it ended)", name)
        except errors.DurableError as exc:
            log.warning("activity %s: not released at shutdown (%s); it runs again once its lease "
                        "expires", name, exc)
        else:
            log.info("activity %s released (worker shutting down)", name)

    async def _run_activity(self, row: dict[str, Any], name: str, payload: dict[str, Any]) -> None:
        message_id, token = row["message_id"], row["lease_token"]
        _faults.point("activity_claimed")
        fn = registry.get(name)
        beat = self._activities.get(message_id, (None, None, {}))[2]
        beat.update(name=name, workflow_id=row["workflow_id"], attempt=row["attempt"],
                    heartbeat_timeout=payload.get("heartbeat_timeout"))
        _observe.activity_started(row, payload)
        loop = asyncio.get_running_loop()
        unstorable = False
        try:
            if fn is None:
                raise errors.DurableFatalError(f"activity {name!r} is not registered in this process")
            # Into the activity function's annotated parameter types (enums, dataclasses, Pydantic models).
            args = payloads.loads_args(fn, payload["args"])
            details = payload.get("heartbeat_details")
            ctx = activity_api.ActivityContext(
                activity_name=name, args=list(args), headers=dict(payload.get("headers") or {}),
                workflow_id=row["workflow_id"], workflow_name=payload.get("workflow_name"),
                task_queue=payload.get("task_queue"), attempt=row["attempt"], namespace=self._namespace,
                heartbeat_details=None if details is None else payloads.loads(details),
                _beat=(loop, lambda d: beat.__setitem__("details", payloads.dumps(d))),
                lease_lost=bool(beat.get("lost")))
            beat["ctx"] = ctx
            token_ctx = activity_api._current.set(ctx)
            try:
                result = await self._invoke(fn, ctx, payload.get("start_to_close_timeout"))
            finally:
                activity_api._current.reset(token_ctx)
            # A result that cannot be stored (too large, not a payload type) fails the same way on
            # every attempt: it is not retried.
            unstorable = True
            encoded = payloads.dumps(result)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - every failure is recorded
            # A CancelledFailure (heartbeat() of a cancelled activity) ends the attempt: recorded as a
            # late failure, never retried.
            if not isinstance(exc, (Exception, errors.CancelledFailure)):
                raise
            fatal = unstorable or isinstance(exc, (errors.DurableFatalError, errors.CancelledFailure))
            log.info("activity %s attempt %s failed%s: %s: %s", name, row["attempt"],
                     " (its result cannot be stored: not retried)" if unstorable else "",
                     type(exc).__name__, exc)
            error = payloads.error_to_json(exc, non_retryable=fatal)
            _faults.point("activity_ran")
            outcome = await self._record(row, beat, "failure", lambda: self._completer.fail_activity(
                row["workflow_id"], message_id, token, error, self._eager(0)))
            if outcome is not None and outcome["outcome"] == "retrying":
                # Its retry may be due before the loop's next poll: let the loop re-plan its sleep.
                self._wakeup.set()
            return
        _faults.point("activity_ran")
        outcome = await self._record(row, beat, "result", lambda: self._completer.complete_activity(
            row["workflow_id"], message_id, token, encoded, self._eager(0)))
        if outcome is not None:
            _faults.point("activity_recorded")
            log.info("activity %s completed (attempt %s)", name, row["attempt"])

    async def _record(self, row: dict[str, Any], beat: dict[str, Any], what: str,
                      record: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any] | None:
        """Records an attempt's ``what`` ("result" or "failure") and hands over the workflow task
        it wakes; None (logged) when nothing was recorded: the lease is lost (the outcome belongs
        to its new holder) or the database failed past the lease deadline."""
        name = row["activity_name"]
        if beat.get("lost"):
            log.info("activity %s: %s discarded: this worker lost its lease", name, what)
            return None
        beat["recording"] = True  # under way: no more lease-loss warnings, this call will tell
        try:
            outcome = await record()
        except errors.LeaseLostError:
            log.info("activity %s: lease lost, %s discarded", name, what)
            return None
        except errors.DatabaseError as exc:
            log.warning("activity %s attempt %s: its %s was not recorded (%s); the attempt runs again "
                        "once its lease expires", name, row["attempt"], what, exc)
            return None
        if outcome["workflow_task"]:
            assert self.workflows is not None  # a workflow task is handed over only when asked for
            self.workflows.start_handed_over(outcome["workflow_task"])
        return outcome

    async def _invoke(self, fn: Callable[..., Any], ctx: activity_api.ActivityContext,
                      timeout: float | None) -> Any:
        async def call() -> Any:
            if inspect.iscoroutinefunction(fn):
                return await fn(*ctx.args)
            return await asyncio.to_thread(fn, *ctx.args)

        icpt_ctx = {"activity_name": ctx.activity_name, "args": ctx.args, "headers": ctx.headers,
                    "workflow_id": ctx.workflow_id, "attempt": ctx.attempt}
        chained = interceptors.chain(interceptors.activity, call, icpt_ctx)
        if timeout is None:
            return await chained()
        try:
            return await asyncio.wait_for(chained(), timeout)
        except TimeoutError:
            raise errors.DurableTimeoutError(
                f"activity {ctx.activity_name} ran past its start_to_close_timeout of {timeout} s",
                error_type="DurableTimeoutError") from None
