"""Scoped worker roles: provision, list, rotate and revoke (wrappers of the DBA's SQL functions).

A worker role may only consume its streams through the engine's SECURITY
DEFINER worker functions; it has no table privileges at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from . import store
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
    """A worker role as listed: its scope and its audit timestamps."""

    role_name: str
    namespace: str
    stream_names: list[str]
    created_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None


async def provision_worker_role(*, connection: Connection, stream_names: Sequence[str],
                                namespace: str = "durable", password: str | None = None) -> WorkerCredential:
    """Creates a login role that may consume only ``stream_names`` (or, for the same streams,
    gives the existing role a new password). The password is random unless given."""
    if isinstance(stream_names, str):
        raise TypeError("stream_names must be a list of stream names, e.g. ['orders', 'orders-activity']")
    async with connection.connect() as conn:
        row = await store.provision_worker_role(conn, list(stream_names), namespace, password)
    return WorkerCredential(row["role_name"], row["password"])


async def list_worker_roles(*, connection: Connection,
                            namespace: str = "durable") -> list[WorkerCredentialInfo]:
    """The worker roles of this database in ``namespace``, revoked ones included."""
    async with connection.connect() as conn:
        rows = await store.list_worker_roles(conn, namespace)
    return [WorkerCredentialInfo(**row) for row in rows]


async def rotate_worker_password(*, connection: Connection, role_name: str, new_password: str | None = None,
                                 namespace: str = "durable") -> dict[str, str]:
    """Gives a worker role a new password (random unless given): ``{"password": ...}``."""
    async with connection.connect() as conn:
        password = await store.rotate_worker_password(conn, role_name, new_password, namespace)
    return {"password": password}


async def revoke_worker_role(*, connection: Connection, role_name: str, namespace: str = "durable") -> None:
    """Disables the role's login and ends its live sessions; its audit row is kept."""
    async with connection.connect() as conn:
        await store.revoke_worker_role(conn, role_name, namespace)
