"""The DBA guide (README's "Worker roles (DBA guide)" section) works as written: its ```sql
blocks, pasted into the server's own psql in order, provision, list, rotate, revoke and clean up
against a freshly migrated database; its Python snippet compiles; the shell commands it shows exist."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from pgdurable import Durable, cli

pytestmark = pytest.mark.sql  # also run on Debian Postgres 15 by scripts/test

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "## Worker roles (DBA guide)"


def guide() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(HEADING)
    end = text.find("\n## ", start + len(HEADING))
    return text[start:] if end < 0 else text[start:end]


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", guide(), re.M | re.S)


def worker_roles(dsn: str) -> list[tuple[str, list[str], bool, bool, bool]]:
    """(role, streams, rotated, revoked, still in the cluster) of every worker role of the database."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [tuple(row) for row in conn.execute(
            "SELECT c.role_name, c.stream_names, c.rotated_at IS NOT NULL, c.revoked_at IS NOT NULL, "
            "       EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = c.role_name) "
            "FROM durable.list_worker_roles() c ORDER BY c.created_at, c.role_name")]


def test_the_guide_is_a_readme_section():
    assert guide().startswith(HEADING)


def test_the_guides_psql_session_runs_as_written(empty_dsn, pg_bin_dir):
    Durable.migrate(empty_dsn)
    script = "\n".join(blocks("sql"))
    assert len(blocks("sql")) == 2 and "provision_worker_role" in script and "DROP ROLE" in script
    try:
        run = subprocess.run([str(pg_bin_dir / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-d", empty_dsn],
                             input=script, capture_output=True, text=True, timeout=60, check=False)
        assert run.returncode == 0, run.stderr
        assert "ERROR" not in run.stderr, run.stderr

        (worker, worker_streams, rotated, worker_revoked, worker_exists), \
            (activity, activity_streams, _, activity_revoked, activity_exists) = worker_roles(empty_dsn)
        assert worker_streams == ["orders", "orders-activity"] and activity_streams == ["orders-activity"]
        assert rotated and not worker_revoked and worker_exists  # provisioned, rotated, still active
        assert activity_revoked and not activity_exists  # revoked, then dropped by the cleanup block
        assert f"worker role {worker}, password " in run.stdout and "new password " in run.stdout
        assert activity in run.stdout  # listed, then shown as revoked
    finally:
        with psycopg.connect(empty_dsn, autocommit=True) as conn:
            for (role,) in conn.execute("SELECT c.role_name FROM durable.list_worker_roles() c "
                                        "JOIN pg_roles r ON r.rolname = c.role_name").fetchall():
                conn.execute(sql.SQL("DROP OWNED BY {0}; DROP ROLE {0}").format(sql.Identifier(role)))


def test_the_guides_python_snippet_compiles():
    [snippet] = blocks("python")
    compile(snippet, str(README), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    assert "worker_credentials=cred" in snippet


@pytest.mark.parametrize("command", ["provision", "list", "rotate", "revoke"])
def test_the_guides_shell_commands_exist(command):
    [shell] = blocks("sh")
    assert f"pgdurable roles {command} " in shell
    result = CliRunner().invoke(cli.app, ["roles", command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--dsn" in result.stdout
