"""The workflow-task worker: claims the workflow tasks of one task queue, replays each run (from
its cache of runs when the cached one is current), records the commands the run produced, and runs
the workflow tasks a completing call hands over (eager continuation) — all within ``concurrency``
tasks at once. The activities a completion leases at once go to the activity worker.

It also wakes, every few seconds, the runs that wait on an activity this process does not know
yet: their replay registers it.

A run it holds in its cache it takes by id (``claim_workflow_task_v1``), not through the claim loop:
when the run's first timer is due (an asyncio timer armed from the ``wake_in`` its last completion
returned), and when its own channel says the run has new events (it is the run's sticky worker).
Both are shortcuts only: the claim loop still fires every timer and claims every task, so a worker
that is gone, or a run it evicted, costs latency (a poll interval at most), never work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import _faults, _observe, errors, payloads
from .. import _registry as registry
from .. import _store as store
from .._runtime import WorkflowInfo, WorkflowRun
from ._calls import Calls, log_crash
from ._completer import Completer

if TYPE_CHECKING:
    from ._activity import ActivityWorker

log = logging.getLogger("pgdurable.worker.workflow")

UNKNOWN_ACTIVITY_CHECK = 5.0
"""Seconds between two looks for runs waiting on an activity this process does not know."""
TIMER_BACKSTOP = 0.2
"""Seconds the claim loop sleeps past a due time that one of this worker's own run timers covers
(it fires that run itself; the claim loop then fires what it missed)."""
TIMER_MATCH = 0.01
"""How close (s) the next due time of the task queue must be to one of this worker's run timers
for the claim loop to leave it to that timer."""
TIMER_EARLY = 0.002
"""Seconds before a cached run's timer falls due that the worker asks for its task: the engine
waits out the rest (at most ``TIMER_WAIT``), so the lateness of a round trip is not added."""
TIMER_WAIT = 0.02
"""Seconds the engine may wait for a run's timer when its worker asks early (capped at 50 ms)."""


class WorkflowWorker:
    """Serves the workflow tasks of ``task_queue`` for the workflow functions in ``workflows``."""

    take_by_id = True
    """Whether cached runs are taken by id (their timers, their channel); off only to measure it."""

    def __init__(self, *, calls: Calls, completer: Completer, namespace: str, task_queue: str,
                 workflows: dict[str, Callable[..., Any]], concurrency: int, max_cached: int,
                 eager: Callable[[int], dict[str, Any] | None]) -> None:
        self.activities: ActivityWorker | None = None  # where eagerly leased activities go
        self.claimer: asyncio.Task[None] | None = None
        self._calls = calls
        self._completer = completer
        self._namespace = namespace
        self._queue = task_queue
        self._workflows = workflows
        self._batch = concurrency
        self._eager = eager
        self._cache: OrderedDict[tuple[str, int], WorkflowRun] = OrderedDict()
        self._max_cached = max_cached
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(concurrency)  # workflow tasks running, claimed or handed over
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._listener: Any = None
        self._channel = ""
        self._next_unknown_check = 0.0
        self._woken_for_activities: set[str] = set()
        self._timers: dict[tuple[str, int], asyncio.TimerHandle] = {}  # cached runs parked on a timer
        self._taking: set[tuple[str, int]] = set()  # runs being taken by id right now
        self._running: set[tuple[str, int]] = set()  # runs whose workflow task this worker holds
        self._notified: set[tuple[str, int]] = set()  # ... of which a NOTIFY named since
        self._run_channel = ""

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self, listener: Any, channel: str) -> None:
        """Listens on the task queue's channel and starts the claim loop."""
        self._listener, self._channel = listener, channel
        await listener.subscribe_payloads(channel, self._on_stream_notify)
        self.claimer = asyncio.create_task(self._claim_loop(), name="pgdurable-workflows")

    async def listen_for_runs(self, listener: Any, channel: str) -> None:
        """Listens on this worker's own channel: new events of the runs it caches."""
        self._run_channel = channel
        await listener.subscribe_payloads(channel, self._on_run_event)

    def stop(self) -> None:
        """Stops claiming (the claim loop ends at its next turn)."""
        self._stopping = True
        self._wakeup.set()

    def in_flight(self) -> list[asyncio.Task[None]]:
        return list(self._tasks)

    async def close(self) -> None:
        """After :meth:`stop` and the in-flight tasks: ends the loop, empties the cache, stops
        listening."""
        if self.claimer is not None:
            self.claimer.cancel()
            await asyncio.gather(self.claimer, return_exceptions=True)
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for run in self._cache.values():
            run.evict()
        self._cache.clear()
        if self._listener is not None:
            self._listener.unsubscribe_payloads(self._channel, self._on_stream_notify)
            if self._run_channel:
                self._listener.unsubscribe_payloads(self._run_channel, self._on_run_event)

    # -- claiming -----------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        names = list(self._workflows)
        queues = [self._queue]
        batch = max(self._batch, 1)
        while not self._stopping:
            self._wakeup.clear()
            rows = await self._calls.poll(lambda c: store.claim_workflow_tasks(
                c, self._namespace, queues, names, batch, self._calls.lease, self._calls.owner))
            if rows is None:
                continue
            for row in rows:
                await self._slots.acquire()
                self._spawn(self._workflow_task(row), row, self._slots.release)
            if len(rows) < batch:
                await self._wake_for_unknown_activities()
                await self._calls.idle(self._wakeup, self._namespace, queues, names, self._later)

    def start_handed_over(self, task: dict[str, Any]) -> None:
        """Runs a workflow task a completing call handed over (eager continuation, as JSON),
        within the same ``concurrency`` bound as the claimed ones."""
        row = {**task, "lease_token": uuid.UUID(task["lease_token"]),
               "started_at": datetime.fromisoformat(task["started_at"])}

        async def bounded() -> None:
            async with self._slots:
                await self._workflow_task(row)

        self._spawn(bounded(), row, lambda: None)

    def _spawn(self, coro: Coroutine[Any, Any, None], row: dict[str, Any],
               release: Callable[[], None], *, observed: bool = True) -> None:
        if observed:  # a workflow task (a take by id observes the task it gets, if any)
            coro = _observe.workflow_task(self._calls, self._namespace, row, coro)
        task = asyncio.create_task(coro, name=f"workflow task {row['workflow_id']}")
        self._tasks.add(task)
        task.add_done_callback(lambda t: (self._tasks.discard(t), release(), log_crash(t)))

    # -- taking a cached run by id ---------------------------------------------------------
    def _on_stream_notify(self, payload: str) -> None:
        """A NOTIFY of the task queue wakes the claim loop, unless it names a run this worker is
        taking by id or holds the task of (its completion gets the new events)."""
        if payload:
            run_id, _, workflow_id = payload.partition(":")
            if run_id.isdigit():
                key = (workflow_id, int(run_id))
                if key in self._running:
                    self._notified.add(key)  # seen to when its task ends
                    return
                if key in self._taking:
                    return
        self._wakeup.set()

    def _on_run_event(self, payload: str) -> None:
        """A NOTIFY on this worker's channel: ``<run_id>:<workflow_id>`` has new events."""
        run_id, _, workflow_id = payload.partition(":")
        if run_id.isdigit():
            key = (workflow_id, int(run_id))
            if key in self._running:
                self._notified.add(key)
            else:
                self._take(key)

    def _after_task(self, key: tuple[str, int]) -> None:
        """A NOTIFY named the run while this worker held its task (it may have come after the
        completion, before the run was cached again): take the new task now, or claim it."""
        self._running.discard(key)
        if key in self._notified:
            self._notified.discard(key)
            if not self._take(key):
                self._wakeup.set()

    def _arm(self, key: tuple[str, int], wake_in: float | None) -> None:
        """Takes the cached run ``key`` by id in ``wake_in`` seconds (the engine's count, from the
        completion that parked it), when its first timer is due."""
        self._disarm(key)
        if wake_in is not None and self.take_by_id:
            loop = asyncio.get_running_loop()
            self._timers[key] = loop.call_at(loop.time() + max(float(wake_in) - TIMER_EARLY, 0.0), self._take,
                                             key, TIMER_WAIT)

    def _later(self, delay: float) -> float:
        """The claim loop's next wake-up: a due time one of this worker's run timers covers is
        left to that timer (pushed back by ``TIMER_BACKSTOP``), so the two do not race."""
        if not self._timers:
            return delay
        due = asyncio.get_running_loop().time() + delay
        if any(abs(handle.when() - due) <= TIMER_MATCH for handle in self._timers.values()):
            return delay + TIMER_BACKSTOP
        return delay

    def _disarm(self, key: tuple[str, int]) -> None:
        handle = self._timers.pop(key, None)
        if handle is not None:
            handle.cancel()

    def _take(self, key: tuple[str, int], wait: float = 0.0) -> bool:
        """Takes the task of the cached run ``key`` by id, if this worker has a free slot now (else
        the claim loop takes it, as it takes everything). Whether it does."""
        self._disarm(key)
        if (not self.take_by_id or self._stopping or key not in self._cache or key in self._taking
                or self._slots.locked()):
            return False
        self._taking.add(key)
        self._spawn(self._take_by_id(key, wait), {"workflow_id": key[0]}, lambda: self._taking.discard(key),
                    observed=False)
        return True

    async def _take_by_id(self, key: tuple[str, int], wait: float) -> None:
        async with self._slots:
            rows = await self._calls.poll(lambda c: store.claim_workflow_task(
                c, self._namespace, self._queue, key[0], list(self._workflows), self._calls.lease,
                self._calls.owner, wait))
            self._taking.discard(key)
            for row in rows or ():
                await _observe.workflow_task(self._calls, self._namespace, row, self._workflow_task(row))

    async def _wake_for_unknown_activities(self) -> None:
        """Activities register when workflow code calls ``proxy_activities(activities=...)``: a
        worker that started after its predecessor died knows none of those its workflows wait on.
        Waking such a run once makes its replay register them (checked every few seconds)."""
        now = asyncio.get_running_loop().time()
        if self.activities is None or now < self._next_unknown_check:
            return  # the runs' activities are served elsewhere
        self._next_unknown_check = now + UNKNOWN_ACTIVITY_CHECK
        skip = sorted(self._woken_for_activities)
        woken = await self._calls.poll(lambda c: store.wake_for_unknown_activities(
            c, self._namespace, self._queue, list(self._workflows), registry.names(), skip))
        for row in woken or ():
            self._woken_for_activities.add(row["workflow_id"])
            log.info("workflow %s waits on an activity this process does not know yet: replaying it "
                     "to register its activities", row["workflow_id"])

    # -- one workflow task ------------------------------------------------------------------
    async def _workflow_task(self, row: dict[str, Any]) -> None:
        _faults.point("workflow_task_claimed")
        key = (row["workflow_id"], row["run_id"])
        self._running.add(key)
        try:
            await self._run_workflow_task(key, row)
        finally:
            self._after_task(key)

    async def _run_workflow_task(self, key: tuple[str, int], row: dict[str, Any]) -> None:
        run = self._cache.pop(key, None)
        self._disarm(key)
        while True:
            try:
                if run is None or run.processed_event_id != row["processed_event_id"]:
                    if run is not None:
                        run.evict()
                    run, events = await self._replay(row)
                else:
                    events = row["events"]
                commands = run.activate(events)
                failure: BaseException | None = run.failure
            except Exception as exc:  # an undecodable payload, a broken replay
                failure = exc
            if failure is not None:
                if run is not None:
                    run.evict()
                await self._fail_workflow_task(row, failure)
                return
            _faults.point("workflow_task_ran")
            # Activities this worker may take at once, within its concurrency (eager dispatch).
            activities = self.activities
            slots = 0 if self._stopping or activities is None else activities.take_slots(
                sum(1 for command in commands if command["type"] == "activity"))
            try:
                result = await self._completer.complete_workflow_task(
                    row["workflow_id"], row["message_id"], row["lease_token"], run.processed_event_id,
                    commands, self._eager(slots))
                _faults.point("workflow_task_recorded")
            except errors.LeaseLostError:
                log.info("workflow %s: lease lost; another worker took over", row["workflow_id"])
                run.evict()
                return
            except errors.DatabaseError:
                run.evict()
                raise
            except Exception as exc:  # the engine refused the commands: visible, retried with backoff
                run.evict()
                await self._fail_workflow_task(row, exc)
                return
            finally:
                if activities is not None:  # the leased activities take them over, with no await between
                    activities.return_slots(slots)
            for task in result["activities"] or ():
                assert activities is not None  # none is leased without slots
                activities.start_leased(task)
            if result["status"] in ("closed", "discarded"):
                run.evict()
                self._log_close(row, commands)
                _observe.workflow_closed(row, commands)
                return
            if result["status"] != "continue":
                break
            # New events arrived while this task ran: they came back with our lease kept.
            row = {**row, "processed_event_id": run.processed_event_id, "events": result["events"]}
            _observe.workflow_task_continued(row)
        self._cache[key] = run
        if result["status"] == "ok":
            self._arm(key, result.get("wake_in"))
        while len(self._cache) > self._max_cached:
            old_key, old = self._cache.popitem(last=False)
            self._disarm(old_key)
            old.evict()

    async def _replay(self, row: dict[str, Any]) -> tuple[WorkflowRun, list[dict[str, Any]]]:
        if row["processed_event_id"] == 0:
            # Nothing was ever recorded for this run: the task's events are its whole history.
            history = [{**event, "inbound": True} for event in row["events"]]
        else:
            history = await self._calls.record(lambda c: store.run_history(
                c, self._namespace, row["workflow_id"], row["run_id"], row["lease_token"]))
        info = WorkflowInfo(workflow_id=row["workflow_id"], workflow_name=row["workflow_name"],
                            namespace=self._namespace, task_queue=row["task_queue"], attempt=row["attempt"],
                            parent_workflow_id=row["parent_workflow_id"], run_id=row["run_id"])
        fn = self._workflows[row["workflow_name"]]
        # Into the workflow function's annotated parameter types (a value that does not fit fails the task).
        args = payloads.loads_args(fn, row["args"])
        run = WorkflowRun(info, fn, args, row["started_at"])
        return run, run.load_history(history)

    async def _fail_workflow_task(self, row: dict[str, Any], exc: BaseException) -> None:
        log.warning("workflow %s (%s): workflow task failed, will retry: %s: %s", row["workflow_id"],
                    row["workflow_name"], type(exc).__name__, exc)
        _observe.workflow_task_failed(row, exc)
        error = {"type": type(exc).__name__, "message": str(exc)}
        with contextlib.suppress(errors.LeaseLostError):
            await self._calls.record(lambda c: store.fail_workflow_task(
                c, row["message_id"], row["lease_token"], error))

    @staticmethod
    def _log_close(row: dict[str, Any], commands: list[dict[str, Any]]) -> None:
        last = commands[-1]["type"] if commands else "closed"
        log.info("workflow %s (%s) run %s: %s", row["workflow_id"], row["workflow_name"], row["run_id"], last)
