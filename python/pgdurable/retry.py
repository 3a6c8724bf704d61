"""Retry policies (the arithmetic itself lives in SQL: ``durable.retry_delay_v1``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .durations import Duration, to_seconds


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how far apart, a failing activity (or workflow) is tried.

    ``maximum_attempts`` counts every attempt, the first included. The delay
    before retry n is ``min(initial_interval * backoff_coefficient**(n-1),
    maximum_interval)``. ``non_retryable_errors`` holds exception classes or
    their (qualified) names, matched against the raised exception's classes.
    """

    maximum_attempts: int = 5
    initial_interval: Duration = 1.0
    backoff_coefficient: float = 2.0
    maximum_interval: Duration = 60.0
    non_retryable_errors: Sequence[type[BaseException] | str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if isinstance(self.maximum_attempts, bool) or not isinstance(self.maximum_attempts, int) \
                or self.maximum_attempts < 1:
            raise ValueError(f"maximum_attempts must be an integer >= 1, got {self.maximum_attempts!r}")
        to_seconds(self.initial_interval, what="initial_interval")
        to_seconds(self.maximum_interval, what="maximum_interval")
        if not isinstance(self.backoff_coefficient, (int, float)) or self.backoff_coefficient < 1:
            raise ValueError(f"backoff_coefficient must be a number >= 1, got {self.backoff_coefficient!r}")

    def to_json(self) -> dict[str, Any]:
        """The policy as the engine stores it."""
        return {
            "maximum_attempts": self.maximum_attempts,
            "initial_interval": to_seconds(self.initial_interval, what="initial_interval"),
            "backoff_coefficient": float(self.backoff_coefficient),
            "maximum_interval": to_seconds(self.maximum_interval, what="maximum_interval"),
            "non_retryable_errors": [_error_name(e) for e in self.non_retryable_errors],
        }


def _error_name(error: type[BaseException] | str) -> str:
    if isinstance(error, str):
        return error
    if isinstance(error, type) and issubclass(error, BaseException):
        return f"{error.__module__}.{error.__qualname__}"
    raise ValueError(f"non_retryable_errors takes exception classes or names, got {error!r}")


def error_type_names(exc: BaseException) -> list[str]:
    """Every name ``exc``'s classes answer to, most derived first: ``ValueError`` and
    ``builtins.ValueError`` alike, so a policy may name either."""
    names: list[str] = []
    for cls in type(exc).__mro__:
        if cls in (object, BaseException):
            continue
        for name in (cls.__name__, f"{cls.__module__}.{cls.__qualname__}"):
            if name not in names:
                names.append(name)
    return names
