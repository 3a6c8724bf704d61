"""B4: replay cost vs history length — CPU only, no database.

Cold: a full replay from history (``WorkflowRun`` + ``load_history`` + ``activate``) of a
synthetic history of N events (workflow_started, then activity_scheduled /
activity_completed pairs, shaped exactly like ``run_history_v1`` rows). Warm: feeding one
new ``activity_completed`` event at a time to the run cached after that replay.
Both in µs per event; the cold cost per event at 10,000 vs 1,000 events is the linearity
check (> 2x means the replay is quadratic somewhere); the warm cost per activation at
10,000 vs 1,000 checks it stays O(1).
"""

from __future__ import annotations

import cProfile
import pstats
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from pgdurable import payloads
from pgdurable._runtime import WorkflowInfo, WorkflowRun

from .pgd_support import TASK_QUEUE, bench_steps

SIZES = (10, 100, 1_000, 10_000)
WARM_EVENTS = 50
_T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _event(event_id: int, event_type: str, seq: int | None, inbound: bool,
           data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": event_type, "seq": seq, "inbound": inbound, "data": data,
            "created_at": _T0 + timedelta(milliseconds=event_id)}


def _scheduled(event_id: int, seq: int) -> dict[str, Any]:
    return _event(event_id, "activity_scheduled", seq, False, {
        "activity_name": "bench_noop", "task_queue": TASK_QUEUE, "args": payloads.dumps([seq - 1]),
        "retry": None, "start_to_close_timeout": None})


def _completed(event_id: int, seq: int) -> dict[str, Any]:
    return _event(event_id, "activity_completed", seq, True,
                  {"result": payloads.dumps(seq - 1), "attempt": 1})


def history(n_events: int) -> list[dict[str, Any]]:
    """About ``n_events`` events (1 + 2k, k = n_events // 2): a run that completed k activities."""
    steps = n_events // 2
    events = [_event(1, "workflow_started", None, True,
                     {"workflow_name": "bench_steps", "task_queue": TASK_QUEUE, "attempt": 1,
                      "parent_workflow_id": None})]
    for seq in range(1, steps + 1):
        events.append(_scheduled(len(events) + 1, seq))
        events.append(_completed(len(events) + 1, seq))
    return events


def _new_run(total_steps: int) -> WorkflowRun:
    info = WorkflowInfo(workflow_id="replay", workflow_name="bench_steps", namespace="durable",
                        task_queue=TASK_QUEUE, attempt=1, parent_workflow_id=None, run_id=1)
    return WorkflowRun(info, bench_steps, [total_steps], _T0)


def cold_replay(events: list[dict[str, Any]], total_steps: int) -> tuple[WorkflowRun, list[dict[str, Any]]]:
    run = _new_run(total_steps)
    commands = run.activate(run.load_history(events))
    return run, commands


def _check(run: WorkflowRun, commands: list[dict[str, Any]], next_seq: int) -> None:
    if run.failure is not None or len(commands) != 1 or commands[0].get("seq") != next_seq:
        raise RuntimeError(f"replay went wrong: failure={run.failure!r} commands={commands!r}")


def measure(n_events: int, min_seconds: float) -> dict[str, Any]:
    events = history(n_events)
    steps = (len(events) - 1) // 2
    total = steps + WARM_EVENTS + 10
    run, commands = cold_replay(events, total)  # warm-up, and a correctness check
    _check(run, commands, steps + 1)
    run.evict()

    cold: list[float] = []
    budget_end = time.perf_counter() + min_seconds
    while len(cold) < 3 or (time.perf_counter() < budget_end and len(cold) < 2000):
        t0 = time.process_time()
        run, commands = cold_replay(events, total)
        cold.append(time.process_time() - t0)
        run.evict()
    cold_s = min(cold)  # the least disturbed repetition (the machine is shared)

    run, commands = cold_replay(events, total)
    last_id = len(events)
    warm: list[float] = []
    for seq in range(steps + 1, steps + 1 + WARM_EVENTS):
        event = _completed(last_id + 2, seq)  # +1 is its activity_scheduled (outbound)
        last_id += 2
        t0 = time.process_time()
        commands = run.activate([event])
        warm.append(time.process_time() - t0)
        _check(run, commands, seq + 1)
    run.evict()
    warm.sort()
    warm_s = warm[len(warm) // 2]
    return {"events": len(events), "cold_us_per_event": cold_s * 1e6 / len(events),
            "cold_ms_total": cold_s * 1e3, "warm_us_per_event": warm_s * 1e6, "repetitions": len(cold)}


def profile(n_events: int = 1_000, top: int = 6) -> list[dict[str, Any]]:
    """The functions that dominate a cold replay (cProfile, by own time)."""
    events = history(n_events)
    total = (len(events) - 1) // 2 + 10
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(5):
        run, _commands = cold_replay(events, total)
        run.evict()
    profiler.disable()
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    all_time = sum(v[2] for v in entries.values()) or 1e-9
    ranked = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    return [{"function": f"{fn[2]} ({fn[0].rsplit('/', 1)[-1]}:{fn[1]})", "share": v[2] / all_time,
             "calls_per_event": v[1] / 5 / len(events)} for fn, v in ranked]


def run(*, sizes: tuple[int, ...] = SIZES, min_seconds: float = 0.3) -> dict[str, Any]:
    by_size = {str(n): measure(n, min_seconds) for n in sizes}
    out: dict[str, Any] = {"sizes": by_size}
    # cold total = fixed + marginal * events: the marginal cost from the two largest histories,
    # the fixed cost (a run, its task, its first activation) from the smallest
    if len(by_size) > 1:
        ordered = sorted(by_size.values(), key=lambda m: m["events"])
        small, large = ordered[-2:]
        marginal = ((large["cold_ms_total"] - small["cold_ms_total"]) * 1e3
                    / (large["events"] - small["events"]))
        out["cold_marginal_us_per_event"] = marginal
        out["cold_fixed_us"] = max(ordered[0]["cold_ms_total"] * 1e3 - marginal * ordered[0]["events"], 0.0)
    if "1000" in by_size and "10000" in by_size:
        out["cold_growth_10k_vs_1k"] = (by_size["10000"]["cold_us_per_event"]
                                        / by_size["1000"]["cold_us_per_event"])
        out["warm_growth_10k_vs_1k"] = (by_size["10000"]["warm_us_per_event"]
                                        / by_size["1000"]["warm_us_per_event"])
    return out
