"""Where a DSN comes from when the caller does not give one.

One order everywhere (SDK, CLI, alembic environment): the explicit argument,
then ``PGDURABLE_DSN``, then ``DATABASE_URL``. A DSN is any libpq connection
string, URL (``postgresql://...``) or ``key=value`` form.
"""

from __future__ import annotations

import os

from .errors import MissingDsnError

__all__ = ["ENV_VARS", "MissingDsnError", "find_dsn", "resolve_dsn"]

ENV_VARS = ("PGDURABLE_DSN", "DATABASE_URL")


def find_dsn(dsn: str | None = None) -> str | None:
    """Return the DSN to use, or None when neither the argument nor the environment has one."""
    if dsn:
        return dsn
    for var in ENV_VARS:
        value = os.environ.get(var)
        if value:
            return value
    return None


def resolve_dsn(dsn: str | None = None) -> str:
    """Return the DSN to use; raise :class:`~pgdurable.errors.MissingDsnError` saying how to
    configure one."""
    found = find_dsn(dsn)
    if found is None:
        raise MissingDsnError(
            "no Postgres DSN given: pass one (--dsn, or alembic -x dsn=...), or set "
            "PGDURABLE_DSN (or DATABASE_URL) to a libpq connection string such as "
            "postgresql://user@host:5432/dbname"
        )
    return found
