"""A model-based test of the SQL queue and signal mailbox (hypothesis ``RuleBasedStateMachine``).

Random interleavings of enqueue, claim, ack, release, heartbeat (``extend_lease_v1``), lease
expiry (the engine clock moved with ``durable.advance_clock``), signals, conditions (registered
through ``start_workflow_v1`` + ``claim_workflow_tasks_v1`` + ``complete_workflow_task_v1``) and
their timeouts (``fire_timers_v1``) are checked against a small Python model:

* every message is delivered until acked, and never held by two live leases at once;
* a stale lease token fails with PD001;
* every signal is consumed at most once (and none is lost);
* exactly one of a condition's timeout and a signal wins; a signal that loses stays buffered.

Time: the model moves the engine clock in steps of 100 s, and every lease, delay and timeout is
30, 50 or 150 s, so the few real seconds an example takes never change an outcome.

The test connects as the schema owner (the clock is owner-only) to one database of its own,
truncated between examples.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from psycopg import sql as q
from psycopg.types.json import Jsonb

from conftest import dsn_for

pytestmark = pytest.mark.sql  # SQL-level: also runs on Postgres 15 (scripts/test)

NS = "durable"
STREAM = "rel-model"
NAMES = ("a", "b")
WF_QUEUE = "rel-model-wf"
STEP = 100  # seconds the clock moves per advance
LEASES = (30, 150)
DELAYS = (0, 50)
TIMEOUTS = (None, 30, 150)
SIGNAL_IDS = ("s1", "s2")
TABLES = "durable.messages, durable.workflows, durable.history, durable.signals, durable.signal_waits"


@dataclass
class Msg:
    name: str
    priority: int
    ready_at: int  # model time at which it is claimable (delivery time, or lease expiry)
    attempt: int = 0
    token: uuid.UUID | None = None  # the current lease, if any (valid until re-claimed, acked, released)


@dataclass
class Model:
    t: int = 0
    msgs: dict[int, Msg] = field(default_factory=dict)
    stale: list[tuple[int, uuid.UUID]] = field(default_factory=list)
    # signal id -> (wf, seq) waiting, oldest first
    waits: dict[str, deque[tuple[str, int]]] = field(default_factory=dict)
    buffered: dict[str, deque[str]] = field(default_factory=dict)  # signal id -> data, oldest first
    timers: list[tuple[int, str, int, str]] = field(default_factory=list)  # (due, wf, seq, signal id)
    outcomes: dict[tuple[str, int], tuple[str, str | None]] = field(default_factory=dict)
    sent: list[str] = field(default_factory=list)


_conn: psycopg.Connection | None = None


@pytest.fixture(scope="module")
def model_conn(pg_admin_dsn: str, pg_template: str) -> Iterator[psycopg.Connection]:
    """One engine database for the whole state machine, as its owner."""
    name = f"rel_model_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as admin:
        admin.execute(q.SQL("CREATE DATABASE {} TEMPLATE {}").format(q.Identifier(name),
                                                                     q.Identifier(pg_template)))
    try:
        with psycopg.connect(dsn_for(pg_admin_dsn, name), autocommit=True) as conn:
            yield conn
    finally:
        with psycopg.connect(pg_admin_dsn, autocommit=True) as admin:
            admin.execute(q.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(q.Identifier(name)))


class _EngineMachine(RuleBasedStateMachine):
    """Shared by both machines: a truncated engine database, its clock at zero, an empty model."""

    def __init__(self) -> None:
        super().__init__()
        assert _conn is not None
        self.db = _conn
        self.db.execute(f"TRUNCATE {TABLES} RESTART IDENTITY")
        self.db.execute("SELECT durable.set_clock_offset('0')")
        self.m = Model()
        self.workflows = 0
        self.signals = 0

    # -- helpers ---------------------------------------------------------------
    def one(self, query: str, params: tuple = ()) -> object:
        row = self.db.execute(query, params).fetchone()
        return None if row is None else row[0]

    def claimable(self, names: list[str]) -> dict[int, Msg]:
        return {i: m for i, m in self.m.msgs.items() if m.name in names and m.ready_at <= self.m.t}

    def held(self) -> list[int]:
        return sorted(i for i, m in self.m.msgs.items() if m.token is not None)

    def expect_lease_lost(self, query: str, params: tuple) -> None:
        with pytest.raises(psycopg.Error) as info:
            self.db.execute(query, params)
        assert info.value.sqlstate == "PD001", info.value

    def fire_due(self) -> None:
        """What firing due timers does in the model: a timeout wins only if its wait is there."""
        due = [x for x in self.m.timers if x[0] <= self.m.t]
        self.m.timers = [x for x in self.m.timers if x[0] > self.m.t]
        for _, wf, seq, sid in sorted(due):
            waiting = self.m.waits.get(sid, deque())
            if (wf, seq) in waiting:
                waiting.remove((wf, seq))
                self.m.outcomes[(wf, seq)] = ("timeout", None)

    @precondition(lambda self: self.m.msgs or self.m.timers)  # else moving time proves nothing
    @rule(steps=st.integers(1, 2))
    def advance(self, steps: int) -> None:
        self.one("SELECT durable.advance_clock(make_interval(secs => %s))", (steps * STEP,))
        self.m.t += steps * STEP


class QueueMachine(_EngineMachine):
    """Messages: enqueue, claim, ack, release, heartbeat, stale tokens, lease expiry."""

    @rule(names=st.lists(st.sampled_from(NAMES), min_size=1, max_size=3), priority=st.integers(0, 1),
          delay=st.sampled_from(DELAYS))
    def enqueue(self, names: list[str], priority: int, delay: int) -> None:
        for name in names:
            msg_id = self.one(
                "SELECT durable.enqueue_v1(%s, %s, %s, '{}'::jsonb, %s::smallint, make_interval(secs => %s))",
                (NS, STREAM, name, priority, delay))
            assert msg_id not in self.m.msgs
            self.m.msgs[msg_id] = Msg(name, priority, self.m.t + delay)

    @precondition(lambda self: self.m.msgs)
    @rule(names=st.sampled_from([["a"], ["b"], ["a", "b"]]), batch=st.integers(1, 3),
          lease=st.sampled_from(LEASES))
    def claim(self, names: list[str], batch: int, lease: int) -> None:
        can = self.claimable(names)
        rows = self.db.execute(
            "SELECT id, attempt, lease_token, priority "
            "FROM durable.claim_v1(%s, %s, %s, %s, make_interval(secs => %s), 'm')",
            (NS, [STREAM], names, batch, lease)).fetchall()
        got = [r[0] for r in rows]
        assert len(set(got)) == len(got)
        assert set(got) <= set(can), f"claimed {set(got) - set(can)}: held by a live lease, or not due"
        assert len(got) == min(batch, len(can)), f"claimed {len(got)} of {len(can)} claimable, batch {batch}"
        left = [can[i].priority for i in can if i not in got]
        if got and left:
            assert max(left) <= min(can[i].priority for i in got), "a lower priority was claimed first"
        for msg_id, attempt, token, _ in rows:
            msg = self.m.msgs[msg_id]
            if msg.token is not None:
                self.m.stale.append((msg_id, msg.token))
            msg.token, msg.attempt, msg.ready_at = token, msg.attempt + 1, self.m.t + lease
            assert attempt == msg.attempt

    @precondition(lambda self: self.held())
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        msg_id = data.draw(st.sampled_from(self.held()))
        msg = self.m.msgs.pop(msg_id)
        self.db.execute("SELECT durable.ack_v1(%s, %s)", (msg_id, msg.token))
        self.m.stale.append((msg_id, msg.token))

    @precondition(lambda self: self.held())
    @rule(data=st.data(), delay=st.sampled_from(DELAYS))
    def release(self, data: st.DataObject, delay: int) -> None:
        msg_id = data.draw(st.sampled_from(self.held()))
        msg = self.m.msgs[msg_id]
        self.db.execute("SELECT durable.release_v1(%s, %s, make_interval(secs => %s))",
                        (msg_id, msg.token, delay))
        self.m.stale.append((msg_id, msg.token))
        msg.token, msg.attempt, msg.ready_at = None, max(msg.attempt - 1, 0), self.m.t + delay

    @precondition(lambda self: self.m.stale)
    @rule(data=st.data(), how=st.sampled_from(["ack", "release"]))
    def use_a_stale_token(self, data: st.DataObject, how: str) -> None:
        msg_id, token = data.draw(st.sampled_from(self.m.stale))
        if how == "ack":
            self.expect_lease_lost("SELECT durable.ack_v1(%s, %s)", (msg_id, token))
        else:
            self.expect_lease_lost("SELECT durable.release_v1(%s, %s)", (msg_id, token))

    @precondition(lambda self: self.held() or self.m.stale)
    @rule(data=st.data(), lease=st.sampled_from(LEASES))
    def heartbeat(self, data: st.DataObject, lease: int) -> None:
        live = [(i, self.m.msgs[i].token) for i in self.held()]
        pairs = data.draw(st.lists(st.sampled_from(live + self.m.stale), min_size=1, max_size=4,
                                   unique_by=lambda p: p[0]))
        extended = {r[0] for r in self.db.execute(
            "SELECT durable.extend_lease_v1(%s, %s, make_interval(secs => %s))",
            ([p[0] for p in pairs], [p[1] for p in pairs], lease)).fetchall()}
        expected = {i for i, token in pairs if i in self.m.msgs and self.m.msgs[i].token == token}
        assert extended == expected, "a heartbeat extended a lost lease, or missed a held one"
        for i in expected:
            self.m.msgs[i].ready_at = self.m.t + lease

    @invariant()
    def messages_match_the_model(self) -> None:
        rows = self.db.execute("SELECT id, attempt, lease_token FROM durable.messages "
                               "WHERE kind = 'message' ORDER BY id").fetchall()
        expected = [(i, m.attempt, m.token) for i, m in sorted(self.m.msgs.items())]
        assert rows == expected, "a message was lost, duplicated, or its lease differs from the model"


class MailboxMachine(_EngineMachine):
    """Signals, conditions (registered by workflow tasks) and their timeouts."""

    @rule(signal_ids=st.lists(st.sampled_from(SIGNAL_IDS), min_size=1, max_size=2),
          timeout=st.sampled_from(TIMEOUTS))
    def conditions(self, signal_ids: list[str], timeout: int | None) -> None:
        """A new workflow whose first task waits on one or two conditions."""
        self.workflows += 1
        wf, name = f"wf-{self.workflows}", f"flow-{self.workflows}"
        self.db.execute("SELECT durable.start_workflow_v1(%s, %s, %s, %s, '[]')", (NS, wf, name, WF_QUEUE))
        self.fire_due()  # the claim fires every due timer of the queue first
        task = self.db.execute(
            "SELECT message_id, lease_token, processed_event_id, events FROM durable.claim_workflow_tasks_v1("
            "%s, %s, %s, 1, '1 hour', 'm')", (NS, [WF_QUEUE], [name])).fetchone()
        assert task is not None, f"the task of {wf} was not claimable"
        commands = [{"type": "condition", "seq": seq, "signal_id": sid, "timeout": timeout}
                    for seq, sid in enumerate(signal_ids, start=1)]
        last_event = max(e["event_id"] for e in task[3])
        self.db.execute("SELECT durable.complete_workflow_task_v1(%s, %s, %s, %s)",
                        (task[0], task[1], last_event, Jsonb(commands)))
        for seq, sid in enumerate(signal_ids, start=1):
            buffer = self.m.buffered.setdefault(sid, deque())
            if buffer:
                self.m.outcomes[(wf, seq)] = ("signal", buffer.popleft())
                continue
            self.m.waits.setdefault(sid, deque()).append((wf, seq))
            if timeout is not None:
                self.m.timers.append((self.m.t + timeout, wf, seq, sid))

    @rule(signal_id=st.sampled_from(SIGNAL_IDS))
    def send(self, signal_id: str) -> None:
        self.signals += 1
        data = f"data-{self.signals}"
        outcome = self.one("SELECT durable.send_signal_v1(%s, %s, %s)", (NS, signal_id, data))
        self.m.sent.append(data)
        waiting = self.m.waits.get(signal_id)
        if waiting:
            self.m.outcomes[waiting.popleft()] = ("signal", data)
            assert outcome == "delivered"
        else:
            self.m.buffered.setdefault(signal_id, deque()).append(data)
            assert outcome == "buffered"

    @precondition(lambda self: self.m.timers)
    @rule()
    def fire_timers(self) -> None:
        self.one("SELECT durable.fire_timers_v1(%s, %s)", (NS, [WF_QUEUE]))
        self.fire_due()

    @invariant()
    def mailbox_matches_the_model(self) -> None:
        waits = self.db.execute(
            "SELECT signal_id, workflow_id, seq FROM durable.signal_waits ORDER BY id").fetchall()
        for sid in SIGNAL_IDS:
            assert [(w, s) for i, w, s in waits if i == sid] == list(self.m.waits.get(sid, ())), sid
        buffered = self.db.execute("SELECT signal_id, data FROM durable.signals ORDER BY id").fetchall()
        for sid in SIGNAL_IDS:
            assert [d for i, d in buffered if i == sid] == list(self.m.buffered.get(sid, ())), sid
        events = self.db.execute("""
            SELECT workflow_id, seq, event_type, data->>'data' FROM durable.history
            WHERE inbound AND seq IS NOT NULL ORDER BY workflow_id, seq""").fetchall()
        resolved: dict[tuple[str, int], tuple[str, str | None]] = {}
        for wf, seq, etype, data in events:
            assert (wf, seq) not in resolved, f"condition {wf}#{seq} resolved twice"
            resolved[(wf, seq)] = ("signal" if etype == "signal_received" else "timeout", data)
        assert resolved == self.m.outcomes
        consumed = [d for kind, d in resolved.values() if kind == "signal"]
        assert len(consumed) == len(set(consumed)), "a signal was consumed twice"
        everywhere = sorted(consumed + [d for _, d in buffered])
        assert everywhere == sorted(self.m.sent), "a signal was lost or duplicated"


SETTINGS = settings(max_examples=50, stateful_step_count=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def run(machine: type[RuleBasedStateMachine], conn: psycopg.Connection) -> None:
    global _conn
    _conn = conn
    try:
        run_state_machine_as_test(machine, settings=SETTINGS)
    finally:
        _conn = None


def test_the_message_queue_behaves_like_its_model(model_conn):
    run(QueueMachine, model_conn)


def test_signals_and_conditions_behave_like_their_model(model_conn):
    run(MailboxMachine, model_conn)
