"""Scoped worker roles: provision, list, rotate and revoke (wrappers of the DBA's SQL functions).

A worker role may only consume its streams through the engine's SECURITY
DEFINER worker functions; it has no table privileges at all. What its
workflows produce (activities, children, signals to other workflows) is
limited to the task queues of its produce scope, by default its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from . import _store as store
from .connection import Connection


@dataclass(frozen=True)
class WorkerCredential:
    """A provisioned worker role and its password (pass it as ``worker_credentials``)."""

    role_name: str
    password: str

    @property
    def user(self) -> str:
        """The login name (the role name)."""
        return self.role_name

    def __repr__(self) -> str:
        return f"WorkerCredential(role_name={self.role_name!r}, password='***')"


@dataclass(frozen=True)
class WorkerCredentialInfo:
    """A worker role as listed: its scopes and its audit timestamps.

    ``stream_names``: what it may consume; ``produce``: the task queues its workflows may
    schedule activities and children on and signal workflows of; ``signal_prefixes``: the
    signal ids its conditions may wait on (``None``: any)."""

    role_name: str
    namespace: str
    stream_names: list[str]
    created_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None
    produce: list[str]
    signal_prefixes: list[str] | None


def _names(what: str, values: Sequence[str] | None) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        raise TypeError(f"{what} must be a list of names, not one string")
    return list(values)


async def provision_worker_role(*, connection: Connection, stream_names: Sequence[str],
                                namespace: str = "durable", password: str | None = None,
                                produce: Sequence[str] | None = None,
                                signal_prefixes: Sequence[str] | None = None,
                                connection_limit: int = 50,
                                statement_timeout: timedelta = timedelta(minutes=1),
                                idle_in_transaction_timeout: timedelta = timedelta(minutes=1),
                                lock_timeout: timedelta = timedelta(seconds=30)) -> WorkerCredential:
    """Creates a login role that may consume only ``stream_names`` (or, for the same streams,
    gives the existing role a new password and the scopes and limits given now). The password
    is random unless given. ``produce`` widens the task queues its workflows may target
    (default: its own); ``signal_prefixes`` limits the signal ids its workflows may wait on
    and send (default: any). The server refuses more than ``connection_limit`` sessions of the
    role; its sessions start with the three timeouts set (defaults they may change)."""
    streams = _names("stream_names", stream_names)
    assert streams is not None
    async with connection.connect() as conn:
        row = await store.provision_worker_role(
            conn, streams, namespace, password, _names("produce", produce),
            _names("signal_prefixes", signal_prefixes), connection_limit, statement_timeout,
            idle_in_transaction_timeout, lock_timeout)
    return WorkerCredential(row["role_name"], row["password"])


async def list_worker_roles(*, connection: Connection,
                            namespace: str = "durable") -> list[WorkerCredentialInfo]:
    """The worker roles of this database in ``namespace``, revoked ones included."""
    async with connection.connect() as conn:
        rows = await store.list_worker_roles(conn, namespace)
    return [WorkerCredentialInfo(**row) for row in rows]


async def rotate_worker_password(*, connection: Connection, role_name: str, new_password: str | None = None,
                                 namespace: str = "durable", end_sessions: bool = False) -> dict[str, str]:
    """Gives a worker role a new password (random unless given): ``{"password": ...}``. With
    ``end_sessions`` its live sessions end too (a live session could set its old password back)."""
    async with connection.connect() as conn:
        password = await store.rotate_worker_password(conn, role_name, new_password, namespace, end_sessions)
    return {"password": password}


async def revoke_worker_role(*, connection: Connection, role_name: str, namespace: str = "durable") -> None:
    """Disables the role's login, takes back its grants and ends its live sessions; its audit row
    is kept."""
    async with connection.connect() as conn:
        await store.revoke_worker_role(conn, role_name, namespace)
