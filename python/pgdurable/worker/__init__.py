"""Workers: claim workflow and activity tasks, run them, record their outcomes.

The package splits a worker the way Temporal's SDK does: ``_worker`` composes a
workflow-task worker and an activity worker over one connection.
"""

from ._calls import LOGIN_ERROR_EVERY, LOGIN_RETRY
from ._worker import (
    DEFAULT_LEASE,
    POLL_INTERVAL,
    UNKNOWN_ACTIVITY_CHECK,
    Worker,
    _workers,
    register_activity_worker,
    shutdown_all,
)

__all__ = ["DEFAULT_LEASE", "LOGIN_ERROR_EVERY", "LOGIN_RETRY", "POLL_INTERVAL", "UNKNOWN_ACTIVITY_CHECK",
           "Worker", "_workers", "register_activity_worker", "shutdown_all"]
