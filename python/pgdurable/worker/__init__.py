"""Workers: claim workflow and activity tasks, run them, record their outcomes.

Split the way Temporal's SDK splits them: ``_worker`` (the :class:`Worker` a user creates)
composes a workflow-task worker (``_workflow``) and an activity worker (``_activity``), whose
every database call goes through one helper with one retry policy (``_calls``).
"""

from ._calls import LOGIN_ERROR_EVERY, LOGIN_RETRY, POLL_INTERVAL
from ._worker import (
    DEFAULT_LEASE,
    HEARTBEAT_INTERVAL,
    Worker,
    _workers,
    register_activity_worker,
    shutdown_all,
)
from ._workflow import UNKNOWN_ACTIVITY_CHECK

__all__ = ["DEFAULT_LEASE", "HEARTBEAT_INTERVAL", "LOGIN_ERROR_EVERY", "LOGIN_RETRY", "POLL_INTERVAL",
           "UNKNOWN_ACTIVITY_CHECK", "Worker", "_workers", "register_activity_worker", "shutdown_all"]
