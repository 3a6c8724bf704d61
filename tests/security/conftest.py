"""Fixtures of the attack suite: the engine owner of a fresh database, and a check that every
role a test created (worker roles are cluster-wide) is gone once the test's databases are."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from support.attack import Owner


def _role_names(admin_dsn: str) -> set[str]:
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        return {row[0] for row in admin.execute("SELECT rolname FROM pg_roles")}


@pytest.fixture(autouse=True)
def _no_role_outlives_its_test(pg_admin_dsn: str) -> Iterator[None]:
    """Set up before ``make_database`` (autouse), so it checks after that fixture dropped the
    test's databases and roles: a role left behind fails the test (and is dropped here)."""
    before = _role_names(pg_admin_dsn)
    yield
    left = sorted(_role_names(pg_admin_dsn) - before)
    if left:
        with psycopg.connect(pg_admin_dsn, autocommit=True) as admin:
            for role in left:
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        pytest.fail(f"roles left behind by the test: {left}")


@pytest.fixture
def owner(dsn: str) -> Owner:
    """The engine owner (the test server's superuser) on this test's fresh database."""
    return Owner(dsn)
