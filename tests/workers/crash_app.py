"""Workflows and activities of the crash tests: a subprocess worker runs them until it is
killed with SIGKILL, then a worker in the test process finishes them.

Every activity execution appends a line to a log file shared by both processes, so a test
can count executions across the crash.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from pgdurable import Durable, RetryPolicy

HANG_ENV = "PGDURABLE_TEST_HANG_AFTER_ACTIVITY"
"""Set only in the subprocess that must hang after the first activity (and be killed)."""


def log_line(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


async def crash_block_first_attempt(log_path: str, x: int) -> int:
    attempt = Durable.activity.get_context().attempt
    log_line(log_path, f"start {x} attempt {attempt}")
    if attempt == 1:
        await asyncio.sleep(3600)  # the worker running this is killed meanwhile
    log_line(log_path, f"done {x} attempt {attempt}")
    return x * 2


async def crash_record(log_path: str, step: str) -> str:
    log_line(log_path, f"ran {step}")
    return step.upper()


ACTIVITIES = [crash_block_first_attempt, crash_record]
RETRY = RetryPolicy(maximum_attempts=3, initial_interval=0.1)


async def crash_mid_activity_workflow(log_path: str, x: int) -> int:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES, retry=RETRY)
    return await acts.crash_block_first_attempt(log_path, x) + 1


async def crash_after_activity_workflow(log_path: str, marker_path: str) -> list[str]:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES, retry=RETRY)
    first = await acts.crash_record(log_path, "one")
    if os.environ.get(HANG_ENV):
        # The activity's result is recorded; this workflow task never completes: the worker
        # blocks here (its whole event loop) until the test kills it.
        Path(marker_path).write_text("hanging", encoding="utf-8")  # noqa: ASYNC240 - deliberately blocking
        time.sleep(3600)  # noqa: ASYNC251
    second = await acts.crash_record(log_path, "two")
    return [first, second]


async def crash_timer_workflow(label: str) -> list[object]:
    slept = await Durable.workflow.sleep("1 hour")
    return [label, slept]


WORKFLOWS = [crash_mid_activity_workflow, crash_after_activity_workflow, crash_timer_workflow]
