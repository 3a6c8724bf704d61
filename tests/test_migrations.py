"""sql/ and the alembic migrations must build the same `durable` schema.

sql/ is the engine as it is now; migrations/ is how existing databases get
there. A change to one without the other fails here, compared with the
server's own pg_dump.
"""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from pgdurable._migrate import ADVISORY_LOCK_KEY, current, downgrade, head, migrate
from pgdurable._resources import engine_sql, migrations_dir

pytestmark = pytest.mark.sql

REPO_ROOT = Path(__file__).resolve().parents[1]

# Lines of a pg_dump that vary between runs or databases, not between schemas.
_VOLATILE = re.compile(
    r"""^(
        --.*                              # comments (dump headers, object banners)
      | SET\s.*                           # session settings
      | SELECT\ pg_catalog\.set_config.*  # search_path reset
      | \\(un)?restrict\s.*               # psql meta-commands with a random key (pg_dump >= 17.6)
    )$""",
    re.VERBOSE,
)


def schema_dump(pg_bin_dir: Path, dsn: str) -> str:
    """The normalised ``pg_dump --schema-only --schema=durable`` of one database."""
    result = subprocess.run(
        [
            str(pg_bin_dir / "pg_dump"),
            "--schema-only",
            "--schema=durable",
            "--no-tablespaces",
            "--dbname",
            dsn,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    return "\n".join(line for line in lines if line and not _VOLATILE.match(line)) + "\n"


def assert_same_schema(expected: str, actual: str, *, what: str) -> None:
    if expected != actual:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile="sql/ (engine_sql)",
                tofile=what,
                n=2,
            )
        )
        pytest.fail(
            f"schemas differ ({what}); run `python scripts/freeze_sql.py` or add a "
            f"migration delta:\n{diff[:8000]}"
        )


def durable_schema_exists(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'durable'").fetchone()
    return row is not None


def load_engine_sql(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute(engine_sql())  # type: ignore[arg-type]


def test_migrations_build_the_same_schema_as_sql_dir(make_database, pg_bin_dir):
    from_sql = make_database()
    from_migrations = make_database()

    load_engine_sql(from_sql)
    migrate(from_migrations)

    expected = schema_dump(pg_bin_dir, from_sql)
    assert "CREATE SCHEMA durable;" in expected  # the dump really saw the engine
    assert_same_schema(expected, schema_dump(pg_bin_dir, from_migrations), what="migrations")


def test_upgrade_downgrade_to_base_and_upgrade_again_is_clean(empty_dsn, pg_bin_dir):
    migrate(empty_dsn)
    first = schema_dump(pg_bin_dir, empty_dsn)
    assert durable_schema_exists(empty_dsn)

    downgrade(empty_dsn, "base")
    assert not durable_schema_exists(empty_dsn)
    assert current(empty_dsn) is None

    migrate(empty_dsn)
    assert current(empty_dsn) == head()
    assert_same_schema(first, schema_dump(pg_bin_dir, empty_dsn), what="upgrade after downgrade")


def test_current_reports_the_head_revision_after_migrate(empty_dsn):
    assert current(empty_dsn) is None
    migrate(empty_dsn)
    assert head() is not None
    assert current(empty_dsn) == head()
    assert (migrations_dir() / "versions" / f"{head()}.py").is_file()


def test_migrate_twice_is_a_no_op(empty_dsn, pg_bin_dir):
    migrate(empty_dsn)
    before = schema_dump(pg_bin_dir, empty_dsn)
    migrate(empty_dsn)
    assert schema_dump(pg_bin_dir, empty_dsn) == before


def test_a_session_holding_the_public_migration_lock_key_does_not_block_an_upgrade(empty_dsn):
    # Any role may take any advisory lock, and this key is in the public source: once the engine
    # exists, migrations serialise on a row of durable.secret instead, which no worker can lock.
    migrate(empty_dsn)
    with psycopg.connect(empty_dsn, autocommit=True) as squatter:
        squatter.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        upgrade = threading.Thread(target=migrate, args=(empty_dsn,), daemon=True)
        upgrade.start()
        upgrade.join(30)
        assert not upgrade.is_alive(), "the upgrade waited on the squatted advisory lock"


def test_version_table_lives_in_public_under_its_own_name(empty_dsn):
    migrate(empty_dsn)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT version_num FROM public.pgdurable_alembic_version").fetchone()
        assert row is not None and row[0] == head()
        assert conn.execute("SELECT to_regclass('public.alembic_version')").fetchone() == (None,)


def test_alembic_command_line_upgrades_and_downgrades_from_the_repo_root(empty_dsn):
    if not (REPO_ROOT / "alembic.ini").is_file():
        pytest.skip("not a source checkout")

    def alembic(*args: str) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "alembic", "-x", f"dsn={empty_dsn}", *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert result.returncode == 0, f"alembic {' '.join(args)} failed:\n{result.stderr}"

    alembic("upgrade", "head")
    assert durable_schema_exists(empty_dsn)
    assert current(empty_dsn) == head()

    alembic("downgrade", "base")
    assert not durable_schema_exists(empty_dsn)
    assert current(empty_dsn) is None
