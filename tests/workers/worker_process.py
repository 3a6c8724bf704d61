"""The worker subprocess of the crash and reliability tests: ``python -m workers.worker_process``
(cwd ``tests/``; started by :mod:`support.subprocess_workers`).

Serves the named workflows of :mod:`workers.rel_flows` and :mod:`workers.crash_app` on one task
queue (and, with ``--activities``, registers those activities up front), then exits 0 once
``--until`` (a workflow id) is closed, or 3 after ``--timeout`` seconds. Prints ``ready`` once
consuming. It dies on its own where the test wants it to: ``PGDURABLE_CRASH_AT`` (exit 70) or a
poison activity (``os._exit``); or the test kills it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time

from pgdurable import Durable

from . import crash_app, flow_flows, rel_flows

WORKFLOWS = {**rel_flows.WORKFLOWS, **{fn.__name__: fn for fn in crash_app.WORKFLOWS}, **flow_flows.WORKFLOWS}
ACTIVITIES = {**rel_flows.ACTIVITIES, **{fn.__name__: fn for fn in crash_app.ACTIVITIES},
              **flow_flows.ACTIVITIES}

CLOSED = {"completed", "failed", "cancelled", "interrupted"}


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dsn")
    parser.add_argument("task_queue")
    parser.add_argument("--workflows", default="", help="comma-separated workflow names")
    parser.add_argument("--activities", default="", help="comma-separated activity names")
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--until", help="exit 0 once this workflow is closed")
    parser.add_argument("--timeout", type=float, default=60.0)
    opts = parser.parse_args(argv)

    logging.basicConfig(level=os.environ.get("REL_WORKER_LOG", "WARNING"), stream=sys.stderr,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    connection = Durable.Connection(opts.dsn)
    workflows = [WORKFLOWS[name] for name in opts.workflows.split(",") if name]
    activities = [ACTIVITIES[name] for name in opts.activities.split(",") if name]
    if workflows:
        await Durable.Worker.create(connection=connection, task_queue=opts.task_queue, workflows=workflows,
                                    activities=activities or None, lease_seconds=opts.lease)
    else:
        await Durable.register_activity_worker({"connection": connection, "task_queue": opts.task_queue,
                                                "lease_seconds": opts.lease}, activities)
    print("ready", flush=True)
    client = Durable.Client(connection=connection)
    deadline = time.monotonic() + opts.timeout
    try:
        while time.monotonic() < deadline:
            if opts.until:
                try:
                    status = await client.workflow.get_handle(opts.task_queue, "", opts.until).status()
                except Exception:  # noqa: BLE001 - not started yet, or a blip: ask again
                    status = None
                if status in CLOSED:
                    return 0
            await asyncio.sleep(0.1)
        return 3
    finally:
        await Durable.shutdown(grace=5)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
