"""The benchmark harness runs (``python -m bench --quick``): figures are printed, never asserted.

Only that the harness measures something and writes its JSON is checked here; no
peers (``--quick`` skips them), no timing assertions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `bench` is a top-level package of the repository, not of the wheel
    sys.path.insert(0, str(REPO))

from bench.__main__ import parse_args  # noqa: E402
from bench.common import as_url, bottleneck, percentile, summarize  # noqa: E402
from bench.report import summarize_pgdurable  # noqa: E402


def test_percentiles_and_summaries_are_computed_from_the_samples() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 100) == 2.0
    stats = summarize([5.0, 1.0, 3.0])
    assert (stats["median"], stats["min"], stats["max"]) == (3.0, 1.0, 5.0)


def test_quick_runs_skip_the_peers_and_default_to_one_run() -> None:
    args = parse_args(["--quick"])
    assert args.runs == 1
    assert "DBOS" not in args.selected and "PROCRASTINATE" not in args.selected
    assert parse_args([]).runs == 3


def test_a_key_value_dsn_becomes_a_url_for_the_sqlalchemy_based_peer() -> None:
    url = as_url("host=127.0.0.1 port=5432 user=me password=p@ss dbname=bench_x")
    assert url == "postgresql://me:p%40ss@127.0.0.1:5432/bench_x"


def test_a_missed_target_is_marked_and_met_one_is_not() -> None:
    b0 = {"pgbench": {"tps": 1000.0}, "commit": {"p50_ms": 1.0}}
    rows = summarize_pgdurable([{"B1": {"per_s": 10.0}}, {"B1": {"per_s": 3000.0}},
                                {"B1": {"per_s": 2500.0}}], b0)
    row = next(r for r in rows if r["metric"].startswith("empty workflows/s"))
    assert row["median"] == 2500.0 and row["met"] is True and row["b0_ratio"] == "2.500x TPS"
    rows = summarize_pgdurable([{"B1": {"per_s": 10.0}}], b0)
    assert next(r for r in rows if r["metric"].startswith("empty workflows/s"))["met"] is False


@pytest.mark.slow
def test_the_quick_bench_runs_b1_and_b4_against_a_server_and_writes_its_json(
        dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "B1,B4", "--dsn", dsn, "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    run = results["pgdurable"][0]
    assert run["B1"]["completed"] > 0 and run["B1"]["latency_samples"] > 0
    assert set(run["B4"]["sizes"]) == {"10", "100", "1000"}
    assert "commit" in results["b0"] and "notify" in results["b0"]
    assert results["peers"] == {}
    assert "empty workflows/s" in proc.stdout


def test_quick_and_full_runs_know_b7_and_b8() -> None:
    args = parse_args(["--quick", "--only", "B7,B8"])
    assert args.selected == ["B7", "B8"]


def test_cpu_contention_is_blamed_on_other_load_only_when_the_rest_of_the_box_used_the_cpu() -> None:
    own = {"python_cpu": 0.6, "postgres_cpu": 0.9, "python_cpu_wait": 0.9, "postgres_cpu_wait": 2.0,
           "other_cpu": 0.05}
    assert bottleneck(own, cores=2).startswith("CPU contention among the bench's own processes")
    assert bottleneck({**own, "other_cpu": 0.8}, cores=2).startswith("CPU starved by other load")
    assert bottleneck({**own, "other_cpu": None}, cores=2).startswith("CPU contention:")


@pytest.mark.slow
def test_the_quick_bench_runs_b7_with_worker_processes_and_b8_parked_rss(dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "B7,B8", "--dsn", dsn, "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = json.loads(out.read_text())["pgdurable"][0]
    for n in (1, 2):
        part = run["B7"][f"p{n}"]
        assert len(part["worker_pids"]) == n
        assert part["B1"]["completed"] > 0 and part["B2"]["activities_per_s"] > 0
    assert run["B7"]["b1_speedup"] > 0 and run["B7"]["b2_speedup"] > 0
    parked = run["B8"]
    assert parked["workflows"] == 200 and parked["rss_mib"] >= parked["rss_before_mib"] > 0
    assert "B1 speed-up, 2 vs 1 worker processes" in proc.stdout and "bounded on this" in proc.stdout
    assert "worker RSS holding parked workflows" in proc.stdout


def test_the_limits_option_runs_b2_again_with_non_binding_stream_limits() -> None:
    assert json.loads(parse_args(["--only", "B2", "--limits"]).limits) == {
        "max_running": 10_000, "rate_limit": 100_000, "rate_period": 1.0}
    assert parse_args(["--only", "B2", "--limits", '{"max_running": 500}']).limits == '{"max_running": 500}'
    assert parse_args(["--only", "B2"]).limits is None
