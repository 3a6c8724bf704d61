"""The web dashboard (``pgdurable.ui``) against a real database: every page renders what the
stored functions return, the list filters and pages, a workflow page shows its input, result,
timeline, children, runs and history; actions need a CSRF token and a confirmation, read-only
mode refuses them, and a dashboard bound elsewhere than localhost requires its access token."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

pytest.importorskip("starlette", reason="the dashboard's extra (pip install 'pgdurable[ui]') is missing")
httpx = pytest.importorskip("httpx", reason="httpx (dev extra) drives the dashboard in these tests")

from tests.support.db import sql  # noqa: E402
from tests.support.polling import wait_for  # noqa: E402
from tests.support.rot13 import Rot13  # noqa: E402

from pgdurable import Durable, RetryPolicy, payloads  # noqa: E402
from pgdurable.cli.ui import is_local  # noqa: E402
from pgdurable.ui.app import CSRF_COOKIE, TOKEN_COOKIE, create_app  # noqa: E402

QUEUE = "ui-q"


async def flaky(n: int) -> int:
    """Fails its first attempt."""
    if Durable.activity.get_context().attempt == 1:
        raise ConnectionError("gateway timed out")
    return n * 2


async def leaf(n: int) -> int:
    return n + 1


async def parent(n: int) -> dict[str, Any]:
    acts = Durable.workflow.proxy_activities(
        activities=[flaky], retry=RetryPolicy(maximum_attempts=3, initial_interval=0.1))
    doubled = await acts.flaky(n)
    await Durable.workflow.sleep(0.2)
    child = await Durable.workflow.execute_child(workflow_name="leaf", args=[doubled])
    return {"doubled": doubled, "child": child}


async def waiter(name: str) -> Any:
    return await Durable.workflow.condition(f"go-{name}", timeout=120)


async def looper(n: int) -> int:
    if n > 0:
        Durable.workflow.continue_as_new(n - 1)
    return n


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    connection = Durable.Connection(dsn)
    yield connection
    await Durable.shutdown()
    await connection.close()


@pytest.fixture
async def worker(connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE,
                                workflows=[parent, leaf, waiter, looper])


@pytest.fixture
def client(connection: Durable.Connection) -> Durable.Client:
    return Durable.Client(connection=connection)


def browser(app: Any, base: str = "http://127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


async def test_the_list_shows_each_run_and_filters_by_status_name_queue_time_and_id(
        worker, client, connection):
    done = await client.workflow.start(args=[1], task_queue=QUEUE, workflow_name="parent", workflow_id="p-1")
    waiting = await client.workflow.start(args=["a"], task_queue=QUEUE, workflow_name="waiter",
                                          workflow_id="w-1")
    await done.result(timeout=30)
    async with browser(create_app(connection)) as web:
        page = await web.get("/")
        assert page.status_code == 200
        listed = re.findall(r'data-workflow-id="([^"]+)"', page.text)
        assert set(listed) == {"p-1", "p-1-1.3", "w-1"}  # the child workflow too
        assert re.findall(r'data-workflow-id="([^"]+)"', (await web.get("/?status=running")).text) == ["w-1"]
        assert re.findall(r'data-workflow-id="([^"]+)"', (await web.get("/?name=parent")).text) == ["p-1"]
        assert set(re.findall(r'data-workflow-id="([^"]+)"', (await web.get(f"/?queue={QUEUE}")).text)) \
            == set(listed)
        assert re.findall(r'data-workflow-id="([^"]+)"', (await web.get("/?id=w-")).text) == ["w-1"]
        future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
        later = await web.get(f"/?after={future}")
        assert "no-workflows" in later.text and "match this filter" in later.text
        assert len(re.findall(r'data-workflow-id="', (await web.get(f"/?before={future}")).text)) == 3
        bad = await web.get("/?after=yesterday")
        assert bad.status_code == 400 and "is not a date and time" in bad.text
        assert (await web.get("/?status=sleepy")).status_code == 400
    await waiting.signal("go-a", True)


async def test_the_list_pages_through_runs_newest_first_without_repeating_one(connection, client):
    handles = [await client.workflow.start(args=["x"], task_queue="nobody-q", workflow_name="waiter",
                                           workflow_id=f"page-{n:02d}") for n in range(7)]
    assert len(handles) == 7
    seen: list[str] = []
    async with browser(create_app(connection)) as web:
        url: str | None = "/?limit=3"
        pages = 0
        while url:
            page = await web.get(url)
            assert page.status_code == 200
            seen += re.findall(r'data-workflow-id="([^"]+)"', page.text)
            found = re.search(r'href="([^"]+)" id="next-page"', page.text)
            url = found.group(1).replace("&amp;", "&") if found else None
            pages += 1
        assert pages == 3
    assert seen == [f"page-{n:02d}" for n in reversed(range(7))]


async def test_a_workflow_page_shows_input_result_timeline_children_and_raw_history(worker, client,
                                                                                     connection):
    handle = await client.workflow.start(args=[21], task_queue=QUEUE, workflow_name="parent",
                                         workflow_id="tl-1")
    assert await handle.result(timeout=30) == {"doubled": 42, "child": 43}
    async with browser(create_app(connection)) as web:
        page = await web.get("/workflows/tl-1")
        assert page.status_code == 200, page.text
        text = page.text
        assert 'id="status">completed<' in text
        assert "&#34;doubled&#34;: 42" in text or '"doubled": 42' in text
        # The timeline: the failed first attempt and the retry as bars, the timer and the child as spans.
        timeline = text[text.index('id="timeline"'):text.index('id="children"')]
        assert len(re.findall(r'tl-row kind-activity', timeline)) == 1
        assert re.findall(r'data-state="(\w+)"[^>]*><span>#\d', timeline) == ["failed", "ok"]
        assert "kind-timer" in timeline and "kind-child" in timeline
        assert "timer 0.2 s" in timeline
        assert 'href="/workflows/tl-1-1.3"' in text  # the child, in the children tree
        assert "activity_failed" in text and "gateway timed out" in text
        raw = await web.get("/workflows/tl-1?format=json")
        events = raw.json()
        assert [e["event_type"] for e in events][:2] == ["workflow_started", "activity_scheduled"]
        assert events[-1]["event_type"] == "workflow_completed"
        child = await web.get("/workflows/tl-1-1.3")
        assert 'id="parent">tl-1<' in child.text
        missing = await web.get("/workflows/nope")
        assert missing.status_code == 404 and "not found" in missing.text


async def test_runs_continued_as_new_link_to_each_other(worker, client, connection):
    handle = await client.workflow.start(args=[2], task_queue=QUEUE, workflow_name="looper",
                                         workflow_id="loop")
    assert await handle.result(timeout=30) == 0
    async with browser(create_app(connection)) as web:
        page = await web.get("/workflows/loop")
        assert 'href="/workflows/loop?run=1"' in page.text and 'href="/workflows/loop?run=2"' in page.text
        assert "continued as new in run 2" in page.text
        first = await web.get("/workflows/loop?run=1")
        assert 'id="status">continued<' in first.text
        assert "workflow_continued_as_new" in first.text


async def test_payloads_a_codec_wrote_are_shown_encoded_without_it_and_decoded_with_it(worker, client,
                                                                                     connection):
    payloads.register_codec(Rot13())
    try:
        handle = await client.workflow.start(args=["secret"], task_queue=QUEUE, workflow_name="waiter",
                                             workflow_id="enc-1")
        await wait_for(lambda: handle.state(), "the run exists")
        async with browser(create_app(connection)) as web:
            decoded = await web.get("/workflows/enc-1")
            assert "secret" in decoded.text and "encoded payload" not in decoded.text
        payloads.register_codec(None)
        async with browser(create_app(connection)) as web:
            encoded = await web.get("/workflows/enc-1")
            assert encoded.status_code == 200
            assert "encoded payload" in encoded.text and "r13:" in encoded.text
    finally:
        payloads.register_codec(None)
    await handle.interrupt()


async def test_a_signal_needs_a_csrf_token_and_a_confirmation_then_reaches_the_workflow(worker, client,
                                                                                      connection):
    handle = await client.workflow.start(args=["b"], task_queue=QUEUE, workflow_name="waiter",
                                         workflow_id="sig/1")  # a slash in the id
    await wait_for(lambda: sql_pending(connection, "sig/1"), "the workflow waits for its signal")
    async with browser(create_app(connection)) as web:
        page = await web.get(f"/workflows/{quote('sig/1', safe='')}")
        assert page.status_code == 200
        assert 'value="go-b"' in page.text  # the signal it waits for, filled in
        token = csrf_of(page)
        target = f"/actions/signal/{quote('sig/1', safe='')}"
        form = {"signal_id": "go-b", "data": '{"ok": true}'}
        forged = await web.post(target, data={**form, "csrf": "guess", "confirmed": "yes"})
        assert forged.status_code == 403 and "CSRF" in forged.text
        for origin in ("http://evil.example", "http://127.0.0.1:9999", "null"):
            cross = await web.post(target, data={**form, "csrf": token, "confirmed": "yes"},
                                   headers={"Origin": origin})
            assert cross.status_code == 403, origin
        confirm = await web.post(target, data={**form, "csrf": token})
        assert confirm.status_code == 200 and 'id="confirm"' in confirm.text
        assert await handle.status() == "running"  # nothing happened before the confirmation
        done = await web.post(target, data={**form, "csrf": token, "confirmed": "yes"})
        assert done.status_code == 303 and done.headers["location"].endswith("done=signal")
        assert await handle.result(timeout=30) == {"ok": True}
        bad_json = await web.post(target, data={"signal_id": "x", "data": "{", "csrf": token,
                                                "confirmed": "yes"})
        assert bad_json.status_code == 400 and "not JSON" in bad_json.text


def sql_pending(connection: Durable.Connection, workflow_id: str) -> Any:
    rows = sql(connection.dsn, "SELECT count(*) FROM durable.signal_waits WHERE workflow_id = %s",
               (workflow_id,))
    return rows[0][0]


async def test_cancel_interrupt_and_reset_go_through_the_client_api(worker, client, connection):
    cancelled = await client.workflow.start(args=["c"], task_queue=QUEUE, workflow_name="waiter",
                                            workflow_id="act-c")
    interrupted = await client.workflow.start(args=["i"], task_queue=QUEUE, workflow_name="waiter",
                                              workflow_id="act-i")
    await wait_for(lambda: sql_pending(connection, "act-c") and sql_pending(connection, "act-i"),
                   "both wait")
    async with browser(create_app(connection)) as web:
        token = csrf_of(await web.get("/workflows/act-c"))
        yes = {"csrf": token, "confirmed": "yes"}
        assert (await web.post("/actions/cancel/act-c", data=yes)).status_code == 303
        await wait_for(lambda: _closed(cancelled), "the cancelled workflow closes")
        assert await cancelled.status() == "cancelled"
        again = await web.post("/actions/cancel/act-c", data=yes)
        assert again.status_code == 400 and "not running" in again.text
        assert (await web.post("/actions/interrupt/act-i", data={**yes, "reason": "ops"})).status_code == 303
        assert await interrupted.status() == "interrupted"
        page = await web.get("/workflows/act-i")
        assert "WorkflowInterruptedError" in page.text
        reset_to = re.search(r'<option value="(\d+)">#\d+ signal_wait_started', page.text)
        assert reset_to, page.text
        reset = await web.post("/actions/reset/act-i", data={**yes, "event_id": reset_to.group(1)})
        assert reset.status_code == 303 and "run=2" in reset.headers["location"]
        await wait_for(lambda: sql_pending(connection, "act-i"), "the reset run waits again")
        assert await interrupted.status() == "running"
        unknown = await web.post("/actions/explode/act-i", data=yes)
        assert unknown.status_code == 404
    await interrupted.signal("go-i", 1)
    assert await interrupted.result(timeout=30) == 1


async def _closed(handle: Any) -> bool:
    return await handle.status() != "running"


async def test_read_only_mode_hides_the_actions_and_refuses_every_post(worker, client, connection):
    handle = await client.workflow.start(args=["r"], task_queue=QUEUE, workflow_name="waiter",
                                         workflow_id="ro-1")
    await wait_for(lambda: sql_pending(connection, "ro-1"), "it waits")
    async with browser(create_app(connection, read_only=True)) as web:
        page = await web.get("/workflows/ro-1")
        assert page.status_code == 200 and 'id="read-only"' in page.text
        assert 'id="actions"' not in page.text and "signal-form" not in page.text
        for action in ("signal", "cancel", "interrupt", "reset"):
            refused = await web.post(f"/actions/{action}/ro-1",
                                     data={"signal_id": "go-r", "csrf": "x", "confirmed": "yes",
                                           "event_id": "2"})
            assert refused.status_code == 403 and "read-only" in refused.text
    assert await handle.status() == "running"
    await handle.signal("go-r", 0)
    assert await handle.result(timeout=30) == 0


async def test_with_a_token_every_request_needs_it_and_the_first_visit_sets_a_cookie(connection):
    app = create_app(connection, token="s3cret-token")
    async with browser(app, "http://10.1.2.3:8321") as web:
        for path in ("/", "/streams", "/workflows/x", "/static/dashboard.css"):
            refused = await web.get(path)
            assert refused.status_code == 401 and "access token required" in refused.text, path
        assert (await web.get("/?token=wrong")).status_code == 401
        first = await web.get("/streams?token=s3cret-token")
        assert first.status_code == 303 and first.headers["location"] == "/streams"
        assert TOKEN_COOKIE in first.cookies
        assert (await web.get("/streams")).status_code == 200  # the cookie now
    async with browser(app, "http://10.1.2.3:8321") as web:
        bearer = await web.get("/", headers={"Authorization": "Bearer s3cret-token"})
        assert bearer.status_code == 200
        assert CSRF_COOKIE in bearer.cookies
    assert is_local("127.0.0.1") and is_local("localhost") and is_local("::1")


async def test_without_a_token_only_requests_addressed_to_localhost_are_answered(connection):
    app = create_app(connection)
    for base in ("http://127.0.0.1:8321", "http://localhost", "http://[::1]:8321"):
        async with browser(app, base) as web:
            assert (await web.get("/streams")).status_code == 200, base
    for base in ("http://rebound.example:8321", "http://10.1.2.3"):
        async with browser(app, base) as web:
            refused = await web.get("/streams")
            assert refused.status_code == 403 and "addressed to localhost" in refused.text, base
    assert not is_local("0.0.0.0") and not is_local("10.1.2.3") and not is_local("example.com")


async def test_streams_workers_roles_and_schedules_pages_render(worker, client, connection):
    await client.workflow.start(args=["s"], task_queue="unserved-q", workflow_name="waiter",
                                workflow_id="st-1")
    sql(connection.dsn, "SELECT durable.provision_worker_role(ARRAY['ui-q'], 'durable', 'pw-not-shown')")
    async with browser(create_app(connection)) as web:
        streams = await web.get("/streams")
        assert streams.status_code == 200 and "unserved-q" in streams.text
        workers = await web.get("/workers")
        assert workers.status_code == 200 and QUEUE in workers.text and ">live<" in workers.text
        roles = await web.get("/worker-roles")
        assert roles.status_code == 200 and "ui-q" in roles.text and "pw-not-shown" not in roles.text
        schedules = await web.get("/schedules")
        assert schedules.status_code == 200 and 'id="no-schedules"' in schedules.text
        assert (await web.get("/static/dashboard.css")).status_code == 200
        assert not re.search(r'<td class="limit">\d', streams.text)  # no stream has limits yet


async def test_streams_page_shows_each_streams_limits_even_before_it_has_tasks(client, connection):
    await client.workflow.start(args=["s"], task_queue="limited-q", workflow_name="waiter",
                                workflow_id="li-1")
    await client.set_stream_limits("limited-q", max_running=7, rate_limit=30, rate_period=60)
    await client.set_stream_limits("idle-activity", max_running=2)
    async with browser(create_app(connection)) as web:
        streams = (await web.get("/streams")).text
    assert re.search(r'<td>limited-q</td><td>1</td>.*?<td class="limit">7</td>\s*'
                     r'<td class="limit">30 per 60 s</td>', streams, re.S), streams
    assert re.search(r'<td>idle-activity</td>.*?<td class="limit">2</td>', streams, re.S), streams


async def test_schedules_page_shows_each_schedule_its_state_and_last_run(client, connection):
    await client.schedule.create("nightly-report", workflow_name="waiter", task_queue="sched-q",
                                 args=["r"], cron="0 2 * * *", timezone="Europe/Paris")
    paused = await client.schedule.create("every-5", workflow_name="waiter", task_queue="sched-q",
                                          every="5 minutes")
    await paused.pause(note="maintenance window")
    started = await client.schedule.get_handle("nightly-report").trigger()
    assert started
    async with browser(create_app(connection)) as web:
        page = (await web.get("/schedules")).text
    assert 'id="schedules"' in page and 'id="no-schedules"' not in page
    assert re.search(r"<code>0 2 \* \* \*</code> \(Europe/Paris\)", page), page
    assert "every 5.0 min" in page and "maintenance window" in page and ">paused<" in page
    assert f'href="/workflows/{quote(started, safe="")}"' in page, page


async def test_logged_in_as_a_worker_role_the_dashboard_shows_only_what_its_grants_allow(connection):
    credential = await Durable.provision_worker_role(connection=connection, stream_names=["ui-q"])
    scoped = connection.with_login(credential.role_name, credential.password)
    try:
        async with browser(create_app(scoped)) as web:
            for path in ("/", "/workflows/anything", "/streams", "/workers", "/worker-roles"):
                refused = await web.get(path)
                assert refused.status_code == 403 and "not allowed" in refused.text, path
                assert "permission denied" in refused.text, path
    finally:
        await scoped.close()


def test_the_timeline_of_a_long_history_is_built_in_one_pass_and_shows_its_first_calls():
    from pgdurable.ui import _views

    start = datetime(2030, 1, 1, tzinfo=UTC)
    events: list[dict[str, Any]] = [
        {"event_type": "workflow_started", "seq": None, "details": {}, "at": start}]
    for seq in range(1, 5001):
        at = start + timedelta(seconds=seq)
        events.append({"event_type": "activity_scheduled", "seq": seq, "details": {"activity_name": "a"},
                       "at": at})
        events.append({"event_type": "activity_completed", "seq": seq, "details": {"attempt": 1},
                       "at": at + timedelta(seconds=0.5)})
    began = time.monotonic()
    timeline = _views.timeline(events, start + timedelta(hours=2), running=True)
    assert time.monotonic() - began < 2.0  # 10,001 events: linear, not one scan per call
    assert timeline is not None
    assert len(timeline.rows) == _views.TIMELINE_ROWS and timeline.hidden == 5000 - _views.TIMELINE_ROWS
    assert [bar.state for bar in timeline.rows[0].bars] == ["ok"]


async def test_the_token_visits_redirect_stays_on_the_dashboard_whatever_the_path(connection):
    """The first visit's redirect drops ``?token=`` and goes back to the same path: a path that
    starts with two slashes (``/%2Fevil.example/``) must not become a scheme-relative Location
    (an open redirect to another site)."""
    app = create_app(connection, token="s3cret-token")
    for path in ("/%2Fevil.example/", "/%2F%2Fevil.example/x", "/%5Cevil.example/"):
        async with browser(app, "http://10.1.2.3:8321") as web:  # a new browser: no cookie yet
            first = await web.get(f"{path}?token=s3cret-token")
            assert first.status_code == 303, path
            location = first.headers["location"]
            assert location.startswith("/") and not location.startswith(("//", "/\\")), (path, location)


async def test_a_nul_character_in_a_workflow_id_or_filter_is_a_400_naming_it(client, connection):
    """psycopg refuses text holding NUL before sending it: that is the visitor's input, a 400 that
    says what to remove, never a 500 'pgdurable does not expect this error'."""
    async with browser(create_app(connection)) as web:
        for path in ("/workflows/a%00b", "/?name=%00", "/?queue=q%00"):
            page = await web.get(path)
            assert page.status_code == 400, (path, page.status_code, page.text[-600:])
            assert "NUL character" in page.text and "does not expect" not in page.text, path


async def test_no_other_site_may_frame_the_dashboard(connection):
    """A page of another site that frames the dashboard could trick a click on a confirmation:
    every answer forbids framing and type sniffing."""
    async with browser(create_app(connection)) as web:
        for path in ("/", "/workflows/none", "/streams", "/static/dashboard.css"):
            page = await web.get(path)
            assert page.headers.get("x-frame-options") == "DENY", path
            assert "frame-ancestors 'none'" in page.headers.get("content-security-policy", ""), path
            assert page.headers.get("x-content-type-options") == "nosniff", path
