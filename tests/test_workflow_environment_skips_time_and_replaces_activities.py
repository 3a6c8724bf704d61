"""pgdurable.testing.WorkflowEnvironment: its own database, time skipping, env.sleep, activity doubles,
and the durable_env fixture of the pytest plugin."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import time
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgdurable import Durable, _registry, errors
from pgdurable.testing import WorkflowEnvironment
from support.history import wait_event

REPO_ROOT = Path(__file__).resolve().parents[1]


async def subscription_workflow(customer: str) -> dict[str, Any]:
    started = Durable.workflow.now()
    await Durable.workflow.sleep("30 days")
    renewed = await Durable.workflow.condition(f"renew-{customer}", timeout="2 days")
    return {"renewed": renewed, "days": (Durable.workflow.now() - started) / timedelta(days=1)}


async def one_day_workflow() -> float:
    started = Durable.workflow.now()
    await Durable.workflow.sleep("1 day")
    return (Durable.workflow.now() - started) / timedelta(days=1)


async def charge_card(order_id: str) -> str:
    raise RuntimeError(f"the real card of {order_id} was charged in a test")


async def checkout_workflow(order_id: str) -> str:
    acts = Durable.workflow.proxy_activities(activities=[charge_card])
    return await acts.charge_card(order_id)


@pytest.fixture
def server_env(pg_admin_dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Environments make their databases on the session's server (not a second embedded one)."""
    monkeypatch.setenv("PGDURABLE_TEST_DSN", pg_admin_dsn)
    return pg_admin_dsn


def _database_exists(admin_dsn: str, name: str) -> bool:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


async def test_a_30_day_sleep_and_a_2_day_signal_timeout_finish_in_under_2_seconds(server_env: str) -> None:
    async with WorkflowEnvironment(workflows=[subscription_workflow], time_skipping=True) as env:
        began = time.monotonic()
        handle = await env.client.workflow.start(
            args=["ada"], task_queue=env.task_queue, workflow_name="subscription_workflow",
            workflow_id=Durable.guid())
        result = await handle.result(timeout=10)
        elapsed = time.monotonic() - began
        name = psycopg.conninfo.conninfo_to_dict(env.dsn)["dbname"]
        assert _database_exists(server_env, name)
    assert result["renewed"] is False  # the condition timed out
    assert result["days"] >= 32  # workflow time followed the engine clock
    assert elapsed < 2, f"took {elapsed:.2f} s"
    assert not _database_exists(server_env, name), "the environment drops the database it made"


async def test_env_sleep_moves_the_engine_clock_on_purpose(server_env: str) -> None:
    async with WorkflowEnvironment(workflows=[one_day_workflow]) as env:
        handle = await env.client.workflow.start(
            task_queue=env.task_queue, workflow_name="one_day_workflow", workflow_id=Durable.guid())
        await wait_event(handle, "timer_started")
        with pytest.raises(TimeoutError):
            await handle.result(timeout=0.3)  # no time skipping: the timer waits for the clock
        before = await env.now()
        await env.sleep("1 day")
        assert await env.now() - before >= timedelta(days=1)
        assert await handle.result(timeout=10) >= 1


async def test_an_activity_double_replaces_the_real_activity_by_name(server_env: str) -> None:
    async def fake_charge(order_id: str) -> str:
        return f"fake-receipt-{order_id}"

    async with WorkflowEnvironment(workflows=[checkout_workflow],
                                   activities={"charge_card": fake_charge}) as env:
        handle = await env.client.workflow.start(
            args=["o-1"], task_queue=env.task_queue, workflow_name="checkout_workflow",
            workflow_id=Durable.guid())
        assert await handle.result(timeout=10) == "fake-receipt-o-1"
    assert _registry.get("charge_card") is charge_card, "the double is gone once the environment closes"


async def test_a_given_database_is_migrated_and_kept(empty_dsn: str) -> None:
    async with WorkflowEnvironment(workflows=[one_day_workflow], time_skipping=True, dsn=empty_dsn) as env:
        handle = await env.client.workflow.start(
            task_queue=env.task_queue, workflow_name="one_day_workflow", workflow_id=Durable.guid())
        assert await handle.result(timeout=10) >= 1
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT status FROM durable.workflows WHERE workflow_id = %s",
                           [handle.workflow_id]).fetchone()
    assert row == ("completed",), "the database given is the caller's: the environment leaves it be"


async def test_an_environment_used_before_it_starts_says_how_to_start_it() -> None:
    env = WorkflowEnvironment()
    with pytest.raises(errors.TestEnvironmentError, match="async with WorkflowEnvironment"):
        _ = env.client


def test_pyproject_registers_the_plugin_under_pytest11() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["entry-points"]["pytest11"] == {"pgdurable": "pgdurable._pytest_plugin"}


def _readme_example_test() -> str:
    """The README's example test file (the block after the "Testing workflows" heading's marker)."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("# test_subscription.py")
    return text[start:text.index("```", start)]


def test_the_readme_example_test_passes_through_the_durable_env_fixture(
        server_env: str, tmp_path: Path) -> None:
    (tmp_path / "test_subscription.py").write_text(_readme_example_test(), encoding="utf-8")
    installed = any(ep.value == "pgdurable._pytest_plugin"
                     for ep in importlib.metadata.entry_points(group="pytest11"))
    plugin = [] if installed else ["-p", "pgdurable._pytest_plugin"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "python"),
                                                        os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin,
                           "-o", "asyncio_mode=strict", str(tmp_path / "test_subscription.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout, done.stdout
