"""Bad input gets a clear error and changes nothing: oversized or non-JSON payloads, NaN,
invalid durations and timeouts, bad ids; unicode and SQL-looking strings are plain data.
A fuzz test throws arbitrary ids and payloads at the client API."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import uuid

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgdurable import Durable, RetryPolicy, errors
from pgdurable.payloads import MAX_PAYLOAD_BYTES
from support.history import wait_event, wait_pending

TABLES = ("workflows", "messages", "history", "signals", "signal_waits")
EVIL = "'; DROP TABLE durable.messages; --"


def row_counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM durable.{t}").fetchone()[0] for t in TABLES}


def assert_nothing_stored(dsn: str) -> None:
    counts = row_counts(dsn)
    assert not any(counts.values()), f"a refused call left state behind: {counts}"


@pytest.fixture
async def client(dsn):
    yield Durable.Client(connection=Durable.Connection(dsn))
    await Durable.shutdown(grace=5)


async def refused(call, error: type[BaseException] | tuple[type[BaseException], ...], *needles: str) -> str:
    """Awaits ``call``; it must raise ``error`` with a message holding every needle."""
    with pytest.raises(error) as info:
        await call
    message = str(info.value)
    assert message, f"{type(info.value).__name__} without a message"
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


async def test_an_oversized_payload_is_refused_naming_the_limit_before_anything_is_stored(dsn, client):
    huge = "x" * (MAX_PAYLOAD_BYTES + 1)
    await refused(client.workflow.start(args=[huge], task_queue="q", workflow_name="w"), ValueError,
                  str(MAX_PAYLOAD_BYTES))
    await refused(client.workflow.signal("s", {"blob": huge}), ValueError, str(MAX_PAYLOAD_BYTES))
    assert_nothing_stored(dsn)


@pytest.mark.parametrize(("value", "error", "needle"), [
    ({1, 2}, TypeError, "set"),
    (object(), TypeError, "object"),
    ({1: "int key"}, TypeError, "key"),
    (float("nan"), ValueError, "NaN"),
    (float("inf"), ValueError, "inf"),
    ([{"deep": [float("-inf")]}], ValueError, "inf"),
    (lambda: None, TypeError, "function"),
    ("\ud800", ValueError, "surrogate"),
])
async def test_a_value_json_cannot_hold_is_refused_before_anything_is_stored(dsn, client, value, error,
                                                                             needle):
    await refused(client.workflow.start(args=[value], task_queue="q", workflow_name="w"), error, needle)
    await refused(client.workflow.signal("s", value), error, needle)
    assert_nothing_stored(dsn)


@pytest.mark.parametrize("bad", ["", "x" * 1001, "nul\x00inside", None, 42, b"bytes", "lone\ud800surrogate"],
                         ids=["empty", "huge", "nul", "none", "int", "bytes", "lone-surrogate"])
async def test_an_invalid_id_name_or_queue_is_refused_before_anything_is_stored(dsn, client, bad):
    if bad is not None:  # workflow_id=None means "make one up"
        await refused(client.workflow.start(task_queue="q", workflow_name="w", workflow_id=bad), ValueError,
                      "workflow_id")
    await refused(client.workflow.start(task_queue=bad, workflow_name="w"), ValueError, "task_queue")
    await refused(client.workflow.start(task_queue="q", workflow_name=bad), ValueError, "workflow_name")
    await refused(client.workflow.signal(bad, 1), ValueError, "signal_id")
    await refused(client.workflow.get_handle("wf").signal(bad, 1), ValueError, "signal_id")
    if bad is not None:
        with pytest.raises(ValueError, match="workflow_id"):
            client.workflow.get_handle(bad)
    assert_nothing_stored(dsn)


def test_a_lone_surrogate_in_an_id_raises_our_value_error_naming_the_parameter():
    from pgdurable._validate import check_text

    with pytest.raises(ValueError, match="invalid signal_id .*lone surrogate") as caught:
        check_text("signal_id", "\ud800")
    assert not isinstance(caught.value, UnicodeError)


async def test_other_bad_client_arguments_are_refused_clearly(dsn, client):
    await refused(client.workflow.start(args="not a list", task_queue="q", workflow_name="w"), TypeError,
                  "args")
    await refused(client.workflow.start(task_queue="q", workflow_name="w", id_reuse="sometimes"), ValueError,
                  "id_reuse")
    handle = client.workflow.get_handle("q", "w", "never-started")
    await refused(handle.result(timeout=1), errors.WorkflowNotFoundError, "never-started")
    await refused(handle.cancel(), errors.WorkflowNotFoundError, "never-started")
    await refused(handle.state(), errors.WorkflowNotFoundError, "never-started")
    await refused(asyncio.wait_for(handle.result(timeout=float("nan")), 10), ValueError, "timeout")
    await refused(handle.result(timeout="5 seconds"), TypeError, "timeout")
    with pytest.raises(ValueError, match="maximum_attempts"):
        RetryPolicy(maximum_attempts=0)
    with pytest.raises(ValueError, match="initial_interval"):
        RetryPolicy(initial_interval=-1)
    with pytest.raises(ValueError, match="backoff_coefficient"):
        RetryPolicy(backoff_coefficient=0.5)
    assert_nothing_stored(dsn)


async def bad_calls_workflow() -> list[list[str]]:
    """Every bad in-workflow call it makes must raise at the call, before anything is recorded."""
    seen: list[list[str]] = []

    async def attempt(what: str, make) -> None:
        try:
            result = make()
            if asyncio.iscoroutine(result):
                await result
        except (ValueError, TypeError, AttributeError) as exc:
            seen.append([what, type(exc).__name__, str(exc)])
        else:
            seen.append([what, "accepted", ""])

    wf = Durable.workflow
    await attempt("sleep 5 parsecs", lambda: wf.sleep("5 parsecs"))
    await attempt("sleep negative", lambda: wf.sleep(-1))
    await attempt("sleep absurd", lambda: wf.sleep("1000000 days"))
    await attempt("sleep nan", lambda: wf.sleep(float("nan")))
    await attempt("sleep inf", lambda: wf.sleep(float("inf")))
    await attempt("sleep None", lambda: wf.sleep(None))
    await attempt("condition negative timeout", lambda: wf.condition("rel-sig", timeout=-5))
    await attempt("condition absurd timeout", lambda: wf.condition("rel-sig", timeout=1e15))
    await attempt("condition unparsable timeout", lambda: wf.condition("rel-sig", timeout="3 eons"))
    await attempt("condition empty id", lambda: wf.condition(""))
    await attempt("condition NUL id", lambda: wf.condition("a\x00b"))
    await attempt("signal huge id", lambda: wf.signal("s" * 1001, 1))
    await attempt("signal set data", lambda: wf.signal("rel-sig", {1, 2}))
    await attempt("activity timeout negative",
                  lambda: wf.proxy_activities(activities=[rel_bad_echo], start_to_close_timeout=-1))
    await attempt("activity queue huge", lambda: wf.proxy_activities(task_queue="q" * 1001))
    await attempt("activity headers set", lambda: wf.proxy_activities(headers={"h": {1}}))
    await attempt("activity name huge", lambda: getattr(wf.proxy_activities(), "a" * 1001)())
    acts = wf.proxy_activities(activities=[rel_bad_echo])
    await attempt("unknown activity", lambda: acts.no_such_activity)
    await attempt("activity arg set", lambda: acts.rel_bad_echo({1}))
    await attempt("activity arg nan", lambda: acts.rel_bad_echo(float("nan")))
    await attempt("child empty name", lambda: wf.execute_child(workflow_name=""))
    await attempt("child empty queue", lambda: wf.execute_child(workflow_name="rel_x", task_queue=""))
    await attempt("child NUL id", lambda: wf.start_child(workflow_name="rel_x", workflow_id="a\x00"))
    return seen


async def rel_bad_echo(x):
    return x


async def test_bad_durations_timeouts_and_names_in_workflow_code_raise_at_the_call(client):
    await Durable.Worker.create(connection=client.connection, task_queue="rel-bad",
                                workflow=bad_calls_workflow)
    handle = await client.workflow.start(task_queue="rel-bad", workflow_name="bad_calls_workflow")
    seen = await handle.result(timeout=30)
    accepted = [what for what, kind, _ in seen if kind == "accepted"]
    assert not accepted, f"accepted bad input: {accepted}"
    by_call = {what: (kind, message) for what, kind, message in seen}
    assert by_call["sleep 5 parsecs"] == ("ValueError", by_call["sleep 5 parsecs"][1])
    assert "5 parsecs" in by_call["sleep 5 parsecs"][1]
    assert by_call["unknown activity"][0] == "AttributeError"
    assert "no_such_activity" in by_call["unknown activity"][1]
    assert by_call["activity arg set"][0] == "TypeError" and "set" in by_call["activity arg set"][1]
    for what, kind, message in seen:
        # InvalidArgumentError is a ValueError: a bad id or name, refused before the engine sees it.
        assert kind in ("ValueError", "InvalidArgumentError", "TypeError", "AttributeError") and message, \
            (what, kind, message)
    types = {e["event_type"] for e in await handle.history()}
    assert types == {"workflow_started", "workflow_completed"}, f"a refused call was recorded: {types}"


async def rel_bad_result() -> object:
    return {"not": {"json"}}


async def test_a_workflow_returning_a_value_json_cannot_hold_fails_with_a_type_error(client):
    await Durable.Worker.create(connection=client.connection, task_queue="rel-bad-result",
                                workflow=rel_bad_result)
    handle = await client.workflow.start(task_queue="rel-bad-result", workflow_name="rel_bad_result")
    with pytest.raises(errors.WorkflowFailedError) as info:
        await handle.result(timeout=30)
    assert info.value.error_type == "TypeError" and "set" in str(info.value)


async def test_a_workflow_name_no_worker_serves_starts_and_waits_visibly(dsn, client):
    handle = await client.workflow.start(task_queue="rel-nobody", workflow_name="no_such_workflow")
    waiting = await wait_pending(handle, "workflow_task")
    assert "no_such_workflow" in waiting["waiting_for"] and "rel-nobody" in waiting["waiting_for"]
    assert await handle.status() == "running"


async def rel_unicode_flow(signal_id: str, echo: str) -> list:
    acts = Durable.workflow.proxy_activities(activities=[rel_bad_echo])
    got = await Durable.workflow.condition(signal_id, timeout=30)
    return [got, await acts.rel_bad_echo(echo), Durable.workflow.info().workflow_id]


@pytest.mark.parametrize(("workflow_id", "signal_id", "queue"), [
    ("ワークフロー-🚀-ñ", "сигнал-✓", "очередь-🧵"),
    ("🚀" * 1000, "é" * 1000, "q" * 991),  # the longest allowed: 1000 characters (queue + "-activity")
    (EVIL, EVIL, EVIL),
], ids=["unicode", "longest", "sql"])
async def test_unicode_long_and_sql_looking_strings_are_plain_data(dsn, client, workflow_id, signal_id,
                                                                  queue):
    await Durable.Worker.create(connection=client.connection, task_queue=queue, workflow=rel_unicode_flow)
    data = {EVIL: [EVIL, "ünï", "🚀"], "nested": {"quote": "'\"\\"}}
    handle = await client.workflow.start(args=[signal_id, EVIL], task_queue=queue,
                                         workflow_name="rel_unicode_flow", workflow_id=workflow_id)
    await wait_pending(handle, "condition")
    await client.workflow.signal(signal_id, data)
    assert await handle.result(timeout=30) == [data, EVIL, workflow_id]
    listed = await client.workflow.list(workflow_name="rel_unicode_flow")
    assert [w["workflow_id"] for w in listed] == [workflow_id]
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'durable'").fetchone()[0]
    assert tables >= len(TABLES)


async def test_sql_looking_names_start_and_wait_visibly(dsn, client):
    handle = await client.workflow.start(args=[EVIL], task_queue=EVIL, workflow_name=EVIL, workflow_id=EVIL)
    waiting = await wait_pending(handle, "workflow_task")
    assert waiting["workflow_name"] == EVIL and waiting["task_queue"] == EVIL
    await client.workflow.signal(EVIL, EVIL)
    assert row_counts(dsn)["signals"] == 1 and row_counts(dsn)["messages"] == 1


# -- fuzz ------------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=50),
    st.binary(max_size=20), st.datetimes(timezones=st.just(dt.UTC)), st.uuids(),
    st.decimals(allow_nan=False, allow_infinity=False, places=3), st.sets(st.integers(), max_size=2),
    st.builds(object), st.dates())
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner),
    st.dictionaries(st.one_of(st.text(max_size=10), st.integers()), inner, max_size=4)), max_leaves=12)
_ids = st.one_of(st.none(), st.text(max_size=30), st.text(max_size=1100),
                 st.sampled_from(["", EVIL, "\x00", "🚀", "a" * 1000, "a" * 1001]))


def test_the_client_api_refuses_or_accepts_arbitrary_ids_and_payloads_and_stays_consistent(dsn):
    loop = asyncio.new_event_loop()
    client = Durable.Client(connection=Durable.Connection(dsn))
    checker = psycopg.connect(dsn, autocommit=True)
    started: set[str] = set()
    signals = 0
    allowed = (ValueError, TypeError, errors.DurableError)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(workflow_id=_ids, args=st.lists(_values, max_size=3), signal_id=_ids, data=_values)
    def one(workflow_id, args, signal_id, data):
        nonlocal signals
        try:
            handle = loop.run_until_complete(client.workflow.start(
                args=args, task_queue="rel-fuzz", workflow_name="rel_fuzz", workflow_id=workflow_id))
            started.add(handle.workflow_id)
        except allowed as exc:
            assert str(exc), f"{type(exc).__name__} without a message"
        try:
            loop.run_until_complete(client.workflow.signal(signal_id, data))
            signals += 1
        except allowed as exc:
            assert str(exc), f"{type(exc).__name__} without a message"
        check_consistent(checker, started, signals)

    try:
        one()
    finally:
        checker.close()
        loop.run_until_complete(Durable.shutdown(grace=1))
        loop.close()
    print(f"fuzz: {len(started)} workflows started, {signals} signals sent")


def check_consistent(conn: psycopg.Connection, started: set[str], signals: int) -> None:
    """Every started workflow is whole (one run, its start event, its task); nothing else exists."""
    rows = conn.execute("""
        SELECT w.workflow_id,
               (SELECT count(*) FROM durable.history h WHERE h.workflow_id = w.workflow_id),
               (SELECT count(*) FROM durable.messages m WHERE m.workflow_id = w.workflow_id)
        FROM durable.workflows w""").fetchall()
    buffered = conn.execute("SELECT count(*) FROM durable.signals").fetchone()[0]
    orphans = conn.execute("""
        SELECT (SELECT count(*) FROM durable.history h WHERE NOT EXISTS
                    (SELECT 1 FROM durable.workflows w WHERE w.workflow_id = h.workflow_id)),
               (SELECT count(*) FROM durable.messages m WHERE NOT EXISTS
                    (SELECT 1 FROM durable.workflows w WHERE w.workflow_id = m.workflow_id))
        """).fetchone()
    assert {r[0] for r in rows} == started, "workflow rows differ from the starts that succeeded"
    assert all(r[1:] == (1, 1) for r in rows), [r for r in rows if r[1:] != (1, 1)][:3]
    assert buffered == signals
    assert orphans == (0, 0)


def test_uuid_decimal_and_dates_round_trip_through_a_start(dsn):
    """Control for the fuzz test: the extended JSON types are accepted, not refused."""
    async def go() -> None:
        client = Durable.Client(connection=Durable.Connection(dsn))
        try:
            await client.workflow.start(args=[uuid.uuid4(), decimal.Decimal("1.5"), dt.date(2020, 1, 1),
                                              b"\x00\xff", (1, 2)], task_queue="q", workflow_name="w")
        finally:
            await Durable.shutdown(grace=1)
    asyncio.run(go())
    assert row_counts(dsn)["workflows"] == 1


class _RenamingInterceptor:
    """Renames every proxied activity to a name the engine refuses (what no SDK check can catch)."""

    async def execute(self, activity_ctx, workflow_ctx, next):
        activity_ctx["activity_name"] = "n" * 1001
        return await next()


async def rel_renamed_flow() -> int:
    acts = Durable.workflow.proxy_activities(activities=[rel_bad_echo])
    return await acts.rel_bad_echo(1)


@pytest.fixture
def renaming_interceptor():
    Durable.register_outbound_interceptor(_RenamingInterceptor())
    yield
    Durable.clear_interceptors()


async def test_commands_the_engine_refuses_fail_the_workflow_task_visibly(client, renaming_interceptor):
    await Durable.Worker.create(connection=client.connection, task_queue="rel-refused",
                                workflow=rel_renamed_flow)
    handle = await client.workflow.start(task_queue="rel-refused", workflow_name="rel_renamed_flow")
    failed = await wait_event(handle, "workflow_task_failed")
    assert failed[0]["details"]["type"] == "InvalidArgumentError"
    assert "activity name" in failed[0]["details"]["message"]
    state = await handle.state()
    assert state["status"] == "running" and state["last_task_failure"]["type"] == "InvalidArgumentError"
