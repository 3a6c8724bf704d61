"""The web dashboard (``pgdurable ui``; extra ``pgdurable[ui]``): workflows, a workflow's state,
timeline, children and history, streams, workers, worker roles, schedules; signal, cancel,
interrupt and reset with a confirmation step. It reads and writes only through the stored
functions the client and the CLI call, so the role it logs in as sees only what its grants allow.

``create_app(dsn, namespace=..., read_only=..., token=...)`` builds the ASGI application (see
:mod:`pgdurable.ui.app`); ``pgdurable ui`` serves it with uvicorn.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """The dashboard's Starlette application: :func:`pgdurable.ui.app.create_app`."""
    from .app import create_app as create

    return create(*args, **kwargs)
