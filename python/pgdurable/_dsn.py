"""Where a DSN comes from when the caller does not give one.

One order everywhere (SDK, CLI, alembic environment): the explicit argument,
then ``PGDURABLE_DSN``, then ``DATABASE_URL``. A DSN is any libpq connection
string, URL (``postgresql://...``) or ``key=value`` form.
"""

from __future__ import annotations

import os

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .errors import InvalidArgumentError, MissingDsnError

__all__ = ["ENV_VARS", "MissingDsnError", "find_dsn", "resolve_dsn"]

ENV_VARS = ("PGDURABLE_DSN", "DATABASE_URL")


def find_dsn(dsn: str | None = None) -> str | None:
    """Return the DSN to use, or None when neither the argument nor the environment has one.

    A value that is not a libpq connection string raises
    :class:`~pgdurable.errors.InvalidArgumentError` naming where it came from."""
    if dsn:
        return _checked(dsn, "the DSN given")
    for var in ENV_VARS:
        value = os.environ.get(var)
        if value:
            return _checked(value, f"${var}")
    return None


def _checked(dsn: str, source: str) -> str:
    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise InvalidArgumentError(
            f"{source} is not a Postgres connection string ({str(exc).strip()}): give a URL such as "
            "postgresql://user@host:5432/dbname or key=value pairs such as 'host=... dbname=...'"
        ) from None
    return dsn


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
