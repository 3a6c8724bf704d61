"""What each inbound history event does to a workflow run: one handler per event type.

An outcome event (``activity_completed``, ``timer_fired``, ``signal_received``, ...)
resolves the durable call its ``seq`` names: the call returns a value or raises,
or — for a timer — its callback runs. An outcome for a call the code has not
made is non-determinism; one for a call it abandoned is ignored. An event type
with no handler fails the workflow task.
"""

from __future__ import annotations

import asyncio
import asyncio.futures
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import errors, payloads

if TYPE_CHECKING:
    from ._runtime import WorkflowRun, _Call

Event = dict[str, Any]


def deliver(run: WorkflowRun, event: Event) -> None:
    """Applies one inbound event to ``run`` through its handler."""
    handler = HANDLERS.get(event["event_type"])
    try:
        if handler is None:
            raise errors.PayloadError(f"unexpected inbound event {event['event_type']}")
        handler(run, event)
    except errors.PayloadError as exc:  # an undecodable payload fails the task
        run.failure = exc


def _take(run: WorkflowRun, event: Event) -> _Call | None:
    """The pending call an outcome event resolves; None if the code abandoned it."""
    seq = event["seq"]
    run.resolved.add(seq)
    call = run.pending.pop(seq, None)
    if call is None and (seq is None or seq > run.seq):
        run.nondeterminism(f"history resolves durable call #{seq} ({event['event_type']}, event "
                           f"{event['event_id']}) but the workflow code has not made that call",
                           event_id=event["event_id"], expected=event["event_type"], actual=None)
    return call


def _awaiting(run: WorkflowRun, event: Event) -> _Call | None:
    """The call an outcome event resolves, if its future still waits for it."""
    call = _take(run, event)
    return call if call is not None and call.future is not None and not call.future.done() else None


def _settle(call: _Call, outcome: Any) -> None:
    """Resolves ``call``: it returns ``outcome``, or raises it when it is an exception."""
    assert call.future is not None
    if isinstance(outcome, BaseException):
        call.future.set_exception(outcome)
    else:
        call.future.set_result(outcome)


def _workflow_started(run: WorkflowRun, event: Event) -> None:
    """Starts the workflow's main task."""
    run.start()


def _cancel_requested(run: WorkflowRun, event: Event) -> None:
    """Interrupts what the workflow awaits, or makes its next durable call raise CancelledFailure."""
    targets = [(call, future) for call in run.pending.values()
               if call.cancellable and (future := _awaited_future(call)) is not None]
    if not targets:
        run.cancel_pending = True
    for call, future in targets:
        del run.pending[call.seq]
        if call.timer is not None:
            run.cancel_timer(call.seq)
        future.set_exception(errors.CancelledFailure("workflow cancelled"))


def _completed(run: WorkflowRun, event: Event) -> None:
    """The activity or child call returns its result, decoded into the called function's annotated
    return type when the workflow knows it (a result that does not fit raises at the await)."""
    if (call := _awaiting(run, event)) is not None:
        try:
            outcome: Any = payloads.loads(event["data"]["result"], call.extra.get("result_type"))
        except (TypeError, ValueError) as exc:  # (an undecodable payload, PayloadError, fails the task)
            outcome = exc
        _settle(call, outcome)


def _activity_failed(run: WorkflowRun, event: Event) -> None:
    """The activity call raises DurableFatalError (the activity said so) or DurableMaxedError."""
    if (call := _awaiting(run, event)) is None:
        return
    data = event["data"]
    error_type, message, tb = payloads.error_from_json(data.get("error"))
    # A DurableFatalError, or a subclass of it (its own name in error_type).
    if "DurableFatalError" in [error_type, *((data.get("error") or {}).get("types") or [])]:
        _settle(call, errors.DurableFatalError(message, error_type=error_type, traceback=tb))
        return
    _settle(call, errors.DurableMaxedError(message, attempts=data.get("attempt"), error_type=error_type,
                                           traceback=tb,
                                           details={"activity_name": call.extra.get("name", "activity")}))


def _timer_fired(run: WorkflowRun, event: Event) -> None:
    """The timer's callback runs: it wakes a sleep, or times out a wait_for."""
    call = _take(run, event)
    if call is not None and call.timer is not None and not call.timer.cancelled():
        run.loop.call_soon(call.timer._callback, *call.timer._args, context=call.timer._context)


def _signal_received(run: WorkflowRun, event: Event) -> None:
    """The condition returns the signal's data."""
    if (call := _awaiting(run, event)) is not None:
        _settle(call, payloads.loads(event["data"]["data"]))


def _signal_timed_out(run: WorkflowRun, event: Event) -> None:
    """The condition returns False: its timeout passed first."""
    if (call := _awaiting(run, event)) is not None:
        _settle(call, False)


def _child_failed(run: WorkflowRun, event: Event) -> None:
    """The child call raises DurableChildError: the child failed, was cancelled or interrupted."""
    if (call := _awaiting(run, event)) is None:
        return
    data = event["data"]
    error_type, message, tb = payloads.error_from_json(data.get("error"))
    _settle(call, errors.DurableChildError(message, child_workflow_id=data.get("workflow_id"),
                                           error_type=error_type, traceback=tb,
                                           details={"status": data.get("status")}))


def _external(run: WorkflowRun, event: Event) -> None:
    """An external handle's signal, cancel or interrupt returns its outcome (the handle reads it)."""
    if (call := _awaiting(run, event)) is not None:
        _settle(call, dict(event["data"]))


HANDLERS: dict[str, Callable[[WorkflowRun, Event], None]] = {
    "workflow_started": _workflow_started,
    "cancel_requested": _cancel_requested,
    "activity_completed": _completed,
    "activity_failed": _activity_failed,
    "timer_fired": _timer_fired,
    "signal_received": _signal_received,
    "signal_timed_out": _signal_timed_out,
    "child_completed": _completed,
    "child_failed": _child_failed,
    "external_signal_sent": _external,
    "external_cancel_sent": _external,
    "external_interrupt_sent": _external,
}


def _awaited_future(call: _Call) -> asyncio.Future[Any] | None:
    """The future workflow code awaits on a pending call, when a cancellation can interrupt it: a
    durable call's, or the one a sleep (``Durable.workflow.sleep``, ``asyncio.sleep``) waits on: its
    timer's callback sets it. Other timers (wait_for's timeout) guard an awaitable that is
    interrupted itself."""
    if call.future is not None:
        return None if call.future.done() else call.future
    timer = call.timer
    if timer is not None and timer._callback is asyncio.futures._set_result_unless_cancelled:
        future = timer._args[0]
        if isinstance(future, asyncio.Future) and not future.done():
            return future
    return None
