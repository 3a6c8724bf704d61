"""Schedules are created, listed, described, paused, resumed, triggered and deleted from Python,
from the CLI and from psql; bad input gets a typed error with a clear message; a worker fires a
schedule's ticks and its runs get the args the SDK encoded (a registered codec included)."""

from __future__ import annotations

import asyncio
import base64
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from pgdurable import Durable, ScheduleHandle, errors, register_codec
from support.cli import assert_one_line_error, invoke, ok_json, restore_logging  # noqa: F401
from support.db import sql
from support.polling import wait_for


async def greet(name: str, when: datetime) -> str:
    return f"hello {name} at {when.isoformat()}"


class Base64Codec:
    def encode(self, data: str) -> str:
        return base64.b64encode(data.encode()).decode()

    def decode(self, data: str) -> str:
        return base64.b64decode(data.encode()).decode()


async def test_a_schedule_is_managed_from_python(dsn):
    client = Durable.Client(connection=Durable.Connection(dsn))
    try:
        handle = await client.schedule.create("report", workflow_name="greet", task_queue="sq",
                                              args=["ops", 1], cron="0 3 * * MON-FRI",
                                              timezone="Europe/Paris", jitter="10s")
        assert isinstance(handle, ScheduleHandle) and handle.schedule_id == "report"
        described = await handle.describe()
        assert described["schedule_id"] == "report" and described["paused"] is False
        spec = described["spec"]
        assert spec["cron"] == "0 3 * * MON-FRI" and spec["timezone"] == "Europe/Paris"
        assert spec["args"] == ["ops", 1]
        assert described["spec"]["jitter"] == 10.0 and described["spec"]["overlap"] == "skip"
        fires = described["next_fire_times"]
        assert len(fires) == 5 and fires == sorted(fires)
        paris = [f.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris")) for f in fires]
        assert all(p.hour == 3 and p.minute == 0 and p.weekday() < 5 for p in paris), paris
        assert described["recent_runs"] == []

        await handle.pause(note="holiday")
        listed = await client.schedule.list()
        assert [(s["schedule_id"], s["paused"], s["note"], s["next_fire_at"]) for s in listed] == [
            ("report", True, "holiday", None)]
        assert (await handle.describe())["next_fire_times"] == []
        assert await handle.resume() == fires[0]

        workflow_id = await handle.trigger()
        assert workflow_id is not None and workflow_id.startswith("report-")
        assert await handle.trigger() is None, "overlap skip: the first run still runs (no worker)"
        runs = (await handle.describe())["recent_runs"]
        assert [(r["trigger"], r["action"]) for r in runs] == [("manual", "skipped"), ("manual", "started")]

        await handle.delete()
        assert await client.schedule.list() == []
        with pytest.raises(errors.ScheduleNotFoundError, match="schedule 'report' not found"):
            await handle.describe()
    finally:
        await Durable.shutdown()


@pytest.mark.parametrize(("options", "error", "fragment"), [
    ({"cron": "0 3 * *"}, errors.InvalidArgumentError,
     "invalid cron expression '0 3 * *': it has 4 field(s)"),
    ({"cron": "0 25 * * *"}, errors.InvalidArgumentError, "bad hour field '25'"),
    ({"cron": "0 3 * * *", "timezone": "Mars/Olympus"}, errors.InvalidArgumentError,
     "unknown time zone 'Mars/Olympus'"),
    ({"cron": "0 3 * * *", "every": "1 hour"}, errors.InvalidArgumentError,
     "exactly one of cron and every (both"),
    ({}, errors.InvalidArgumentError, "exactly one of cron and every (neither"),
    ({"every": "1 hour", "overlap": "sometimes"}, errors.InvalidArgumentError,
     "unknown overlap policy 'sometimes'"),
    ({"every": "soon"}, errors.InvalidArgumentError, "invalid every 'soon'"),
    ({"every": "1 hour", "start_at": datetime(2030, 1, 1)}, errors.InvalidArgumentError,
     "start_at must be a timezone-aware datetime"),
])
async def test_bad_schedule_input_gets_a_typed_error_with_a_clear_message(dsn, options, error, fragment):
    client = Durable.Client(connection=Durable.Connection(dsn))
    try:
        with pytest.raises(error) as raised:
            await client.schedule.create("bad", workflow_name="greet", task_queue="sq", **options)
        assert fragment in str(raised.value)
        assert await client.schedule.list() == []
    finally:
        await Durable.shutdown()


async def test_a_duplicate_or_unknown_schedule_id_gets_a_typed_error(dsn):
    client = Durable.Client(connection=Durable.Connection(dsn))
    try:
        await client.schedule.create("twice", workflow_name="greet", task_queue="sq", every="1 hour")
        with pytest.raises(errors.ScheduleAlreadyExistsError, match="schedule 'twice' already exists"):
            await client.schedule.create("twice", workflow_name="greet", task_queue="sq", every="2 hours")
        unknown = client.schedule.get_handle("nope")
        for action in (unknown.pause, unknown.resume, unknown.trigger, unknown.delete, unknown.describe):
            with pytest.raises(errors.ScheduleNotFoundError, match="schedule 'nope' not found in namespace"):
                await action()
    finally:
        await Durable.shutdown()


async def slow(n: int) -> int:
    await Durable.workflow.sleep("1.5 seconds")
    return n


async def test_buffer_one_with_a_worker_runs_the_ticks_one_at_a_time_and_the_buffered_one_after(dsn):
    connection = Durable.Connection(dsn)
    try:
        await Durable.Worker.create(connection=connection, task_queue="bq", workflow=slow)
        client = Durable.Client(connection=connection)
        handle = await client.schedule.create("one-at-a-time", workflow_name="slow", task_queue="bq",
                                              args=[1], every="1 second", overlap="buffer_one")

        def spans() -> list[tuple[datetime, datetime | None]]:
            return sql(dsn, "SELECT created_at, closed_at FROM durable.workflows WHERE workflow_id LIKE %s "
                            "ORDER BY created_at", ("one-at-a-time-%",))

        await wait_for(lambda: sum(end is not None for _, end in spans()) >= 3, "three runs to close",
                       timeout=30)
        await handle.pause()
        actions = {r["action"] for r in (await handle.describe(fire_times=0))["recent_runs"]}
        assert {"started", "buffered", "skipped"} <= actions, actions
        closed = [(start, end) for start, end in spans() if end is not None]
        assert all(end <= nxt for (_, end), (nxt, _) in zip(closed, closed[1:], strict=False)), \
            f"runs overlapped: {closed}"
        runs = (await handle.describe(fire_times=0))["recent_runs"]
        buffered = [r for r in runs if r["trigger"] == "buffered"]
        assert buffered and all(r["action"] == "started" for r in buffered), buffered
    finally:
        await Durable.shutdown()


async def test_a_worker_fires_the_ticks_and_each_run_gets_the_encoded_args(dsn):
    register_codec(Base64Codec())
    try:
        connection = Durable.Connection(dsn)
        await Durable.Worker.create(connection=connection, task_queue="sq", workflow=greet)
        client = Durable.Client(connection=connection)
        when = datetime(2026, 1, 31, 3, 0, tzinfo=UTC)
        handle = await client.schedule.create("hello", workflow_name="greet", task_queue="sq",
                                              args=["ops", when], every="1 second", overlap="allow_all")
        stored = sql(dsn, "SELECT args FROM durable.schedules WHERE schedule_id = 'hello'")[0][0]
        assert "ops" not in stored, "the args are stored encoded by the codec, as start() stores them"

        async def two_completed() -> list[str]:
            rows = await asyncio.to_thread(
                sql, dsn, "SELECT workflow_id FROM durable.workflows WHERE workflow_id LIKE %s "
                          "AND status = 'completed' ORDER BY 1", ("hello-%",))
            return [r[0] for r in rows] if len(rows) >= 2 else []

        done = await wait_for(two_completed, "two scheduled runs to complete", timeout=30)
        await handle.pause()
        result = await client.workflow.get_handle(done[0]).result(timeout=10)
        assert result == f"hello ops at {when.isoformat()}"
        tick = datetime.fromisoformat(done[0].removeprefix("hello-"))
        assert tick.microsecond == 0 and tick.tzinfo is not None
        runs = (await handle.describe())["recent_runs"]
        assert {r["workflow_id"] for r in runs if r["action"] == "started"} >= set(done)
    finally:
        await Durable.shutdown()
        register_codec(None)


def test_a_schedule_is_managed_from_the_cli(dsn, restore_logging):  # noqa: F811
    created = ok_json("schedule", "create", "nightly", "--workflow", "report", "--task-queue", "sq",
                      "--cron", "30 2 * * *", "--tz", "America/New_York", "--args", '["eu", 3]',
                      "--overlap", "buffer_one", "--dsn", dsn)
    assert created["spec"]["overlap"] == "buffer_one" and len(created["next_fire_times"]) == 5
    assert [s["schedule_id"] for s in ok_json("schedule", "list", "--dsn", dsn)] == ["nightly"]
    table = invoke("schedule", "list", "--dsn", dsn)
    assert table.exit_code == 0 and "30 2 * * * (America/New_York)" in table.stdout, table.output

    assert invoke("schedule", "pause", "nightly", "--note", "freeze", "--dsn", dsn).exit_code == 0
    assert ok_json("schedule", "describe", "nightly", "--dsn", dsn)["note"] == "freeze"
    assert "resumed" in invoke("schedule", "resume", "nightly", "--dsn", dsn).stdout
    started = ok_json("schedule", "trigger", "nightly", "--dsn", dsn)["workflow_id"]
    assert started.startswith("nightly-")
    args = sql(dsn, "SELECT args FROM durable.workflows WHERE workflow_id = %s", (started,))
    assert args == [('["eu",3]',)], "a JSON array from the CLI is stored as the SDK encodes it"
    shown = invoke("schedule", "describe", "nightly", "--dsn", dsn)
    assert shown.exit_code == 0 and started in shown.stdout, shown.output
    assert invoke("schedule", "delete", "nightly", "--dsn", dsn).exit_code == 0

    assert_one_line_error(invoke("schedule", "describe", "nightly", "--dsn", dsn),
                          "schedule 'nightly' not found")
    assert_one_line_error(invoke("schedule", "create", "x", "-w", "report", "-q", "sq", "--cron", "* * *",
                                 "--dsn", dsn), "invalid cron expression")
    bounded = ok_json("schedule", "create", "bounded", "-w", "report", "-q", "sq", "--every", "1 day",
                      "--start-at", "2030-01-01T06:00:00+01:00", "--end-at", "2030-01-03T05:00:00Z",
                      "--dsn", dsn)
    assert bounded["next_fire_times"] == ["2030-01-01T05:00:00+00:00", "2030-01-02T05:00:00+00:00",
                                          "2030-01-03T05:00:00+00:00"]
    assert invoke("schedule", "create", "y", "-w", "report", "-q", "sq", "--every", "1 day",
                  "--start-at", "2030-01-01 06:00", "--dsn", dsn).exit_code == 2


def test_an_empty_or_nul_schedule_or_workflow_id_gets_one_error_line_from_the_cli(dsn, restore_logging):  # noqa: F811
    for command in (["schedule", "describe", ""], ["schedule", "pause", "a\x00b"], ["schedule", "delete", ""],
                    ["schedule", "create", "", "-w", "report", "-q", "sq", "--every", "1 day"],
                    ["schedule", "create", "s", "-w", "", "-q", "sq", "--every", "1 day"],
                    ["workflow", "show", "--", ""]):
        assert_one_line_error(invoke(*command, "--dsn", dsn) if command[-2] != "--"
                              else invoke(*command[:-2], "--dsn", dsn, *command[-2:]), "invalid ")


def test_a_schedule_is_managed_from_psql(dsn, pg_bin_dir):
    script = """
\\set ON_ERROR_STOP 1
SELECT durable.create_schedule('psql-job', 'report', 'sq', '["eu"]', cron => '*/15 * * * *',
                               overlap => 'allow_all') IS NOT NULL AS created;
SELECT schedule_id, paused FROM durable.list_schedules();
SELECT durable.pause_schedule('psql-job', note => 'by the DBA');
SELECT durable.describe_schedule('psql-job')->>'note' AS note;
SELECT durable.resume_schedule('psql-job') IS NOT NULL AS resumed;
SELECT durable.trigger_schedule('psql-job') LIKE 'psql-job-%' AS triggered;
SELECT durable.delete_schedule('psql-job');
SELECT count(*) AS left FROM durable.list_schedules();
"""
    out = subprocess.run([str(pg_bin_dir / "psql"), "-X", "-At", "-d", dsn], input=script, text=True,
                         capture_output=True, check=True).stdout.splitlines()
    assert out == ["t", "psql-job|f", "", "by the DBA", "t", "t", "", "0"], out
    args = sql(dsn, "SELECT args FROM durable.workflows WHERE workflow_id LIKE %s", ("psql-job-%",))
    assert args == [('["eu"]',)], "psql passes a plain JSON array: the run's args are its JSON text"


def test_next_fire_time_of_a_schedule_wakes_idle_workers(conn):
    conn.execute("SELECT durable.create_schedule('soon', 'wf', 'sq', every => '1 hour')")
    (wake,) = conn.execute("SELECT durable.next_wakeup_v1('durable', ARRAY['sq'], ARRAY['wf'])").fetchone()
    (due,) = conn.execute("SELECT extract(epoch FROM next_fire_at - durable.now())::float8 "
                          "FROM durable.schedules").fetchone()
    assert wake is not None and abs(wake - due) < 1.0 and 0 < wake <= timedelta(hours=1).total_seconds()
    conn.execute("SELECT durable.pause_schedule('soon')")
    (after_pause,) = conn.execute(
        "SELECT durable.next_wakeup_v1('durable', ARRAY['sq'], ARRAY['wf'])").fetchone()
    assert after_pause is None


async def daily_digest(team: str) -> str:
    return f"digest for {team} at {Durable.workflow.now():%Y-%m-%d %H:%M}"


async def test_time_skipping_reaches_a_nightly_schedules_ticks_without_waiting():
    from pgdurable.testing import WorkflowEnvironment

    async with WorkflowEnvironment(workflows=[daily_digest], time_skipping=True) as env:
        started = await asyncio.to_thread(sql, env.dsn, "SELECT durable.now()")
        handle = await env.client.schedule.create("digest", workflow_name="daily_digest",
                                                  task_queue=env.task_queue, args=["ops"],
                                                  cron="0 3 * * *", timezone="Asia/Tokyo")

        async def two_digests() -> list[tuple[str, str]]:
            rows = await asyncio.to_thread(sql, env.dsn, "SELECT workflow_id, result FROM durable.workflows "
                                                         "WHERE status = 'completed' ORDER BY 1")
            return rows if len(rows) >= 2 else []

        done = await wait_for(two_digests, "two nightly digests, days apart in engine time", timeout=30)
        await handle.pause()
        ticks = [datetime.fromisoformat(wid.removeprefix("digest-")) for wid, _ in done]
        assert all((t.hour, t.minute) == (18, 0) for t in ticks), ticks  # 03:00 in Tokyo is 18:00 UTC
        assert ticks[1] - ticks[0] == timedelta(days=1) and ticks[0] > started[0][0]
