"""A worker process for the crash tests, killed with SIGKILL by them.

    python tests/workers/crash_worker.py DSN TASK_QUEUE

(DSN may also come from PGDURABLE_DSN.) Serves the workflows and activities of
crash_app with a 2 s lease, so a killed worker's tasks are claimable again soon.
Prints "ready" once it consumes.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pgdurable import Durable  # noqa: E402
from workers import crash_app  # noqa: E402

LEASE_SECONDS = 2.0


async def main(dsn: str, task_queue: str) -> None:
    connection = Durable.Connection(dsn)
    await Durable.Worker.create(connection=connection, task_queue=task_queue, workflows=crash_app.WORKFLOWS,
                                activities=crash_app.ACTIVITIES, lease_seconds=LEASE_SECONDS)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    args = sys.argv[1:]
    dsn = args[0] if len(args) > 1 else os.environ["PGDURABLE_DSN"]
    asyncio.run(main(dsn, args[-1]))
