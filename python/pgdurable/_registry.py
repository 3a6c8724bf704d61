"""The process-wide activity registry: which activity functions this process can run."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterable
from typing import Any

_activities: dict[str, Callable[..., Any]] = {}
_listeners: list[Callable[[], None]] = []


def register_activities(activities: Any) -> Iterable[str]:
    """Registers a module's public functions, a dict name→callable or a list of callables."""
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
            found[value.__name__] = value
    elif callable(activities):
        found[activities.__name__] = activities
    else:
        raise TypeError("activities must be a module, a dict name->callable or a list of callables")
    changed = any(_activities.get(name) is not fn for name, fn in found.items())
    _activities.update(found)
    if changed:
        for listener in list(_listeners):
            listener()
    return found.keys()


def names() -> list[str]:
    """Names of every activity registered in this process."""
    return sorted(_activities)


def get(name: str) -> Callable[..., Any] | None:
    """The activity function registered under ``name``."""
    return _activities.get(name)


def on_change(listener: Callable[[], None]) -> None:
    """Calls ``listener`` whenever a new activity is registered."""
    _listeners.append(listener)


def remove_listener(listener: Callable[[], None]) -> None:
    """Stops calling ``listener``."""
    if listener in _listeners:
        _listeners.remove(listener)
