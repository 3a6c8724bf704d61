"""``pgdurable replay MODULE:ATTR FILES...``: check workflow code against exported histories
before a deploy (exit 0 when every file replays clean, 1 otherwise), for CI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from pgdurable.cli._common import CliError, console, err_console, friendly_errors, load_attribute


def _workflows(target: str) -> list[Any]:
    """ATTR: one workflow function, or a list (tuple) of them."""
    obj = load_attribute(target, "myapp.workflows:order_flow")
    functions = list(obj) if isinstance(obj, (list, tuple)) else [obj]
    for fn in functions:
        if not callable(fn) or not hasattr(fn, "__name__"):
            raise CliError(f"{target} must be a workflow function or a list of them, not {fn!r}")
    return functions


@friendly_errors
def replay(
    target: Annotated[str, typer.Argument(metavar="MODULE:ATTR",
                                          help="Your workflow function, or a list of them (e.g. "
                                               "myapp.workflows:WORKFLOWS).")],
    files: Annotated[list[Path], typer.Argument(metavar="FILES...",
                                                help="Histories written by `pgdurable workflow export`.")],
) -> None:
    """Replay exported histories against your current workflow code, without a database.

    Exits 0 when every file replays clean, 1 when one does not (named, with its first mismatch).
    Run it in CI before you deploy.
    """
    from pgdurable.testing import Replayer

    replayer = Replayer(workflows=_workflows(target))
    failed = 0
    for result in replayer.replay_many(files):
        if result.error is None:
            console.print(f"[green]ok[/green]    {escape(result.path)}", highlight=False)
        else:
            failed += 1
            err_console.print(f"[bold red]FAIL[/bold red]  {escape(result.path)}: "
                              f"{escape(type(result.error).__name__)}: {escape(str(result.error))}",
                              highlight=False, soft_wrap=True)
    if failed:
        err_console.print(f"{failed} of {len(files)} histories do not replay: the code changed under "
                          "them; guard the change with Durable.workflow.patched(), or keep the old code "
                          "until those workflows finish", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
