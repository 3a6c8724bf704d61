"""``pgdurable roles provision|list|rotate|revoke``: the DBA's worker-role commands.

Each wraps the SQL function of the same job (``durable.provision_worker_role`` & co., through
``Durable.provision_worker_role`` & co.), so what a DBA does from psql they can also do here. Run
them as a role that may create roles and owns the durable schema (or as a superuser).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pgdurable.cli._common import (
    DsnOption,
    JsonOption,
    NamespaceOption,
    console,
    friendly_errors,
    hint,
    print_json,
    run_with_connection,
)
from pgdurable.cli.tables import format_time

if TYPE_CHECKING:
    from pgdurable.connection import Connection

roles_app = typer.Typer(
    help="Provision, list, rotate and revoke scoped worker roles (the DBA's commands): a worker role "
    "may consume only the streams it is provisioned for.",
    no_args_is_help=True,
)

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


@roles_app.command("provision")
@friendly_errors
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

    cred, info = run_with_connection(dsn, provision)
    if as_json:
        print_json({"role_name": cred.role_name, "password": cred.password, "namespace": namespace,
                     "stream_names": info.stream_names, "produce": info.produce,
                     "signal_prefixes": info.signal_prefixes})
        return
    typer.echo(f"role: {cred.role_name}")
    typer.echo(f"password: {cred.password}")
    hint(f"worker role {escape(cred.role_name)} may consume {escape(', '.join(info.stream_names))} and "
          f"produce to {escape(', '.join(info.produce))} in namespace {escape(repr(namespace))}. Keep the "
          "password now: pgdurable does not store it. Run a worker with "
          "worker_credentials={'user': <role>, 'password': <password>}.")


@roles_app.command("list")
@friendly_errors
def roles_list(
    namespace: NamespaceOption = "durable",
    as_json: JsonOption = False,
    dsn: DsnOption = None,
) -> None:
    """List the worker roles of a namespace, revoked ones included (kept for audit)."""
    from pgdurable.roles import list_worker_roles

    roles = run_with_connection(
        dsn, lambda connection: list_worker_roles(connection=connection, namespace=namespace))
    if as_json:
        print_json([asdict(role) for role in roles])
        return
    if not roles:
        typer.echo(f"no worker roles in namespace {namespace!r}")
        return
    table = Table()
    table.add_column("role", no_wrap=True)  # copied into rotate/revoke: never folded
    for column in ("streams", "produces to", "created", "password rotated", "revoked"):
        table.add_column(column, overflow="fold")
    for role in roles:
        revoked = f"[red]{format_time(role.revoked_at)}[/red]" if role.revoked_at else ""
        table.add_row(escape(role.role_name), escape(", ".join(role.stream_names)),
                      escape(", ".join(role.produce)), format_time(role.created_at),
                      format_time(role.rotated_at), revoked)
    console.print(table)


@roles_app.command("rotate")
@friendly_errors
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

    rotated = run_with_connection(dsn, lambda connection: rotate_worker_password(
        connection=connection, role_name=role, new_password=password, namespace=namespace,
        end_sessions=end_sessions))
    if as_json:
        print_json({"role_name": role, "password": rotated["password"]})
        return
    typer.echo(f"password: {rotated['password']}")
    hint(f"new password set for worker role {escape(role)}; the old one no longer logs in.")


@roles_app.command("revoke")
@friendly_errors
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

    run_with_connection(dsn, lambda connection: revoke_worker_role(connection=connection, role_name=role,
                                                    namespace=namespace))
    if as_json:
        print_json({"role_name": role, "revoked": True})
        return
    typer.echo(f"revoked: {role}")
    hint(f"worker role {escape(role)} can no longer log in and its sessions were ended. To remove the "
          f"role itself, in psql: DROP OWNED BY {escape(role)}; DROP ROLE {escape(role)};")
