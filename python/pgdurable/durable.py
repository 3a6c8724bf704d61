"""``Durable``: the namespace object of the seed's API."""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta

from . import _registry, _store
from . import activity as _activity
from . import interceptors as _interceptors
from . import workflow as _workflow
from .client import Client, WorkflowHandle
from .connection import Connection, _close_all
from .durations import Duration, to_seconds
from .errors import did_interrupt
from .payloads import register_codec
from .roles import list_worker_roles, provision_worker_role, revoke_worker_role, rotate_worker_password
from .worker import Worker, register_activity_worker, shutdown_all

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def guid(size: int | None = None) -> str:
    """A unique, URL-safe identifier (``size`` characters; 22 by default)."""
    length = 22 if size is None else size
    if not isinstance(length, int) or length < 1 or length > 512:
        raise ValueError(f"guid size must be an integer from 1 to 512, got {size!r}")
    text = base64.urlsafe_b64encode(secrets.token_bytes(length)).decode("ascii").rstrip("=")[:length]
    # Never a leading "-" or "_": such an id reads like an option on a command line.
    return secrets.choice(_ALNUM) + text[1:]


async def shutdown(grace: float = 30) -> None:
    """Stops every worker of this process gracefully, then closes every connection pool.
    Clients and workers may be created again afterwards, also on a new event loop. The process's
    activity registrations end with its workers: names registered before no longer conflict."""
    await shutdown_all(grace)
    _registry.forget_activities()
    await _close_all()


def migrate(dsn: str | None = None, revision: str = "head") -> None:
    """Brings the database to ``revision`` (same as ``pgdurable db upgrade``)."""
    from ._migrate import migrate as _migrate

    _migrate(dsn, revision)


async def prune(connection: Connection, older_than: Duration, namespace: str | None = None,
                batch: int = 1000) -> int:
    """Removes closed workflow runs (and their history) closed longer ago than ``older_than``,
    plus expired buffered signals, and returns how many runs went (same as
    ``pgdurable db prune``).

    Retention keeps the database from growing without bound. It calls the SQL
    ``durable.prune(older_than, namespace, batch)`` again and again, each call one short
    transaction removing at most ``batch`` runs (so it never blocks running work), until a call
    removes fewer than ``batch``: when it returns, nothing older is left. ``namespace``: only that
    one (default: all). ``older_than`` is seconds, a ``timedelta`` or a string such as
    ``"30 days"``; a bad one, or a ``batch`` below 1, raises ``ValueError`` before any I/O."""
    retention = timedelta(seconds=to_seconds(older_than, what="older_than"))
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    total = 0
    async with connection.connect() as conn:
        while True:
            removed = await _store.prune(conn, retention, namespace, batch)
            total += removed
            if removed < batch:
                return total


class Durable:
    """The seed's ``Durable``: every entry point of pgdurable in one place."""

    Client = Client
    Worker = Worker
    Connection = Connection
    Handle = WorkflowHandle
    workflow = _workflow
    activity = _activity
    guid = staticmethod(guid)
    did_interrupt = staticmethod(did_interrupt)
    register_activity_worker = staticmethod(register_activity_worker)
    register_codec = staticmethod(register_codec)
    register_inbound_interceptor = staticmethod(_interceptors.register_inbound_interceptor)
    register_outbound_interceptor = staticmethod(_interceptors.register_outbound_interceptor)
    register_activity_interceptor = staticmethod(_interceptors.register_activity_interceptor)
    clear_interceptors = staticmethod(_interceptors.clear_interceptors)
    provision_worker_role = staticmethod(provision_worker_role)
    list_worker_roles = staticmethod(list_worker_roles)
    rotate_worker_password = staticmethod(rotate_worker_password)
    revoke_worker_role = staticmethod(revoke_worker_role)
    shutdown = staticmethod(shutdown)
    migrate = staticmethod(migrate)
    prune = staticmethod(prune)

    def __init__(self) -> None:
        raise TypeError("Durable is a namespace: use Durable.Client, Durable.Worker, ...")
