"""``pgdurable ui``: serve the web dashboard (``pgdurable.ui``, extra ``pgdurable[ui]``) with uvicorn."""

from __future__ import annotations

import importlib.util
import ipaddress
import secrets
import signal
from typing import Annotated, Any

import typer
from rich.markup import escape

from pgdurable.cli._common import (
    CliError,
    DsnOption,
    NamespaceOption,
    console,
    database,
    friendly_errors,
    load_attribute,
    run_with_connection,
)

UI_MODULES = ("starlette", "uvicorn", "jinja2", "multipart")
"""What the dashboard imports beyond pgdurable's own dependencies (``pip install 'pgdurable[ui]'``)."""


def is_local(host: str) -> bool:
    """Whether ``host`` is a loopback address (only this machine can connect to it)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _codec(target: str) -> Any:
    codec = load_attribute(target, "myapp.codecs:codec")
    if isinstance(codec, type):
        codec = codec()
    if not (callable(getattr(codec, "encode", None)) and callable(getattr(codec, "decode", None))):
        raise CliError(f"{target} is not a codec: it needs encode(str) -> str and decode(str) -> str methods")
    return codec


@friendly_errors
def ui(
    host: Annotated[str, typer.Option(help="Address to listen on. Any other than localhost requires an "
                                           "access token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port to listen on.")] = 8321,
    read_only: Annotated[bool, typer.Option("--read-only", help="Show, never act: no signal, cancel, "
                                            "interrupt or reset (every POST is refused with 403).")] = False,
    token: Annotated[str | None, typer.Option(
        envvar="PGDURABLE_UI_TOKEN", show_default=False,
        help="The access token every request must carry (default: none on localhost, a new random one "
             "printed with the URL on any other address).")] = None,
    codec: Annotated[str | None, typer.Option(
        metavar="MODULE:ATTR", show_default=False,
        help="Decode payloads with this codec (the one pgdurable.register_codec got in your workers); "
             "without it, payloads a codec wrote are shown encoded.")] = None,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """Serve the web dashboard: workflows (filter, search, pages), a workflow's state, timeline,
    children and history, streams, workers, worker roles, schedules; signal, cancel, interrupt and
    reset a workflow, each after a confirmation.

    It reads and writes only through the engine's stored functions, as the CLI does: log in
    (--dsn) as a role whose grants fit what the dashboard's users may see and do.
    """
    missing = [name for name in UI_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise CliError(f"the dashboard needs packages that are not installed ({', '.join(missing)}): "
                       "pip install 'pgdurable[ui]'")
    import uvicorn

    from pgdurable import _store as store
    from pgdurable import payloads
    from pgdurable.ui.app import create_app

    if codec is not None:
        payloads.register_codec(_codec(codec))
    if token is None and not is_local(host):
        token = secrets.token_urlsafe(24)
    with database(dsn) as resolved:
        run_with_connection(resolved, lambda connection: connection.run(store.check_schema))
        app = create_app(resolved, namespace=namespace, read_only=read_only, token=token)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
        console.print(f"pgdurable dashboard on [bold]{escape(url)}[/bold]"
                      + (" (read-only)" if read_only else "") + "; Ctrl-C stops it", highlight=False,
                      soft_wrap=True)
        if token and not is_local(host):
            console.print("bound to a non-local address: every request must carry the access token "
                          "(the URL above sets it as a cookie)", highlight=False)
        # uvicorn stops on SIGINT or SIGTERM, then sends the signal again to the handler it found:
        # ours ends the command through the `with` blocks (the embedded server is stopped too).
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
    console.print("stopped.", highlight=False)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
