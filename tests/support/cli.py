"""Driving the ``pgdurable`` command in-process (typer's CliRunner), as the CLI tests do."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from pgdurable import cli


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The CLI configures logging per invocation; leave the process as we found it."""
    root = logging.getLogger()
    level, pgd_level = root.level, logging.getLogger("pgdurable").level
    yield
    if cli._log_handler is not None:
        root.removeHandler(cli._log_handler)
        cli._log_handler = None
    root.setLevel(level)
    logging.getLogger("pgdurable").setLevel(pgd_level)


def invoke(*args: str) -> Result:
    """Runs ``pgdurable ARGS...`` (200 columns wide, so tables do not fold)."""
    return CliRunner().invoke(cli.app, list(args), env={"COLUMNS": "200"})


def ok_json(*args: str) -> Any:
    """Runs a command with --json (options go before a trailing '--' and the ids after it) and
    returns its parsed output, failing unless it exited 0."""
    if "--" in args:
        cut = args.index("--")
        args = (*args[:cut], "--json", *args[cut:])
    else:
        args = (*args, "--json")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_one_line_error(result: Result, *fragments: str) -> None:
    """The command failed with exit 1 and one ``error: ...`` line holding every fragment."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
