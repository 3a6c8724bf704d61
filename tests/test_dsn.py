"""A DSN comes from the argument, then PGDURABLE_DSN, then DATABASE_URL."""

from __future__ import annotations

import pytest

from pgdurable._dsn import MissingDsnError, resolve_dsn


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
