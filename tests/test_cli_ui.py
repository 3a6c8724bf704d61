"""``pgdurable ui``: serves the dashboard; on a non-local address it makes up an access token,
prints it in the URL and refuses requests without it; ``--codec`` decodes payloads; a missing
extra is named with what to install."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the dashboard's extra (pip install 'pgdurable[ui]') is missing")

from tests.support.cli import assert_one_line_error, invoke, restore_logging  # noqa: E402, F401
from tests.support.db import TEST_PORTS, free_port  # noqa: E402
from tests.support.polling import wait_until  # noqa: E402
from tests.support.rot13 import Rot13  # noqa: E402

from pgdurable import Durable, payloads  # noqa: E402
from pgdurable.cli import ui as ui_command  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:  # not listening yet
        return 0, ""


@contextlib.contextmanager
def serve(dsn: str, tmp_path: Path, *args: str,
          env: dict[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """``pgdurable ui ARGS`` on the test's database: (its base URL on 127.0.0.1, the URL it printed).
    A port taken between our check and its bind (by another test's server) is tried again."""
    taken: set[int] = set()
    for _ in range(5):
        port = next(p for p in TEST_PORTS if p not in taken and _is_free(p))
        out = tmp_path / f"ui-{port}.out"
        with out.open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pgdurable.cli", "ui", "--dsn", dsn, "--port", str(port), *args],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                env={**os.environ, "COLUMNS": "300", **(env or {})})
        try:
            url = _served_url(proc, out, f"http://127.0.0.1:{port}/")
            if url is not None:
                yield f"http://127.0.0.1:{port}/", url
                return
            taken.add(port)
        finally:
            proc.terminate()
            proc.wait(15)
    raise AssertionError(f"pgdurable ui found no port to bind (tried {sorted(taken)})")


def _is_free(port: int) -> bool:
    try:
        return free_port(range(port, port + 1)) == port
    except RuntimeError:
        return False


def _served_url(proc: subprocess.Popen[bytes], out: Path, base: str) -> str | None:
    """The URL ``pgdurable ui`` printed, once it answers there; None if it exited because its
    port was taken."""
    def answers() -> bool:
        return proc.poll() is not None or fetch(base + "static/dashboard.css")[0] in (200, 401)

    wait_until(answers, "the dashboard to answer or exit")
    text = out.read_text()
    if proc.poll() is not None:
        assert "address already in use" in text, text
        return None
    found = re.search(r"http://[^\s;]+", text)
    assert found, text
    return found.group(0)


@pytest.fixture
def served(dsn: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``pgdurable ui --host 0.0.0.0 --codec ...``."""
    with serve(dsn, tmp_path, "--host", "0.0.0.0", "--codec", "tests.support.rot13:Rot13") as found:
        yield found


async def test_on_a_non_local_address_the_url_carries_a_new_token_that_every_request_needs(dsn, served):
    base, url = served
    token = url.split("?token=", 1)[1]
    assert len(token) >= 24 and url.startswith("http://0.0.0.0:")
    status, text = fetch(base)
    assert status == 401 and "access token required" in text
    assert fetch(base, {"Authorization": "Bearer wrong"})[0] == 401
    payloads.register_codec(Rot13())
    connection = Durable.Connection(dsn)
    try:
        client = Durable.Client(connection=connection)
        await client.workflow.start(args=[{"secret": "plans"}], task_queue="nobody-q",
                                    workflow_name="somewhere", workflow_id="coded")
    finally:
        payloads.register_codec(None)
        await connection.close()
    status, text = fetch(base + "workflows/coded", {"Authorization": f"Bearer {token}"})
    assert status == 200
    assert "plans" in text and "encoded payload" not in text  # decoded with --codec


def test_a_missing_extra_is_named_with_what_to_install(monkeypatch, restore_logging):  # noqa: F811
    monkeypatch.setattr(ui_command, "UI_MODULES", ("starlette", "no_such_module_for_pgdurable"))
    assert_one_line_error(invoke("ui"), "no_such_module_for_pgdurable", "pip install 'pgdurable[ui]'")


def test_a_codec_that_is_none_is_refused(restore_logging):  # noqa: F811
    assert_one_line_error(invoke("ui", "--codec", "tests.support.rot13:_PLAIN"), "is not a codec")


def test_a_token_from_the_environment_is_required_even_on_localhost_and_read_only_refuses_posts(
        dsn, tmp_path):
    with serve(dsn, tmp_path, "--read-only", env={"PGDURABLE_UI_TOKEN": "from-env-token"}) as (base, url):
        assert url == f"{base}?token=from-env-token"
        assert fetch(base)[0] == 401
        status, text = fetch(base, {"Authorization": "Bearer from-env-token"})
        assert status == 200 and 'id="read-only"' in text
        request = urllib.request.Request(base + "actions/cancel/x", data=b"csrf=x&confirmed=yes",
                                         headers={"Authorization": "Bearer from-env-token"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403 and "read-only" in refused.value.read().decode()


@pytest.mark.slow
def test_without_a_dsn_it_serves_the_dev_server_and_sigterm_stops_both(tmp_path):
    from pgdurable.embedded import EmbeddedPostgres

    data_dir = tmp_path / "dev"
    dev_port = free_port()
    env = {**os.environ, "PGDURABLE_DEV_DATA_DIR": str(data_dir), "PGDURABLE_DEV_PORT": str(dev_port),
           "COLUMNS": "300"}
    for name in ("PGDURABLE_DSN", "DATABASE_URL"):
        env.pop(name, None)
    server = EmbeddedPostgres(data_dir)
    try:
        bare = subprocess.run([sys.executable, "-m", "pgdurable.cli", "ui"], env=env, capture_output=True,
                              text=True, timeout=120)
        assert bare.returncode == 1 and "pgdurable db upgrade" in bare.stderr, bare.stderr
        assert not server.is_running()
        upgrade = subprocess.run([sys.executable, "-m", "pgdurable.cli", "db", "upgrade"], env=env,
                                 capture_output=True, text=True, timeout=120)
        assert upgrade.returncode == 0, upgrade.stderr
        port = free_port(range(dev_port + 1, TEST_PORTS.stop))  # not the dev server's, stopped now
        proc = subprocess.Popen([sys.executable, "-m", "pgdurable.cli", "ui", "--port", str(port)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_until(lambda: fetch(f"http://127.0.0.1:{port}/workers")[0] == 200, "the dashboard to serve",
                       timeout=60)
            assert server.is_running()
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "stopped." in out
        assert not server.is_running()
    finally:
        server.stop()
