"""Durations: seconds, ``timedelta`` or strings like ``"500ms"``, ``"5 seconds"``, ``"2d"``."""

from __future__ import annotations

import math
import re
from datetime import timedelta

_UNITS = {
    "ms": 0.001, "msec": 0.001, "msecs": 0.001,
    "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
    "w": 604800.0, "week": 604800.0, "weeks": 604800.0,
}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]+)\s*")
MAX_SECONDS = 100 * 365 * 86400.0

Duration = float | int | timedelta | str


def to_seconds(duration: Duration, *, what: str = "duration") -> float:
    """Converts a duration to seconds; raises ``ValueError`` naming what is wrong."""
    if isinstance(duration, bool):
        raise ValueError(
            f"invalid {what} {duration!r}: give seconds, a timedelta or a string like '5 seconds'")
    if isinstance(duration, timedelta):
        seconds = duration.total_seconds()
    elif isinstance(duration, (int, float)):
        seconds = float(duration)
    elif isinstance(duration, str):
        seconds = _parse(duration, what)
    else:
        raise ValueError(
            f"invalid {what} of type {type(duration).__name__}: "
            "give seconds, a timedelta or a string like '5 seconds'"
        )
    if math.isnan(seconds) or seconds < 0 or seconds > MAX_SECONDS:
        raise ValueError(f"invalid {what} {duration!r}: give a value from 0 to 100 years")
    return seconds


def _parse(text: str, what: str) -> float:
    stripped = text.strip().lower()
    try:
        return float(stripped)
    except ValueError:
        pass
    total, pos = 0.0, 0
    for match in _PART.finditer(stripped):
        if match.start() != pos or match.group(2) not in _UNITS:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    else:
        if pos == len(stripped) and pos > 0:
            return total
    raise ValueError(
        f"invalid {what} {text!r}: use a number of seconds or a string like "
        "'500ms', '5 seconds', '1 hour', '2d' or '1h 30m'"
    )
