"""``pgdurable stream stats``: durable.stream_stats as a table and as JSON."""

from __future__ import annotations

from datetime import timedelta

from support.cli import invoke, ok_json, restore_logging  # noqa: F401


def test_stream_stats_shows_what_waits_on_each_stream_as_json_and_as_a_table(dsn, conn):
    conn.execute("SELECT durable.enqueue_v1('durable', 'emails', 'send')")
    conn.execute("SELECT durable.enqueue_v1('durable', 'emails', 'send', p_delay => interval '1 hour')")
    conn.execute("SELECT durable.enqueue_v1('other', 'sms', 'send')")

    rows = ok_json("stream", "stats", "--namespace", "durable", "--dsn", dsn)
    assert [(r["stream"], r["queued"], r["delayed"], r["running"]) for r in rows] == [("emails", 1, 1, 0)]
    assert rows[0]["oldest_queued_age"] >= 0
    assert [r["namespace"] for r in ok_json("stream", "stats", "--dsn", dsn)] == ["durable", "other"]
    table = invoke("stream", "stats", "--dsn", dsn)
    assert table.exit_code == 0, table.output
    assert "emails" in table.stdout and "sms" in table.stdout
    empty = invoke("stream", "stats", "-n", "nowhere", "--dsn", dsn)
    assert "no streams in namespace 'nowhere'" in empty.stdout


def test_stream_limits_are_shown_set_kept_and_cleared(dsn, conn):
    assert ok_json("stream", "limits", "pay-activity", "--dsn", dsn) == {
        "namespace": "durable", "stream": "pay-activity", "max_running": None, "rate_limit": None,
        "rate_period": None}
    shown = ok_json("stream", "limits", "pay-activity", "--max-running", "3", "--dsn", dsn)
    assert (shown["max_running"], shown["rate_limit"]) == (3, None)
    shown = ok_json("stream", "limits", "pay-activity", "--rate", "20/s", "--dsn", dsn)
    assert (shown["max_running"], shown["rate_limit"], shown["rate_period"]) == (3, 20, 1.0), (
        "an option not given keeps its limit")
    assert conn.execute("SELECT * FROM durable.stream_limits('durable')").fetchall() == [
        ("durable", "pay-activity", 3, 20, timedelta(seconds=1))]
    table = invoke("stream", "limits", "pay-activity", "--dsn", dsn)
    assert table.exit_code == 0, table.output
    assert "max running: 3" in table.stdout and "20 per 1 s" in table.stdout
    per_minute = ok_json("stream", "limits", "pay-activity", "--rate", "100/1m", "--dsn", dsn)
    assert per_minute["rate_period"] == 60.0
    cleared = ok_json("stream", "limits", "pay-activity", "--clear", "--dsn", dsn)
    assert (cleared["max_running"], cleared["rate_limit"]) == (None, None)
    assert conn.execute("SELECT count(*) FROM durable.flow_limits").fetchone() == (0,)


def test_bad_stream_limits_are_refused_with_a_clear_error_and_change_nothing(dsn, conn):
    ok_json("stream", "limits", "s", "--max-running", "2", "--dsn", dsn)
    for args, needle in ((["--rate", "fast"], "is not N/PERIOD"),
                         (["--rate", "20/soon"], "invalid rate period"),
                         (["--rate", "0/s"], "at least 1"), (["--rate", "-3/s"], "is not N/PERIOD"),
                         (["--max-running", "-1"], "greater than or equal to 0"),
                         (["--clear", "--max-running", "4"], "--clear alone")):
        result = invoke("stream", "limits", "s", *args, "--dsn", dsn)
        assert result.exit_code == 2, (args, result.output)
        assert needle in result.output, (args, result.output)
    assert conn.execute("SELECT stream, max_running, rate_limit FROM durable.flow_limits").fetchall() == [
        ("s", 2, None)]


def test_workflow_start_takes_the_flow_control_options(dsn, conn):
    out = ok_json("workflow", "start", "w", "-q", "q", "--priority", "4", "--partition-key", "acct",
                  "--dedup-id", "d-1", "--start-delay", "10 minutes", "--dsn", dsn)
    rows = conn.execute("SELECT workflow_id, priority, partition_key, dedup_id "
                        "FROM durable.workflows").fetchall()
    assert rows == [(out["workflow_id"], 4, "acct", "d-1")]
    again = invoke("workflow", "start", "w", "-q", "q", "--dedup-id", "d-1", "--dsn", dsn)
    assert again.exit_code == 1 and "dedup id 'd-1' is taken" in again.output
    bad = invoke("workflow", "start", "w", "-q", "q", "--start-delay", "whenever", "--dsn", dsn)
    assert bad.exit_code == 2 and "invalid start delay" in bad.output
