"""Issue 16: stream limits are the owner's. A worker role logged in over TCP (SCRAM) cannot set,
clear or read them, nor claim past them: its claims go through the same limits."""

from __future__ import annotations

import pytest

from support.attack import NS, Owner, claim_activity_task, refused

pytestmark = pytest.mark.sql


def test_a_worker_role_cannot_change_or_read_stream_limits(owner: Owner):
    owner.rows("SELECT durable.set_stream_limits('orders-activity', %s, 1)", [NS])
    role = owner.provision(["orders", "orders-activity"])
    with role.login() as session:
        for statement in (f"SELECT durable.set_stream_limits('orders-activity', '{NS}', 1000)",
                          f"SELECT durable.set_stream_limits('orders-activity', '{NS}')",
                          f"SELECT * FROM durable.stream_limits('{NS}')",
                          "SELECT * FROM durable.flow_limits",
                          "DELETE FROM durable.flow_limits",
                          "UPDATE durable.flow_rate_slots SET claimed_at = '-infinity'"):
            with refused("42501"):
                session.execute(statement)
    assert owner.rows("SELECT stream, max_running FROM durable.stream_limits(%s)", [NS]) == [
        ("orders-activity", 1)]


def test_a_worker_roles_claims_are_held_to_the_limits(owner: Owner):
    owner.rows("SELECT durable.set_stream_limits('orders-activity', %s, 1)", [NS])
    for _ in range(3):
        owner.rows("SELECT durable.enqueue_v1(%s, 'orders-activity', 'charge')", [NS])
    owner.rows("UPDATE durable.messages SET kind = 'activity' WHERE stream = 'orders-activity'")
    role = owner.provision(["orders", "orders-activity"])
    with role.login() as session:
        claim_activity_task(session, "orders-activity", "charge")
        rows = session.execute(
            "SELECT * FROM durable.claim_activity_tasks_v1(%s, ARRAY['orders-activity'], ARRAY['charge'], "
            "10)",
            [NS]).fetchall()
        assert rows == []
