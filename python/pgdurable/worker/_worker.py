"""Workers: claim workflow and activity tasks, run them, record their outcomes.

A worker consumes ``<task_queue>`` (workflow tasks of the workflows it was
given) and ``<task_queue>-activity`` (the activities registered in this
process). It sleeps until a NOTIFY, the next timer, or a poll interval,
whichever comes first; a lost notification costs latency, never work.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from .. import _faults, errors, interceptors, payloads, registry, store
from .. import activity as activity_api
from .._runtime import WorkflowInfo, WorkflowRun
from ..connection import Connection
from ._calls import Calls

log = logging.getLogger("pgdurable.worker")

_workers: set[Worker] = set()

DEFAULT_LEASE = 30.0
POLL_INTERVAL = 1.0
UNKNOWN_ACTIVITY_CHECK = 5.0


class Worker:
    """Hosts workflow and activity functions for one task queue. Create with :meth:`create`."""

    def __init__(self, *, connection: Connection, task_queue: str,
                 workflows: dict[str, Callable[..., Any]], namespace: str, concurrency: int,
                 activity_queue: str | None, owns_connection: bool,
                 lease_seconds: float = DEFAULT_LEASE, max_cached_workflows: int = 1000) -> None:
        if not task_queue or not isinstance(task_queue, str):
            raise ValueError("task_queue must be a non-empty string")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.task_queue = task_queue
        self.namespace = namespace
        self.concurrency = concurrency
        self.workflows = workflows
        self.activity_stream = f"{activity_queue}-activity" if activity_queue else None
        self._conn = connection
        self._owns_connection = owns_connection
        self._lease = timedelta(seconds=lease_seconds)
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._calls = Calls(connection, self._owner, self._lease)
        self._cache: OrderedDict[tuple[str, int], WorkflowRun] = OrderedDict()
        self._max_cached = max_cached_workflows
        self._stopping = False
        self._loops: list[asyncio.Task[None]] = []
        self._workflow_tasks: set[asyncio.Task[None]] = set()
        self._activities: dict[int, tuple[asyncio.Task[None], Any, dict[str, Any]]] = {}
        self._wf_wakeup = asyncio.Event()
        self._act_wakeup = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._reserved = 0  # activity slots held for the claims and completions in flight
        self._wf_slots = asyncio.Semaphore(concurrency)  # workflow tasks running, claimed or handed over
        self._listener: Any = None
        self._channels: dict[str, str] = {}
        self._next_unknown_check = 0.0
        self._woken_for_activities: set[str] = set()

    # -- creation --------------------------------------------------------------
    @classmethod
    async def create(cls, *, connection: Connection, task_queue: str,
                     workflow: Callable[..., Any] | None = None,
                     workflows: Iterable[Callable[..., Any]] = (), activities: Any = None,
                     namespace: str = "durable", concurrency: int = 10,
                     worker_credentials: Any = None, lease_seconds: float = DEFAULT_LEASE,
                     max_cached_workflows: int = 1000) -> Worker:
        """Starts a worker in the background of the running event loop and returns it."""
        fns = ([workflow] if workflow is not None else []) + list(workflows)
        table: dict[str, Callable[..., Any]] = {}
        for fn in fns:
            if not inspect.iscoroutinefunction(fn):
                raise TypeError(f"workflow {getattr(fn, '__name__', fn)!r} must be an async def function")
            table[fn.__name__] = fn
        if activities is not None:
            registry.register_activities(activities)
        conn, owns = _login(connection, worker_credentials)
        worker = cls(connection=conn, task_queue=task_queue, workflows=table, namespace=namespace,
                     concurrency=concurrency, activity_queue=task_queue, owns_connection=owns,
                     lease_seconds=lease_seconds, max_cached_workflows=max_cached_workflows)
        await worker._start()
        return worker

    async def _start(self) -> None:
        if self._owns_connection:
            try:
                await self._apply_role_scope()
            except BaseException:
                await self._conn.close()  # a refused worker keeps no connection open
                raise
        streams = ([self.task_queue] if self.workflows else []) + (
            [self.activity_stream] if self.activity_stream else [])
        async with self._conn.connect() as conn:
            # Channel names are salted in the database: only it can tell a worker its own.
            self._channels = dict(zip(streams, await store.stream_channels(conn, self.namespace, streams),
                                      strict=True))
        self._listener = await self._conn.listener()
        if self.workflows:
            await self._listener.subscribe(self._channels[self.task_queue], self._wf_wakeup)
            self._loops.append(asyncio.create_task(self._workflow_loop(), name="pgdurable-workflows"))
        if self.activity_stream:
            await self._listener.subscribe(self._channels[self.activity_stream], self._act_wakeup)
            registry.on_change(self._act_wakeup.set)
            self._loops.append(asyncio.create_task(self._activity_loop(), name="pgdurable-activities"))
            self._loops.append(asyncio.create_task(self._heartbeat_loop(), name="pgdurable-heartbeats"))
        _workers.add(self)
        log.info("worker %s serving task queue %r (workflows: %s; activities on %r)", self._owner,
                 self.task_queue, ", ".join(self.workflows) or "none", self.activity_stream)

    async def _apply_role_scope(self) -> None:
        """A scoped role serves only the streams it covers: none → WorkerRoleError, some → a warning."""
        async with self._conn.connect() as conn:
            scope = await store.worker_scope(conn)
        if scope is None:
            return  # logged in as a role that is not a provisioned worker role: not scoped
        wanted = ([self.task_queue] if self.workflows else []) + (
            [self.activity_stream] if self.activity_stream else [])
        if scope["revoked"]:
            raise errors.WorkerRoleError(f"worker role {scope['role_name']} is revoked: provision a new one")
        allowed = set(scope["stream_names"]) if scope["namespace"] == self.namespace else set()
        covered = [s for s in wanted if s in allowed]
        if not covered:
            raise errors.WorkerRoleError(
                f"worker role {scope['role_name']} covers none of the streams this worker serves "
                f"({', '.join(wanted)} in namespace {self.namespace!r}); it may consume "
                f"{', '.join(scope['stream_names'])} in namespace {scope['namespace']!r}")
        left = [s for s in wanted if s not in allowed]
        if left:
            log.warning("worker role %s does not cover %s: this worker leaves %s to other workers",
                        scope["role_name"], ", ".join(left), "them" if len(left) > 1 else "it")
        if self.task_queue not in allowed:
            self.workflows = {}
        if self.activity_stream not in allowed:
            self.activity_stream = None

    async def __aenter__(self) -> Worker:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    # -- loops -------------------------------------------------------------------
    async def _workflow_loop(self) -> None:
        names = list(self.workflows)
        queues = [self.task_queue]
        slots = self._wf_slots
        batch = max(self.concurrency, 1)
        while not self._stopping:
            self._wf_wakeup.clear()
            rows = await self._calls.poll(lambda c: store.claim_workflow_tasks(
                c, self.namespace, queues, names, batch, self._lease, self._owner))
            if rows is None:
                continue
            for row in rows:
                await slots.acquire()
                task = asyncio.create_task(self._workflow_task(row),
                                           name=f"workflow task {row['workflow_id']}")
                self._workflow_tasks.add(task)
                task.add_done_callback(lambda t: (self._workflow_tasks.discard(t), slots.release(),
                                                  _log_crash(t)))
            if len(rows) < batch:
                await self._wake_for_unknown_activities()
                await self._idle(self._wf_wakeup, queues, names)

    async def _wake_for_unknown_activities(self) -> None:
        """Activities register when workflow code calls ``proxy_activities(activities=...)``: a
        worker that started after its predecessor died knows none of those its workflows wait on.
        Waking such a run once makes its replay register them (checked every few seconds)."""
        now = asyncio.get_running_loop().time()
        if self.activity_stream != f"{self.task_queue}-activity" or now < self._next_unknown_check:
            return
        self._next_unknown_check = now + UNKNOWN_ACTIVITY_CHECK
        skip = sorted(self._woken_for_activities)
        woken = await self._calls.poll(lambda c: store.wake_for_unknown_activities(
            c, self.namespace, self.task_queue, list(self.workflows), registry.names(), skip))
        for row in woken or ():
            self._woken_for_activities.add(row["workflow_id"])
            log.info("workflow %s waits on an activity this process does not know yet: replaying it "
                     "to register its activities", row["workflow_id"])

    async def _activity_loop(self) -> None:
        assert self.activity_stream is not None
        streams = [self.activity_stream]
        while not self._stopping:
            names = registry.names()
            self._act_wakeup.clear()
            if not names:
                await self._wait(self._act_wakeup, POLL_INTERVAL)
                continue
            free = self._take_slots(self.concurrency)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                rows = await self._calls.poll(lambda c, names=names, free=free: store.claim_activity_tasks(
                    c, self.namespace, streams, names, free, self._lease, self._owner))
            finally:
                self._return_slots(free)
            if rows is None:
                continue
            for row in rows:
                self._start_activity(row)
            if len(rows) < free:
                await self._idle(self._act_wakeup, streams, names)

    async def _heartbeat_loop(self) -> None:
        period = max(self._lease.total_seconds() / 3, 0.05)
        while not self._stopping or self._activities:
            await asyncio.sleep(period)
            held = [(m, h) for m, h in self._activities.items() if not h[2].get("lost")]
            if not held:
                continue
            for message_id, (_, token, beat) in held:
                if "details" in beat:
                    details = beat.pop("details")
                    kept = await self._calls.poll(lambda c, m=message_id, t=token, d=details:
                                          store.heartbeat_activity(c, m, t, d, self._lease))
                    if kept is False:
                        self._lease_lost(message_id)
            ids, tokens = [m for m, _ in held], [h[1] for _, h in held]
            extended = await self._calls.poll(lambda c, ids=ids, tokens=tokens: store.extend_leases(
                c, ids, tokens, self._lease))
            for message_id in set(ids) - (set(ids) if extended is None else extended):
                self._lease_lost(message_id)

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

    async def _idle(self, wakeup: asyncio.Event, streams: list[str], names: list[str]) -> None:
        delay = await self._calls.poll(lambda c: store.next_wakeup(c, self.namespace, streams, names))
        timeout = POLL_INTERVAL if delay is None else min(float(delay), POLL_INTERVAL)
        if timeout > 0:
            await self._wait(wakeup, timeout)

    async def _wait(self, event: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    # -- workflow tasks ---------------------------------------------------------
    async def _workflow_task(self, row: dict[str, Any]) -> None:
        _faults.point("workflow_task_claimed")
        key = (row["workflow_id"], row["run_id"])
        run = self._cache.pop(key, None)
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
            slots = 0 if self._stopping or not self.activity_stream else self._take_slots(
                sum(1 for command in commands if command["type"] == "activity"))
            call = (row["message_id"], row["lease_token"], run.processed_event_id, commands,
                    self._eager(slots))
            try:
                result = await self._calls.record(lambda c, call=call: store.complete_workflow_task(c, *call))
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
                self._return_slots(slots)  # the leased activities take them over, with no await between
            for task in result["activities"] or ():
                self._start_activity(_activity_row(task))
            if result["status"] in ("closed", "discarded"):
                run.evict()
                self._log_close(row, commands)
                return
            if result["status"] != "continue":
                break
            # New events arrived while this task ran: they came back with our lease kept.
            row = {**row, "processed_event_id": run.processed_event_id, "events": result["events"]}
        self._cache[key] = run
        while len(self._cache) > self._max_cached:
            _, old = self._cache.popitem(last=False)
            old.evict()

    def _eager(self, capacity: int = 0) -> dict[str, Any] | None:
        """What this worker can take at once from a completing call (eager dispatch): the workflow
        task it wakes, and up to ``capacity`` activities (slots reserved by the caller)."""
        eager: dict[str, Any] = {"owner": self._owner, "lease_seconds": self._lease.total_seconds()}
        if self.workflows and not self._stopping:
            eager.update(task_queue=self.task_queue, workflow_names=list(self.workflows))
        if capacity > 0 and self.activity_stream:
            eager.update(activity_stream=self.activity_stream, activity_names=registry.names(),
                         capacity=capacity)
        return eager if len(eager) > 2 else None

    def _take_slots(self, wanted: int) -> int:
        """Reserves up to ``wanted`` free activity slots (``concurrency`` minus the activities
        running and the slots other calls hold); returns how many it got."""
        taken = max(0, min(wanted, self.concurrency - len(self._activities) - self._reserved))
        self._reserved += taken
        return taken

    def _return_slots(self, count: int) -> None:
        if count:
            self._reserved -= count
            self._slot_freed.set()

    def _start_activity(self, row: dict[str, Any]) -> None:
        task = asyncio.create_task(self._activity_task(row), name=f"activity {row['activity_name']}")
        task.add_done_callback(_log_crash)
        self._activities[row["message_id"]] = (task, row["lease_token"], {})

    def _start_workflow_task(self, row: dict[str, Any]) -> None:
        """Runs a workflow task a completing call handed over (eager continuation), within the
        same ``concurrency`` bound as the claimed ones."""
        async def bounded() -> None:
            async with self._wf_slots:
                await self._workflow_task(row)

        task = asyncio.create_task(bounded(), name=f"workflow task {row['workflow_id']}")
        self._workflow_tasks.add(task)
        task.add_done_callback(lambda t: (self._workflow_tasks.discard(t), _log_crash(t)))

    async def _replay(self, row: dict[str, Any]) -> tuple[WorkflowRun, list[dict[str, Any]]]:
        if row["processed_event_id"] == 0:
            # Nothing was ever recorded for this run: the task's events are its whole history.
            history = [{**event, "inbound": True} for event in row["events"]]
        else:
            history = await self._calls.record(lambda c: store.run_history(
                c, self.namespace, row["workflow_id"], row["run_id"], row["lease_token"]))
        info = WorkflowInfo(workflow_id=row["workflow_id"], workflow_name=row["workflow_name"],
                            namespace=self.namespace, task_queue=row["task_queue"], attempt=row["attempt"],
                            parent_workflow_id=row["parent_workflow_id"], run_id=row["run_id"])
        args = payloads.loads(row["args"])
        run = WorkflowRun(info, self.workflows[row["workflow_name"]], list(args), row["started_at"])
        return run, run.load_history(history)

    async def _fail_workflow_task(self, row: dict[str, Any], exc: BaseException) -> None:
        log.warning("workflow %s (%s): workflow task failed, will retry: %s: %s", row["workflow_id"],
                    row["workflow_name"], type(exc).__name__, exc)
        error = {"type": type(exc).__name__, "message": str(exc)}
        with contextlib.suppress(errors.LeaseLostError):
            await self._calls.record(lambda c: store.fail_workflow_task(
                c, row["message_id"], row["lease_token"], error))

    def _log_close(self, row: dict[str, Any], commands: list[dict[str, Any]]) -> None:
        last = commands[-1]["type"] if commands else "closed"
        log.info("workflow %s (%s) run %s: %s", row["workflow_id"], row["workflow_name"], row["run_id"], last)

    # -- activity tasks -----------------------------------------------------------
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
        beat.update(name=name, workflow_id=row["workflow_id"], attempt=row["attempt"])
        loop = asyncio.get_running_loop()
        unstorable = False
        try:
            if fn is None:
                raise errors.DurableFatalError(f"activity {name!r} is not registered in this process")
            args = payloads.loads(payload["args"])
            details = payload.get("heartbeat_details")
            ctx = activity_api.ActivityContext(
                activity_name=name, args=list(args), headers=dict(payload.get("headers") or {}),
                workflow_id=row["workflow_id"], workflow_name=payload.get("workflow_name"),
                task_queue=payload.get("task_queue"), attempt=row["attempt"], namespace=self.namespace,
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
            if not isinstance(exc, Exception):
                raise
            fatal = unstorable or isinstance(exc, errors.DurableFatalError)
            log.info("activity %s attempt %s failed%s: %s: %s", name, row["attempt"],
                     " (its result cannot be stored: not retried)" if unstorable else "",
                     type(exc).__name__, exc)
            error = payloads.error_to_json(exc, non_retryable=fatal)
            _faults.point("activity_ran")
            if self._discard_lost(beat, name, "failure"):
                return
            try:
                outcome = await self._calls.record(lambda c: store.fail_activity(
                    c, message_id, token, error, self._eager()))
            except errors.LeaseLostError:
                log.info("activity %s: lease lost, failure discarded", name)
                return
            except errors.DatabaseError as db_exc:
                _not_recorded(name, row["attempt"], "failure", db_exc)
                return
            if outcome["outcome"] == "retrying":
                # Its retry may be due before the loop's next poll: let the loop re-plan its sleep.
                self._act_wakeup.set()
            if outcome["workflow_task"]:
                self._start_workflow_task(_workflow_row(outcome["workflow_task"]))
            return
        _faults.point("activity_ran")
        if self._discard_lost(beat, name, "result"):
            return
        try:
            outcome = await self._calls.record(lambda c: store.complete_activity(
                c, message_id, token, encoded, self._eager()))
            _faults.point("activity_recorded")
            log.info("activity %s completed (attempt %s)", name, row["attempt"])
        except errors.LeaseLostError:
            log.info("activity %s: lease lost, result discarded", name)
            return
        except errors.DatabaseError as db_exc:
            _not_recorded(name, row["attempt"], "result", db_exc)
            return
        if outcome["workflow_task"]:
            self._start_workflow_task(_workflow_row(outcome["workflow_task"]))

    @staticmethod
    def _discard_lost(beat: dict[str, Any], name: str, what: str) -> bool:
        """True (and logged) when the attempt's lease is known lost: its outcome belongs to the new
        holder and is not sent; otherwise the recording call is under way (no more loss warnings)."""
        if beat.get("lost"):
            log.info("activity %s: %s discarded: this worker lost its lease", name, what)
            return True
        beat["recording"] = True
        return False

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

    # -- shutdown -------------------------------------------------------------------
    async def shutdown(self, grace: float = 30) -> None:
        """Stops claiming; lets in-flight tasks finish and be recorded within ``grace`` seconds;
        past it, releases the leases of what still runs (nothing is lost)."""
        if self._stopping:
            return
        self._stopping = True
        self._wf_wakeup.set()
        self._act_wakeup.set()
        self._slot_freed.set()
        registry.remove_listener(self._act_wakeup.set)
        # The claim loops see _stopping at their next turn (their wakeups are set); cancelling one
        # mid-claim would lose the rows it leased until their leases expire.
        claimers = [t for t in self._loops if t.get_name() != "pgdurable-heartbeats"]
        if claimers:
            _, stuck = await asyncio.wait(claimers, timeout=5)
            for loop_task in stuck:
                loop_task.cancel()
        inflight = [*self._workflow_tasks, *(t for t, _, _ in self._activities.values())]
        if inflight:
            _, late = await asyncio.wait(inflight, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=10)
        for loop_task in self._loops:
            loop_task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        for run in self._cache.values():
            run.evict()
        self._cache.clear()
        if self._listener is not None:
            if self.task_queue in self._channels:
                self._listener.unsubscribe(self._channels[self.task_queue], self._wf_wakeup)
            if self.activity_stream in self._channels:
                self._listener.unsubscribe(self._channels[self.activity_stream], self._act_wakeup)
        if self._owns_connection:
            await self._conn.close()
        _workers.discard(self)
        log.info("worker %s stopped", self._owner)


def _activity_row(task: dict[str, Any]) -> dict[str, Any]:
    """An eagerly leased activity task (JSON) as a claim row."""
    return {**task, "lease_token": uuid.UUID(task["lease_token"])}


def _workflow_row(task: dict[str, Any]) -> dict[str, Any]:
    """An eagerly leased workflow task (JSON) as a claim row."""
    return {**task, "lease_token": uuid.UUID(task["lease_token"]),
            "started_at": datetime.fromisoformat(task["started_at"])}


def _not_recorded(name: str, attempt: int, what: str, exc: errors.DatabaseError) -> None:
    log.warning("activity %s attempt %s: its %s was not recorded (%s); the attempt runs again once "
                "its lease expires", name, attempt, what, exc)


def _log_crash(task: asyncio.Task[Any]) -> None:
    """Logs a task that died of an unexpected error (its lease expires and it runs again)."""
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.error("%s crashed; its task will run again when its lease expires: %s: %s",
                  task.get_name(), type(exc).__name__, exc, exc_info=exc)


def _login(connection: Connection, credentials: Any) -> tuple[Connection, bool]:
    if credentials is None:
        return connection, False
    if isinstance(credentials, dict):
        user, password = credentials.get("user"), credentials.get("password")
    else:
        user = getattr(credentials, "role_name", None) or getattr(credentials, "user", None)
        password = getattr(credentials, "password", None)
    if not user:
        raise ValueError("worker_credentials needs a user (role name) and a password")
    return connection.with_login(user, password), True


async def register_activity_worker(config: dict[str, Any], activities: Any,
                                   activity_task_queue: str | None = None) -> Worker:
    """Serves ``activities`` on ``<activity_task_queue or config["task_queue"]>-activity``,
    possibly in another process or on another machine."""
    queue = activity_task_queue or config.get("task_queue")
    if not queue:
        raise ValueError("register_activity_worker needs activity_task_queue or config['task_queue']")
    if "connection" not in config:
        raise ValueError("register_activity_worker needs config['connection']")
    registry.register_activities(activities)
    conn, owns = _login(config["connection"], config.get("worker_credentials"))
    worker = Worker(connection=conn, task_queue=queue, workflows={},
                    namespace=config.get("namespace", "durable"), concurrency=config.get("concurrency", 10),
                    activity_queue=queue, owns_connection=owns,
                    lease_seconds=config.get("lease_seconds", DEFAULT_LEASE))
    await worker._start()
    return worker


async def shutdown_all(grace: float = 30) -> None:
    """Shuts down every worker of this process."""
    await asyncio.gather(*(w.shutdown(grace) for w in list(_workers)))
