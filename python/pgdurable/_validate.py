"""The one check of the ids and names callers give (workflow ids, workflow and activity names, task
queues, signal ids): refused at the call, before the engine would refuse the command for good."""

from __future__ import annotations

from typing import Any

MAX_LENGTH = 1000


def check_text(what: str, value: Any) -> None:
    """Raises ``ValueError`` naming ``what`` unless ``value`` is a non-empty string of at most 1000
    characters without NUL characters (the engine's limits)."""
    if not isinstance(value, str) or not value or len(value) > MAX_LENGTH or "\x00" in value:
        raise ValueError(f"invalid {what} {value!r}: give a non-empty string of at most {MAX_LENGTH} "
                         "characters without NUL characters")
