"""The process-wide activity registry: which activity functions this process can run."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterable
from typing import Any

_activities: dict[str, Callable[..., Any]] = {}
# Test doubles (pgdurable.testing): run instead of the same-named registered activity until removed.
_overrides: dict[str, Callable[..., Any]] = {}
_listeners: list[Callable[[], None]] = []


def qualified_name(fn: Any) -> str:
    """``module.qualname`` of a function, for messages."""
    qualname = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
    return f"{getattr(fn, '__module__', '?')}.{qualname}"


def same_function(a: Any, b: Any) -> bool:
    """The same function, or the same definition loaded again (a reloaded module, a re-run script)."""
    return a is b or (qualified_name(a) == qualified_name(b) and getattr(a, "__module__", None) is not None)


def check_conflict(kind: str, name: str, registered: Any, new: Any) -> None:
    """``ValueError`` naming both functions when ``new`` would take ``name`` from ``registered``."""
    if registered is not None and not same_function(registered, new):
        raise ValueError(
            f"{kind} name {name!r} is already registered to {qualified_name(registered)}; cannot register "
            f"{qualified_name(new)} under the same name: give one of them an explicit name (register a "
            f"dict {{'other_name': function}})")


def register_activities(activities: Any) -> Iterable[str]:
    """Registers a module's public functions, a dict name→callable or a list of callables (the
    dict's keys are explicit names). A name registered to another function raises ``ValueError``
    naming both, and registers nothing."""
    found = _functions(activities)
    for name, fn in found.items():
        check_conflict("activity", name, _activities.get(name), fn)
    changed = any(_activities.get(name) is not fn for name, fn in found.items())
    _activities.update(found)
    if changed:
        _changed()
    return found.keys()


def override(activities: Any) -> dict[str, Callable[..., Any] | None]:
    """Makes ``activities`` (any form :func:`register_activities` takes) run instead of the
    same-named registered ones, whoever registers those later; returns what each name overrode
    before, for :func:`restore_overrides`."""
    found = _functions(activities)
    before = {name: _overrides.get(name) for name in found}
    _overrides.update(found)
    _changed()
    return before


def restore_overrides(before: dict[str, Callable[..., Any] | None]) -> None:
    """Undoes :func:`override` (``before`` is what it returned)."""
    for name, fn in before.items():
        if fn is None:
            _overrides.pop(name, None)
        else:
            _overrides[name] = fn
    _changed()


def _changed() -> None:
    for listener in list(_listeners):
        listener()


def _functions(activities: Any) -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}
    if isinstance(activities, types.ModuleType):
        for name, value in vars(activities).items():
            if name.startswith("_") or not inspect.isfunction(value):
                continue
            if value.__module__ != activities.__name__:
                continue
            found[name] = value
    elif isinstance(activities, dict):
        for name, value in activities.items():
            if not callable(value):
                raise TypeError(f"activity {name!r} is not callable")
            found[str(name)] = value
    elif isinstance(activities, (list, tuple, set)):
        for value in activities:
            if not callable(value):
                raise TypeError(f"activity {value!r} is not callable")
            check_conflict("activity", value.__name__, found.get(value.__name__), value)
            found[value.__name__] = value
    elif callable(activities):
        found[activities.__name__] = activities
    else:
        raise TypeError("activities must be a module, a dict name->callable or a list of callables")
    return found


def forget_activities() -> None:
    """Forgets every activity registration (not the test doubles): ``Durable.shutdown()`` ends the
    process's workers, and with them the names they claimed. Workers created afterwards register
    their activities again (``activities=``, ``register_activity_worker``, workflow code's
    ``proxy_activities``)."""
    _activities.clear()


def names() -> list[str]:
    """Names of every activity registered in this process."""
    return sorted(_activities.keys() | _overrides.keys())


def get(name: str) -> Callable[..., Any] | None:
    """The activity function registered under ``name``."""
    return _overrides.get(name) or _activities.get(name)


def on_change(listener: Callable[[], None]) -> None:
    """Calls ``listener`` whenever a new activity is registered."""
    _listeners.append(listener)


def remove_listener(listener: Callable[[], None]) -> None:
    """Stops calling ``listener``."""
    if listener in _listeners:
        _listeners.remove(listener)
