"""The exported history document: what ``pgdurable workflow export`` writes and
:class:`pgdurable.testing.Replayer` reads.

``{"format": "pgdurable-history", "version": 1, "namespace", "workflow_id", "runs": [...]}``; each
run: ``run_id``, ``workflow_name``, ``task_queue``, ``attempt``, ``parent_workflow_id``,
``status``, ``started_at``, ``args`` (the encoded payload, as stored) and ``events`` (``event_id``,
``event_type``, ``seq``, ``inbound``, ``data`` as stored, ``created_at``), oldest first. A reader
refuses another format or version: a change to the document's meaning bumps the version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import errors

FORMAT = "pgdurable-history"
VERSION = 1


def document(namespace: str, workflow_id: str, runs: list[dict[str, Any]],
             rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The document of ``runs`` (rows of ``workflow_runs_v1``) and their events (rows of
    ``workflow_history_v1``)."""
    events: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        events.setdefault(row["run_id"], []).append(
            {"event_id": row["event_id"], "event_type": row["event_type"], "seq": row["seq"],
             "inbound": row["inbound"], "data": row["data"], "created_at": row["created_at"].isoformat()})
    return {"format": FORMAT, "version": VERSION, "namespace": namespace, "workflow_id": workflow_id,
            "runs": [{"run_id": run["run_id"], "workflow_name": run["workflow_name"],
                      "task_queue": run["task_queue"], "attempt": run["attempt"],
                      "parent_workflow_id": run["parent_workflow_id"], "status": run["status"],
                      "started_at": run["created_at"].isoformat(), "args": run["args"],
                      "events": events.get(run["run_id"], [])} for run in runs]}


def check(history: Any) -> None:
    """Raises InvalidArgumentError, saying what to do, unless ``history`` is a document this
    version reads."""
    if not isinstance(history, Mapping) or history.get("format") != FORMAT:
        raise errors.InvalidArgumentError(
            f"not an exported pgdurable history (no \"format\": \"{FORMAT}\"): make one with "
            "`pgdurable workflow export WORKFLOW_ID > history.json`")
    if history.get("version") != VERSION:
        raise errors.InvalidArgumentError(
            f"history format version {history.get('version')!r} is not one this pgdurable reads "
            f"({VERSION}): export it again with this version's `pgdurable workflow export`")
    if not isinstance(history.get("runs"), list) or not history["runs"]:
        raise errors.InvalidArgumentError("the history has no runs: export a workflow that has started")
