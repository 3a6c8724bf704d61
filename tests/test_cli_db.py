"""`pgdurable db upgrade|current|downgrade` drive the migrations of the given DSN."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pgdurable._migrate import current, head
from pgdurable.cli import app

pytestmark = pytest.mark.sql


def test_db_commands_upgrade_report_and_downgrade(empty_dsn):
    runner = CliRunner()

    result = runner.invoke(app, ["db", "current", "--dsn", empty_dsn])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "none"

    result = runner.invoke(app, ["db", "upgrade", "--dsn", empty_dsn])
    assert result.exit_code == 0, result.output
    assert current(empty_dsn) == head()

    result = runner.invoke(app, ["db", "current", "--dsn", empty_dsn])
    assert result.output.strip() == head()

    result = runner.invoke(app, ["db", "downgrade", "base", "--dsn", empty_dsn], input="n\n")
    assert result.exit_code != 0  # declined: nothing dropped
    assert current(empty_dsn) == head()

    result = runner.invoke(app, ["db", "downgrade", "base", "--yes", "--dsn", empty_dsn])
    assert result.exit_code == 0, result.output
    assert current(empty_dsn) is None


def test_db_commands_read_pgdurable_dsn(empty_dsn, monkeypatch):
    monkeypatch.setenv("PGDURABLE_DSN", empty_dsn)
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert current(empty_dsn) == head()
