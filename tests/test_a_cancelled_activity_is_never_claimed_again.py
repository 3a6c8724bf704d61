"""An activity its workflow cancelled (cancel_activity) never runs again: not when it was queued or
waiting for a retry, and not when its running attempt's lease expires afterwards — even for the
attempts past the first 1000 that a claim's bookkeeping pass looks at (those reach the claim
itself as lost leases)."""

from __future__ import annotations

import pytest

from support.attack import NS, Owner, activity, claim_workflow_task, complete_workflow_task

pytestmark = pytest.mark.sql

COUNT = 1001  # one more than the claim's pass over expired leases takes at once


def claim(conn, batch: int) -> list[tuple]:
    return conn.execute("SELECT message_id, payload->>'seq' "
                        "FROM durable.claim_activity_tasks_v1(%s, %s, %s, %s)",
                        [NS, ["q-activity"], ["slow"], batch]).fetchall()


def test_cancelled_running_activities_whose_leases_expire_are_not_claimed_again(dsn):
    owner = Owner(dsn)
    owner.start("w", task_queue="q", workflow_name="w")
    with owner.connect() as conn:
        task = claim_workflow_task(conn, "q", "w")
        complete_workflow_task(conn, task, [activity(seq, "slow") for seq in range(1, COUNT + 1)])
        assert len(claim(conn, 1000)) + len(claim(conn, 1000)) == COUNT
        conn.execute("SELECT durable.cancel_workflow_v1(%s, 'w')", [NS])
        task = claim_workflow_task(conn, "q", "w")
        complete_workflow_task(conn, task, [{"type": "cancel_activity", "seq": seq}
                                            for seq in range(1, COUNT + 1)])
        conn.execute("SELECT durable.advance_clock('31 seconds')")
        assert claim(conn, 10) == [], "a cancelled activity was claimed to run again"
        left = conn.execute("SELECT count(*) FROM durable.messages WHERE kind = 'activity'").fetchone()[0]
        assert left == 0
        late = conn.execute("SELECT count(*) FROM durable.history WHERE event_type = 'activity_failed' "
                            "AND (data->>'late')::boolean AND NOT inbound").fetchone()[0]
        assert late == COUNT
