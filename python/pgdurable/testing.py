"""Testing workflow code: :class:`WorkflowEnvironment` runs workflows against a database of their own
(skipping time on request; the ``durable_env`` pytest fixture is one), :class:`Replayer` checks new
code against recorded histories.

A history exported with ``pgdurable workflow export ID > h.json`` (or
``handle.export_history()``) holds every event a run recorded. The replayer
runs the current workflow code against those events on the same
deterministic event loop a worker uses, without a database, and raises the
:class:`~pgdurable.errors.NonDeterminismError` a worker would raise were it
to replay that run after a deploy: run it in CI before you deploy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import _history, errors, payloads
from ._runtime import WorkflowInfo, WorkflowRun
from ._test_env import WorkflowEnvironment

__all__ = ["ReplayResult", "Replayer", "WorkflowEnvironment"]

WorkflowFunction = Callable[..., Coroutine[Any, Any, Any]]


@dataclass(frozen=True)
class ReplayResult:
    """One history file's replay: ``error`` is None when it replayed clean."""

    path: str
    error: BaseException | None


class Replayer:
    """Replays exported histories against ``workflows`` (async functions, known by their ``__name__``
    as a worker knows them)."""

    def __init__(self, workflows: Iterable[WorkflowFunction]) -> None:
        self.workflows: dict[str, WorkflowFunction] = {}
        for fn in workflows:
            if not callable(fn) or not hasattr(fn, "__name__"):
                raise errors.InvalidArgumentError(f"workflows: {fn!r} is not a workflow function")
            self.workflows[fn.__name__] = fn

    def replay(self, history: Mapping[str, Any]) -> None:
        """Replays every run of ``history`` (the parsed JSON of ``pgdurable workflow export``).

        Raises :class:`~pgdurable.errors.NonDeterminismError` at the first call the code makes
        differently from the history, :class:`~pgdurable.errors.InvalidArgumentError` for a document
        that is not an exported history or names a workflow not given here.
        """
        _history.check(history)
        for run in history["runs"]:
            self._replay_run(history, run)

    def replay_many(self, paths: Iterable[str | os.PathLike[str]]) -> list[ReplayResult]:
        """Replays each history file; returns one result per file (in order) instead of stopping at
        the first failure. A file that cannot be read or parsed is a result with its error too."""
        results = []
        for path in paths:
            try:
                with open(path, encoding="utf-8") as file:
                    document = json.load(file)
                self.replay(document)
            except (OSError, json.JSONDecodeError, errors.DurableError) as exc:
                results.append(ReplayResult(os.fspath(path), exc))
            else:
                results.append(ReplayResult(os.fspath(path), None))
        return results

    def _replay_run(self, history: Mapping[str, Any], run: Mapping[str, Any]) -> None:
        name = run["workflow_name"]
        fn = self.workflows.get(name)
        if fn is None:
            known = ", ".join(sorted(self.workflows)) or "none"
            raise errors.InvalidArgumentError(
                f"the history of {history['workflow_id']!r} is of workflow {name!r}, which this replayer "
                f"was not given (it has: {known}): pass that function in workflows=[...]")
        info = WorkflowInfo(workflow_id=history["workflow_id"], workflow_name=name,
                            namespace=history["namespace"], task_queue=run["task_queue"],
                            attempt=run["attempt"], parent_workflow_id=run.get("parent_workflow_id"),
                            run_id=run["run_id"])
        events = [{**event, "created_at": datetime.fromisoformat(event["created_at"])}
                  for event in run["events"]]
        replayed = WorkflowRun(info, fn, payloads.loads_args(fn, run["args"]),
                               datetime.fromisoformat(run["started_at"]))
        try:
            replayed.activate(replayed.load_history(events))
        finally:
            replayed.evict()
        failure = replayed.failure or _changed_ending(replayed, events)
        if failure is not None:
            if isinstance(failure, errors.NonDeterminismError):
                failure.add_note(f"(run {run['run_id']} of {history['workflow_id']!r})")
            raise failure


# The event that closed a run, by how its code ended (interrupted runs were stopped from outside).
_ENDINGS = {"workflow_completed": "complete", "workflow_failed": "fail", "workflow_cancelled": "cancelled",
            "workflow_continued_as_new": "continue_as_new"}
_ENDING_TEXT = {"complete": "returns", "fail": "raises", "cancelled": "ends cancelled",
                "continue_as_new": "continues as new"}


def _changed_ending(replayed: WorkflowRun, events: list[dict[str, Any]]) -> errors.NonDeterminismError | None:
    """A mismatch when the history's run ended one way and the replayed code ends another (it
    returned, and now raises: a bug a worker would record on the runs still open)."""
    closing = replayed.closing
    recorded = next((event for event in reversed(events) if event["event_type"] in _ENDINGS), None)
    if closing is None or recorded is None or _ENDINGS[recorded["event_type"]] == closing["type"]:
        return None
    actual = f"the workflow {_ENDING_TEXT.get(closing['type'], closing['type'])}"
    if closing["type"] in ("fail", "cancelled"):
        error_type, message, _ = payloads.error_from_json(closing.get("error"))
        actual += f" {error_type}: {message}"
    info = replayed.info
    return errors.NonDeterminismError(
        f"workflow {info.workflow_name} ({info.workflow_id}): history recorded {recorded['event_type']} "
        f"(event {recorded['event_id']}) but {actual}: fix the code, or guard the change with "
        "Durable.workflow.patched()",
        event_id=recorded["event_id"], expected=recorded["event_type"], actual=actual)

