"""The one check of the ids and names callers give (workflow ids, workflow and activity names, task
queues, signal ids): refused at the call, before the engine would refuse the command for good."""

from __future__ import annotations

from typing import Any

from pgdurable.errors import InvalidArgumentError

MAX_LENGTH = 1000


def check_text(what: str, value: Any) -> None:
    """Raises :class:`~pgdurable.errors.InvalidArgumentError` (a ``ValueError``) naming ``what``
    unless ``value`` is a non-empty string of at most 1000 characters without NUL characters that
    UTF-8 can encode (the engine's limits; a lone surrogate such as ``"\\ud800"`` cannot be sent to
    Postgres). Typed, so the CLI prints it as one error line."""
    if not isinstance(value, str) or not value or len(value) > MAX_LENGTH or "\x00" in value:
        raise InvalidArgumentError(f"invalid {what} {value!r}: give a non-empty string of at most "
                                   f"{MAX_LENGTH} characters without NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgumentError(f"invalid {what} {value!r}: it holds a lone surrogate "
                                   f"({value[exc.start]!r} at index {exc.start}), which UTF-8 cannot "
                                   "encode: give valid Unicode text") from None
