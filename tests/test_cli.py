"""The `pgdurable` command line against a real database.

Workflow commands run in-process (typer's CliRunner) against workflows
served by `pgdurable worker` in a subprocess, so the worker command itself
is exercised too. Expected failures must be one line on stderr, exit 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from conftest import dsn_for
from pgdurable import cli
from pgdurable._migrate import current, head
from support.cli import assert_one_line_error, invoke, ok_json, restore_logging  # noqa: F401
from support.polling import wait_until as wait_for

pytestmark = pytest.mark.usefixtures("restore_logging")  # the CLI configures logging per run

DEADLINE = 30.0
EVENT_TYPES = {
    "workflow_started", "workflow_completed", "workflow_failed", "workflow_cancelled",
    "workflow_interrupted", "workflow_continued_as_new", "workflow_task_failed", "cancel_requested",
    "activity_scheduled", "activity_failed", "activity_completed", "timer_started", "timer_fired",
    "timer_cancelled", "signal_wait_started", "signal_received", "signal_timed_out", "signal_sent",
    "child_started", "child_completed", "child_failed", "patch_marker", "workflow_reset",
    "external_signal_sent", "external_cancel_sent", "external_interrupt_sent",
}
REFUSED_DSN = "postgresql://postgres@127.0.0.1:1/postgres"

WORKER_APP = '''
from pgdurable import Durable, errors


async def shout(text: str) -> str:
    return text.upper()


async def greet_workflow(name: str) -> str:
    acts = Durable.workflow.proxy_activities(activities=[shout])
    return await acts.shout(f"hello {name}")


async def waiting_workflow(signal_id: str):
    return await Durable.workflow.condition(signal_id)


async def sleepy_workflow() -> str:
    acts = Durable.workflow.proxy_activities(activities=[shout])
    try:
        await Durable.workflow.sleep("1 hour")
    except errors.CancelledFailure:
        await acts.shout("cleaning up")
        raise
    return "woke up"


async def start(connection):
    await Durable.Worker.create(connection=connection, task_queue="cli-tests",
                                workflows=[greet_workflow, waiting_workflow, sleepy_workflow])


async def start_nothing():
    pass


def not_async(connection):
    pass
'''


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "cli_app.py").write_text(textwrap.dedent(WORKER_APP))
    return tmp_path


def _cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pgdurable.cli", *args]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PGDURABLE_DSN", "DATABASE_URL")}
    env.update(extra)
    env.setdefault("COLUMNS", "200")
    return env


@pytest.fixture
def worker(dsn: str, app_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """`pgdurable worker cli_app:start --dsn DSN`, serving once yielded; stopped with SIGTERM at the
    end, which must end it gracefully (exit 0)."""
    with worker_process(dsn, app_dir) as proc:
        yield proc


@contextlib.contextmanager
def worker_process(dsn: str, app_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """The `worker` fixture's process, for a test that stops it itself (at the block's end)."""
    proc = subprocess.Popen(_cli_command("worker", "cli_app:start", "--dsn", dsn, "--grace", "5"),
                            cwd=app_dir, env=_clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stderr is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("serving task queue(s) cli-tests" in line for line in lines) or proc.poll(),
                 "the worker to serve")
        assert proc.poll() is None, "".join(lines)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("the worker did not stop on SIGTERM:\n" + "".join(lines)) from None
        reader.join(5)
    err = "".join(lines)
    assert proc.returncode == 0, f"worker exited {proc.returncode}:\n{err}"
    assert "stopped." in err


def start(dsn: str, workflow: str, *args: Any) -> str:
    out = ok_json("workflow", "start", workflow, "--task-queue", "cli-tests",
                  "--args", json.dumps(list(args)), "--dsn", dsn)
    return out["workflow_id"]


def state(dsn: str, workflow_id: str) -> dict[str, Any]:
    return ok_json("workflow", "show", "--dsn", dsn, "--", workflow_id)  # a guid may start with '-'


def wait_status(dsn: str, workflow_id: str, status: str) -> dict[str, Any]:
    return wait_for(lambda: (s := state(dsn, workflow_id))["status"] == status and s,
                    f"{workflow_id} to be {status}")


# -- db ----------------------------------------------------------------------------

def test_db_upgrade_then_current_report_the_head_revision(empty_dsn):
    assert invoke("db", "current", "--dsn", empty_dsn).stdout.strip() == "none"
    result = invoke("db", "upgrade", "--dsn", empty_dsn)
    assert result.exit_code == 0, result.output
    assert current(empty_dsn) == head()
    assert invoke("db", "current", "--dsn", empty_dsn).stdout.strip() == head()


# -- workflow commands on real workflows ------------------------------------------------

def test_workflow_start_wait_list_show_and_history_print_parseable_json(dsn, worker):
    out = ok_json("workflow", "start", "greet_workflow", "--task-queue", "cli-tests", "--args", '["ada"]',
                  "--id", "greet-1", "--wait", "--timeout", "30", "--dsn", dsn)
    assert out == {"workflow_id": "greet-1", "result": "HELLO ADA", "status": "completed"}

    rows = ok_json("workflow", "list", "--dsn", dsn)
    assert [row["workflow_id"] for row in rows] == ["greet-1"]
    assert set(rows[0]) >= {"workflow_id", "workflow_name", "task_queue", "status", "created_at",
                            "updated_at"}
    assert rows[0]["workflow_name"] == "greet_workflow"
    assert rows[0]["status"] == "completed"
    assert ok_json("workflow", "list", "--status", "running", "--dsn", dsn) == []
    assert ok_json("workflow", "list", "--namespace", "elsewhere", "--dsn", dsn) == []

    shown = state(dsn, "greet-1")
    assert shown["status"] == "completed"
    assert shown["result"] == "HELLO ADA"
    assert shown["workflow_name"] == "greet_workflow"
    assert shown["task_queue"] == "cli-tests"
    assert shown["pending"] == []

    events = ok_json("workflow", "history", "greet-1", "--dsn", dsn)
    types = [event["event_type"] for event in events]
    assert types == ["workflow_started", "activity_scheduled", "activity_completed", "workflow_completed"]
    assert all(event["event_type"] in EVENT_TYPES for event in events)
    ids = [event["event_id"] for event in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all("timestamp" in event for event in events)

    # The same commands as tables.
    for args in (("list",), ("show", "greet-1"), ("history", "greet-1")):
        result = invoke("workflow", *args, "--dsn", dsn)
        assert result.exit_code == 0, result.output
        assert "greet" in result.stdout
    assert "activity_completed" in invoke("workflow", "history", "greet-1", "--dsn", dsn).stdout


def test_workflow_signal_delivers_json_data_to_a_waiting_condition(dsn, worker):
    workflow_id = start(dsn, "waiting_workflow", "cli-signal-1")
    wait_for(lambda: any(p.get("signal_id") == "cli-signal-1" for p in state(dsn, workflow_id)["pending"]),
             "the condition to wait")
    data = '{"approved": true, "n": 2}'
    result = invoke("workflow", "signal", "cli-signal-1", "--data", data, "--dsn", dsn)
    assert result.exit_code == 0, result.output
    assert wait_status(dsn, workflow_id, "completed")["result"] == {"approved": True, "n": 2}


def test_workflow_signal_without_a_waiter_is_buffered_until_one_waits(dsn, worker):
    sent = ok_json("workflow", "signal", "cli-early", "--dsn", dsn)
    assert sent == {"signal_id": "cli-early", "sent": True}
    workflow_id = start(dsn, "waiting_workflow", "cli-early")
    assert wait_status(dsn, workflow_id, "completed")["result"] is None


def test_workflow_cancel_lets_the_workflow_clean_up_and_end_cancelled(dsn, worker):
    workflow_id = start(dsn, "sleepy_workflow")
    wait_for(lambda: any(p["type"] == "timer" for p in state(dsn, workflow_id)["pending"]), "the timer")
    result = invoke("workflow", "cancel", "--dsn", dsn, "--", workflow_id)
    assert result.exit_code == 0, result.output
    wait_status(dsn, workflow_id, "cancelled")
    types = [e["event_type"] for e in ok_json("workflow", "history", "--dsn", dsn, "--", workflow_id)]
    assert "cancel_requested" in types
    assert "activity_completed" in types  # the cleanup activity ran
    assert types[-1] == "workflow_cancelled"

    again = invoke("workflow", "cancel", "--dsn", dsn, "--", workflow_id)
    assert_one_line_error(again, "cancelled, not running")

    shown = invoke("workflow", "show", "--dsn", dsn, "--", workflow_id)
    assert shown.exit_code == 0, shown.output
    assert "cancelled" in shown.stdout
    assert "Traceback" not in shown.output


def test_workflow_interrupt_stops_a_waiting_workflow_at_once(dsn, worker):
    workflow_id = start(dsn, "waiting_workflow", "cli-never")
    wait_for(lambda: any(p["type"] == "condition" for p in state(dsn, workflow_id)["pending"]),
             "the workflow to wait")
    out = ok_json("workflow", "interrupt", "--reason", "operator said so", "--dsn", dsn, "--", workflow_id)
    assert out == {"workflow_id": workflow_id, "status": "interrupted"}
    shown = state(dsn, workflow_id)
    assert shown["status"] == "interrupted"
    assert "operator said so" in json.dumps(shown["error"])


def test_workflow_show_of_a_workflow_no_worker_serves_says_what_it_waits_for(dsn):
    workflow_id = start(dsn, "unserved_workflow")
    result = invoke("workflow", "show", "--dsn", dsn, "--", workflow_id)
    assert result.exit_code == 0, result.output
    assert "running" in result.stdout
    assert "a worker serving workflow 'unserved_workflow' on task queue 'cli-tests'" in result.stdout
    assert "no live worker serves workflow 'unserved_workflow'" in result.stdout


def test_workflow_start_wait_that_times_out_says_so_and_why(dsn, worker):
    args = ("workflow", "start", "unserved_workflow", "--task-queue", "cli-tests", "--wait", "--timeout", "1",
            "--dsn", dsn)
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    assert "timed out after 1 s" in result.stdout
    assert "no live worker serves workflow 'unserved_workflow'" in result.stdout
    out = json.loads(invoke(*args, "--json").stdout)
    assert out["status"] == "running" and out["timed_out"] is True
    assert "no live worker serves workflow 'unserved_workflow'" in out["waiting_for"]


def test_worker_list_shows_the_running_worker_live_then_stopped(dsn, app_dir):
    with worker_process(dsn, app_dir):
        rows = ok_json("worker", "list", "--dsn", dsn)
        assert [(r["task_queue"], r["live"]) for r in rows] == [("cli-tests", True)]
        assert rows[0]["workflow_names"] == ["greet_workflow", "sleepy_workflow", "waiting_workflow"]
        assert rows[0]["namespace"] == "durable"
        table = invoke("worker", "list", "--dsn", dsn)
        assert table.exit_code == 0, table.output
        assert "cli-tests" in table.stdout and "greet_workflow" in table.stdout and "live" in table.stdout
    [row] = ok_json("worker", "list", "--dsn", dsn)
    assert row["live"] is False and row["stopped_at"] is not None
    assert ok_json("worker", "list", "--live", "--dsn", dsn) == []
    assert ok_json("worker", "list", "--namespace", "elsewhere", "--dsn", dsn) == []
    assert "no live workers" in invoke("worker", "list", "--live", "--dsn", dsn).stdout



@contextlib.contextmanager
def supervised_workers(dsn: str, app_dir: Path, processes: int) -> Iterator[tuple[subprocess.Popen[str],
                                                                                    list[str]]]:
    """`pgdurable worker cli_app:start --processes N`, once every process serves; yields the supervisor
    and its stderr lines so far (growing). SIGTERM at the block's end must stop it gracefully."""
    proc = subprocess.Popen(_cli_command("worker", "cli_app:start", "--processes", str(processes),
                                         "--dsn", dsn, "--grace", "5"),
                            cwd=app_dir, env=_clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stderr is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any(f"all {processes} worker processes serve" in line for line in lines)
                 or proc.poll() is not None, "every worker process to serve")
        assert proc.poll() is None, "".join(lines)
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("the supervisor did not stop on SIGTERM:\n" + "".join(lines)) from None
        reader.join(5)
    err = "".join(lines)
    assert proc.returncode == 0, f"supervisor exited {proc.returncode}:\n{err}"
    assert err.count("] stopped.") == processes, err  # each child stopped gracefully
    assert err.rstrip().endswith("stopped."), err


def live_worker_pids(dsn: str) -> set[int]:
    return {row["pid"] for row in ok_json("worker", "list", "--live", "--dsn", dsn)}


def test_worker_processes_all_serve_complete_workflows_and_stop_on_sigterm(dsn, app_dir):
    with supervised_workers(dsn, app_dir, 2) as (supervisor, _):
        pids = live_worker_pids(dsn)
        assert len(pids) == 2 and supervisor.pid not in pids
        ids = [start(dsn, "greet_workflow", f"p{i}") for i in range(6)]
        for i, workflow_id in enumerate(ids):
            assert wait_status(dsn, workflow_id, "completed")["result"] == f"HELLO P{i}"
    rows = ok_json("worker", "list", "--dsn", dsn)
    assert {row["pid"] for row in rows} == pids
    assert all(row["stopped_at"] is not None and not row["live"] for row in rows)


def test_a_killed_worker_process_is_restarted_and_work_still_completes(dsn, app_dir):
    with supervised_workers(dsn, app_dir, 2) as (_, lines):
        before = live_worker_pids(dsn)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: any(f"(pid {victim}) died (killed by SIGKILL)" in line for line in lines),
                 "the supervisor to notice the killed worker process")
        # the killed worker still counts as live until 3 heartbeats pass: look for a new pid
        new = wait_for(lambda: live_worker_pids(dsn) - before, "the restarted worker process to register")
        assert len(new) == 1
        ids = [start(dsn, "greet_workflow", f"r{i}") for i in range(4)]
        for i, workflow_id in enumerate(ids):
            assert wait_status(dsn, workflow_id, "completed")["result"] == f"HELLO R{i}"


def test_a_worker_process_that_fails_before_serving_stops_the_supervisor_with_its_status(app_dir, dsn):
    proc = subprocess.run(_cli_command("worker", "cli_app:start_nothing", "--processes", "2", "--dsn", dsn),
                          cwd=app_dir, env=_clean_env(), capture_output=True, text=True, timeout=DEADLINE)
    assert proc.returncode == 1, proc.stderr
    assert "created no worker" in proc.stderr
    assert "exited before it served (exit status 1)" in proc.stderr
    assert "restarting" not in proc.stderr


def test_metrics_of_several_worker_processes_are_refused_with_what_to_do_instead(app_dir, dsn):
    proc = subprocess.run(_cli_command("worker", "cli_app:start", "--processes", "2",
                                       "--metrics-port", "9464", "--dsn", dsn),
                          cwd=app_dir, env=_clean_env(), capture_output=True, text=True, timeout=DEADLINE)
    assert proc.returncode != 0
    assert "--metrics-port serves the metrics of one process" in proc.stderr
    assert "each with its own --metrics-port" in proc.stderr


# -- errors --------------------------------------------------------------------------

@pytest.mark.parametrize("args", [("workflow", "list"), ("workflow", "show", "x"), ("db", "current"),
                                  ("db", "upgrade"), ("workflow", "signal", "s")])
def test_a_refused_connection_is_one_line_on_stderr(args):
    assert_one_line_error(invoke(*args, "--dsn", REFUSED_DSN), "cannot connect", "port 1")


def test_a_missing_database_is_one_line_on_stderr(pg_admin_dsn):
    missing = dsn_for(pg_admin_dsn, "pgdurable_no_such_database")
    assert_one_line_error(invoke("workflow", "list", "--dsn", missing), "cannot connect",
                          "pgdurable_no_such_database")


@pytest.mark.parametrize("args", [("workflow", "list"), ("workflow", "show", "x"),
                                  ("workflow", "signal", "s"), ("workflow", "history", "x")])
def test_an_unmigrated_database_says_to_run_db_upgrade(empty_dsn, args):
    assert_one_line_error(invoke(*args, "--dsn", empty_dsn), "pgdurable db upgrade")


@pytest.mark.parametrize("command", ["show", "history", "cancel", "interrupt"])
def test_an_unknown_workflow_id_is_one_line_on_stderr(dsn, command):
    assert_one_line_error(invoke("workflow", command, "no-such-workflow", "--dsn", dsn),
                          "'no-such-workflow' not found")


def test_invalid_json_data_is_a_usage_error(dsn):
    result = invoke("workflow", "signal", "s", "--data", "{nope", "--dsn", dsn)
    assert result.exit_code == 2
    assert "not valid JSON" in result.output


@pytest.mark.parametrize(("target", "fragment"), [
    ("cli_app", "expected MODULE:ATTR"),
    ("no_such_module_xyz:start", "cannot import 'no_such_module_xyz'"),
    ("cli_app:missing", "has no attribute 'missing'"),
    ("cli_app:not_async", "must be an async function"),
])
def test_worker_rejects_a_bad_target_in_one_line(app_dir, dsn, monkeypatch, target, fragment):
    monkeypatch.chdir(app_dir)
    monkeypatch.syspath_prepend(str(app_dir))
    assert_one_line_error(invoke("worker", target, "--dsn", dsn), fragment)


def test_worker_whose_function_creates_no_worker_fails_clearly(app_dir, dsn):
    proc = subprocess.run(_cli_command("worker", "cli_app:start_nothing", "--dsn", dsn), cwd=app_dir,
                          env=_clean_env(), capture_output=True, text=True, timeout=DEADLINE)
    assert proc.returncode == 1, proc.stderr
    assert "created no worker" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_worker_on_an_unmigrated_database_says_to_run_db_upgrade(app_dir, empty_dsn):
    proc = subprocess.run(_cli_command("worker", "cli_app:start", "--dsn", empty_dsn), cwd=app_dir,
                          env=_clean_env(), capture_output=True, text=True, timeout=DEADLINE)
    assert proc.returncode == 1, proc.stderr
    assert "pgdurable db upgrade" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- logging ---------------------------------------------------------------------------

def test_info_log_lines_show_with_verbose_only(dsn):
    args = ("workflow", "start", "anything", "--task-queue", "cli-tests", "--dsn", dsn)
    quiet = invoke(*args)
    assert quiet.exit_code == 0, quiet.output
    assert "pgdurable.client" not in quiet.stderr
    loud = invoke("-v", *args)
    assert loud.exit_code == 0, loud.output
    assert "pgdurable.client" in loud.stderr and "started" in loud.stderr


def test_help_names_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("demo", "dev", "db", "worker", "workflow", "ui"):
        assert command in result.stdout
    workflow_help = invoke("workflow", "--help").stdout
    for command in ("list", "show", "history", "signal", "cancel", "interrupt", "start"):
        assert command in workflow_help
    assert "list" in invoke("worker", "--help").stdout


def _command_paths(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in getattr(group, "commands", {}).items():
        yield from _command_paths(command, (*path, name))


def test_help_shows_no_value_type_beside_flags():
    import typer.main

    paths = list(_command_paths(typer.main.get_command(cli.app)))
    assert ("worker", "list") in paths and ("workflow", "start") in paths
    for path in paths:
        result = invoke(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.stdout, (path, result.stdout)
        assert "--help" in result.stdout


# -- demo ------------------------------------------------------------------------------

def _run_demo(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    proc = subprocess.run(_cli_command("demo", *args), env=env, capture_output=True, text=True, timeout=90)
    return proc, time.monotonic() - started


def _assert_demo_output(proc: subprocess.CompletedProcess[str], elapsed: float, limit: float = 60) -> None:
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert elapsed < limit
    out = proc.stdout
    assert "demo-order-1-" in out
    assert "activity_failed" in out  # the history of the order whose payment was retried
    assert "approved_by" in out  # the signalled workflow's result
    assert "the manager approves" in out
    assert "Traceback" not in proc.stderr


def test_demo_runs_to_completion_on_a_fresh_database(empty_dsn):
    proc, elapsed = _run_demo(["--dsn", empty_dsn], _clean_env())
    _assert_demo_output(proc, elapsed)
    assert current(empty_dsn) == head()
    rows = ok_json("workflow", "list", "--dsn", empty_dsn)
    assert len(rows) == 6 and {row["status"] for row in rows} == {"completed"}


@pytest.mark.slow
def test_demo_without_a_dsn_uses_the_embedded_dev_server_and_stops_it(tmp_path):
    from pgdurable.embedded import EmbeddedPostgres

    data_dir = tmp_path / "dev"
    server = EmbeddedPostgres(data_dir)
    try:
        proc, elapsed = _run_demo([], _clean_env(PGDURABLE_DEV_DATA_DIR=str(data_dir)))
        _assert_demo_output(proc, elapsed, limit=90)  # includes initdb of a new server
        assert server.is_initialized()
        assert not server.is_running()
    finally:
        server.stop()


def test_db_prune_removes_old_closed_runs_and_reports_them_as_json(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT durable.start_workflow_v1('durable', 'old', 'w', 'q', '[]')")
        conn.execute("SELECT durable.interrupt_workflow_v1('durable', 'old', 'done')")
        conn.execute("SELECT durable.start_workflow_v1('durable', 'live', 'w', 'q', '[]')")
        conn.execute("SELECT durable.advance_clock('31 days')")
    result = CliRunner().invoke(cli.app, ["db", "prune", "--older-than", "30 days", "--json", "--dsn", dsn])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["removed_runs"] == 1
    with psycopg.connect(dsn, autocommit=True) as conn:
        left = [row[0] for row in conn.execute("SELECT workflow_id FROM durable.workflows")]
    assert left == ["live"]


def test_db_prune_rejects_a_bad_retention_in_one_line(dsn):
    result = CliRunner().invoke(cli.app, ["db", "prune", "--older-than", "5 parsecs", "--dsn", dsn])
    assert result.exit_code != 0
    assert "--older-than" in result.output


@pytest.mark.parametrize("columns", ["80", "40", "200"])
def test_workflow_list_never_cuts_a_workflow_id_whatever_the_width(dsn, columns):
    ids = [f"demo-order-{n}-fuhrq-{'x' * 12}" for n in range(3)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        for workflow_id in ids:
            conn.execute("SELECT durable.start_workflow_v1('durable', %s, %s, %s, '[]')",
                         (workflow_id, "a_rather_long_workflow_name_for_a_narrow_terminal",
                          "a-task-queue-with-a-long-name"))
    result = CliRunner().invoke(cli.app, ["workflow", "list", "--dsn", dsn], env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    for workflow_id in ids:
        assert any(workflow_id in line for line in result.stdout.splitlines()), result.stdout
