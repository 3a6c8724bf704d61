"""``pgdurable stream stats``: durable.stream_stats as a table and as JSON."""

from __future__ import annotations

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
