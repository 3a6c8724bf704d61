"""The embedded server keeps its port and data across restarts and stops cleanly."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psycopg
import pytest

from pgdurable.embedded import EmbeddedPostgres


@pytest.fixture
def server(tmp_path: Path):
    if os.environ.get("PGDURABLE_TEST_DSN"):
        pytest.skip("testing against an external server")
    data_dir = tmp_path / "data"
    server = EmbeddedPostgres(data_dir, settings={"fsync": "off", "application_name": "x y"})
    yield server
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def test_embedded_server_keeps_port_and_data_across_restart(server):
    server.start()
    assert server.is_running()
    port = server.port
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x int)")
        settings = conn.execute(
            "SELECT current_setting('max_connections'), current_setting('fsync'),"
            " current_setting('unix_socket_directories')"
        ).fetchone()
    assert settings == ("300", "off", str(server.data_dir))

    server.restart()
    assert server.port == port
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('kept') IS NOT NULL").fetchone() == (True,)

    server.stop()
    assert not server.is_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.dsn(), connect_timeout=2).close()


def test_a_second_handle_adopts_the_running_server(server):
    server.start()
    other = EmbeddedPostgres(server.data_dir)
    assert other.is_running()
    other.start()  # no second postmaster: it adopts the running one
    assert other.port == server.port
    assert other.dsn("template1") == server.dsn("template1")


def test_bin_dir_holds_the_servers_own_client_tools(server):
    server.start()
    for tool in ("psql", "pg_dump", "pg_ctl"):
        assert (server.bin_dir / tool).exists()
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000
    assert (server.bin_dir.parent / "share").is_dir()
    assert major >= 18


def test_the_dev_server_takes_its_port_from_pgdurable_dev_port(tmp_path, monkeypatch):
    from pgdurable.embedded import dev_server, free_port_in
    from support.db import TEST_PORTS

    port = free_port_in(TEST_PORTS)
    monkeypatch.setenv("PGDURABLE_DEV_DATA_DIR", str(tmp_path / "dev"))  # this test's own dev server
    monkeypatch.delenv("PGDURABLE_DSN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("PGDURABLE_DEV_PORT", str(port))
    with dev_server() as dsn:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SHOW port").fetchone()
    assert row is not None and int(row[0]) == port


def test_a_pgdurable_dev_port_that_is_no_port_is_a_clear_error(monkeypatch):
    from pgdurable.embedded import EmbeddedPostgresError, dev_port

    monkeypatch.setenv("PGDURABLE_DEV_PORT", "eighty")
    with pytest.raises(EmbeddedPostgresError, match="PGDURABLE_DEV_PORT='eighty' is not a TCP port"):
        dev_port()
