"""Typed errors of pgdurable.

User-facing errors derive from :class:`DurableError` (an ``Exception``).
The engine's control-flow signals derive from :class:`DurableInterrupt`, a
``BaseException``, so ``except Exception:`` in workflow code cannot swallow
them; :func:`did_interrupt` recognises them.
"""

from __future__ import annotations

from typing import Any


class DurableError(Exception):
    """Base of every user-facing pgdurable error."""


class _RemoteError(DurableError):
    """An error that happened elsewhere (an activity, a child, a workflow run)."""

    def __init__(
        self,
        message: str,
        *,
        error_type: str | None = None,
        traceback: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.traceback = traceback
        self.details = details or {}

    def __str__(self) -> str:
        if self.error_type and not self.message.startswith(self.error_type):
            return f"{self.error_type}: {self.message}"
        return self.message


class DurableFatalError(_RemoteError):
    """Raise it from an activity to fail it at once: it is never retried."""

    def __init__(self, message: str = "fatal activity error", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


class DurableMaxedError(_RemoteError):
    """An activity failed on every attempt its retry policy allowed.

    ``error_type``, ``message`` and ``traceback`` describe its last failure;
    ``attempts`` says how many attempts ran.
    """

    def __init__(self, message: str, *, attempts: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.attempts = attempts


class DurableTimeoutError(_RemoteError):
    """An activity attempt ran past its ``start_to_close_timeout``."""


class DurableChildError(_RemoteError):
    """A child workflow failed, was cancelled or interrupted; ``error_type`` and
    ``message`` carry the child's error, ``child_workflow_id`` names it."""

    def __init__(self, message: str, *, child_workflow_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.child_workflow_id = child_workflow_id


class DuplicateWorkflowError(DurableError):
    """A workflow with this id is already running (start with ``id_reuse="return_existing"``
    to get its handle instead)."""


class StartManyError(DurableError):
    """Some starts of ``client.workflow.start_many`` failed; every other one started.

    ``errors`` maps the index of each failed start to the error that start alone raised (the error
    ``start`` raises for it: :class:`DuplicateWorkflowError`, :class:`InvalidArgumentError`, ...);
    ``handles`` has, in order, the handle of each start, ``None`` for a failed one."""

    def __init__(self, message: str, *, errors: dict[int, DurableError], handles: list[Any]) -> None:
        super().__init__(message)
        self.errors = errors
        self.handles = handles


class ScheduleAlreadyExistsError(DurableError):
    """A schedule with this id already exists in the namespace (delete it first, or pick another
    id)."""


class ScheduleNotFoundError(DurableError, LookupError):
    """No schedule with this id exists in the namespace."""


class WorkflowNotFoundError(DurableError, LookupError):
    """No workflow with this id exists in the namespace."""


class WorkflowFailedError(_RemoteError):
    """The workflow failed; ``error_type``, ``message`` and ``traceback`` are its error's.

    ``cause`` is the error chained to it, as a dict (``type``, ``message``, ``traceback`` and, when
    it has one, its own ``cause``; ``None`` without one): for an activity's exhausted retries that
    escaped the workflow, ``{"type": "DurableMaxedError", "activity_name", "attempts", ...}`` whose
    ``cause`` is the last attempt's error; for ``raise X from Y``, ``Y``. ``retries_exhausted`` is
    true when the workflow let a :class:`DurableMaxedError` escape (``error_type`` and ``message``
    stay the original error's)."""

    def __init__(self, message: str, *, cause: dict[str, Any] | None = None, retries_exhausted: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.cause = cause
        self.retries_exhausted = retries_exhausted


class WorkflowCancelledError(DurableError):
    """The workflow ended cancelled."""


class WorkflowInterruptedError(DurableError):
    """The workflow was interrupted (hard-stopped) by ``handle.interrupt()``."""


class NonDeterminismError(DurableError):
    """Replayed workflow code did not make the calls its history recorded.

    The engine stops that replay (workflow code never sees this error), fails the
    workflow task and retries it later: deploy code that matches, or use
    ``patched()`` for the change. ``event_id`` is the history event of the first mismatching
    call (None when there is none), ``expected`` what it recorded and ``actual`` what the code did
    (each in words, e.g. ``activity 'charge'``; None when not known).
    """

    def __init__(self, message: str, *, event_id: int | None = None, expected: str | None = None,
                 actual: str | None = None) -> None:
        super().__init__(message)
        self.event_id = event_id
        self.expected = expected
        self.actual = actual


class PayloadError(DurableError):
    """A stored payload could not be decoded (wrong codec, corrupt data)."""


class WorkerRoleError(DurableError):
    """A scoped worker role cannot serve what it was asked to serve."""


class SchemaVersionError(DurableError):
    """The database schema is missing or at a version this SDK cannot speak."""


class LeaseLostError(DurableError):
    """A worker tried to complete a task whose lease it no longer holds; its result was discarded."""


class InvalidArgumentError(DurableError, ValueError):
    """The engine refused an argument (an empty id, a bad interval, a payload over the size
    limit, ...)."""


class MissingDsnError(DurableError, ValueError, RuntimeError):
    """No DSN was given and none is configured in the environment: pass one (``--dsn``,
    ``Connection(dsn)``) or set ``PGDURABLE_DSN`` (or ``DATABASE_URL``). Also a ``ValueError``
    (what ``Connection.dsn`` documents) and a ``RuntimeError`` (what it was before it had a name)."""


class WorkflowIOError(DurableError, RuntimeError):
    """Workflow code tried real I/O (a socket, a subprocess, an executor) on the workflow's event
    loop: replay must be deterministic, so do it in an activity. A ``RuntimeError`` too, as it
    always was."""


class TestEnvironmentError(DurableError, RuntimeError):
    """A :class:`~pgdurable.testing.WorkflowEnvironment` used outside its ``async with`` block, or
    one that could not get its database."""

    __test__ = False  # not a pytest test class, whatever its name


class DatabaseError(DurableError):
    """The database failed a call for a reason that is not one of the engine's own errors.

    ``sqlstate`` is its SQLSTATE code (``None`` when no server answered), ``condition`` psycopg's
    name for it (e.g. ``DeadlockDetected``), ``retryable`` whether the same call may succeed when
    made again. The original psycopg exception is the ``__cause__``. The subclasses sort failures by
    SQLSTATE class; this class itself is the fallback for any other code.
    """

    retryable: bool = False

    def __init__(self, message: str, *, sqlstate: str | None = None, condition: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.condition = condition


class TransientDatabaseError(DatabaseError):
    """The database rolled the call back (SQLSTATE class 40: a serialization failure, a deadlock):
    nothing of it was applied. pgdurable already ran it once more; run it again later."""

    retryable = True


class DatabaseUnavailableError(DatabaseError, ConnectionError):
    """The database could not be reached, or the connection was lost during the call (SQLSTATE
    classes 08 and 57P, too many connections, no answer at all). A call that is safe to repeat was
    retried once; check that the server is up and reachable."""

    retryable = True


class AuthorizationError(DatabaseError, PermissionError):
    """The database refused the login or a privilege (SQLSTATE class 28, 42501): a wrong password,
    a role that may not log in (a revoked worker role), a missing grant."""


class EngineError(DatabaseError):
    """The engine raised an error code of its own (SQLSTATE class PD) that this SDK does not know:
    the database runs a newer engine; upgrade pgdurable."""


class DurableInterrupt(BaseException):  # noqa: N818 - the seed's naming
    """Engine control flow inside workflow code. Never catch and keep it."""


class DurableSleepError(DurableInterrupt):
    """The seed's name for a suspension on a timer."""


class DurableProxyError(DurableInterrupt):
    """The seed's name for a suspension on an activity."""


class DurableWaitForError(DurableInterrupt):
    """The seed's name for a suspension on a condition."""


class DurableWaitForAllError(DurableInterrupt):
    """The seed's name for a suspension on several durable calls at once."""


class DurableRetryError(DurableInterrupt):
    """The seed's name for a suspension while an activity waits for its retry."""


class DurableContinueAsNewError(DurableInterrupt):
    """Raised by ``continue_as_new()``: ends this run and starts the next."""

    def __init__(self, args: tuple[Any, ...]) -> None:
        super().__init__("continue as new")
        self.new_args = args


class DurableReplayAbortedError(DurableInterrupt):
    """The engine stopped this replay (non-determinism, eviction); the task is retried."""


class CancelledFailure(BaseException):  # noqa: N818 - the seed's name
    """Raised once inside a workflow when it is cancelled (like ``asyncio.CancelledError``)."""


def did_interrupt(err: BaseException) -> bool:
    """True for the engine's control-flow signals and :class:`CancelledFailure`."""
    return isinstance(err, (DurableInterrupt, CancelledFailure))


def is_cancellation(err: BaseException) -> bool:
    """True when ``err`` is a workflow cancellation (:class:`CancelledFailure`)."""
    return isinstance(err, CancelledFailure)


__all__ = [
    "AuthorizationError",
    "CancelledFailure",
    "DatabaseError",
    "DatabaseUnavailableError",
    "DuplicateWorkflowError",
    "DurableChildError",
    "DurableContinueAsNewError",
    "DurableError",
    "DurableFatalError",
    "DurableInterrupt",
    "DurableMaxedError",
    "DurableProxyError",
    "DurableReplayAbortedError",
    "DurableRetryError",
    "DurableSleepError",
    "DurableTimeoutError",
    "DurableWaitForAllError",
    "DurableWaitForError",
    "EngineError",
    "InvalidArgumentError",
    "LeaseLostError",
    "MissingDsnError",
    "NonDeterminismError",
    "PayloadError",
    "ScheduleAlreadyExistsError",
    "ScheduleNotFoundError",
    "SchemaVersionError",
    "TestEnvironmentError",
    "TransientDatabaseError",
    "WorkerRoleError",
    "WorkflowCancelledError",
    "WorkflowFailedError",
    "WorkflowIOError",
    "WorkflowInterruptedError",
    "WorkflowNotFoundError",
    "did_interrupt",
    "is_cancellation",
]
