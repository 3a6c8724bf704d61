"""The one module that speaks SQL: a typed async wrapper per stored function.

Every state change is one call of a ``durable.*_vN`` function (one
transaction). Engine errors (SQLSTATE class PD) become typed errors here, and
so does every other failure of the database (``database_error``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from . import errors

SCHEMA_VERSION = 1
"""The engine schema version this SDK speaks."""

Conn = psycopg.AsyncConnection[Any]
Row = dict[str, Any]
P = ParamSpec("P")
T = TypeVar("T")

_ERRORS: dict[str, type[errors.DurableError]] = {
    "PD001": errors.LeaseLostError,
    "PD002": errors.DuplicateWorkflowError,
    "PD003": errors.WorkflowNotFoundError,
    "PD004": errors.InvalidArgumentError,
    "PD005": errors.WorkerRoleError,
    "PDS01": errors.ScheduleAlreadyExistsError,
    "PDS02": errors.ScheduleNotFoundError,
}


# A refused login carries no SQLSTATE (libpq reports it as text): recognise the server's words.
_LOGIN_REFUSED = re.compile(
    r"is not permitted to log in|password authentication failed|authentication failed for user"
    r'|role "[^"]*" does not exist|no pg_hba\.conf entry|permission denied for database')
# Outside class 08: too many connections, and the server shutting down or starting up.
_UNAVAILABLE = {"53300", "57P01", "57P02", "57P03", "57P05"}


def _condition(sqlstate: str | None) -> str | None:
    """psycopg's name of a SQLSTATE (``DeadlockDetected``), None for a code it does not know."""
    if not sqlstate:
        return None
    try:
        return psycopg.errors.lookup(sqlstate).__name__
    except KeyError:
        return None


def database_error(exc: BaseException, *, role: str | None = None,
                   connecting: bool = False) -> errors.DurableError:
    """The pgdurable error for a failure psycopg (or the socket under it) raised: the engine's own
    PD codes by code, any other SQLSTATE by class (:class:`~pgdurable.errors.DatabaseError` as the
    fallback), a connection that failed or was lost as ``DatabaseUnavailableError`` and a refused
    login as ``AuthorizationError``. ``role`` names the login in the message; ``connecting`` says
    the failure came while opening a connection."""
    if isinstance(exc, errors.DurableError):
        return exc
    sqlstate = exc.sqlstate if isinstance(exc, psycopg.Error) else None
    if isinstance(exc, psycopg.DataError) and sqlstate is None:
        # psycopg refused a parameter before sending it (text with a NUL character): the caller's input.
        first = str(exc).strip().splitlines()[0]
        return errors.InvalidArgumentError(f"invalid argument: {first}: remove the NUL character (0x00) "
                                           "from the id, name or text given")
    primary = exc.diag.message_primary if isinstance(exc, psycopg.Error) else None
    lines = str(exc).strip().splitlines()
    text = primary or (lines[0] if lines else type(exc).__name__)
    login_refused = sqlstate is None and bool(_LOGIN_REFUSED.search(str(exc)))
    no_answer = isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError, OSError))
    return _error_of(sqlstate, text, login_refused=login_refused, no_answer=no_answer, role=role,
                     connecting=connecting)


def item_error(sqlstate: str, message: str) -> errors.DurableError:
    """The error one item of a batch failed with (its SQLSTATE and message as the engine returned
    them): the same typed error, with the same message, that a call of that item alone raises."""
    return _error_of(sqlstate, message, login_refused=False, no_answer=False, role=None, connecting=False)


def _error_of(sqlstate: str | None, text: str, *, login_refused: bool, no_answer: bool, role: str | None,
              connecting: bool) -> errors.DurableError:
    known = _ERRORS.get(sqlstate or "")
    if known is not None:
        return known(text)
    condition = _condition(sqlstate)
    code = f"SQLSTATE {sqlstate}" + (f", {condition}" if condition else "")
    kind = (sqlstate or "")[:2]
    if kind == "PD":
        return errors.EngineError(
            f"the engine raised {code}, an error this pgdurable does not know: {text}; the database "
            "runs a newer engine: upgrade pgdurable (pip install -U pgdurable)", sqlstate=sqlstate)
    if kind == "40":
        return errors.TransientDatabaseError(
            f"the database rolled the call back ({code}): {text}; nothing of it was applied: run it "
            "again", sqlstate=sqlstate, condition=condition)
    if kind == "28" or sqlstate == "42501" or login_refused:
        who = f"role {role}" if role else "this login"
        return errors.AuthorizationError(
            f"the database refused {who}: {text}; check its user name and password, that it may log "
            "in (a revoked worker role never can again: provision a new one with "
            "durable.provision_worker_role) and that it has the grants it needs",
            sqlstate=sqlstate, condition=condition)
    if kind == "08" or sqlstate in _UNAVAILABLE or (sqlstate is None and no_answer):
        if connecting:
            what, check = "cannot connect to the database", " and that the database exists"
        else:
            what, check = "the database is not reachable or the connection was lost", ""
        return errors.DatabaseUnavailableError(
            f"{what}: {text}; check that the server is up and reachable from this machine{check}",
            sqlstate=sqlstate, condition=condition)
    return errors.DatabaseError(
        f"the database failed the call ({code}): {text}; pgdurable does not expect this error: check "
        "the database's log, and report it if the engine raised it", sqlstate=sqlstate, condition=condition)


def _mapped(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Turns every psycopg error of a stored-function call into a pgdurable error."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except psycopg.Error as exc:
            raise database_error(exc) from exc

    return wrapper


async def _rows(conn: Conn, query: str, params: Sequence[Any] = ()) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def _value(conn: Conn, query: str, params: Sequence[Any] = ()) -> Any:
    async with conn.cursor() as cur:
        await cur.execute(query, params)
        row = await cur.fetchone()
        return None if row is None else row[0]


# -- schema -----------------------------------------------------------------

@_mapped
async def check_schema(conn: Conn) -> None:
    """Raises :class:`SchemaVersionError` unless the database speaks :data:`SCHEMA_VERSION`."""
    try:
        version = await _value(conn, "SELECT durable.schema_version()")
    except (psycopg.errors.UndefinedFunction, psycopg.errors.InvalidSchemaName) as exc:
        raise errors.SchemaVersionError(
            "this database has no pgdurable schema: run `pgdurable db upgrade` "
            "(or `alembic upgrade head`, or Durable.migrate(dsn)) against it first"
        ) from exc
    except psycopg.errors.InsufficientPrivilege as exc:
        raise errors.SchemaVersionError(
            f"cannot read the pgdurable schema version: {exc.diag.message_primary}; "
            "check the role's grants (worker roles are provisioned with durable.provision_worker_role)"
        ) from exc
    if version != SCHEMA_VERSION:
        hint = ("run `pgdurable db upgrade` against it" if version < SCHEMA_VERSION
                else "upgrade pgdurable (pip install -U pgdurable) on this machine")
        raise errors.SchemaVersionError(
            f"the database's pgdurable schema is version {version} but this SDK speaks version "
            f"{SCHEMA_VERSION}: {hint}"
        )


# -- workflows: client side ---------------------------------------------------

@_mapped
async def start_workflow(conn: Conn, namespace: str, workflow_id: str, workflow_name: str,
                         task_queue: str, args: str, retry: dict[str, Any] | None,
                         id_reuse: str, headers: dict[str, str] | None = None, *, priority: int = 0,
                         partition_key: str | None = None, dedup_id: str | None = None,
                         start_delay: float | None = None) -> Row:
    """Starts one workflow: its row (workflow_id — the dedup holder's when that run was returned —,
    run_id, started)."""
    rows = await _rows(
        conn,
        "SELECT workflow_id, run_id, started "
        "FROM durable.start_workflow_v2(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (namespace, workflow_id, workflow_name, task_queue, args,
         None if retry is None else Jsonb(retry), id_reuse, None if headers is None else Jsonb(headers),
         priority, partition_key, dedup_id, None if start_delay is None else timedelta(seconds=start_delay)),
    )
    return rows[0]


@_mapped
async def start_workflows(conn: Conn, namespace: str,
                          starts: Sequence[dict[str, Any]]) -> list[Row | errors.DurableError]:
    """Starts each of ``starts`` ({workflow_id, workflow_name, task_queue, args, retry, id_reuse,
    headers, priority, partition_key, dedup_id, start_delay_seconds}) in one transaction: per
    start, in order, its row (workflow_id, run_id, started) or the error it alone raised (the
    error ``start_workflow`` would have raised for it)."""
    rows = await _rows(
        conn,
        "SELECT ordinality, workflow_id, run_id, started, error_sqlstate, error_message "
        "FROM durable.start_workflows_v2(%s, %s) ORDER BY ordinality",
        (namespace, Jsonb(list(starts))),
    )
    return [row if row["error_sqlstate"] is None else item_error(row["error_sqlstate"], row["error_message"])
            for row in rows]


@_mapped
async def send_signal(conn: Conn, namespace: str, signal_id: str, data: str,
                      ttl: timedelta = timedelta(days=7), headers: dict[str, str] | None = None) -> str:
    return await _value(conn, "SELECT durable.send_signal_v1(%s, %s, %s, %s, %s)",
                        (namespace, signal_id, data, ttl, Jsonb(headers) if headers else None))


@_mapped
async def signal_workflow(conn: Conn, namespace: str, workflow_id: str, signal_id: str, data: str,
                          ttl: timedelta = timedelta(days=7), headers: dict[str, str] | None = None) -> str:
    return await _value(conn, "SELECT durable.signal_workflow_v1(%s, %s, %s, %s, %s, %s)",
                        (namespace, workflow_id, signal_id, data, ttl, Jsonb(headers) if headers else None))


@_mapped
async def workflow_outcome(conn: Conn, namespace: str, workflow_id: str) -> Row | None:
    rows = await _rows(conn, "SELECT * FROM durable.workflow_outcome_v1(%s, %s)", (namespace, workflow_id))
    return rows[0] if rows else None


@_mapped
async def workflow_outcomes(conn: Conn, namespace: str, workflow_ids: Sequence[str]) -> dict[str, Row]:
    """``workflow_outcome`` of many ids in one query, by workflow id (an unknown id is absent)."""
    rows = await _rows(conn, "SELECT * FROM durable.workflow_outcomes_v1(%s, %s)",
                       (namespace, list(workflow_ids)))
    return {row.pop("workflow_id"): row for row in rows}


@_mapped
async def describe_workflow(conn: Conn, namespace: str, workflow_id: str) -> dict[str, Any] | None:
    return await _value(conn, "SELECT durable.describe_workflow_v1(%s, %s)", (namespace, workflow_id))


@_mapped
async def workflow_history(conn: Conn, namespace: str, workflow_id: str, all_runs: bool) -> list[Row]:
    return await _rows(conn, "SELECT * FROM durable.workflow_history_v1(%s, %s, %s)",
                       (namespace, workflow_id, all_runs))


@_mapped
async def workflow_runs(conn: Conn, namespace: str, workflow_id: str, all_runs: bool) -> list[Row]:
    return await _rows(conn, "SELECT * FROM durable.workflow_runs_v1(%s, %s, %s)",
                       (namespace, workflow_id, all_runs))


@_mapped
async def run_history(conn: Conn, namespace: str, workflow_id: str, run_id: int,
                      lease_token: Any) -> list[Row]:
    return await _rows(conn, "SELECT * FROM durable.run_history_v1(%s, %s, %s, %s)",
                       (namespace, workflow_id, run_id, lease_token))


@_mapped
async def list_workflows(conn: Conn, namespace: str, status: str | None, workflow_name: str | None,
                         limit: int) -> list[Row]:
    return await _rows(conn, "SELECT * FROM durable.list_workflows_v1(%s, %s, %s, %s)",
                       (namespace, status, workflow_name, limit))


@_mapped
async def search_workflows(conn: Conn, namespace: str, *, status: str | None = None,
                           workflow_name: str | None = None, task_queue: str | None = None,
                           created_after: datetime | None = None, created_before: datetime | None = None,
                           id_prefix: str | None = None, before: tuple[datetime, str, int] | None = None,
                           limit: int = 50) -> list[Row]:
    """A page of workflow runs, newest created first (``search_workflows_v1``); ``before`` is the
    previous page's last row as (created_at, workflow_id, run_id)."""
    before_at, before_id, before_run = before if before is not None else (None, None, None)
    return await _rows(conn, "SELECT * FROM durable.search_workflows_v1(%s, %s, %s, %s, %s, %s, %s, %s, %s, "
                             "%s, %s)",
                       (namespace, status, workflow_name, task_queue, created_after, created_before,
                        id_prefix, before_at, before_id, before_run, limit))


@_mapped
async def cancel_workflow(conn: Conn, namespace: str, workflow_id: str) -> bool:
    return await _value(conn, "SELECT durable.cancel_workflow_v1(%s, %s)", (namespace, workflow_id))


@_mapped
async def interrupt_workflow(conn: Conn, namespace: str, workflow_id: str, reason: str | None) -> bool:
    return await _value(conn, "SELECT durable.interrupt_workflow_v1(%s, %s, %s)",
                        (namespace, workflow_id, reason))


@_mapped
async def reset_workflow(conn: Conn, namespace: str, workflow_id: str, event_id: int,
                         reason: str | None) -> int:
    return await _value(conn, "SELECT durable.reset_workflow(%s, %s, %s, %s)",
                        (namespace, workflow_id, event_id, reason))


@_mapped
async def fork_workflow(conn: Conn, namespace: str, workflow_id: str, from_event_id: int,
                        new_workflow_id: str | None) -> str:
    return await _value(conn, "SELECT durable.fork_workflow(%s, %s, %s, %s)",
                        (namespace, workflow_id, from_event_id, new_workflow_id))


# -- schedules (schedules.sql; owner functions) ------------------------------------

@_mapped
async def create_schedule(conn: Conn, namespace: str, schedule_id: str, *, workflow_name: str,
                          task_queue: str, args: str, cron: str | None, every: timedelta | None,
                          timezone: str, overlap: str, catchup_window: timedelta, start_at: datetime | None,
                          end_at: datetime | None, jitter: timedelta | None) -> datetime | None:
    """``args`` is the encoded payload text: passed as a JSON string (the engine stores it as is)."""
    return await _value(
        conn,
        "SELECT durable.create_schedule(schedule_id => %s, workflow_name => %s, task_queue => %s, "
        "args => %s, cron => %s, every => %s, namespace => %s, timezone => %s, overlap => %s, "
        "catchup_window => %s, start_at => %s, end_at => %s, jitter => %s)",
        (schedule_id, workflow_name, task_queue, Jsonb(args), cron, every, namespace, timezone, overlap,
         catchup_window, start_at, end_at, jitter))


@_mapped
async def pause_schedule(conn: Conn, namespace: str, schedule_id: str, note: str | None) -> None:
    await _value(conn, "SELECT durable.pause_schedule(%s, %s, %s)", (schedule_id, namespace, note))


@_mapped
async def resume_schedule(conn: Conn, namespace: str, schedule_id: str) -> datetime | None:
    return await _value(conn, "SELECT durable.resume_schedule(%s, %s)", (schedule_id, namespace))


@_mapped
async def trigger_schedule(conn: Conn, namespace: str, schedule_id: str) -> str | None:
    return await _value(conn, "SELECT durable.trigger_schedule(%s, %s)", (schedule_id, namespace))


@_mapped
async def delete_schedule(conn: Conn, namespace: str, schedule_id: str) -> None:
    await _value(conn, "SELECT durable.delete_schedule(%s, %s)", (schedule_id, namespace))


@_mapped
async def describe_schedule(conn: Conn, namespace: str, schedule_id: str, fire_times: int) -> dict[str, Any]:
    return await _value(conn, "SELECT durable.describe_schedule(%s, %s, %s)",
                        (schedule_id, namespace, fire_times))


@_mapped
async def list_schedules(conn: Conn, namespace: str | None) -> list[Row]:
    return await _rows(conn, "SELECT * FROM durable.list_schedules(%s)", (namespace,))


# -- workflows: worker side ---------------------------------------------------

@_mapped
async def claim_workflow_tasks(conn: Conn, namespace: str, task_queues: list[str], names: list[str],
                               batch: int, lease: timedelta, owner: str) -> list[Row]:
    return await _rows(conn, "SELECT * FROM durable.claim_workflow_tasks_v1(%s, %s, %s, %s, %s, %s)",
                       (namespace, task_queues, names, batch, lease, owner))


@_mapped
async def complete_tasks(conn: Conn, items: list[dict[str, Any]]) -> list[Row]:
    """Records up to 50 completions in one transaction (``complete_tasks_v1``): one row per item,
    ``outcome`` or ``error_code`` and ``error_message`` (see :func:`item_error`)."""
    return await _rows(conn, "SELECT * FROM durable.complete_tasks_v1(%s)", (Jsonb(items),))


@_mapped
async def claim_workflow_task(conn: Conn, namespace: str, task_queue: str, workflow_id: str, names: list[str],
                              lease: timedelta, owner: str, wait: float = 0.0) -> list[Row]:
    """Fires one workflow's due timers (first waiting up to ``wait`` s for its first one) and leases
    its workflow task (no row: none is visible)."""
    return await _rows(conn, "SELECT * FROM durable.claim_workflow_task_v1(%s, %s, %s, %s, %s, %s, %s)",
                       (namespace, task_queue, workflow_id, names, lease, owner, timedelta(seconds=wait)))


@_mapped
async def fail_workflow_task(conn: Conn, message_id: int, lease_token: Any,
                             error: dict[str, Any]) -> timedelta:
    return await _value(conn, "SELECT durable.fail_workflow_task_v1(%s, %s, %s)",
                        (message_id, lease_token, Jsonb(error)))


# -- activities -----------------------------------------------------------------

@_mapped
async def claim_activity_tasks(conn: Conn, namespace: str, streams: list[str], names: list[str],
                               batch: int, lease: timedelta, owner: str) -> list[Row]:
    return await _rows(conn, "SELECT * FROM durable.claim_activity_tasks_v1(%s, %s, %s, %s, %s, %s)",
                       (namespace, streams, names, batch, lease, owner))


@_mapped
async def wake_for_unknown_activities(conn: Conn, namespace: str, task_queue: str, workflow_names: list[str],
                                      known_activities: list[str], skip_workflow_ids: list[str]) -> list[Row]:
    return await _rows(conn, "SELECT * FROM durable.wake_for_unknown_activities_v1(%s, %s, %s, %s, %s)",
                       (namespace, task_queue, workflow_names, known_activities, skip_workflow_ids))


@_mapped
async def heartbeat_activity(conn: Conn, message_id: int, lease_token: Any, details: str | None,
                             lease: timedelta) -> dict[str, bool]:
    """{held, cancelled}: whether the lease is still held, and whether the workflow cancelled it."""
    rows = await _rows(conn, "SELECT held, cancelled FROM durable.heartbeat_activity_v2(%s, %s, %s, %s)",
                       (message_id, lease_token, details, lease))
    return {"held": bool(rows and rows[0]["held"]), "cancelled": bool(rows and rows[0]["cancelled"])}


@_mapped
async def extend_leases(conn: Conn, message_ids: list[int], lease_tokens: list[Any],
                        lease: timedelta) -> set[int]:
    rows = await _rows(conn, "SELECT durable.extend_lease_v1(%s, %s, %s) AS id",
                       (message_ids, lease_tokens, lease))
    return {row["id"] for row in rows}


@_mapped
async def release(conn: Conn, message_id: int, lease_token: Any) -> None:
    await _value(conn, "SELECT durable.release_v1(%s, %s)", (message_id, lease_token))


@_mapped
async def next_wakeup(conn: Conn, namespace: str, streams: list[str], names: list[str]) -> float | None:
    return await _value(conn, "SELECT durable.next_wakeup_v1(%s, %s, %s)", (namespace, streams, names))


@_mapped
async def heartbeat_worker(conn: Conn, namespace: str, worker_id: str, host: str, pid: int, task_queue: str,
                           workflow_names: list[str], activity_names: list[str], interval: timedelta,
                           stopped: bool = False) -> None:
    """Registers (or refreshes, or marks stopped) this worker in the registry of workers."""
    await _value(conn, "SELECT durable.heartbeat_worker_v1(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                 (namespace, worker_id, host, pid, task_queue, workflow_names, activity_names, interval,
                  stopped))


@_mapped
async def list_workers(conn: Conn, namespace: str | None) -> list[Row]:
    return await _rows(conn, "SELECT * FROM durable.list_workers(%s)", (namespace,))


@_mapped
async def stream_stats(conn: Conn, namespace: str | None) -> list[Row]:
    return await _rows(conn, "SELECT * FROM durable.stream_stats(%s)", (namespace,))


# -- flow control ---------------------------------------------------------------

@_mapped
async def set_stream_limits(conn: Conn, namespace: str, stream: str, max_running: int | None,
                            rate_limit: int | None, rate_period: float | None) -> None:
    await conn.execute(
        "SELECT durable.set_stream_limits(%s, %s, %s, %s, %s)",
        (stream, namespace, max_running, rate_limit,
         None if rate_period is None else timedelta(seconds=rate_period)))


@_mapped
async def stream_limits(conn: Conn, namespace: str | None) -> list[Row]:
    return await _rows(conn, "SELECT namespace, stream, max_running, rate_limit, rate_period "
                             "FROM durable.stream_limits(%s)", (namespace,))


async def listen(conn: Conn, channel: str) -> None:
    """LISTEN on a channel (names come from durable.*_channel: hex-safe)."""
    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))



def as_utc(value: datetime | str) -> datetime:
    """A timestamp from a JSON event (or a row) as an aware datetime in UTC, whatever the
    session's TimeZone (workflow code's ``now()`` is UTC)."""
    return (value if isinstance(value, datetime) else datetime.fromisoformat(value)).astimezone(UTC)


@_mapped
async def stream_channels(conn: Conn, namespace: str, streams: list[str]) -> list[str]:
    """The NOTIFY channels of streams the caller may consume (names are salted in the database)."""
    return await _value(conn, "SELECT durable.stream_channels_v1(%s, %s)", (namespace, streams))


@_mapped
async def worker_channel(conn: Conn, namespace: str, worker_id: str) -> str:
    """The NOTIFY channel of one of the caller's live workers: new events of the runs it caches."""
    return await _value(conn, "SELECT durable.worker_channel_v1(%s, %s)", (namespace, worker_id))


@_mapped
async def closed_channel(conn: Conn, namespace: str) -> str:
    """The NOTIFY channel of run closings, payload the workflow id (the engine owner's)."""
    return await _value(conn, "SELECT durable.closed_channel(%s)", (namespace,))


# -- test environments (pgdurable.testing; the engine owner's) -----------------------

@_mapped
async def skip_to_next_timer(conn: Conn, namespace: str) -> datetime | None:
    """Moves the engine clock to the next timer when nothing else is runnable; the new now() or None."""
    value = await _value(conn, "SELECT durable.skip_to_next_timer_v1(%s)", (namespace,))
    return None if value is None else as_utc(value)


@_mapped
async def advance_clock_when_idle(conn: Conn, namespace: str, by: timedelta) -> datetime | None:
    """Moves the engine clock forward by ``by`` unless something is runnable; the new now() or None."""
    value = await _value(conn, "SELECT durable.advance_clock_when_idle_v1(%s, %s)", (namespace, by))
    return None if value is None else as_utc(value)


@_mapped
async def engine_now(conn: Conn) -> datetime:
    """The engine clock, durable.now()."""
    return as_utc(await _value(conn, "SELECT durable.now()"))


@_mapped
async def create_database(conn: Conn, name: str) -> None:
    """CREATE DATABASE ``name`` (an autocommit connection of a role allowed to)."""
    await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@_mapped
async def drop_database(conn: Conn, name: str) -> None:
    """DROP DATABASE ``name``, closing the sessions still connected to it."""
    await conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# -- retention ---------------------------------------------------------------------

@_mapped
async def prune(conn: Conn, older_than: timedelta, namespace: str | None, batch: int) -> int:
    return await _value(conn, "SELECT durable.prune(%s, %s, %s)", (older_than, namespace, batch))


# -- worker roles -----------------------------------------------------------------

@_mapped
async def provision_worker_role(conn: Conn, stream_names: list[str], namespace: str, password: str | None,
                                produce: list[str] | None, signal_prefixes: list[str] | None,
                                connection_limit: int, statement_timeout: timedelta,
                                idle_in_transaction_timeout: timedelta, lock_timeout: timedelta) -> Row:
    rows = await _rows(conn,
                       "SELECT * FROM durable.provision_worker_role(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                       (stream_names, namespace, password, produce, signal_prefixes, connection_limit,
                        statement_timeout, idle_in_transaction_timeout, lock_timeout))
    return rows[0]


@_mapped
async def list_worker_roles(conn: Conn, namespace: str | None) -> list[Row]:
    return await _rows(conn, "SELECT * FROM durable.list_worker_roles(%s)", (namespace,))


@_mapped
async def rotate_worker_password(conn: Conn, role_name: str, new_password: str | None,
                                 namespace: str | None, end_sessions: bool) -> str:
    return await _value(conn, "SELECT durable.rotate_worker_password(%s, %s, %s, %s)",
                        (role_name, new_password, namespace, end_sessions))


@_mapped
async def revoke_worker_role(conn: Conn, role_name: str, namespace: str | None) -> None:
    await _value(conn, "SELECT durable.revoke_worker_role(%s, %s)", (role_name, namespace))


@_mapped
async def worker_scope(conn: Conn) -> Row | None:
    rows = await _rows(conn, "SELECT * FROM durable.worker_scope_v1()")
    return rows[0] if rows else None
