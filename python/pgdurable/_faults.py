"""Fault injection for crash tests: ``PGDURABLE_CRASH_AT=<point>`` makes the process
``os._exit`` the first time it reaches that point. Off (and free) unless the variable is set.

Points: ``workflow_task_claimed``, ``workflow_task_ran`` (replayed, not yet recorded),
``workflow_task_recorded``, ``activity_claimed``, ``activity_ran`` (finished, not yet
recorded), ``activity_recorded``; and in the group commit of outcomes, ``completions_gathered``
(a batch gathered, not yet sent) and ``completions_committed`` (its transaction committed, no
caller told yet).
"""

from __future__ import annotations

import os

POINTS = frozenset({
    "workflow_task_claimed", "workflow_task_ran", "workflow_task_recorded",
    "activity_claimed", "activity_ran", "activity_recorded",
    "completions_gathered", "completions_committed",
})
_armed = os.environ.get("PGDURABLE_CRASH_AT")
if _armed is not None and _armed not in POINTS:
    raise ValueError(f"PGDURABLE_CRASH_AT={_armed!r} is not one of {sorted(POINTS)}")


def point(name: str) -> None:
    """Exits the process at once (no cleanup, like a SIGKILL) when ``name`` is the armed point."""
    if _armed == name:
        os._exit(70)
