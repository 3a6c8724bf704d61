"""``pgdurable roles provision|list|rotate|revoke``: the DBA's worker-role commands.

Each wraps the SQL function of the same job (``durable.provision_worker_role`` & co., through
``Durable.provision_worker_role`` & co.), so what a DBA does from psql they can also do here. Run
them as a role that may create roles and owns the durable schema (or as a superuser).

``cli.py`` registers :data:`roles_app` and imports this module at its top; this module therefore
uses ``cli.py``'s helpers (DSN resolution, one-line errors, JSON output) only when a command
runs, never at import time.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from pgdurable.connection import Connection

P = ParamSpec("P")
T = TypeVar("T")

roles_app = typer.Typer(
    help="Provision, list, rotate and revoke scoped worker roles (the DBA's commands): a worker role "
    "may consume only the streams it is provisioned for.",
    no_args_is_help=True,
)

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
    str, typer.Option("--namespace", "-n", help="The namespace the worker role serves.")
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout (for scripts) instead of text.")
]
PasswordOption = Annotated[
    str | None,
    typer.Option(
        "--password",
        help="The password to set (12 to 1000 characters). Default: a random one, printed once. "
        "A password given here is visible to other local users (ps) and in your shell history.",
        show_default=False,
    ),
]
RoleArgument = Annotated[
    str, typer.Argument(metavar="ROLE", help="The worker role's name (see `pgdurable roles list`).")
]


def _friendly(fn: Callable[P, T]) -> Callable[P, T]:
    """cli.py's one-line errors (exit 1, no traceback) for expected failures."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        from pgdurable import cli

        return cli._friendly_errors(fn)(*args, **kwargs)

    return wrapper


def _run(dsn: str | None, body: Callable[[Connection], Awaitable[T]]) -> T:
    """Runs ``body(connection)`` on a fresh event loop against the resolved database."""
    from pgdurable import cli
    from pgdurable.connection import Connection

    async def main(resolved: str) -> T:
        connection = Connection(resolved, pool_size=1)
        try:
            return await body(connection)
        finally:
            await connection.close()

    with cli._database(dsn) as resolved:
        return asyncio.run(main(resolved))


def _print_json(value: Any) -> None:
    from pgdurable import cli

    cli._print_json(value)


def _hint(text: str) -> None:
    """A line for the human at the terminal, on stderr (stdout stays parseable)."""
    from pgdurable import cli

    cli.err_console.print(text, highlight=False, soft_wrap=True)


@roles_app.command("provision")
@_friendly
def roles_provision(
    streams: Annotated[
        list[str],
        typer.Argument(help="The streams the role may consume, e.g. orders orders-activity.",
                       metavar="STREAM...", show_default=False),
    ],
    namespace: NamespaceOption = "durable",
    password: PasswordOption = None,
    produce: Annotated[
        list[str] | None,
        typer.Option("--produce", metavar="TASK_QUEUE",
                     help="A task queue its workflows may schedule activities and children on and signal "
                          "workflows of (repeat it; default: the role's own task queues)."),
    ] = None,
    signal_prefix: Annotated[
        list[str] | None,
        typer.Option("--signal-prefix", metavar="PREFIX",
                     help="Its conditions may wait only on signal ids starting with PREFIX (repeat it; "
                          "default: any signal id)."),
    ] = None,
    connection_limit: Annotated[
        int, typer.Option("--connection-limit", help="Connections the role may hold at once.")
    ] = 50,
    as_json: JsonOption = False,
    dsn: DsnOption = None,
) -> None:
    """Create a worker role that may consume only STREAM... and print its name and password.

    The same streams again give the same role a new password (and the scopes given now). pgdurable
    does not keep passwords.
    """
    from pgdurable.roles import list_worker_roles, provision_worker_role

    async def provision(connection: Connection) -> tuple[Any, Any]:
        cred = await provision_worker_role(
            connection=connection, stream_names=streams, namespace=namespace, password=password,
            produce=produce or None, signal_prefixes=signal_prefix or None,
            connection_limit=connection_limit)
        [info] = [r for r in await list_worker_roles(connection=connection, namespace=namespace)
                  if r.role_name == cred.role_name]
        return cred, info

    cred, info = _run(dsn, provision)
    if as_json:
        _print_json({"role_name": cred.role_name, "password": cred.password, "namespace": namespace,
                     "stream_names": info.stream_names, "produce": info.produce,
                     "signal_prefixes": info.signal_prefixes})
        return
    typer.echo(f"role: {cred.role_name}")
    typer.echo(f"password: {cred.password}")
    _hint(f"worker role {escape(cred.role_name)} may consume {escape(', '.join(info.stream_names))} and "
          f"produce to {escape(', '.join(info.produce))} in namespace {escape(repr(namespace))}. Keep the "
          "password now: pgdurable does not store it. Run a worker with "
          "worker_credentials={'user': <role>, 'password': <password>}.")


@roles_app.command("list")
@_friendly
def roles_list(
    namespace: NamespaceOption = "durable",
    as_json: JsonOption = False,
    dsn: DsnOption = None,
) -> None:
    """List the worker roles of a namespace, revoked ones included (kept for audit)."""
    from pgdurable.roles import list_worker_roles

    roles = _run(dsn, lambda connection: list_worker_roles(connection=connection, namespace=namespace))
    if as_json:
        _print_json([asdict(role) for role in roles])
        return
    if not roles:
        typer.echo(f"no worker roles in namespace {namespace!r}")
        return
    from pgdurable import cli

    table = Table()
    table.add_column("role", no_wrap=True)  # copied into rotate/revoke: never folded
    for column in ("streams", "produces to", "created", "password rotated", "revoked"):
        table.add_column(column, overflow="fold")
    for role in roles:
        revoked = f"[red]{cli._time(role.revoked_at)}[/red]" if role.revoked_at else ""
        table.add_row(escape(role.role_name), escape(", ".join(role.stream_names)),
                      escape(", ".join(role.produce)), cli._time(role.created_at), cli._time(role.rotated_at),
                      revoked)
    cli.console.print(table)


@roles_app.command("rotate")
@_friendly
def roles_rotate(
    role: RoleArgument,
    password: PasswordOption = None,
    namespace: NamespaceOption = "durable",
    end_sessions: Annotated[
        bool, typer.Option("--end-sessions",
                           help="End the role's live sessions too (a live session could set the old "
                                "password back).")
    ] = False,
    as_json: JsonOption = False,
    dsn: DsnOption = None,
) -> None:
    """Give ROLE a new password (random unless --password) and print it.

    Live sessions keep running unless --end-sessions: restart the workers with the new password.
    """
    from pgdurable.roles import rotate_worker_password

    rotated = _run(dsn, lambda connection: rotate_worker_password(
        connection=connection, role_name=role, new_password=password, namespace=namespace,
        end_sessions=end_sessions))
    if as_json:
        _print_json({"role_name": role, "password": rotated["password"]})
        return
    typer.echo(f"password: {rotated['password']}")
    _hint(f"new password set for worker role {escape(role)}; the old one no longer logs in.")


@roles_app.command("revoke")
@_friendly
def roles_revoke(
    role: RoleArgument,
    namespace: NamespaceOption = "durable",
    as_json: JsonOption = False,
    dsn: DsnOption = None,
) -> None:
    """Revoke ROLE: it can no longer log in and its live sessions end.

    Its audit row is kept (pgdurable roles list). Provision a new role for the workers that used it.
    """
    from pgdurable.roles import revoke_worker_role

    _run(dsn, lambda connection: revoke_worker_role(connection=connection, role_name=role,
                                                    namespace=namespace))
    if as_json:
        _print_json({"role_name": role, "revoked": True})
        return
    typer.echo(f"revoked: {role}")
    _hint(f"worker role {escape(role)} can no longer log in and its sessions were ended. To remove the "
          f"role itself, in psql: DROP OWNED BY {escape(role)}; DROP ROLE {escape(role)};")
