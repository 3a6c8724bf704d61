"""Schedules: ``client.schedule`` creates, lists and finds them; a :class:`ScheduleHandle` pauses,
resumes, triggers, describes and deletes one.

The schedules live in the database (``durable.create_schedule`` and its siblings, callable from psql
too) and are fired by the workers of their task queue on their timer path: no process of its own
runs them. Each tick starts one run whose workflow id is ``<schedule_id>-<tick in ISO 8601 UTC>``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import _store as store
from . import errors, payloads
from ._validate import check_text
from .durations import Duration, to_seconds

if TYPE_CHECKING:
    from .client import Client

OVERLAP_POLICIES = ("skip", "buffer_one", "allow_all", "cancel_other", "terminate_other")
"""What a tick does while the schedule's previous run is still running (see the README)."""


def _interval(value: Duration | None, what: str) -> timedelta | None:
    if value is None:
        return None
    try:
        return timedelta(seconds=to_seconds(value, what=what))
    except ValueError as exc:
        raise errors.InvalidArgumentError(str(exc)) from exc


def _instant(value: datetime | None, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise errors.InvalidArgumentError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value


class ScheduleClient:
    """``client.schedule``: the schedules of a :class:`~pgdurable.client.Client`'s namespace."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def create(self, schedule_id: str, *, workflow_name: str, task_queue: str,
                     args: list[Any] | tuple[Any, ...] = (), cron: str | None = None,
                     every: Duration | None = None, timezone: str = "UTC", start_at: datetime | None = None,
                     end_at: datetime | None = None, jitter: Duration | None = None, overlap: str = "skip",
                     catchup_window: Duration = "1 minute") -> ScheduleHandle:
        """Creates a schedule: ``workflow_name`` started on ``task_queue`` with ``args`` at every tick
        of ``cron`` (5 fields, evaluated in ``timezone``) or ``every`` (a fixed interval) — exactly
        one of them — between ``start_at`` and ``end_at``, each tick delayed by a deterministic
        offset below ``jitter``. ``overlap`` says what a tick does while the previous run still
        runs; ticks more than ``catchup_window`` late (after downtime) are skipped.

        Raises :class:`~pgdurable.errors.ScheduleAlreadyExistsError` for an id in use and
        :class:`~pgdurable.errors.InvalidArgumentError` for a bad cron expression, time zone,
        overlap policy, or both/neither of cron and every."""
        check_text("schedule_id", schedule_id)
        check_text("workflow_name", workflow_name)
        check_text("task_queue", task_queue)
        if (cron is None) == (every is None):
            raise errors.InvalidArgumentError(
                f"schedule {schedule_id!r} needs exactly one of cron and every "
                f"({'neither was given' if cron is None else 'both were given'}): a cron expression such "
                "as '0 3 * * *' or an interval such as '1 hour'")
        if overlap not in OVERLAP_POLICIES:
            raise errors.InvalidArgumentError(
                f"unknown overlap policy {overlap!r}: use {', '.join(OVERLAP_POLICIES[:-1])} or "
                f"{OVERLAP_POLICIES[-1]}")
        if isinstance(args, (str, bytes)) or not isinstance(args, (list, tuple)):
            raise TypeError("args must be a list of the workflow function's arguments")
        encoded = payloads.dumps(list(args))
        window = _interval(catchup_window, "catchup_window")
        assert window is not None
        spec = {"workflow_name": workflow_name, "task_queue": task_queue, "args": encoded, "cron": cron,
                "every": _interval(every, "every"), "timezone": timezone, "overlap": overlap,
                "catchup_window": window, "start_at": _instant(start_at, "start_at"),
                "end_at": _instant(end_at, "end_at"), "jitter": _interval(jitter, "jitter")}
        client = self._client
        await client.connection.run(
            lambda conn: store.create_schedule(conn, client.namespace, schedule_id, **spec))
        return self.get_handle(schedule_id)

    def get_handle(self, schedule_id: str) -> ScheduleHandle:
        """The handle of a schedule (no I/O: an unknown id raises on first use)."""
        check_text("schedule_id", schedule_id)
        return ScheduleHandle(self._client, schedule_id)

    async def list(self) -> list[dict[str, Any]]:
        """The namespace's schedules: per schedule a dict with schedule_id, workflow_name,
        task_queue, cron, every (seconds), timezone, overlap, paused, note, next_fire_at (None while
        paused), last_workflow_id, created_at."""
        client = self._client
        rows = await client.connection.run(lambda conn: store.list_schedules(conn, client.namespace))
        return [{**row, "every": None if row["every"] is None else row["every"].total_seconds()}
                for row in rows]


class ScheduleHandle:
    """One schedule: ``await pause(note=None)``, ``resume()``, ``trigger()``, ``describe()``,
    ``delete()``. Each raises :class:`~pgdurable.errors.ScheduleNotFoundError` for an unknown id."""

    def __init__(self, client: Client, schedule_id: str) -> None:
        self._client = client
        self.schedule_id = schedule_id

    def __repr__(self) -> str:
        return f"ScheduleHandle({self.schedule_id!r})"

    async def pause(self, note: str | None = None) -> None:
        """Stops the schedule firing (``note`` says why) until :meth:`resume`."""
        client = self._client
        await client.connection.run(
            lambda conn: store.pause_schedule(conn, client.namespace, self.schedule_id, note))

    async def resume(self) -> datetime | None:
        """Resumes a paused schedule from now on (the ticks of the pause are not caught up); returns
        the next fire time (None when no tick is left before its end)."""
        client = self._client
        return await client.connection.run(
            lambda conn: store.resume_schedule(conn, client.namespace, self.schedule_id))

    async def trigger(self) -> str | None:
        """Starts a run now (also while paused), under the overlap policy: its workflow id, or None
        when the policy skipped or buffered it."""
        client = self._client
        return await client.connection.run(
            lambda conn: store.trigger_schedule(conn, client.namespace, self.schedule_id))

    async def delete(self) -> None:
        """Deletes the schedule (the runs it started are untouched)."""
        client = self._client
        await client.connection.run(
            lambda conn: store.delete_schedule(conn, client.namespace, self.schedule_id))

    async def describe(self, fire_times: int = 5) -> dict[str, Any]:
        """The schedule as a dict: ``schedule_id``, ``spec`` (workflow_name, task_queue, args, cron, every,
        timezone, overlap, catchup_window, jitter — durations in seconds —, start_at, end_at),
        ``paused``, ``note``, ``next_fire_times`` (the next ``fire_times``, aware UTC datetimes; none
        while paused), ``buffered_tick``, ``last_workflow_id`` and ``recent_runs`` (newest first:
        tick, trigger, action, workflow_id, detail, at)."""
        client = self._client
        described = await client.connection.run(
            lambda conn: store.describe_schedule(conn, client.namespace, self.schedule_id, fire_times))
        return _with_datetimes(described)


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC)


def _with_datetimes(described: dict[str, Any]) -> dict[str, Any]:
    """describe_schedule's JSON with its timestamps as aware datetimes."""
    spec = dict(described["spec"])
    for key in ("start_at", "end_at"):
        spec[key] = _parse_time(spec[key])
    for key in ("every", "catchup_window", "jitter"):
        spec[key] = None if spec[key] is None else float(spec[key])
    try:
        spec["args"] = payloads.loads(spec["args"])
    except errors.PayloadError:
        pass  # written by psql as plain JSON while this process has a codec: shown as stored
    return {**described, "spec": spec,
            "next_fire_times": [_parse_time(t) for t in described["next_fire_times"]],
            "buffered_tick": _parse_time(described["buffered_tick"]),
            "created_at": _parse_time(described["created_at"]),
            "recent_runs": [{**run, "tick": _parse_time(run["tick"]), "at": _parse_time(run["at"])}
                            for run in described["recent_runs"]]}
