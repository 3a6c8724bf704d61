"""The figures: which metric comes from where, its target, its ratio to B0, the table."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from .common import bottleneck, summarize


@dataclass(frozen=True)
class Metric:
    section: str
    label: str
    unit: str
    get: Callable[[dict[str, Any]], float | None]
    higher_is_better: bool
    target: float | None = None
    b0: str | None = None  # "tps": value / pgbench TPS; "commit": value / commit p50
    bottleneck: Callable[[dict[str, Any], dict[str, Any]], str] | None = None
    target_tps: float | None = None  # a target on value / pgbench TPS (b0 "tps") instead of the value


def _dig(*path: str) -> Callable[[dict[str, Any]], float | None]:
    def get(run: dict[str, Any]) -> float | None:
        value: Any = run
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value if isinstance(value, (int, float)) else None

    return get


def _cpu_of(*path: str) -> Callable[[dict[str, Any], dict[str, Any]], str]:
    def phrase(run: dict[str, Any], b0: dict[str, Any]) -> str:
        value: Any = run
        for key in path:
            value = (value or {}).get(key)
        return bottleneck(value)

    return phrase


def _latency_phrase(call_key: str | None, what: str) -> Callable[[dict[str, Any], dict[str, Any]], str]:
    def phrase(part: dict[str, Any], b0: dict[str, Any]) -> str:
        commit = (b0.get("commit") or {}).get("p50_ms")
        p50 = part.get("p50_ms")
        if not commit or p50 is None:
            return what
        text = f"{p50 / commit:.1f}x commit p50 ({commit:.1f} ms)"
        if call_key and part.get(call_key) is not None:
            text += f"; the client call alone {part[call_key]:.1f} ms"
        return f"{text}: {what}"

    return phrase


def _b4_phrase(run: dict[str, Any], b0: dict[str, Any]) -> str:
    top = (run.get("B4") or {}).get("profile") or []
    if not top:
        return "python CPU (replay is pure CPU)"
    names = ", ".join(f"{t['function'].split(' ')[0]} {t['share']:.0%}" for t in top[:3])
    return f"python CPU; top own time: {names}"


PGDURABLE: list[Metric] = [
    Metric("B1", "empty workflows/s (64 in flight)", "wf/s", _dig("B1", "per_s"), True, None, "tps",
           lambda r, b0: bottleneck((r.get("B1") or {}).get("cpu")), target_tps=0.2),
    Metric("B1", "start->result p50 (1 at a time)", "ms", _dig("B1", "latency_p50_ms"), False, 2.5, "commit",
           lambda r, b0: _latency_phrase(None, "start + claim + task + result round trips")(
               {"p50_ms": (r.get("B1") or {}).get("latency_p50_ms")}, b0)),
    Metric("B1", "start->result p99", "ms", _dig("B1", "latency_p99_ms"), False, None, "commit"),
    Metric("B1", "transactions per workflow", "xact", _dig("B1", "xacts_per"), False, 2.5),
    Metric("B2", "activities/s (10-step wf, 200 in flight)", "act/s", _dig("B2", "activities_per_s"), True,
           None, "tps", lambda r, b0: bottleneck((r.get("B2") or {}).get("cpu"))),
    Metric("B2", "transactions per activity", "xact", _dig("B2", "xacts_per_activity"), False, 1.5),
    Metric("B2L", "activities/s, non-binding stream limits set", "act/s", _dig("B2L", "activities_per_s"),
           True, None, "tps", lambda r, b0: bottleneck((r.get("B2L") or {}).get("cpu"))),
    Metric("B2L", "throughput cost of the limits vs B2", "%",
           lambda r: None if (r.get("B2L") or {}).get("cost_vs_b2") is None else 100 * r["B2L"]["cost_vs_b2"],
           False, 10),
    Metric("B3", "signal->resume p50", "ms", _dig("B3", "signal", "p50_ms"), False, 1.5, "commit",
           lambda r, b0: _latency_phrase("signal_call_p50_ms", "signal commit, NOTIFY, claim, task commit")(
               (r.get("B3") or {}).get("signal") or {}, b0)),
    Metric("B3", "signal->resume p99", "ms", _dig("B3", "signal", "p99_ms"), False, 5, "commit"),
    Metric("B3", "timer lateness p50 (sleep 0.5 s)", "ms", _dig("B3", "timer", "p50_ms"), False, 1.5,
           "commit",
           lambda r, b0: _latency_phrase(None, "timer fire+claim, task commit, activity start")(
               (r.get("B3") or {}).get("timer") or {}, b0)),
    Metric("B3", "timer lateness p99", "ms", _dig("B3", "timer", "p99_ms"), False, 5, "commit"),
    Metric("B3", "activity done->next activity p50", "ms", _dig("B3", "activity", "p50_ms"), False, None,
           "commit", lambda r, b0: _latency_phrase(None, "activity commit + workflow task commit (eager)")(
               (r.get("B3") or {}).get("activity") or {}, b0)),
    Metric("B3", "activity done->next activity p99", "ms", _dig("B3", "activity", "p99_ms"), False, None,
           "commit"),
    *[Metric("B4", f"cold replay, {n:,} events", "us/event", _dig("B4", "sizes", str(n), "cold_us_per_event"),
             False, 20, None, _b4_phrase if n == 1000 else None) for n in (10, 100, 1000, 10000)],
    *[Metric("B4", f"warm (cached run), at {n:,} events", "us/event",
             _dig("B4", "sizes", str(n), "warm_us_per_event"), False) for n in (10, 100, 1000, 10000)],
    Metric("B4", "cold replay, marginal cost per event", "us/event", _dig("B4", "cold_marginal_us_per_event"),
           False, 20, None, lambda r, b0: f"plus a fixed {_fmt(_dig('B4', 'cold_fixed_us')(r), 'us')} per "
                                          "replayed run (creating the run and its task)"),
    Metric("B4", "cold per-event growth 10k vs 1k", "x", _dig("B4", "cold_growth_10k_vs_1k"), False, 2),
    Metric("B4", "warm per-event growth 10k vs 1k (O(1)?)", "x", _dig("B4", "warm_growth_10k_vs_1k"),
           False, 2),
    Metric("B6", "timers scheduled/s", "timer/s", _dig("B6", "timers_per_s"), True, None, "tps",
           lambda r, b0: bottleneck((r.get("B6") or {}).get("cpu"))),
    Metric("B6", "bytes per pending timer", "B", _dig("B6", "bytes_per_timer"), False),
    Metric("B6", "B2 activities/s with the backlog", "act/s",
           _dig("B6", "b2_with_backlog", "activities_per_s"),
           True, None, "tps", lambda r, b0: bottleneck(((r.get("B6") or {}).get("b2_with_backlog") or {})
                                                        .get("cpu"))),

    *[Metric("B7", f"B1 empty workflows/s, {n} worker process{'es' if n > 1 else ''}", "wf/s",
             _dig("B7", f"p{n}", "B1", "per_s"), True, None, "tps", _cpu_of("B7", f"p{n}", "B1", "cpu"))
      for n in (1, 2)],
    Metric("B7", "B1 speed-up, 2 vs 1 worker processes", "x", _dig("B7", "b1_speedup"), True, None, None,
           lambda r, b0: _bounded_phrase(r)),
    *[Metric("B7", f"B2 activities/s, {n} worker process{'es' if n > 1 else ''}", "act/s",
             _dig("B7", f"p{n}", "B2", "activities_per_s"), True, None, "tps",
             _cpu_of("B7", f"p{n}", "B2", "cpu")) for n in (1, 2)],
    Metric("B7", "B2 speed-up, 2 vs 1 worker processes", "x", _dig("B7", "b2_speedup"), True, None, None,
           lambda r, b0: _bounded_phrase(r)),
    Metric("B8", "worker RSS holding parked workflows", "MiB", _dig("B8", "rss_mib"), False, 300, None,
           lambda r, b0: _rss_phrase(r.get("B8") or {})),
    Metric("B8", "RSS per parked workflow", "KiB", _dig("B8", "kib_per_workflow"), False),
]


def _bounded_phrase(run: dict[str, Any]) -> str:
    cores = (run.get("B7") or {}).get("cores") or 1
    return (f"bounded on this {cores}-core box: the client, every worker process and Postgres share "
            f"{cores} cores, so a second process mostly competes for them; the figure is for bigger machines")


def _rss_phrase(part: dict[str, Any]) -> str:
    if not part:
        return ""
    return (f"{part['workflows']:,} workflows parked (sleeping) in one worker's cache; "
            f"{part['rss_before_mib']:.0f} MiB before them; the worker process alone (psutil RSS)")


@dataclass(frozen=True)
class PeerMetric:
    label: str
    peer: str
    ours: Callable[[dict[str, Any]], float | None]
    theirs: Callable[[dict[str, Any]], float | None]
    higher_is_better: bool
    target: float | None  # how many times better pgdurable should be


PEERS: list[PeerMetric] = [
    PeerMetric("B1 wf/s vs DBOS empty workflow", "dbos", _dig("B1", "per_s"), _dig("empty", "per_s"),
               True, 2),
    PeerMetric("B1 wf/s vs DBOS one-step workflow", "dbos", _dig("B1", "per_s"), _dig("one_step", "per_s"),
               True, None),
    PeerMetric("B2 activities/s vs DBOS ten-step steps/s", "dbos", _dig("B2", "activities_per_s"),
               _dig("ten_steps", "steps_per_s"), True, 4),
    PeerMetric("B3 signal->resume p50 vs DBOS send->recv p50", "dbos", _dig("B3", "signal", "p50_ms"),
               _dig("send_recv", "p50_ms"), False, None),
    PeerMetric("B3 timer lateness p50 vs DBOS sleep lateness p50", "dbos", _dig("B3", "timer", "p50_ms"),
               _dig("sleep", "p50_ms"), False, 2),
    PeerMetric("B3 timer lateness p99 vs DBOS sleep lateness p99", "dbos", _dig("B3", "timer", "p99_ms"),
               _dig("sleep", "p99_ms"), False, 2),
    PeerMetric("transactions per workflow: B1 vs DBOS empty", "dbos", _dig("B1", "xacts_per"),
               _dig("empty", "xacts_per"), False, None),
    PeerMetric("B2 activities/s vs procrastinate no-op jobs/s", "procrastinate",
               _dig("B2", "activities_per_s"), _dig("jobs", "per_s"), True, None),
    PeerMetric("B1 start->result p50 vs procrastinate defer->done p50", "procrastinate",
               _dig("B1", "latency_p50_ms"), _dig("defer_done", "p50_ms"), False, 1),
]


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def _met(value: float | None, target: float | None, higher: bool) -> bool | None:
    if value is None or target is None:
        return None
    return value >= target if higher else value <= target


def summarize_pgdurable(runs: list[dict[str, Any]], b0: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per metric: median, min, max over the runs, ratio to B0, target, met, bottleneck."""
    rows = []
    tps = ((b0.get("pgbench") or {}).get("tps"))
    commit = ((b0.get("commit") or {}).get("p50_ms"))
    for metric in PGDURABLE:
        values = [metric.get(run) for run in runs]
        if all(v is None for v in values):
            continue
        stats = summarize([v for v in values if v is not None])
        median = stats["median"]
        ratio = None
        if metric.b0 == "tps" and tps and median is not None:
            ratio = f"{median / tps:.3f}x TPS"
        elif metric.b0 == "commit" and commit and median is not None:
            ratio = f"{median / commit:.1f}x commit"
        met = _met(median, metric.target, metric.higher_is_better)
        target_text = None if metric.target is None else \
            f"{'≥' if metric.higher_is_better else '≤'} {_fmt(metric.target, metric.unit)}"
        if metric.target_tps is not None and tps and median is not None:
            met = median / tps >= metric.target_tps
            target_text = f"≥ {metric.target_tps:g}x TPS"
        phrase = ""
        if metric.bottleneck is not None:
            # the phrase of the run closest to the median
            best = min((r for r, v in zip(runs, values, strict=True) if v is not None),
                       key=lambda r: abs((metric.get(r) or 0) - (median or 0)))
            phrase = metric.bottleneck(best, b0)
        rows.append({"section": metric.section, "metric": metric.label, "unit": metric.unit, **stats,
                     "b0_ratio": ratio, "target": metric.target, "target_text": target_text,
                     "met": met, "bottleneck": phrase})
    return rows


def summarize_peers(ours: list[dict[str, Any]], peers: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for metric in PEERS:
        peer = peers.get(metric.peer) or {}
        theirs_runs = peer.get("runs") or []
        mine = summarize([v for v in (metric.ours(r) for r in ours) if v is not None])["median"]
        theirs = summarize([v for v in (metric.theirs(r) for r in theirs_runs) if v is not None])["median"]
        if metric.peer not in peers or (mine is None and theirs is None):
            continue
        ratio = None
        if mine is not None and theirs is not None and mine > 0 and theirs > 0:
            ratio = mine / theirs if metric.higher_is_better else theirs / mine
        rows.append({"metric": metric.label, "peer": metric.peer, "pgdurable": mine, "peer_value": theirs,
                     "advantage": ratio, "target": metric.target,
                     "met": None if metric.target is None or ratio is None else ratio >= metric.target,
                     "peer_error": peer.get("error")})
    return rows


def render(console: Console, results: dict[str, Any]) -> None:
    b0 = results.get("b0") or {}
    meta = results["meta"]
    console.print(f"[bold]pgdurable benchmarks[/bold] — {meta['command']}")
    console.print(f"server: Postgres {meta['server']['major']} ({meta['server']['kind']}), "
                  f"runs: {meta['runs']}, load average before {_load(meta['load_before'])}, "
                  f"after {_load(meta.get('load_after'))} on {meta['cores']} cores")
    calib = Table(title="B0 calibration (this server, this machine, now)")
    for col in ("figure", "value", "notes"):
        calib.add_column(col)
    pgb = b0.get("pgbench") or {}
    calib.add_row("pgbench -N TPS, 8 clients", _fmt(pgb.get("tps")),
                  pgb.get("error")
                  or f"{pgb.get('seconds')} s, latency avg {_fmt(pgb.get('latency_avg_ms'), 'ms')}")
    commit = b0.get("commit") or {}
    calib.add_row("commit latency p50 (1 client)", _fmt(commit.get("p50_ms"), "ms"),
                  f"p99 {_fmt(commit.get('p99_ms'), 'ms')}")
    notify = b0.get("notify") or {}
    calib.add_row("NOTIFY round trip p50", _fmt(notify.get("p50_ms"), "ms"),
                  f"p99 {_fmt(notify.get('p99_ms'), 'ms')}")
    console.print(calib)

    table = Table(title="pgdurable (median of runs; min–max)", show_lines=False)
    for col in ("", "metric", "median", "min–max", "÷ B0", "target", "", "bottleneck / notes"):
        table.add_column(col, overflow="fold")
    for row in results.get("summary") or []:
        status = "" if row["met"] is None else ("[green]ok[/green]" if row["met"] else "[red]MISS[/red]")
        spread = "—" if row["min"] is None else f"{_fmt(row['min'])}–{_fmt(row['max'])}"
        table.add_row(row["section"], row["metric"], _fmt(row["median"], row["unit"]), spread,
                      row["b0_ratio"] or "", row["target_text"] or "", status, row["bottleneck"])
    console.print(table)
    for run_index, run in enumerate(results.get("pgdurable") or [], start=1):
        for name in ("B1", "B2"):
            cpu = (run.get(name) or {}).get("cpu")
            if cpu:
                console.print(f"  run {run_index} {name}: CPU used python {cpu['python_cpu']:.0%}, postgres "
                              f"{_pct(cpu.get('postgres_cpu'))} of a core; waited for a core python "
                              f"{_pct(cpu.get('python_cpu_wait'))}, postgres "
                              f"{_pct(cpu.get('postgres_cpu_wait'))}; the rest of the box "
                              f"{_pct(cpu.get('other_cpu'))} ({cpu['wall_s']:.1f} s wall)")

    peer_rows = results.get("peer_summary") or []
    if peer_rows or results.get("peers"):
        peers = Table(title="pgdurable ÷ peers (same run, same server; >1 = pgdurable better)")
        for col in ("comparison", "pgdurable", "peer", "advantage", "target", ""):
            peers.add_column(col, overflow="fold")
        for row in peer_rows:
            status = "" if row["met"] is None else ("[green]ok[/green]" if row["met"] else "[red]MISS[/red]")
            peers.add_row(row["metric"], _fmt(row["pgdurable"]), _fmt(row["peer_value"]),
                          "—" if row["advantage"] is None else f"{row['advantage']:.2f}x",
                          "" if row["target"] is None else f"≥ {row['target']}x", status)
        console.print(peers)
        for name, peer in (results.get("peers") or {}).items():
            if peer.get("error"):
                console.print(f"[red]peer {name} FAILED:[/red] {peer['error']}")
            else:
                cpus = [(r.get("empty") or r.get("jobs") or {}).get("cpu") for r in peer.get("runs") or []]
                cpu = next((c for c in cpus if c), None)
                note = f"; CPU split {bottleneck(cpu)}" if cpu else ""
                runs = len(peer.get("runs") or [])
                console.print(f"peer {name} {peer.get('version')}: {runs} run(s){note}")
    for note in results.get("notes") or []:
        console.print(f"[yellow]note:[/yellow] {note}")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _load(load: Any) -> str:
    if not load:
        return "—"
    return " ".join(f"{x:.2f}" for x in load)
