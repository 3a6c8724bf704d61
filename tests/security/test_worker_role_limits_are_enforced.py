"""Issue 11, finding 7: a worker role had no limit: it could open every connection the server has
and run or idle as long as it liked. Provisioning now sets a CONNECTION LIMIT (enforced by
Postgres: one login more is refused, and the role cannot raise it) and role-level defaults for
statement_timeout, idle_in_transaction_session_timeout and lock_timeout, which every fresh
session of the role starts with. Each is overridable per provision call."""

from __future__ import annotations

import contextlib

import psycopg
import pytest

from pgdurable import Durable
from support.attack import Owner, refused
from support.polling import wait_until

pytestmark = pytest.mark.sql


def _settings(session: psycopg.Connection) -> tuple[str, ...]:
    row = session.execute("SELECT current_setting('statement_timeout'), "
                          "current_setting('idle_in_transaction_session_timeout'), "
                          "current_setting('lock_timeout')").fetchone()
    assert row is not None
    return tuple(row)


def _connection_limit(owner: Owner, role: str) -> int:
    return int(owner.value("SELECT rolconnlimit FROM pg_roles WHERE rolname = %s", [role]))


def test_a_provisioned_role_has_a_connection_limit_and_session_timeouts_by_default(owner):
    role = owner.provision(["orders", "orders-activity"])

    assert _connection_limit(owner, role.name) == 50
    with role.login() as session:
        assert _settings(session) == ("1min", "1min", "30s")


def test_the_limits_are_overridable_per_provision_call_and_re_provisioning_replaces_them(owner):
    role = owner.provision(["orders"], connection_limit=3, statement_timeout="5 seconds",
                           idle_in_transaction_timeout="7 seconds", lock_timeout="3 seconds")
    assert _connection_limit(owner, role.name) == 3
    with role.login() as session:
        assert _settings(session) == ("5s", "7s", "3s")

    again = owner.provision(["orders"], connection_limit=4, statement_timeout="2 minutes")
    assert again.name == role.name
    assert _connection_limit(owner, role.name) == 4
    with again.login() as session:
        assert _settings(session) == ("2min", "1min", "30s")


def test_one_login_more_than_the_connection_limit_is_refused(owner):
    role = owner.provision(["orders"], connection_limit=2)
    with contextlib.ExitStack() as stack:
        for _ in range(2):
            stack.enter_context(role.login())
        with pytest.raises(psycopg.OperationalError, match="too many connections for role"):
            role.login()
    # Once a session ends, the role may log in again.
    wait_until(lambda: owner.sessions_of(role.name) == 0, "the role's sessions to end")
    role.login().close()


def test_a_worker_role_cannot_raise_its_own_connection_limit(owner):
    role = owner.provision(["orders"], connection_limit=2)
    with role.login() as session:
        for statement in ("ALTER ROLE CURRENT_USER CONNECTION LIMIT -1",
                          "ALTER ROLE CURRENT_USER CONNECTION LIMIT 1000"):
            with refused("42501"):
                session.execute(statement)
    assert _connection_limit(owner, role.name) == 2


def test_the_role_statement_timeout_cancels_a_long_statement(owner):
    role = owner.provision(["orders"], statement_timeout="200 milliseconds")
    with role.login() as session, refused("57014"):
        session.execute("SELECT pg_sleep(5)")


def test_the_role_idle_in_transaction_timeout_ends_a_session_left_in_a_transaction(owner):
    role = owner.provision(["orders"], idle_in_transaction_timeout="300 milliseconds")
    session = role.login()
    try:
        session.execute("BEGIN")
        session.execute("SELECT 1")
        wait_until(lambda: owner.sessions_of(role.name) == 0, "the idle session to be ended")
        with pytest.raises(psycopg.Error, match="idle-in-transaction timeout|terminat|closed"):
            session.execute("SELECT 1")
    finally:
        session.close()


def test_the_role_lock_timeout_applies_to_its_sessions(owner):
    role = owner.provision(["orders"], lock_timeout="200 milliseconds")
    with owner.connect() as holder, role.login() as session:
        holder.execute("SELECT pg_advisory_lock(4711)")
        with refused("55P03"):
            session.execute("SELECT pg_advisory_lock(4711)")


async def test_the_python_sdk_provisions_with_a_connection_limit(owner, dsn):
    connection = Durable.Connection(dsn)
    try:
        cred = await Durable.provision_worker_role(connection=connection, stream_names=["orders"],
                                                   connection_limit=5)
    finally:
        await connection.close()
    assert _connection_limit(owner, cred.role_name) == 5
