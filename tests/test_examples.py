"""Every example in examples/ runs: its ``main(dsn)`` returns what it promises, and
``python examples/<name>.py`` works as a script against an empty database."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"pgdurable_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_order_workflow_returns_the_receipt(dsn):
    assert await load("order_workflow").main(dsn) == "receipt-order-123"


async def test_approval_is_automatic_signalled_or_expired(dsn):
    result = await load("approval").main(dsn)
    assert {request_id.split("-")[0]: status for request_id, status in result.items()} == {
        "coffee": "auto-approved", "laptop": "approved", "yacht": "expired"}


async def test_fan_out_gathers_activities_and_child_workflows(dsn):
    result = await load("fan_out").main(dsn)
    assert result["status"] == "reserved"
    lines = result["lines"]
    assert [line["reservation"] for line in lines] == ["res-apple-10", "res-pear-4", "res-plum-5"]
    children = {line["by"] for line in lines}
    assert len(children) == 3  # one child workflow per line


async def test_saga_compensates_failed_and_cancelled_trips_in_reverse(dsn):
    result = await load("saga").main(dsn)
    assert result["confirmed"]["status"] == "completed"
    assert result["confirmed"]["compensations"] == []
    assert result["failed"]["status"] == "failed"
    assert "no cars left" in result["failed"]["error"]
    assert result["failed"]["compensations"] == ["cancel_hotel", "cancel_flight"]
    assert result["cancelled"]["status"] == "cancelled"
    assert result["cancelled"]["compensations"] == ["cancel_car", "cancel_hotel", "cancel_flight"]


async def test_nightly_report_is_scheduled_at_3_in_paris_triggered_and_its_heartbeat_fired(dsn):
    from zoneinfo import ZoneInfo

    result = await load("nightly_report").main(dsn)
    paris = [fire.astimezone(ZoneInfo("Europe/Paris")) for fire in result["fires"]]
    assert len(paris) == 5 and all((p.hour, p.minute) == (3, 0) for p in paris), paris
    assert result["report"] == "report for eu: all green"
    assert result["heartbeats"] >= 3
    assert sorted(result["listed"].values()) == [False, True]  # the nightly one active, the heartbeat paused


async def test_rate_limited_paces_the_calls_and_dedups_the_campaign(dsn):
    result = await load("rate_limited").main(dsn)
    assert result["sent"] == 12
    assert result["same_campaign"] is True
    assert result["most_at_once"] == 2, "max_running 2: two at once, never three"
    assert result["most_in_one_second"] == 5, "a rate of 5 per second, reached"
    assert result["limits"] == [{"stream": "mail-activity", "max_running": 2, "rate_limit": 5,
                                 "rate_period": 1.0}]


def test_every_example_has_a_test():
    names = {path.stem for path in EXAMPLES.glob("*.py")}
    assert names == {"order_workflow", "approval", "fan_out", "saga", "nightly_report", "rate_limited"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["order_workflow", "approval", "fan_out", "saga", "nightly_report",
                                  "rate_limited"])
def test_example_runs_as_a_script_and_migrates_an_empty_database(empty_dsn, name):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["PGDURABLE_DSN"] = empty_dsn
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip()
