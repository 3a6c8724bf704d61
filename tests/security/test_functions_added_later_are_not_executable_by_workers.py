"""Issue 11, finding 12: grants.sql revoked PUBLIC's EXECUTE from the functions that existed when
it ran. A function created later in schema durable (by a later migration, or by hand as the
owner) got Postgres' default: EXECUTE for PUBLIC, hence for every worker role. Now every
``pgdurable db upgrade`` (``pgdurable._migrate.migrate``, alembic) re-asserts the revokes at its
end, even when there is nothing to upgrade."""

from __future__ import annotations

import pytest
from psycopg.conninfo import make_conninfo
from typer.testing import CliRunner

from pgdurable._migrate import ADVISORY_LOCK_KEY, migrate
from pgdurable.cli import app
from support.attack import Owner, refused

pytestmark = pytest.mark.sql


def _public_may_execute(owner: Owner, function: str) -> bool:
    return bool(owner.value(
        "SELECT p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a "
        "                                   WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') "
        "FROM pg_proc p WHERE p.oid = %s::regprocedure", [function]))


@pytest.fixture
def migrated(empty_dsn: str) -> Owner:
    migrate(empty_dsn)
    return Owner(empty_dsn)


def test_a_function_the_owner_adds_later_is_not_executable_after_migrate(migrated):
    owner = migrated
    role = owner.provision(["orders"])
    owner.rows("CREATE FUNCTION durable.later_fn() RETURNS integer LANGUAGE sql AS 'SELECT 42'")
    assert _public_may_execute(owner, "durable.later_fn()")  # Postgres' default: the hole

    migrate(owner.dsn)  # already at head: nothing to upgrade, the revokes are re-asserted anyway

    assert not _public_may_execute(owner, "durable.later_fn()")
    with role.login() as session, refused("42501"):
        session.execute("SELECT durable.later_fn()")
    assert owner.value("SELECT durable.later_fn()") == 42  # the owner still may


def test_pgdurable_db_upgrade_from_the_command_line_re_asserts_the_revokes(migrated):
    owner = migrated
    role = owner.provision(["orders"])
    owner.rows("CREATE FUNCTION durable.later_cli_fn(p integer) RETURNS integer LANGUAGE sql AS 'SELECT p'")

    done = CliRunner().invoke(app, ["db", "upgrade", "--dsn", owner.dsn])
    assert done.exit_code == 0, done.output

    assert not _public_may_execute(owner, "durable.later_cli_fn(integer)")
    with role.login() as session, refused("42501"):
        session.execute("SELECT durable.later_cli_fn(1)")


def test_after_an_upgrade_worker_roles_execute_exactly_the_worker_functions(migrated):
    owner = migrated
    role = owner.provision(["orders", "orders-activity"])
    owner.rows("CREATE FUNCTION durable.later_fn() RETURNS integer LANGUAGE sql AS 'SELECT 42'")
    migrate(owner.dsn)

    executable = {row[0] for row in owner.rows(
        "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'durable'::regnamespace "
        "AND has_function_privilege(%s, p.oid, 'EXECUTE')", [role.name])}
    expected = {row[0] for row in owner.rows("SELECT f::text FROM durable.worker_functions() f")}
    assert executable == expected
    assert not [row for row in owner.rows(
        "SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'durable'::regnamespace "
        "AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))")]


def test_a_worker_role_squatting_the_migration_lock_key_does_not_block_an_upgrade(migrated):
    owner = migrated
    role = owner.provision(["orders"])
    with role.login() as squatter:
        squatter.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        migrate(make_conninfo(owner.dsn, options="-c lock_timeout=5s"))  # raises if it waits 5 s
