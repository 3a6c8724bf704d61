"""`pgdurable roles provision|list|rotate|revoke` against a real database: they do what the SQL
functions do, print the password once, keep stdout parseable with --json, and turn expected
failures into one line on stderr with exit status 1."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from support.cli import assert_one_line_error, invoke, ok_json, restore_logging  # noqa: F401

# sql: also run on Debian Postgres 15 by scripts/test; the CLI configures logging per run.
pytestmark = [pytest.mark.sql, pytest.mark.usefixtures("restore_logging")]

HOSTILE_PASSWORD = "x'; DROP TABLE durable.messages; --ä€"


def role_row(dsn: str, role: str) -> tuple[Any, ...] | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = %s",
                            [role]).fetchone()


def test_roles_help_lists_the_four_commands():
    result = invoke("roles", "--help")
    assert result.exit_code == 0, result.output
    for command in ("provision", "list", "rotate", "revoke"):
        assert command in result.stdout


def test_provision_prints_the_role_and_its_password_once_and_the_role_exists(dsn):
    result = invoke("roles", "provision", "orders", "orders-activity", "--dsn", dsn)
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())
    role, password = lines["role"], lines["password"]
    assert role.startswith("pgdw_") and len(password) == 64
    assert "does not store" in result.stderr  # the hint goes to stderr, stdout stays parseable
    can_login, verifier = role_row(dsn, role)
    assert can_login and verifier.startswith("SCRAM-SHA-256$")

    listed = ok_json("roles", "list", "--dsn", dsn)
    assert [(r["role_name"], r["namespace"], r["stream_names"], r["revoked_at"]) for r in listed] == [
        (role, "durable", ["orders", "orders-activity"], None)]
    assert password not in json.dumps(listed)


def test_provision_is_idempotent_per_stream_set_and_takes_a_given_password(dsn):
    first = ok_json("roles", "provision", "orders", "orders-activity", "--dsn", dsn)
    again = ok_json("roles", "provision", "orders-activity", "orders", "--password", HOSTILE_PASSWORD,
                    "--dsn", dsn)
    assert again["role_name"] == first["role_name"]
    assert again["password"] == HOSTILE_PASSWORD != first["password"]
    assert again["stream_names"] == ["orders", "orders-activity"] and again["namespace"] == "durable"
    other = ok_json("roles", "provision", "orders", "--namespace", "billing", "--dsn", dsn)
    assert other["role_name"] != first["role_name"] and other["namespace"] == "billing"

    assert [r["role_name"] for r in ok_json("roles", "list", "-n", "billing", "--dsn", dsn)] == [
        other["role_name"]]
    assert [r["role_name"] for r in ok_json("roles", "list", "--dsn", dsn)] == [first["role_name"]]
    table = invoke("roles", "list", "--dsn", dsn)
    assert table.exit_code == 0 and first["role_name"] in table.stdout  # never folded: it is copied
    empty = invoke("roles", "list", "--namespace", "nobody", "--dsn", dsn)
    assert empty.exit_code == 0 and "no worker roles in namespace 'nobody'" in empty.stdout


def test_rotate_prints_a_new_password_and_sets_it(dsn):
    role = ok_json("roles", "provision", "orders", "--dsn", dsn)["role_name"]
    before = role_row(dsn, role)[1]

    rotated = ok_json("roles", "rotate", role, "--dsn", dsn)
    assert rotated["role_name"] == role and len(rotated["password"]) == 64
    after = role_row(dsn, role)[1]
    assert after != before

    result = invoke("roles", "rotate", role, "--password", HOSTILE_PASSWORD, "--dsn", dsn)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"password: {HOSTILE_PASSWORD}"
    assert role_row(dsn, role)[1] != after
    assert ok_json("roles", "list", "--dsn", dsn)[0]["rotated_at"] is not None


def test_revoke_disables_login_and_keeps_the_audit_row(dsn):
    role = ok_json("roles", "provision", "orders", "--dsn", dsn)["role_name"]

    result = invoke("roles", "revoke", role, "--dsn", dsn)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"revoked: {role}"
    assert f"DROP OWNED BY {role}; DROP ROLE {role};" in result.stderr
    assert role_row(dsn, role)[0] is False
    [listed] = ok_json("roles", "list", "--dsn", dsn)
    assert listed["role_name"] == role and listed["revoked_at"] is not None
    table = invoke("roles", "list", "--dsn", dsn)
    assert table.exit_code == 0 and role in table.stdout

    assert_one_line_error(invoke("roles", "rotate", role, "--dsn", dsn), "revoked")
    assert ok_json("roles", "revoke", role, "--dsn", dsn) == {"role_name": role, "revoked": True}


@pytest.mark.parametrize("args, fragments", [
    (("revoke", '"; DROP ROLE postgres; --'), ('"; DROP ROLE postgres; --', "is not a worker role")),
    (("rotate", "no_such_role"), ("no_such_role", "is not a worker role")),
    (("rotate", "no_such_role", "--namespace", "billing"), ("namespace 'billing'",)),
    (("provision", "orders", "--password", "short"), ("12 to 1000 characters",)),
    (("provision", ""), ("invalid stream name",)),
])
def test_expected_failures_are_one_line_on_stderr(dsn, args, fragments):
    assert_one_line_error(invoke("roles", *args, "--dsn", dsn), *fragments)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'").fetchone() == (True,)
        assert conn.execute("SELECT to_regclass('durable.messages') IS NOT NULL").fetchone() == (True,)


def test_a_database_without_the_schema_is_one_line_on_stderr(empty_dsn):
    assert_one_line_error(invoke("roles", "list", "--dsn", empty_dsn), "pgdurable db upgrade")


def test_roles_commands_read_pgdurable_dsn(dsn, monkeypatch):
    monkeypatch.setenv("PGDURABLE_DSN", dsn)
    role = ok_json("roles", "provision", "orders")["role_name"]
    assert [r["role_name"] for r in ok_json("roles", "list")] == [role]
