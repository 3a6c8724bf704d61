"""Shared fixtures: a real Postgres per session, a fresh database per test.

The server is the embedded Postgres 18 (started once per session in a temp
directory, ``fsync=off``), or the server at ``PGDURABLE_TEST_DSN`` when set
(a superuser DSN: tests create databases and roles). The engine is loaded
once into the template database ``pgdurable_template``; each test that asks
for ``dsn`` gets its own clone, dropped afterwards.

Environment:
  PGDURABLE_TEST_DSN   use this server instead of the embedded one
  PGDURABLE_TEST_PORT  port for the embedded server (default: a free one)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pgdurable._resources import manifest_files

TEMPLATE_DB = "pgdurable_template"
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class PgServer:
    """The session's Postgres server."""

    admin_dsn: str  # superuser DSN (database "postgres" or the one given)
    bin_dir: Path | None  # this server's own client tools (pg_dump, psql), if found
    major: int  # server major version, e.g. 15 or 18
    embedded: bool


def dsn_for(admin_dsn: str, dbname: str) -> str:
    """The admin DSN pointed at another database (any libpq DSN form in, key=value out)."""
    return make_conninfo(admin_dsn, dbname=dbname)


def _server_major(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    return int(row[0]) // 10000


def _bin_dir_for_major(major: int) -> Path | None:
    """The client tools matching an external server: Debian's layout, else pg_dump on PATH."""
    debian = Path(f"/usr/lib/postgresql/{major}/bin")
    if (debian / "pg_dump").exists():
        return debian
    found = shutil.which("pg_dump")
    return Path(found).parent if found else None


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """The session's server: ``PGDURABLE_TEST_DSN``, or a fresh embedded Postgres."""
    external = os.environ.get("PGDURABLE_TEST_DSN")
    if external:
        major = _server_major(external)
        yield PgServer(external, _bin_dir_for_major(major), major, embedded=False)
        return

    from pgdurable.embedded import EmbeddedPostgres

    port = int(os.environ["PGDURABLE_TEST_PORT"]) if os.environ.get("PGDURABLE_TEST_PORT") else None
    data_dir = tmp_path_factory.mktemp("pg") / "data"
    server = EmbeddedPostgres(data_dir, port, settings={"fsync": "off"})
    server.start()
    try:
        admin = server.dsn()
        yield PgServer(admin, server.bin_dir, _server_major(admin), embedded=True)
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_dsn(pg_server: PgServer) -> str:
    """Superuser DSN of the session's server (database ``postgres`` for the embedded one)."""
    return pg_server.admin_dsn


@pytest.fixture(scope="session")
def pg_bin_dir(pg_server: PgServer) -> Path:
    """Directory of the server's own client tools (``pg_dump``, ``psql``); skips if unknown."""
    if pg_server.bin_dir is None:
        pytest.skip(f"no client tools found for Postgres {pg_server.major}")
    return pg_server.bin_dir


@pytest.fixture(scope="session")
def pg_major(pg_server: PgServer) -> int:
    """Major version of the session's server."""
    return pg_server.major


def _drop_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists:
            admin.execute(
                sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(name))
            )
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def load_engine(dsn: str) -> None:
    """Load sql/ (manifest order) into the database at ``dsn``, in one transaction.

    File by file, so an error names the file it comes from.
    """
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        for path in manifest_files():
            try:
                conn.execute(path.read_text(encoding="utf-8"))  # type: ignore[arg-type]
            except psycopg.Error as exc:
                raise RuntimeError(f"loading {path} failed: {exc}") from exc


@pytest.fixture(scope="session")
def pg_template(pg_admin_dsn: str) -> Iterator[str]:
    """Name of the template database holding the engine (built once per session)."""
    _drop_database(pg_admin_dsn, TEMPLATE_DB)
    with psycopg.connect(pg_admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
    try:
        load_engine(dsn_for(pg_admin_dsn, TEMPLATE_DB))
        with psycopg.connect(pg_admin_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true").format(
                    sql.Identifier(TEMPLATE_DB)
                )
            )
        yield TEMPLATE_DB
    finally:
        _drop_database(pg_admin_dsn, TEMPLATE_DB)


def _role_names(admin_dsn: str) -> set[str]:
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        return {row[0] for row in admin.execute("SELECT rolname FROM pg_roles")}


@pytest.fixture
def make_database(pg_admin_dsn: str) -> Iterator[Callable[..., str]]:
    """Factory: ``make_database(template=None) -> dsn`` of a new database, dropped after the test.

    Roles created during the test (worker roles are cluster-wide) are dropped
    too, after the databases.
    """
    created: list[str] = []
    roles_before = _role_names(pg_admin_dsn)

    def make(template: str | None = None) -> str:
        name = f"t_{uuid.uuid4().hex}"
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
        with psycopg.connect(pg_admin_dsn, autocommit=True) as admin:
            admin.execute(query)
        created.append(name)
        return dsn_for(pg_admin_dsn, name)

    yield make

    for name in created:
        _drop_database(pg_admin_dsn, name)
    new_roles = _role_names(pg_admin_dsn) - roles_before
    if new_roles:
        with psycopg.connect(pg_admin_dsn, autocommit=True) as admin:
            for role in sorted(new_roles):
                with contextlib.suppress(psycopg.Error):
                    admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def dsn(make_database: Callable[..., str], pg_template: str) -> str:
    """DSN of a fresh database holding the engine (a clone of the template), for this test only."""
    return make_database(template=pg_template)


@pytest.fixture
def empty_dsn(make_database: Callable[..., str]) -> str:
    """DSN of a fresh, empty database (no engine), for this test only."""
    return make_database()


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    """A sync, autocommit psycopg connection to this test's database."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture(autouse=True)
def _server_requirements(request: pytest.FixtureRequest) -> None:
    """Honour ``pg15only`` and ``requires_extension(name)`` (starts the server only if marked)."""
    if request.node.get_closest_marker("pg15only"):
        major = request.getfixturevalue("pg_major")
        if major != 15:
            pytest.skip(f"Postgres 15 only (server is {major})")
    for marker in request.node.iter_markers("requires_extension"):
        name = marker.args[0]
        admin = request.getfixturevalue("pg_admin_dsn")
        with psycopg.connect(admin, autocommit=True) as conn:
            row = conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = %s", [name]
            ).fetchone()
        if row is None:
            pytest.skip(f"extension {name} is not available on this server")
