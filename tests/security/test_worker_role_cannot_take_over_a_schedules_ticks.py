"""A schedule's tick starts the workflow whose id is derived from the schedule and the tick
(``<schedule_id>-<tick>``), with ``return_existing`` so a replayed tick never starts twice. That id
is predictable: a worker role that may start children (on its own queues) could start one under a
future tick's id first. The tick must not then count that stranger as its run (the scheduled
workflow silently never running): it records an error naming the workflow that holds the id."""

from __future__ import annotations

import pytest

from support.attack import Owner, child, claim_workflow_task, complete_workflow_task

pytestmark = pytest.mark.sql


def test_a_child_started_under_a_future_ticks_id_is_not_taken_for_the_schedules_run(owner: Owner):
    owner.value("SELECT durable.create_schedule('nightly', 'report', 'reports', cron => '0 3 * * *')")
    tick_id = owner.value("SELECT durable._schedule_workflow_id(s.schedule_id, s.next_tick) "
                          "FROM durable.schedules s WHERE s.schedule_id = 'nightly'")
    role = owner.provision(["orders", "orders-activity"])
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")
    with role.login() as session:
        task = claim_workflow_task(session, "orders", "order_workflow")
        complete_workflow_task(session, task, [child(1, tick_id, "order_workflow", awaited=False)])
    assert owner.value("SELECT task_queue FROM durable.workflows WHERE workflow_id = %s",
                       [tick_id]) == "orders"
    # The tick comes due and a worker of the reports queue fires it.
    owner.value("UPDATE durable.schedules SET next_fire_at = durable.now() WHERE schedule_id = 'nightly'")
    owner.value("SELECT durable.fire_timers_v1('durable', ARRAY['reports'], 10)")
    action, workflow_id, detail = owner.rows(
        "SELECT action, workflow_id, detail FROM durable.schedule_runs WHERE schedule_id = 'nightly' "
        "ORDER BY id DESC LIMIT 1")[0]
    assert action == "error", (action, workflow_id, detail)
    assert f"workflow id '{tick_id}' belongs to workflow 'order_workflow' on task queue 'orders'" in detail
    # The stranger is not the schedule's run: an overlap policy never cancels or waits on it.
    assert owner.value("SELECT last_workflow_id FROM durable.schedules WHERE schedule_id = 'nightly'") is None
