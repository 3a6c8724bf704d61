"""``pgdurable.sync.Client``: synchronous code (Django, Flask, scripts) starts and reads workflows.

Where the worker runs: on an event loop of the test's own, in a thread of the test's own
(:class:`WorkerLoop`), never on the sync client's loop. So the test bodies are plain synchronous
code with no event loop, as a Django view is; the sync client's private loop does nothing but the
client's calls (the tests would not notice the client leaning on a loop it does not own); and the
one test whose own thread runs a loop proves a caller's loop is not needed, nor blocked for ever.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

import pgdurable
import pgdurable.sync
from pgdurable import Durable, errors
from support.polling import wait_until

T = TypeVar("T")
README = Path(__file__).resolve().parents[1] / "README.md"


async def sync_double(x: int) -> int:
    return x * 2


async def sync_doubling_workflow(x: int) -> int:
    acts = Durable.workflow.proxy_activities(activities=[sync_double])
    return await acts.sync_double(x)


async def sync_waiting_workflow(signal_id: str) -> Any:
    return {"got": await Durable.workflow.condition(signal_id)}


async def sync_failing_workflow() -> None:
    raise LookupError("no such order")


async def fulfil_order(order_id: str) -> str:  # the workflow of README.md's Flask example
    acts = Durable.workflow.proxy_activities(activities=[sync_double])
    return f"receipt-{order_id}-{await acts.sync_double(21)}"


WORKFLOWS = [sync_doubling_workflow, sync_waiting_workflow, sync_failing_workflow, fulfil_order]


class WorkerLoop:
    """The test's own event loop, in a thread of its own, serving ``task_queue``."""

    def __init__(self, dsn: str, task_queue: str = "sync") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="test-worker-loop")
        self.thread.start()
        self.connection = Durable.Connection(dsn)
        self.worker = self.run(Durable.Worker.create(connection=self.connection, task_queue=task_queue,
                                                     workflows=WORKFLOWS))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def stop(self) -> None:
        self.run(self.worker.shutdown(grace=5))
        self.run(self.connection.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@pytest.fixture
def worker(dsn: str) -> Iterator[WorkerLoop]:
    serving = WorkerLoop(dsn)
    yield serving
    serving.stop()


@pytest.fixture
def client(dsn: str, worker: WorkerLoop) -> Iterator[pgdurable.sync.Client]:
    with pgdurable.sync.Client(dsn) as sync_client:
        yield sync_client


def start_waiting(client: pgdurable.sync.Client, workflow_id: str, signal_id: str) -> Any:
    return client.start(args=[signal_id], task_queue="sync", workflow_name="sync_waiting_workflow",
                        workflow_id=workflow_id)


def test_plain_sync_code_starts_a_workflow_and_blocks_for_its_result(client):
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # this test body is plain synchronous code
    handle = client.start(args=[21], task_queue="sync", workflow_name="sync_doubling_workflow",
                          workflow_id="double-1")
    assert isinstance(handle, pgdurable.sync.WorkflowHandle)
    assert handle.result(timeout=30) == 42
    assert handle.status() == "completed"
    assert handle.state()["result"] == 42
    assert [e["event_type"] for e in handle.history()][-1] == "workflow_completed"
    by_id = client.get_handle("double-1")
    assert (by_id.workflow_id, by_id.task_queue, by_id.workflow_name) == ("double-1", None, None)
    assert by_id.result(timeout=30) == 42
    seed_form = client.get_handle("sync", "sync_doubling_workflow", "double-1")
    assert (seed_form.task_queue, seed_form.workflow_name) == ("sync", "sync_doubling_workflow")
    assert seed_form.result() == 42
    with pytest.raises(TypeError, match="get_handle takes"):
        client.get_handle("sync", "double-1")


def test_a_signal_from_sync_code_reaches_the_waiting_workflow(client):
    first = start_waiting(client, "sig-1", "sig-a")
    second = start_waiting(client, "sig-2", "sig-b")
    client.signal("sig-a", {"n": 1})
    second.signal("sig-b", {"n": 2})
    assert first.result(timeout=30) == {"got": {"n": 1}}
    assert second.result(timeout=30) == {"got": {"n": 2}}


def test_cancel_and_interrupt_from_sync_code_close_the_workflow(client):
    cancelled = start_waiting(client, "cancel-1", "never-sent")
    assert cancelled.cancel() is True
    with pytest.raises(errors.WorkflowCancelledError, match="cancel-1"):
        cancelled.result(timeout=30)
    assert cancelled.status() == "cancelled"
    assert cancelled.cancel() is False
    interrupted = start_waiting(client, "interrupt-1", "never-sent")
    assert interrupted.interrupt("stop now") is True
    with pytest.raises(errors.WorkflowInterruptedError, match="stop now"):
        interrupted.result(timeout=30)


def test_list_from_sync_code_shows_the_runs_of_its_namespace(client, dsn):
    start_waiting(client, "list-1", "list-sig")
    done = client.start(args=[1], task_queue="sync", workflow_name="sync_doubling_workflow",
                        workflow_id="list-2")
    done.result(timeout=30)
    assert {row["workflow_id"] for row in client.list()} == {"list-1", "list-2"}
    assert [row["workflow_id"] for row in client.list(status="completed")] == ["list-2"]
    assert [row["workflow_id"] for row in client.list(workflow_name="sync_waiting_workflow")] == ["list-1"]
    with pgdurable.sync.Client(dsn, namespace="elsewhere") as other:
        assert other.list() == []


def test_many_threads_share_one_sync_client_at_once(client):
    barrier = threading.Barrier(8)
    loop_threads: set[str] = set()

    def request(i: int) -> Any:
        barrier.wait(timeout=30)  # all eight call at the same time
        handle = start_waiting(client, f"thread-{i}", f"thread-sig-{i}")
        client.signal(f"thread-sig-{i}", i)
        loop_threads.update(t.name for t in threading.enumerate() if t.name.startswith("pgdurable-sync"))
        return handle.result(timeout=30)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(request, range(8)))
    assert results == [{"got": i} for i in range(8)]
    assert loop_threads == {"pgdurable-sync-durable"}  # one private loop served them all
    assert len(client.list(status="completed")) == 8


def test_errors_are_the_same_typed_pgdurable_errors(client, dsn, monkeypatch):
    start_waiting(client, "dup-1", "dup-sig")
    with pytest.raises(errors.DuplicateWorkflowError, match="dup-1"):
        start_waiting(client, "dup-1", "dup-sig")
    with pytest.raises(errors.WorkflowNotFoundError, match="nobody"):
        client.get_handle("nobody").status()
    failing = client.start(task_queue="sync", workflow_name="sync_failing_workflow")
    with pytest.raises(errors.WorkflowFailedError, match="no such order") as failed:
        failing.result(timeout=30)
    assert failed.value.error_type == "LookupError"
    with pytest.raises(TimeoutError, match="dup-1"):
        client.get_handle("dup-1").result(timeout=0.2)
    with pytest.raises(TypeError, match="args must be a list"):
        client.start(args="x", task_queue="sync", workflow_name="sync_waiting_workflow")
    monkeypatch.delenv("PGDURABLE_DSN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pgdurable.sync.Client() as unconfigured, pytest.raises(errors.MissingDsnError):
        unconfigured.list()
    with pytest.raises(TypeError, match="connection_or_dsn"):
        pgdurable.sync.Client(42)  # type: ignore[arg-type]


def test_close_is_idempotent_cancels_waiting_calls_and_refuses_new_ones(dsn, worker):
    client = pgdurable.sync.Client(dsn)
    handle = start_waiting(client, "close-1", "close-sig")
    outcome: list[BaseException] = []

    def wait_for_result() -> None:
        try:
            handle.result()
        except BaseException as exc:  # noqa: BLE001 - the outcome is what the test looks at
            outcome.append(exc)

    waiter = threading.Thread(target=wait_for_result)
    waiter.start()
    wait_until(lambda: client._calls, "the waiting result() to reach the client's loop")
    client.close()
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError), outcome
    assert "closed while this call waited" in str(outcome[0])
    assert not client._thread.is_alive()
    client.close()  # again: nothing happens
    with pytest.raises(RuntimeError, match="closed"):
        client.list()
    with pytest.raises(RuntimeError, match="closed"):
        handle.status()
    with pgdurable.sync.Client(dsn) as again:  # the workflow itself goes on
        assert again.get_handle("close-1").status() == "running"
    again.close()


async def test_a_caller_whose_thread_runs_an_event_loop_does_not_deadlock(client):
    # Sync calls from a coroutine block this loop for their duration, but run on the sync
    # client's loop, so they return: here the worker is on another loop and the workflow finishes.
    handle = client.start(args=[5], task_queue="sync", workflow_name="sync_doubling_workflow")
    assert handle.result(timeout=30) == 10
    assert client.get_handle(handle.workflow_id).status() == "completed"


def test_a_sync_client_on_an_async_connection_shares_its_database_not_its_pool(dsn, worker):
    # The worker's Connection is used by the worker's loop; the sync client opens pools of its own.
    with pgdurable.sync.Client(worker.connection) as client:
        handle = client.start(args=[4], task_queue="sync", workflow_name="sync_doubling_workflow")
        assert handle.result(timeout=30) == 8
        assert client._connection is not worker.connection
    assert worker.run(worker.connection.run(lambda conn: conn.execute("SELECT 1"))) is not None


def test_durable_shutdown_on_another_loop_closes_the_sync_pools_and_the_client_goes_on(dsn):
    with pgdurable.sync.Client(dsn) as client:
        assert client.list() == []  # its pool is open now, on its own loop
        assert client._connection._pool is not None
        asyncio.run(Durable.shutdown(grace=1))  # closes every pool of the process, from another loop
        assert client._connection._pool is None
        client.start(args=["s"], task_queue="sync", workflow_name="sync_waiting_workflow",
                     workflow_id="after-shutdown")  # a new pool, on the client's own loop
        assert [row["workflow_id"] for row in client.list()] == ["after-shutdown"]


def test_the_readme_flask_example_serves_requests(dsn, monkeypatch):
    pytest.importorskip("flask")  # Flask is not a dependency: the tests above stand without it
    orders = WorkerLoop(dsn, "orders")
    text = README.read_text(encoding="utf-8")
    block = next(m.group(1) for m in re.finditer(r"```python\n(.*?)```", text, re.S)
                 if "pgdurable.sync.Client" in m.group(1))
    monkeypatch.setenv("PGDURABLE_DSN", dsn)
    namespace: dict[str, Any] = {"__name__": "readme_flask"}
    exec(compile(block, "README.md (Flask example)", "exec"), namespace)  # noqa: S102 - the README is ours
    try:
        web = namespace["app"].test_client()
        placed = web.post("/orders/7")
        assert placed.status_code == 202
        assert placed.get_json() == {"workflow_id": "order-7"}
        assert web.post("/orders/7").status_code == 202  # placing it again returns the same workflow
        wait_until(lambda: web.get("/orders/7").get_json()["status"] == "completed", "order 7 to complete")
        assert web.get("/orders/7").get_json() == {"status": "completed", "receipt": "receipt-7-42"}
        with ThreadPoolExecutor(max_workers=4) as pool:  # request threads share the module's client
            assert {r.status_code for r in pool.map(lambda i: web.post(f"/orders/{i}"), range(4))} == {202}
    finally:
        if "durable" in namespace:
            namespace["durable"].close()
        orders.stop()


def test_import_pgdurable_exports_the_sync_client_with_documented_public_names():
    code = ("import pgdurable; c = pgdurable.sync.Client; h = pgdurable.sync.WorkflowHandle; "
            "print(','.join(n for n in ['start', 'get_handle', 'signal', 'list', 'close'] "
            "if getattr(c, n).__doc__), "
            "','.join(n for n in ['result', 'status', 'state', 'signal', 'cancel', 'interrupt', 'history', "
            "'workflow_id'] if getattr(h, n).__doc__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["start,get_handle,signal,list,close",
                                  "result,status,state,signal,cancel,interrupt,history,workflow_id"]
    assert "sync" in pgdurable.__all__
