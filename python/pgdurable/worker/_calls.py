"""How a worker calls the database: every store call of its workflow-task and activity workers
goes through :class:`Calls`, whose docstring is the one written retry policy.

It owns the worker's view of an outage (logged once when it starts, once when it ends) and of a
refused login (an ERROR at most every ``LOGIN_ERROR_EVERY`` seconds); and what the two claim
loops share besides: the sleep between claims (:meth:`Calls.idle`) and the report of a task that
crashed (:func:`log_crash`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from .. import _store as store
from .. import errors
from ..connection import Connection

log = logging.getLogger("pgdurable.worker")
T = TypeVar("T")

POLL_INTERVAL = 1.0
"""A claim loop polls at least this often, NOTIFY or not: a lost notification costs latency only."""
OUTAGE_BACKOFF = 0.5
"""Seconds a claim loop waits after a failed poll before its next turn."""
LOGIN_RETRY = 2.0
"""Seconds between a worker's attempts to log in again while the database refuses its role."""
LOGIN_ERROR_EVERY = 30.0
"""A refused login is logged as an ERROR at most this often (each retry in between at DEBUG)."""

Call = Callable[[store.Conn], Awaitable[T]]


class Calls:
    """One worker's store calls, over :meth:`Connection.run` (the one place pgdurable retries).

    Retry policy, by kind of call:

    - :meth:`poll` — a claim loop's claim or poll (claim tasks, next wakeup, lease renewals,
      heartbeats, waking runs). Tried as ``Connection.run`` tries by default (a call the database
      rolled back, or whose connection dropped, once more). On a database failure the outage is
      logged once (a refused login: an ERROR at most every ``LOGIN_ERROR_EVERY`` s), the loop
      backs off (``OUTAGE_BACKOFF`` s, ``LOGIN_RETRY`` s while the login is refused) and gets
      None: it tries again on its next turn.
    - :meth:`record` — recording a task's outcome, or reading what recording needs (a run's
      history). Retried through database failures until the lease deadline, one lease period from
      the call: past it the lease has expired and the task runs again elsewhere, so the error
      goes to the caller, who logs what was not recorded.
    - :meth:`once` — giving a lease back at shutdown. Tried as ``Connection.run`` tries by
      default; the worker is leaving and does not wait through an outage (the lease expires).

    Startup calls (the role's scope, the channel names) are not made here: their failure fails
    ``Worker.create``.
    """

    def __init__(self, connection: Connection, owner: str, lease: timedelta) -> None:
        self.owner = owner
        self.lease = lease
        self._conn = connection
        self._outage = False
        self._login_error_at: float | None = None  # when a refused login was last logged as an ERROR

    async def poll(self, call: Call[T]) -> T | None:
        """A claim or poll call: its result, or None after a database failure (logged once per
        outage, then backed off)."""
        try:
            result = await self._conn.run(call)
        except errors.AuthorizationError as exc:
            self._login_refused(exc)
            await asyncio.sleep(LOGIN_RETRY)
            return None
        except errors.DatabaseError as exc:
            if not self._outage:
                what = ("database unreachable" if isinstance(exc, errors.DatabaseUnavailableError)
                        else "database call failed")
                log.warning("worker %s: %s (%s); retrying", self.owner, what, exc)
                self._outage = True
            await asyncio.sleep(OUTAGE_BACKOFF)
            return None
        if self._outage:
            log.warning("worker %s: database reachable again", self.owner)
            self._outage = False
        if self._login_error_at is not None:
            log.warning("worker %s: the database accepts role %s again", self.owner, self._conn.role)
            self._login_error_at = None
        return result

    async def record(self, call: Call[T]) -> T:
        """A recording call, tried through database failures until the lease deadline."""
        deadline = asyncio.get_running_loop().time() + self.lease.total_seconds()
        return await self._conn.run(call, until=deadline)

    async def once(self, call: Call[T]) -> T:
        """A call at shutdown: ``Connection.run``'s default tries; its failure is the caller's."""
        return await self._conn.run(call)

    def _login_refused(self, exc: errors.AuthorizationError) -> None:
        """A refused login stops all work: loudly, but once every LOGIN_ERROR_EVERY seconds."""
        now = asyncio.get_running_loop().time()
        if self._login_error_at is None or now - self._login_error_at >= LOGIN_ERROR_EVERY:
            log.error("worker %s cannot work: %s. It claims and records nothing until the database "
                      "accepts role %s again (trying every %g s; this error repeats every %g s)",
                      self.owner, exc, self._conn.role, LOGIN_RETRY, LOGIN_ERROR_EVERY)
            self._login_error_at = now
        else:
            log.debug("worker %s: login still refused: %s", self.owner, exc)

    async def idle(self, wakeup: asyncio.Event, namespace: str, streams: list[str],
                   names: list[str], later: Callable[[float], float] | None = None) -> None:
        """Sleeps until ``wakeup`` (a NOTIFY), the next task of ``streams`` falls due, or
        ``POLL_INTERVAL``, whichever comes first. ``later(delay)`` may push a due time back (the
        caller takes that task another way: this wake-up is its backstop)."""
        delay = await self.poll(lambda c: store.next_wakeup(c, namespace, streams, names))
        if delay is not None and later is not None:
            delay = later(float(delay))
        timeout = POLL_INTERVAL if delay is None else min(float(delay), POLL_INTERVAL)
        if timeout > 0:
            await wait(wakeup, timeout)


async def wait(event: asyncio.Event, timeout: float) -> None:
    """Waits for ``event`` at most ``timeout`` seconds."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)


def log_crash(task: asyncio.Task[Any]) -> None:
    """Logs a task that died of an unexpected error (its lease expires and it runs again)."""
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.error("%s crashed; its task will run again when its lease expires: %s: %s",
                  task.get_name(), type(exc).__name__, exc, exc_info=exc)
