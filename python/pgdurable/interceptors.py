"""Interceptors: process-wide chains around workflows, proxied activity calls and activities.

The first registered is the outermost. Each interceptor is an object with an
``async execute(...)`` method that calls ``next`` to continue the chain.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol


class InboundInterceptor(Protocol):
    """Wraps each workflow execution: ``await execute(ctx, next)``."""

    async def execute(self, ctx: dict[str, Any], next: Callable[[], Awaitable[Any]]) -> Any: ...


class OutboundInterceptor(Protocol):
    """Wraps each proxied activity call: ``await execute(activity_ctx, workflow_ctx, next)``."""

    async def execute(self, activity_ctx: dict[str, Any], workflow_ctx: dict[str, Any],
                      next: Callable[[], Awaitable[Any]]) -> Any: ...


class ActivityInterceptor(Protocol):
    """Wraps each activity on its worker: ``await execute(activity_ctx, next)``."""

    async def execute(self, activity_ctx: dict[str, Any], next: Callable[[], Awaitable[Any]]) -> Any: ...


inbound: list[Any] = []
outbound: list[Any] = []
activity: list[Any] = []


def register_inbound_interceptor(interceptor: InboundInterceptor) -> None:
    """Adds an interceptor around every workflow execution (may call workflow primitives)."""
    _check(interceptor)
    inbound.append(interceptor)


def register_outbound_interceptor(interceptor: OutboundInterceptor) -> None:
    """Adds an interceptor around every proxied activity call (may change its args)."""
    _check(interceptor)
    outbound.append(interceptor)


def register_activity_interceptor(interceptor: ActivityInterceptor) -> None:
    """Adds an interceptor around every activity function on this process's workers."""
    _check(interceptor)
    activity.append(interceptor)


def clear_interceptors() -> None:
    """Removes every registered interceptor."""
    inbound.clear()
    outbound.clear()
    activity.clear()


def _check(interceptor: Any) -> None:
    if not callable(getattr(interceptor, "execute", None)):
        raise TypeError("an interceptor needs an async execute(...) method")


def chain(interceptors: list[Any], call: Callable[..., Awaitable[Any]],
          *args: Any) -> Callable[[], Awaitable[Any]]:
    """``call`` wrapped by ``interceptors`` (first is outermost); each gets ``*args`` then ``next``."""
    next_call: Callable[[], Awaitable[Any]] = call
    for interceptor in reversed(list(interceptors)):
        def bind(icpt: Any = interceptor, inner: Callable[[], Awaitable[Any]] = next_call):
            return lambda: icpt.execute(*args, inner)
        next_call = bind()
    return next_call
