"""A DSN comes from the argument, then PGDURABLE_DSN, then DATABASE_URL."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pgdurable import Durable, errors
from pgdurable._dsn import MissingDsnError, resolve_dsn
from pgdurable.cli import app


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv("PGDURABLE_DSN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)


def test_explicit_dsn_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("PGDURABLE_DSN", "dbname=env")
    assert resolve_dsn("dbname=arg") == "dbname=arg"


def test_pgdurable_dsn_wins_over_database_url(monkeypatch):
    monkeypatch.setenv("PGDURABLE_DSN", "dbname=ours")
    monkeypatch.setenv("DATABASE_URL", "postgresql:///theirs")
    assert resolve_dsn(None) == "dbname=ours"


def test_database_url_is_the_fallback(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql:///theirs")
    assert resolve_dsn() == "postgresql:///theirs"


def test_missing_dsn_says_how_to_configure_one():
    with pytest.raises(MissingDsnError, match="PGDURABLE_DSN"):
        resolve_dsn()


@pytest.mark.parametrize(("source", "name"), [("DATABASE_URL", "$DATABASE_URL"),
                                              ("PGDURABLE_DSN", "$PGDURABLE_DSN")])
def test_a_malformed_dsn_from_the_environment_is_one_clear_error_naming_its_source(monkeypatch, source, name):
    monkeypatch.setenv(source, "garbage")
    with pytest.raises(errors.InvalidArgumentError) as caught:
        resolve_dsn()
    assert str(caught.value).startswith(f"{name} is not a Postgres connection string")
    assert "postgresql://user@host:5432/dbname" in str(caught.value)


def test_a_malformed_dsn_given_is_refused_before_any_connection_and_by_the_cli(monkeypatch):
    with pytest.raises(errors.InvalidArgumentError, match="^the DSN given is not a Postgres connection"):
        Durable.migrate("host=x port")
    monkeypatch.setenv("DATABASE_URL", "garbage")
    result = CliRunner().invoke(app, ["workflow", "list"])
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error: $DATABASE_URL is not a Postgres connection string")
    assert "Traceback" not in result.stderr
