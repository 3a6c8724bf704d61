"""Replayer and `pgdurable replay`: histories recorded by a real worker and exported with
`pgdurable workflow export` are replayed against changed workflow code, without a database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from pgdurable import Durable, errors
from pgdurable.testing import Replayer
from support.cli import invoke, restore_logging  # noqa: F401 - a fixture
from support.history import new_client, wait_pending

QUEUE = "replaying"


async def reserve(order: str) -> str:
    return f"reserved {order}"


async def charge(order: str) -> str:
    return f"charged {order}"


async def ship(order: str) -> str:
    return f"shipped {order}"


async def notify(order: str) -> str:
    return f"notified {order}"


ACTIVITIES = [reserve, charge, ship, notify]


def named(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Every version below is deployed as the same workflow, ``shipping``."""
    fn.__name__ = fn.__qualname__ = "shipping"
    return fn


@named
async def shipping_recorded(order: str) -> list[str]:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    done = [await acts.reserve(order), await acts.charge(order)]
    await Durable.workflow.sleep(0.2)
    done.append(await acts.ship(order))
    return done


@named
async def shipping_reordered(order: str) -> list[str]:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    done = [await acts.charge(order), await acts.reserve(order)]
    await Durable.workflow.sleep(0.2)
    done.append(await acts.ship(order))
    return done


@named
async def shipping_without_timer(order: str) -> list[str]:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    done = [await acts.reserve(order), await acts.charge(order)]
    done.append(await acts.ship(order))
    return done


@named
async def shipping_unguarded(order: str) -> list[str]:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    done = [await acts.reserve(order), await acts.notify(order), await acts.charge(order)]
    await Durable.workflow.sleep(0.2)
    done.append(await acts.ship(order))
    return done


@named
async def shipping_guarded(order: str) -> list[str]:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    done = [await acts.reserve(order)]
    if Durable.workflow.patched("notify-after-reserve"):
        done.append(await acts.notify(order))
    done.append(await acts.charge(order))
    await Durable.workflow.sleep(0.2)
    done.append(await acts.ship(order))
    return done


@named
async def shipping_that_stops_early(order: str) -> list[str]:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    done = [await acts.reserve(order), await acts.charge(order)]
    await Durable.workflow.sleep(0.2)
    return done


@named
async def shipping_that_now_raises(order: str) -> list[str]:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    done = [await acts.reserve(order), await acts.charge(order)]
    await Durable.workflow.sleep(0.2)
    done.append(await acts.ship(order))
    raise ValueError(f"no courier for {order}")


CHANGED = [shipping_reordered]  # what the CLI test deploys: a list of workflows, as ATTR may be


@pytest.fixture
async def history_file(dsn: str, tmp_path: Path, restore_logging: None) -> AsyncIterator[Path]:  # noqa: F811
    """A run of ``shipping_recorded`` by a real worker, exported with the CLI to a file."""
    connection = Durable.Connection(dsn)
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=shipping_recorded)
    handle = await new_client(connection).workflow.start(
        args=["o-1"], task_queue=QUEUE, workflow_name="shipping", workflow_id="ship-o-1")
    assert await handle.result(timeout=30) == ["reserved o-1", "charged o-1", "shipped o-1"]
    exported = await asyncio.to_thread(invoke, "workflow", "export", "ship-o-1", "--dsn", dsn)
    assert exported.exit_code == 0, exported.output
    path = tmp_path / "ship-o-1.json"
    path.write_text(exported.stdout)
    yield path
    await Durable.shutdown(grace=5)


def recorded_event(history: dict[str, Any], seq: int) -> dict[str, Any]:
    """The event that recorded durable call ``seq``."""
    return next(event for event in history["runs"][0]["events"]
                if event["seq"] == seq and not event["inbound"] and event["event_type"] != "patch_marker")


def mismatch(history: dict[str, Any], workflow: Callable[..., Any]) -> errors.NonDeterminismError:
    with pytest.raises(errors.NonDeterminismError) as caught:
        Replayer(workflows=[workflow]).replay(history)
    return caught.value


def test_an_export_is_a_versioned_document_of_the_run_and_its_events(history_file: Path) -> None:
    history = json.loads(history_file.read_text())
    assert (history["format"], history["version"], history["workflow_id"]) == \
        ("pgdurable-history", 1, "ship-o-1")
    [run] = history["runs"]
    assert (run["workflow_name"], run["status"], run["task_queue"]) == ("shipping", "completed", QUEUE)
    types = [event["event_type"] for event in run["events"]]
    assert types[0] == "workflow_started" and types[-1] == "workflow_completed"
    assert types.count("activity_scheduled") == 3 and "timer_fired" in types


def test_the_unchanged_workflow_replays_clean(history_file: Path) -> None:
    Replayer(workflows=[shipping_recorded]).replay(json.loads(history_file.read_text()))


def test_a_reordered_activity_names_the_event_it_expected_and_the_call_it_got(history_file: Path) -> None:
    history = json.loads(history_file.read_text())
    error = mismatch(history, shipping_reordered)
    assert error.event_id == recorded_event(history, 1)["event_id"]
    assert (error.expected, error.actual) == ("activity 'reserve'", "activity 'charge'")
    assert f"durable call #1 is activity 'charge' but history recorded activity 'reserve' " \
           f"(event {error.event_id})" in str(error)
    assert "patched()" in str(error)


def test_a_removed_timer_names_the_timer_the_history_recorded(history_file: Path) -> None:
    history = json.loads(history_file.read_text())
    error = mismatch(history, shipping_without_timer)
    assert error.event_id == recorded_event(history, 3)["event_id"]
    assert recorded_event(history, 3)["event_type"] == "timer_started"
    assert (error.expected, error.actual) == ("timer", "activity 'ship'")
    assert "durable call #3 is activity 'ship' but history recorded timer" in str(error)


def test_an_unguarded_new_activity_fails_where_it_was_inserted(history_file: Path) -> None:
    history = json.loads(history_file.read_text())
    error = mismatch(history, shipping_unguarded)
    assert error.event_id == recorded_event(history, 2)["event_id"]
    assert (error.expected, error.actual) == ("activity 'charge'", "activity 'notify'")


def test_a_removed_last_call_says_the_workflow_finished_early(history_file: Path) -> None:
    history = json.loads(history_file.read_text())
    error = mismatch(history, shipping_that_stops_early)
    assert error.event_id == recorded_event(history, 4)["event_id"]
    assert (error.expected, error.actual) == ("activity 'ship'", "the workflow finished")
    assert "finished after 3 durable calls but its history recorded 4" in str(error)


def test_code_that_now_raises_where_the_run_returned_names_the_completion(history_file: Path) -> None:
    history = json.loads(history_file.read_text())
    error = mismatch(history, shipping_that_now_raises)
    completed = history["runs"][0]["events"][-1]
    assert (error.event_id, error.expected) == (completed["event_id"], "workflow_completed")
    assert error.actual == "the workflow raises ValueError: no courier for o-1"


def test_the_same_change_guarded_by_patched_replays_clean(history_file: Path) -> None:
    Replayer(workflows=[shipping_guarded]).replay(json.loads(history_file.read_text()))


def test_a_history_of_a_workflow_the_replayer_was_not_given_says_which_to_pass(history_file: Path) -> None:
    async def other() -> None:
        pass

    with pytest.raises(errors.InvalidArgumentError, match="'shipping'.*pass that function"):
        Replayer(workflows=[other]).replay(json.loads(history_file.read_text()))


def test_a_document_that_is_not_an_export_is_refused_with_how_to_make_one() -> None:
    with pytest.raises(errors.InvalidArgumentError, match="pgdurable workflow export"):
        Replayer(workflows=[shipping_recorded]).replay({"runs": []})
    with pytest.raises(errors.InvalidArgumentError, match="version 99"):
        Replayer(workflows=[shipping_recorded]).replay({"format": "pgdurable-history", "version": 99})


def test_replay_many_gives_one_result_per_file(history_file: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    results = Replayer(workflows=[shipping_recorded]).replay_many([history_file, broken])
    assert [result.path for result in results] == [str(history_file), str(broken)]
    assert results[0].error is None
    assert isinstance(results[1].error, json.JSONDecodeError)
    failed = Replayer(workflows=[shipping_reordered]).replay_many([history_file])
    assert isinstance(failed[0].error, errors.NonDeterminismError)


def test_the_replay_command_exits_0_when_every_history_replays_clean(history_file: Path) -> None:
    result = invoke("replay", f"{__name__}:shipping_recorded", str(history_file))
    assert result.exit_code == 0, result.output
    assert f"ok    {history_file}" in result.stdout


def test_the_replay_command_exits_1_naming_the_file_and_the_mismatch(history_file: Path) -> None:
    result = invoke("replay", f"{__name__}:CHANGED", str(history_file))
    assert result.exit_code == 1, result.output
    assert f"FAIL  {history_file}: NonDeterminismError" in result.stderr
    assert "durable call #1 is activity 'charge' but history recorded activity 'reserve'" in result.stderr
    assert "1 of 1 histories do not replay" in result.stderr


def test_the_replay_command_refuses_an_attribute_that_is_no_workflow(history_file: Path) -> None:
    result = invoke("replay", f"{__name__}:QUEUE", str(history_file))
    assert result.exit_code == 1
    assert "must be a workflow function or a list of them" in result.stderr


async def countdown(n: int) -> str:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    await acts.reserve(f"n{n}")
    if n > 0:
        Durable.workflow.continue_as_new(n - 1)
    return "done"


async def countdown_changed_in_the_last_run(n: int) -> str:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    await (acts.charge(f"n{n}") if n == 0 else acts.reserve(f"n{n}"))
    if n > 0:
        Durable.workflow.continue_as_new(n - 1)
    return "done"


countdown_changed_in_the_last_run.__name__ = "countdown"


async def test_an_export_of_all_runs_replays_each_run_of_a_continued_chain(
        dsn: str, tmp_path: Path, restore_logging: None) -> None:  # noqa: F811
    connection = Durable.Connection(dsn)
    try:
        await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=countdown)
        handle = await new_client(connection).workflow.start(
            args=[1], task_queue=QUEUE, workflow_name="countdown", workflow_id="countdown-1")
        assert await handle.result(timeout=30) == "done"
        latest = await handle.export_history()
        exported = await asyncio.to_thread(invoke, "workflow", "export", "countdown-1", "--all-runs",
                                           "--dsn", dsn)
    finally:
        await Durable.shutdown(grace=5)
    assert exported.exit_code == 0, exported.output
    history = json.loads(exported.stdout)
    assert [(run["run_id"], run["status"], json.loads(run["args"])) for run in history["runs"]] == \
        [(1, "continued", [1]), (2, "completed", [0])]
    assert [run["run_id"] for run in latest["runs"]] == [2]
    Replayer(workflows=[countdown]).replay(history)
    error = mismatch(history, countdown_changed_in_the_last_run)
    assert (error.expected, error.actual) == ("activity 'reserve'", "activity 'charge'")
    assert "workflow countdown (countdown-1)" in str(error)


def test_exporting_an_unknown_workflow_is_one_line_on_stderr(dsn: str, restore_logging: None) -> None:  # noqa: F811
    result = invoke("workflow", "export", "nope", "--dsn", dsn)
    assert result.exit_code == 1
    assert "workflow 'nope' not found" in result.stderr


async def approval(order: str) -> str:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    await acts.reserve(order)
    await Durable.workflow.condition(f"approve-{order}")
    return await acts.charge(order)


async def approval_without_the_wait(order: str) -> str:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    await acts.reserve(order)
    return await acts.charge(order)


approval_without_the_wait.__name__ = "approval"


async def test_a_history_of_a_workflow_still_running_replays_up_to_where_it_waits(dsn: str) -> None:
    connection = Durable.Connection(dsn)
    try:
        await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=approval)
        handle = await new_client(connection).workflow.start(
            args=["o-2"], task_queue=QUEUE, workflow_name="approval", workflow_id="approval-o-2")
        await wait_pending(handle, "condition", signal_id="approve-o-2")
        history = await handle.export_history()
    finally:
        await Durable.shutdown(grace=5)
    assert history["runs"][0]["status"] == "running"
    Replayer(workflows=[approval]).replay(history)
    error = mismatch(history, approval_without_the_wait)
    assert (error.expected, error.actual) == ("condition 'approve-o-2'", "activity 'charge'")
