"""``python -m bench``: every benchmark, in one run, against one server; a table and a JSON file."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import json
import os
import platform
import pstats
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from . import (
    b0_calibration,
    b1_workflows,
    b2_activities,
    b3_wakeup,
    b4_replay,
    b6_timers,
    b7_scale,
    common,
    report,
)
from .common import BenchServer, CpuMeter, load_avg, start_server

REPO = Path(__file__).resolve().parents[1]
PGDURABLE_BENCHES = ("B1", "B2", "B3", "B4", "B6", "B7", "B8")
PEERS = ("DBOS", "PROCRASTINATE")

FULL = {"b0_seconds": 10, "b0_samples": 200, "b1_duration": 8.0, "b1_in_flight": 64, "b1_samples": 200,
        "b2_duration": 8.0, "b2_in_flight": 200, "b3_samples": 200, "timer_samples": 50,
        "b4_sizes": [10, 100, 1000, 10000], "b4_min_seconds": 0.3, "b6_timers": 10_000, "b6_batch": 200,
        "b6_b2_duration": 8.0, "b7_processes": [1, 2], "b8_workflows": 10_000, "b8_batch": 200}
QUICK = {"b0_seconds": 1, "b0_samples": 20, "b1_duration": 1.0, "b1_in_flight": 8, "b1_samples": 10,
         "b2_duration": 1.0, "b2_in_flight": 10, "b3_samples": 10, "timer_samples": 3,
         "b4_sizes": [10, 100, 1000], "b4_min_seconds": 0.02, "b6_timers": 200, "b6_batch": 50,
         "b6_b2_duration": 1.0, "b7_processes": [1, 2], "b8_workflows": 200, "b8_batch": 50}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="pgdurable benchmarks (B0 calibration, B1-B4, B6-B8) side by side with DBOS Transact and "
                    "procrastinate, in one run against one Postgres server.")
    parser.add_argument("--dsn", help="use this server (a superuser DSN: the bench creates and drops its own "
                                      "bench_* databases) instead of an embedded Postgres 18 in a temp dir")
    parser.add_argument("--runs", type=int, default=None,
                        help="runs per figure; the table shows the median and min-max "
                             "(default 3, 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run (no peers)")
    parser.add_argument("--only", default=None,
                        help="comma-separated subset of B1,B2,B3,B4,B6,B7,B8,DBOS,PROCRASTINATE (B0 always "
                             "runs: "
                             "every figure is read against it)")
    parser.add_argument("--json", default=str(REPO / "bench" / "results.json"),
                        help="where to write the results (default bench/results.json)")
    parser.add_argument("--million-timers", action="store_true", help="B6 with 1,000,000 pending timers")
    parser.add_argument("--concurrency", type=int, default=10,
                        help="worker concurrency of pgdurable (the SDK default) and procrastinate")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile pgdurable's B1 and B2 (worker + client, this process) and print "
                             "the functions that dominate")
    parser.add_argument("--limits", nargs="?", const=json.dumps(b2_activities.LIMITS), default=None,
                        metavar="JSON",
                        help="with B2, also B2L: B2 with stream limits set on its activity stream that never "
                             "bind (what enforcing them costs); JSON: other limits, e.g. "
                             "'{\"max_running\": 10000}' (default: %(const)s)")
    parser.add_argument("--otel", action="store_true",
                        help="pgdurable.otel.instrument() in this process (the B1-B3 client and worker): "
                             "spans recorded by the OpenTelemetry SDK and batched to an exporter that "
                             "discards them, metrics to an SDK meter provider without a reader")
    args = parser.parse_args(argv)
    selected = [s.strip().upper() for s in args.only.split(",")] if args.only else \
        [*PGDURABLE_BENCHES, *PEERS]
    unknown = [s for s in selected if s not in (*PGDURABLE_BENCHES, *PEERS, "B0")]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from "
                     f"{', '.join((*PGDURABLE_BENCHES, *PEERS))}")
    if args.quick:
        selected = [s for s in selected if s not in PEERS]
    args.selected = selected
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def _instrument() -> Any:
    """Turns pgdurable's tracing and metrics on, with the SDK's real processing and nothing exported:
    what ``--otel`` measures is what the SDK and pgdurable's observers cost, not an exporter."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    import pgdurable.otel

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    pgdurable.otel.instrument(tracer_provider=provider, meter_provider=MeterProvider())
    return provider


def _top(profiler: cProfile.Profile, n: int = 20) -> list[dict[str, Any]]:
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in entries.values()) or 1e-9
    ranked = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:n]
    return [{"function": f"{fn[2]} ({fn[0].rsplit('/', 1)[-1]}:{fn[1]})", "own_share": v[2] / total,
             "cumulative_s": v[3], "calls": v[1]} for fn, v in ranked]


async def pgdurable_run(dsn: str, meter: CpuMeter, params: dict[str, Any], selected: list[str],
                        concurrency: int, profile: bool, log: Any, otel: bool = False) -> dict[str, Any]:
    from pgdurable import Durable

    run: dict[str, Any] = {}
    provider = _instrument() if otel else None
    profiler = cProfile.Profile() if profile else None
    try:
        if "B1" in selected:
            log("B1: empty workflows")
            if profiler:
                profiler.enable()
            run["B1"] = await b1_workflows.run(dsn, meter, duration=params["b1_duration"],
                                               in_flight=params["b1_in_flight"], samples=params["b1_samples"],
                                               concurrency=concurrency)
            if profiler:
                profiler.disable()
        if "B2" in selected:
            log("B2: activities")
            if profiler:
                profiler.enable()
            run["B2"] = await b2_activities.run(dsn, meter, duration=params["b2_duration"],
                                                in_flight=params["b2_in_flight"], concurrency=concurrency)
            if profiler:
                profiler.disable()
            if params.get("b2_limits"):
                log("B2L: activities with non-binding stream limits")
                run["B2L"] = await b2_activities.run(dsn, meter, duration=params["b2_duration"],
                                                     in_flight=params["b2_in_flight"],
                                                     concurrency=concurrency, task_queue="bench-limited",
                                                     limits=params["b2_limits"])
                run["B2L"]["cost_vs_b2"] = 1 - run["B2L"]["activities_per_s"] / run["B2"]["activities_per_s"]
        if "B3" in selected:
            log("B3: wake-up latencies")
            run["B3"] = await b3_wakeup.run(dsn, samples=params["b3_samples"],
                                            timer_samples=params["timer_samples"], concurrency=concurrency)
    finally:
        await Durable.shutdown(grace=5)
        if provider is not None:
            import pgdurable.otel

            pgdurable.otel.uninstrument()
            provider.shutdown()
    if profiler is not None:
        run["profile"] = _top(profiler)
    return run


def run_b6(server: BenchServer, meter: CpuMeter, params: dict[str, Any], concurrency: int, log: Any,
           n: int) -> dict[str, Any]:
    from pgdurable import Durable
    from pgdurable._migrate import migrate

    dsn = server.create_database("timers")
    try:
        migrate(dsn)

        async def go() -> dict[str, Any]:
            try:
                return await b6_timers.run(dsn, meter, n=n, batch=params["b6_batch"], concurrency=concurrency,
                                           b2_duration=params["b6_b2_duration"],
                                           b2_in_flight=params["b2_in_flight"], progress=log)
            finally:
                await Durable.shutdown(grace=5)

        return asyncio.run(go())
    finally:
        server.drop_database(dsn)


def run_b7(server: BenchServer, params: dict[str, Any], concurrency: int) -> dict[str, Any]:
    """B1 and B2 with 1 and 2 worker processes (subprocesses), the client in this process."""
    from pgdurable import Durable
    from pgdurable._migrate import migrate

    dsn = server.create_database("scale")
    try:
        migrate(dsn)

        async def go() -> dict[str, Any]:
            try:
                return await b7_scale.scaling(
                    dsn, server.postmaster_pid, processes=tuple(params["b7_processes"]),
                    b1_duration=params["b1_duration"], b1_in_flight=params["b1_in_flight"],
                    b2_duration=params["b2_duration"], b2_in_flight=params["b2_in_flight"],
                    concurrency=concurrency)
            finally:
                await Durable.shutdown(grace=5)

        return asyncio.run(go())
    finally:
        server.drop_database(dsn)


def run_b8(server: BenchServer, params: dict[str, Any], concurrency: int, log: Any) -> dict[str, Any]:
    """The RSS of one worker process holding N parked workflows."""
    from pgdurable import Durable
    from pgdurable._migrate import migrate

    dsn = server.create_database("parked")
    try:
        migrate(dsn)

        async def go() -> dict[str, Any]:
            try:
                return await b7_scale.parked_rss(dsn, n=params["b8_workflows"], batch=params["b8_batch"],
                                                 concurrency=concurrency, progress=log)
            finally:
                await Durable.shutdown(grace=5)

        return asyncio.run(go())
    finally:
        server.drop_database(dsn)


def run_peer(name: str, server: BenchServer, params: dict[str, Any], log: Any) -> dict[str, Any]:
    """Runs a peer in its own process and database; an error dict when it cannot be installed or run."""
    module = {"DBOS": "dbos", "PROCRASTINATE": "procrastinate"}[name]
    if importlib.util.find_spec(module) is None:
        return {"error": f"{module} is not installed: pip install -e '.[bench]'"}
    dsn = server.create_database(module)
    out = Path(tempfile.mkstemp(prefix=f"bench-{module}-", suffix=".json")[1])
    command = [sys.executable, "-m", f"bench.peer_{module}", "--dsn", dsn, "--params", json.dumps(params),
               "--out", str(out)]
    if server.postmaster_pid is not None:
        command += ["--postmaster", str(server.postmaster_pid)]
    log(f"peer {module}: {params['runs']} run(s) in its own process")
    try:
        proc = subprocess.run(command, cwd=str(REPO), capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0 or out.stat().st_size == 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-12:])
            return {"error": f"{module} run failed (exit {proc.returncode}):\n{tail}"}
        return json.loads(out.read_text())
    except subprocess.TimeoutExpired:
        return {"error": f"{module} run took longer than an hour"}
    finally:
        out.unlink(missing_ok=True)
        server.drop_database(dsn)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Not a terminal (a log, CI): wide enough for the table not to wrap.
    console = Console() if sys.stdout.isatty() else Console(width=200)
    params = dict(QUICK if args.quick else FULL)
    if args.quick:  # a smoke run: its transaction counts are rough, its settles short
        common.STATS_FLUSH_SECONDS = 1.2
    if args.million_timers:
        params["b6_timers"] = 1_000_000
    params["runs"] = args.runs
    params["concurrency"] = args.concurrency
    params["b2_limits"] = None if args.limits is None else json.loads(args.limits)

    def log(message: str) -> None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')} {message} (load {load_avg()[0]:.2f})[/dim]")

    started = time.time()
    load_before = load_avg()
    results: dict[str, Any] = {"meta": {
        "command": "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load_before": load_before,
        "cores": os.cpu_count(), "python": platform.python_version(), "runs": args.runs,
        "quick": args.quick, "otel": args.otel, "selected": args.selected, "params": params}, "notes": []}
    log("starting the server" if not args.dsn else "using the server at --dsn")
    server = start_server(args.dsn)
    results["meta"]["server"] = {"major": server.major, "kind": "embedded (temp dir, default settings)"
                                 if server.embedded else "--dsn", "pgbench_dir": str(server.bin_dir),
                                 "cpu_split": server.postmaster_pid is not None}
    if server.postmaster_pid is None:
        results["notes"].append("postgres CPU is not measured (the server's processes are not visible here)")
    failed = False
    try:
        log("B0: calibration (pgbench -N, commit latency, NOTIFY round trip)")
        results["b0"] = b0_calibration.run(server, params["b0_seconds"], params["b0_samples"])
        meter = CpuMeter(server.postmaster_pid)
        runs: list[dict[str, Any]] = [{} for _ in range(args.runs)]
        needs_db = [s for s in args.selected if s in ("B1", "B2", "B3")]
        if needs_db:
            from pgdurable._migrate import migrate

            dsn = server.create_database("pgdurable")
            migrate(dsn)
            for index in range(args.runs):
                log(f"pgdurable run {index + 1} of {args.runs}")
                runs[index].update(asyncio.run(pgdurable_run(dsn, meter, params, args.selected,
                                                             args.concurrency, args.profile, log, args.otel)))
            server.drop_database(dsn)
        if "B4" in args.selected:
            for index in range(args.runs):
                log(f"B4: replay cost, run {index + 1} of {args.runs}")
                runs[index]["B4"] = b4_replay.run(sizes=tuple(params["b4_sizes"]),
                                                  min_seconds=params["b4_min_seconds"])
            top = b4_replay.profile()
            for run in runs:
                run["B4"]["profile"] = top
        if "B6" in args.selected:
            for index in range(args.runs):
                log(f"B6: {params['b6_timers']:,} pending timers, run {index + 1} of {args.runs}")
                runs[index]["B6"] = run_b6(server, meter, params, args.concurrency, log, params["b6_timers"])
        if "B7" in args.selected:
            for index in range(args.runs):
                log(f"B7: B1 and B2 with {params['b7_processes']} worker processes, run {index + 1} of "
                    f"{args.runs}")
                runs[index]["B7"] = run_b7(server, params, args.concurrency)
        if "B8" in args.selected:
            for index in range(args.runs):
                log(f"B8: one worker holding {params['b8_workflows']:,} parked workflows, run {index + 1} of "
                    f"{args.runs}")
                runs[index]["B8"] = run_b8(server, params, args.concurrency, log)
        results["pgdurable"] = runs
        results["peers"] = {}
        for name in (p for p in PEERS if p in args.selected):
            peer = run_peer(name, server, params, log)
            results["peers"][name.lower()] = peer
            if peer.get("error"):
                failed = True
    except Exception as exc:  # print what was measured, then fail
        results["error"] = f"{type(exc).__name__}: {exc}"
        failed = True
        console.print_exception()
    finally:
        log("stopping" if server.embedded else "dropping the bench databases")
        server.close()
    results["meta"]["load_after"] = load_avg()
    results["meta"]["elapsed_s"] = time.time() - started
    results["summary"] = report.summarize_pgdurable(results.get("pgdurable") or [], results.get("b0") or {})
    results["peer_summary"] = report.summarize_peers(results.get("pgdurable") or [],
                                                     results.get("peers") or {})
    busiest = max(results["meta"]["load_before"][0], results["meta"]["load_after"][0])
    if busiest > (os.cpu_count() or 1):
        results["notes"].append(f"the machine was busy (load up to {busiest:.1f} on {os.cpu_count()} cores): "
                                "read the figures against B0 and the CPU waits")
    report.render(console, results)
    for run in results.get("pgdurable") or []:
        if run.get("profile"):
            console.print("[bold]cProfile of B1+B2 (own time, this process: worker + client)[/bold]")
            for entry in run["profile"][:20]:
                console.print(f"  {entry['own_share']:6.1%}  {entry['calls']:>9,}  {entry['function']}")
            break
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))
    console.print(f"results: {path}  ({results['meta']['elapsed_s']:.0f} s; load average "
                  f"{' '.join(f'{x:.2f}' for x in results['meta']['load_after'])})")
    if results.get("error"):
        console.print(f"[red]bench failed:[/red] {results['error']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
