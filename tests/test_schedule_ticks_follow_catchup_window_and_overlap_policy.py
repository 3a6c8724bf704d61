"""After downtime (the engine clock moved forward), a schedule's missed ticks follow its catch-up
window and overlap policy; each overlap policy does what it says; a tick fires once however often
the timer path runs. Driven through the workers' own timer path, ``durable.fire_timers_v1``,
called here as the engine owner (no worker process: runs stay open, so overlaps happen)."""

from __future__ import annotations

import psycopg
import pytest

pytestmark = pytest.mark.sql


def create(conn: psycopg.Connection, schedule_id: str, **options: str) -> None:
    named = "".join(f", {key} => %({key})s" for key in options)
    conn.execute(f"SELECT durable.create_schedule(%(id)s, 'wf', 'q'{named})", {"id": schedule_id, **options})


def fire(conn: psycopg.Connection) -> None:
    conn.execute("SELECT durable.fire_timers_v1('durable', ARRAY['q'])")


def runs(conn: psycopg.Connection, schedule_id: str) -> list[tuple[str, str | None, str | None]]:
    """(action, workflow id, detail) of the schedule's recorded ticks, oldest first."""
    return conn.execute("SELECT action, workflow_id, detail FROM durable.schedule_runs "
                        "WHERE schedule_id = %s ORDER BY id", (schedule_id,)).fetchall()


def started(conn: psycopg.Connection, schedule_id: str) -> list[str]:
    return [wid for action, wid, _ in runs(conn, schedule_id) if action == "started"]


def statuses(conn: psycopg.Connection, prefix: str) -> dict[str, str]:
    rows = conn.execute("SELECT workflow_id, status FROM durable.workflows WHERE workflow_id LIKE %s",
                        (prefix + "-%",)).fetchall()
    return dict(rows)


def test_after_downtime_ticks_older_than_the_catchup_window_are_skipped_and_the_rest_start(conn):
    create(conn, "every-minute", every="1 minute", catchup_window="5 minutes", overlap="allow_all")
    conn.execute("SELECT durable.advance_clock('1 hour')")
    fire(conn)
    fire(conn)  # racing or repeated timer paths fire nothing twice

    ids = started(conn, "every-minute")
    assert len(ids) == 5, ids
    ticks = conn.execute("SELECT workflow_id, substr(workflow_id, 14)::timestamptz FROM durable.workflows "
                         "WHERE workflow_id LIKE 'every-minute-%' ORDER BY 1").fetchall()
    assert [wid for wid, _ in ticks] == sorted(ids)
    now = conn.execute("SELECT durable.now()").fetchone()[0]
    assert all(0 <= (now - tick).total_seconds() <= 5 * 60 for _, tick in ticks), ticks
    assert all(b - a == ticks[1][1] - ticks[0][1] for (_, a), (_, b) in zip(ticks, ticks[1:], strict=False))
    missed = [detail for action, _, detail in runs(conn, "every-minute") if action == "skipped"]
    assert len(missed) == 1 and "more than the catch-up window (00:05:00) late" in missed[0], missed
    # Each tick's run is one run of its own derived id.
    assert conn.execute("SELECT count(*), max(run_id) FROM durable.workflows "
                        "WHERE workflow_id LIKE 'every-minute-%'").fetchone() == (5, 1)


def test_missed_ticks_within_the_window_obey_skip_while_the_previous_run_is_open(conn):
    create(conn, "skipper", every="1 minute", catchup_window="5 minutes", overlap="skip")
    conn.execute("SELECT durable.advance_clock('1 hour')")
    fire(conn)
    actions = [action for action, _, _ in runs(conn, "skipper")]
    assert actions == ["skipped", "started", "skipped", "skipped", "skipped", "skipped"], actions
    assert "overlap skip: the previous run skipper-" in runs(conn, "skipper")[2][2]
    assert list(statuses(conn, "skipper").values()) == ["running"]


def test_buffer_one_keeps_one_tick_and_starts_it_when_the_previous_run_closes(conn):
    create(conn, "buffered", every="1 minute", catchup_window="5 minutes", overlap="buffer_one")
    conn.execute("SELECT durable.advance_clock('1 hour')")
    fire(conn)
    actions = [action for action, _, _ in runs(conn, "buffered")]
    assert actions == ["skipped", "started", "buffered", "skipped", "skipped", "skipped"], actions
    (first,) = started(conn, "buffered")
    buffered_tick = conn.execute("SELECT buffered_tick FROM durable.schedules WHERE schedule_id = 'buffered'"
                                 ).fetchone()[0]
    assert buffered_tick is not None
    fire(conn)
    assert started(conn, "buffered") == [first], "the buffered tick waits while the previous run is open"

    conn.execute("SELECT durable.interrupt_workflow_v1('durable', %s, 'done')", (first,))
    fire(conn)
    assert len(started(conn, "buffered")) == 2
    second = started(conn, "buffered")[1]
    assert second == conn.execute("SELECT durable._schedule_workflow_id('buffered', %s)",
                                  (buffered_tick,)).fetchone()[0]
    assert conn.execute("SELECT buffered_tick FROM durable.schedules WHERE schedule_id = 'buffered'"
                        ).fetchone()[0] is None


def test_allow_all_starts_every_tick_while_others_run(conn):
    create(conn, "all", every="1 hour", overlap="allow_all")
    first = conn.execute("SELECT durable.trigger_schedule('all')").fetchone()[0]
    second = conn.execute("SELECT durable.trigger_schedule('all')").fetchone()[0]
    assert first != second
    assert statuses(conn, "all") == {first: "running", second: "running"}


def test_cancel_other_cancels_the_previous_run_and_starts_the_new_one(conn):
    create(conn, "canceller", every="1 hour", overlap="cancel_other")
    first = conn.execute("SELECT durable.trigger_schedule('canceller')").fetchone()[0]
    second = conn.execute("SELECT durable.trigger_schedule('canceller')").fetchone()[0]
    assert second is not None and second != first
    assert conn.execute("SELECT cancel_requested FROM durable.workflows WHERE workflow_id = %s",
                        (first,)).fetchone()[0] is True
    assert [(a, w) for a, w, _ in runs(conn, "canceller")] == [
        ("started", first), ("cancelled_other", first), ("started", second)]


def test_terminate_other_interrupts_the_previous_run_and_starts_the_new_one(conn):
    create(conn, "terminator", every="1 hour", overlap="terminate_other")
    first = conn.execute("SELECT durable.trigger_schedule('terminator')").fetchone()[0]
    second = conn.execute("SELECT durable.trigger_schedule('terminator')").fetchone()[0]
    assert statuses(conn, "terminator") == {first: "interrupted", second: "running"}
    error = conn.execute("SELECT error->>'detail' FROM durable.workflows WHERE workflow_id = %s",
                         (first,)).fetchone()[0]
    assert "terminated by schedule terminator (overlap terminate_other)" in error


def test_trigger_obeys_skip_and_says_so_by_returning_null(conn):
    create(conn, "once", every="1 hour")
    assert conn.execute("SELECT durable.trigger_schedule('once')").fetchone()[0] is not None
    assert conn.execute("SELECT durable.trigger_schedule('once')").fetchone()[0] is None


def test_a_paused_schedule_does_not_fire_and_resuming_does_not_catch_up(conn):
    create(conn, "napper", every="1 minute", catchup_window="1 hour", overlap="allow_all")
    conn.execute("SELECT durable.pause_schedule('napper', note => 'maintenance')")
    conn.execute("SELECT durable.advance_clock('10 minutes')")
    fire(conn)
    assert runs(conn, "napper") == []
    conn.execute("SELECT durable.resume_schedule('napper')")
    fire(conn)
    assert runs(conn, "napper") == []
    conn.execute("SELECT durable.advance_clock('61 seconds')")
    fire(conn)
    assert len(started(conn, "napper")) == 1


def test_start_at_end_at_and_jitter_bound_and_shift_the_ticks(conn):
    now = conn.execute("SELECT date_trunc('minute', durable.now())").fetchone()[0]
    conn.execute("SELECT durable.create_schedule('bounded', 'wf', 'q', every => '10 minutes', "
                 "start_at => %s::timestamptz + interval '1 hour', "
                 "end_at => %s::timestamptz + interval '90 minutes', "
                 "jitter => '30 seconds')", (now, now))
    described = conn.execute("SELECT durable.describe_schedule('bounded', fire_times => 10)").fetchone()[0]
    fires = described["next_fire_times"]
    assert len(fires) == 4, fires  # +60, +70, +80, +90 minutes
    again = conn.execute("SELECT durable.describe_schedule('bounded', fire_times => 10)").fetchone()[0]
    assert again["next_fire_times"] == fires, "the jitter offset of a tick is deterministic"
    offsets = conn.execute(
        "SELECT x::timestamptz - (%s::timestamptz + interval '1 hour' + (i - 1) * interval '10 minutes') "
        "FROM jsonb_array_elements_text(%s::jsonb) WITH ORDINALITY e(x, i)",
        (now, psycopg.types.json.Jsonb(fires))).fetchall()
    assert all(0 <= o.total_seconds() < 30 for (o,) in offsets), offsets
    assert len({o for (o,) in offsets}) > 1, "each tick gets an offset of its own"


def test_a_cron_schedule_fires_at_its_wall_clock_times_in_its_time_zone(conn):
    conn.execute("SELECT durable.set_clock_offset('2021-03-13 12:00Z'::timestamptz - clock_timestamp())")
    conn.execute("SELECT durable.create_schedule('nightly', 'wf', 'q', cron => '30 2 * * *', "
                 "timezone => 'America/New_York', catchup_window => '1 hour')")
    fires = conn.execute("SELECT durable.describe_schedule('nightly', fire_times => 2)").fetchone()[0]
    assert fires["next_fire_times"] == ["2021-03-14T07:00:00+00:00", "2021-03-15T06:30:00+00:00"]
    conn.execute("SELECT durable.set_clock_offset('2021-03-14 07:00:05Z'::timestamptz - clock_timestamp())")
    fire(conn)
    assert started(conn, "nightly") == ["nightly-2021-03-14T07:00:00Z"]


def test_a_schedule_that_cannot_start_records_the_error_and_moves_on(conn):
    create(conn, "clash", every="1 minute", overlap="allow_all", catchup_window="10 minutes")
    tick = conn.execute("SELECT next_tick FROM durable.schedules WHERE schedule_id = 'clash'").fetchone()[0]
    wid = conn.execute("SELECT durable._schedule_workflow_id('clash', %s)", (tick,)).fetchone()[0]
    # Someone else started another workflow under the tick's id: never a second run, and the
    # stranger is not taken for the tick's run (the error names it); the next tick is due next.
    conn.execute("SELECT durable.start_workflow_v1('durable', %s, 'other', 'q', '[]')", (wid,))
    conn.execute("SELECT durable.advance_clock('61 seconds')")
    fire(conn)
    action, workflow_id, detail = runs(conn, "clash")[0]
    assert (action, workflow_id) == ("error", None)
    assert f"workflow id '{wid}' belongs to workflow 'other' on task queue 'q'" in detail
    assert conn.execute("SELECT last_workflow_id IS NULL AND next_tick > %s FROM durable.schedules "
                        "WHERE schedule_id = 'clash'", (tick,)).fetchone()[0]
    (count,) = conn.execute("SELECT count(*) FROM durable.workflows WHERE workflow_id = %s",
                            (wid,)).fetchone()
    assert count == 1
