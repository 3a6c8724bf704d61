"""pgdurable: durable workflows for Python whose engine is Postgres.

Workflows are plain async functions; pgdurable persists every step in
Postgres, replays deterministically after a crash, retries activities, fires
durable timers and matches signals. Start with :class:`Durable`.
"""

from . import errors, sync
from .activity import ActivityContext
from .client import Client, WorkflowClient, WorkflowHandle
from .connection import Connection
from .durable import Durable, guid, migrate, prune, shutdown
from .errors import did_interrupt, is_cancellation
from .payloads import register_codec
from .retry import RetryPolicy
from .roles import WorkerCredential, WorkerCredentialInfo
from .schedule import ScheduleClient, ScheduleHandle
from .worker import Worker, register_activity_worker
from .workflow import CancellationScope, WorkflowInfo

__all__ = [
    "ActivityContext",
    "CancellationScope",
    "Client",
    "Connection",
    "Durable",
    "RetryPolicy",
    "ScheduleClient",
    "ScheduleHandle",
    "Worker",
    "WorkerCredential",
    "WorkerCredentialInfo",
    "WorkflowClient",
    "WorkflowHandle",
    "WorkflowInfo",
    "did_interrupt",
    "errors",
    "guid",
    "is_cancellation",
    "migrate",
    "prune",
    "register_activity_worker",
    "register_codec",
    "shutdown",
    "sync",
]
