"""What every command shares: the common options, the consoles, one-line errors for expected
failures, DSN resolution (the embedded dev server as the fallback) and JSON output."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import importlib
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar
from uuid import UUID

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from pgdurable.client import Client
    from pgdurable.connection import Connection

P = ParamSpec("P")
T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)


def _no_type_beside_flags() -> None:
    """typer's rich help prints a value type beside every option, flags included (``--help
    <bool>``, ``--json <bool>``, ``-v <int>``), though a flag takes no value. Its plain help leaves
    flags and counters without one: so does the rich help here."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag or self.count else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_no_type_beside_flags()


DsnOption = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        help="libpq connection string (URL or key=value). "
        "Default: $PGDURABLE_DSN, $DATABASE_URL, else the embedded dev server.",
        show_default=False,
    ),
]
NamespaceOption = Annotated[
    str, typer.Option("--namespace", "-n", help="The namespace to work in.")
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout (for scripts) instead of text for humans.")
]


# -- errors -----------------------------------------------------------------------

class CliError(Exception):
    """An expected failure: printed as one line, exit status 1."""


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def describe_error(exc: BaseException) -> str | None:
    """The one-line message for an expected failure, or None for a bug (shown with its traceback)."""
    import psycopg

    from pgdurable import errors
    from pgdurable.embedded import EmbeddedPostgresError

    try:
        from sqlalchemy.exc import DBAPIError
    except ImportError:  # pragma: no cover - sqlalchemy comes with alembic
        DBAPIError = ()  # type: ignore[assignment,misc]  # noqa: N806

    if isinstance(exc, DBAPIError) and isinstance(exc.orig, BaseException):
        exc = exc.orig
    if isinstance(exc, CliError):
        return str(exc)
    if isinstance(exc, psycopg.OperationalError):
        return f"cannot connect to the database: {_one_line(str(exc))}"
    if isinstance(exc, ConnectionError):  # errors.DatabaseUnavailableError, or a socket's own error
        return _one_line(str(exc))
    if isinstance(exc, psycopg.Error):
        return f"database error: {_one_line(exc.diag.message_primary or str(exc))}"
    if isinstance(exc, errors.DurableError):  # MissingDsnError included
        return _one_line(str(exc))
    if isinstance(exc, EmbeddedPostgresError):
        return str(exc)  # several lines: the server log's tail helps
    return None


def friendly_errors(fn: Callable[P, T]) -> Callable[P, T]:
    """Turns expected failures into one line on stderr and exit status 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
            raise
        except Exception as exc:
            message = describe_error(exc)
            if message is None:
                raise
            err_console.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True,
                              highlight=False)
            raise typer.Exit(1) from None

    return wrapper


# -- databases and clients ------------------------------------------------------

@contextlib.contextmanager
def database(dsn: str | None) -> Iterator[str]:
    """The DSN to use: ``--dsn``, the environment, else the embedded dev server (started for the
    block and stopped after it, unless it was already running, e.g. under ``pgdurable dev``)."""
    from pgdurable.embedded import dev_server

    def starting(first: bool) -> contextlib.AbstractContextManager[object]:
        return err_console.status("initialising the embedded Postgres (first run only)..." if first
                                  else "starting the embedded Postgres...")

    with dev_server(dsn, starting) as found:
        yield found


def with_client(dsn: str | None, namespace: str, body: Callable[[Client], Awaitable[T]]) -> T:
    """Runs ``body(client)`` on a fresh event loop against the resolved database."""
    from pgdurable import Client, Connection

    async def main(resolved: str) -> T:
        connection = Connection(resolved, pool_size=2)
        try:
            return await body(Client(connection=connection, namespace=namespace))
        finally:
            await connection.close()

    with database(dsn) as resolved:
        return asyncio.run(main(resolved))


def to_jsonable(value: Any) -> Any:
    """``json.dumps`` default: timestamps as ISO 8601, UUID and Decimal as strings, bytes as base64."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (UUID, Decimal)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot print a {type(value).__name__} as JSON")


def print_json(value: Any) -> None:
    """``value`` as indented JSON, alone on stdout."""
    typer.echo(json.dumps(value, default=to_jsonable, indent=2, ensure_ascii=False))


def run_with_connection(dsn: str | None, body: Callable[[Connection], Awaitable[T]]) -> T:
    """Runs ``body(connection)`` on a fresh event loop against the resolved database."""
    from pgdurable.connection import Connection

    async def main(resolved: str) -> T:
        connection = Connection(resolved, pool_size=1)
        try:
            return await body(connection)
        finally:
            await connection.close()

    with database(dsn) as resolved:
        return asyncio.run(main(resolved))


def hint(text: str) -> None:
    """A line for the human at the terminal, on stderr (stdout stays parseable)."""
    err_console.print(text, highlight=False, soft_wrap=True)


def load_attribute(target: str, example: str) -> Any:
    """The object ``MODULE:ATTR`` names (ATTR may be dotted), the current directory on ``sys.path``;
    a CliError that says what is wrong otherwise (``example`` shows the form)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"expected MODULE:ATTR (e.g. {example}), got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"cannot import {module_name!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise CliError(f"module {module_name!r} has no attribute {attr!r}") from exc
    return obj
