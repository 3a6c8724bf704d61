"""Scoped worker roles end to end: the seed's order workflow run by workers that each log in as
their own provisioned role; scope errors and warnings; revoking a role mid-way loses nothing;
rotating a password locks out the old one (on a server that really checks passwords)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pgdurable import Durable, RetryPolicy, WorkerCredential, errors
from support.db import own_server
from support.polling import wait_for, wait_until

pytestmark = pytest.mark.sql  # also run on Debian Postgres 15 by scripts/test

DEADLINE = 30.0
HOSTILE_PASSWORD = "x'; DROP TABLE durable.messages; --ä€"

# -- the seed's order workflow --------------------------------------------------------------------

CHARGED: list[str] = []  # one entry per charge attempt (execution is at least once)
NOTIFIED: list[str] = []
GATES: dict[str, asyncio.Event] = {}  # orders whose charge waits until the test opens the gate


async def charge(order_id: str) -> str:
    CHARGED.append(order_id)
    gate = GATES.get(order_id)
    if gate is not None:
        await gate.wait()
    return f"receipt-{order_id}"


async def notify(order_id: str, receipt: str) -> None:
    NOTIFIED.append(order_id)


async def order_workflow(order_id: str) -> str:
    acts = Durable.workflow.proxy_activities(activities=[charge, notify],
                                             retry=RetryPolicy(maximum_attempts=3))
    receipt = await acts.charge(order_id)
    await Durable.workflow.sleep("1 hour")
    await acts.notify(order_id, receipt)
    return receipt


@pytest.fixture(autouse=True)
def _fresh_activity_log() -> Iterator[None]:
    CHARGED.clear()
    NOTIFIED.clear()
    GATES.clear()
    yield
    for gate in GATES.values():
        gate.set()


@pytest.fixture
async def admin(dsn: str) -> AsyncIterator[Durable.Connection]:
    """The DBA's connection (the test server's superuser); every worker and pool stops after the test."""
    yield Durable.Connection(dsn)
    await Durable.shutdown(grace=1)


# -- helpers --------------------------------------------------------------------------------------

async def query(dsn: str, text: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """One query as the test's superuser, on a connection of its own."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(text, params)  # type: ignore[arg-type]
        return await cur.fetchall() if cur.description else []


async def sessions_by_user(dsn: str) -> Counter[str]:
    """Client sessions on the test's database per login role, the asking session left out."""
    rows = await query(dsn, "SELECT usename FROM pg_stat_activity WHERE datname = current_database() "
                            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
    return Counter(row[0] for row in rows)


async def login(dsn: str, user: str, password: str) -> str:
    """Logs in as ``user`` and returns session_user (raises psycopg.OperationalError when refused)."""
    async with await psycopg.AsyncConnection.connect(dsn, user=user, password=password) as conn:
        row = await (await conn.execute("SELECT session_user")).fetchone()
    assert row is not None
    return str(row[0])


async def asleep(handle: Any) -> bool:
    """True once the workflow charged and sleeps its hour (no task of it is in flight)."""
    return any(e["event_type"] == "timer_started" for e in await handle.history())


async def skip_the_hour(dsn: str) -> None:
    """The DBA moves the engine clock (time skipping): every sleeping order wakes up."""
    await query(dsn, "SELECT durable.advance_clock('1 hour')")


async def start_orders(client: Any, orders: list[str]) -> list[Any]:
    return [await client.workflow.start(args=[order], task_queue="orders", workflow_name="order_workflow",
                                        workflow_id=f"order-{order}") for order in orders]


async def assert_each_activity_recorded_once(handle: Any) -> None:
    history = await handle.history()
    completed = Counter(e["seq"] for e in history if e["event_type"] == "activity_completed")
    scheduled = Counter(e["seq"] for e in history if e["event_type"] == "activity_scheduled")
    assert scheduled == Counter({1: 1, 3: 1}), history
    assert completed == Counter({1: 1, 3: 1}), history


# -- the seed's workflow on two scoped roles -------------------------------------------------------

async def test_order_workflow_completes_with_workflow_and_activity_workers_each_logged_in_as_its_own_role(
        dsn, admin, caplog):
    caplog.set_level(logging.WARNING, logger="pgdurable.worker")
    wf_cred = await Durable.provision_worker_role(connection=admin, stream_names=["orders"])
    act_cred = await Durable.provision_worker_role(connection=admin, stream_names=["orders-activity"])
    assert isinstance(wf_cred, WorkerCredential) and wf_cred.role_name != act_cred.role_name
    assert act_cred.password not in repr(act_cred)

    await Durable.Worker.create(connection=admin, task_queue="orders", workflow=order_workflow,
                                worker_credentials=wf_cred)
    await Durable.register_activity_worker(
        {"connection": admin, "task_queue": "orders",
         "worker_credentials": {"user": act_cred.role_name, "password": act_cred.password}},
        activities=[charge, notify])
    client_connection = Durable.Connection(dsn)
    client = Durable.Client(connection=client_connection)
    handles = await start_orders(client, ["a-1", "a-2", "a-3"])
    for handle in handles:
        await wait_for(lambda h=handle: asleep(h), f"{handle.workflow_id} to charge and fall asleep")

    # Every connection the two workers hold logs in as its own role: with the DBA's and the
    # client's pools closed, only the two worker roles are connected.
    await admin.close()
    await client_connection.close()
    connected = await sessions_by_user(dsn)
    assert set(connected) == {wf_cred.role_name, act_cred.role_name}, connected

    await skip_the_hour(dsn)
    results = [await h.result(timeout=DEADLINE) for h in handles]
    assert results == ["receipt-a-1", "receipt-a-2", "receipt-a-3"]
    for handle in handles:
        await assert_each_activity_recorded_once(handle)
    assert sorted(CHARGED) == ["a-1", "a-2", "a-3"] and sorted(NOTIFIED) == ["a-1", "a-2", "a-3"]
    # The workflow worker's role does not cover orders-activity: it said so and left it alone.
    assert any("orders-activity" in r.getMessage() and wf_cred.role_name in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING), caplog.text


# -- scope mismatches ------------------------------------------------------------------------------

async def test_worker_whose_role_covers_none_of_its_streams_raises_worker_role_error_naming_them(dsn, admin):
    cred = await Durable.provision_worker_role(connection=admin,
                                               stream_names=["payments", "payments-activity"])

    with pytest.raises(errors.WorkerRoleError) as caught:
        await Durable.Worker.create(connection=admin, task_queue="orders", workflow=order_workflow,
                                    worker_credentials=cred)
    message = str(caught.value)
    assert "orders, orders-activity" in message and cred.role_name in message
    assert "payments" in message  # ...and what the role may consume instead

    with pytest.raises(errors.WorkerRoleError, match="orders-activity"):
        await Durable.register_activity_worker(
            {"connection": admin, "task_queue": "orders",
             "worker_credentials": {"user": cred.role_name, "password": cred.password}},
            activities=[charge, notify])

    other_namespace = await Durable.provision_worker_role(connection=admin, stream_names=["orders"],
                                                          namespace="billing")
    with pytest.raises(errors.WorkerRoleError, match=r"orders.*namespace 'durable'"):
        await Durable.Worker.create(connection=admin, task_queue="orders", workflow=order_workflow,
                                    worker_credentials=other_namespace)

    # A refused worker keeps no connection open.
    await wait_for(lambda: _no_sessions_of(dsn, cred.role_name, other_namespace.role_name),
                   "the refused workers' connections to close")


async def _no_sessions_of(dsn: str, *roles: str) -> bool:
    connected = await sessions_by_user(dsn)
    return not any(connected[role] for role in roles)


async def test_worker_whose_role_covers_some_of_its_streams_warns_naming_the_streams_it_leaves(
        dsn, admin, caplog):
    caplog.set_level(logging.WARNING, logger="pgdurable.worker")
    workflows_only = await Durable.provision_worker_role(connection=admin, stream_names=["orders"])
    activities_only = await Durable.provision_worker_role(connection=admin, stream_names=["orders-activity"])

    wf_worker = await Durable.Worker.create(connection=admin, task_queue="orders", workflow=order_workflow,
                                            worker_credentials=workflows_only)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(workflows_only.role_name in m and "orders-activity" in m for m in warnings), warnings
    assert wf_worker.workflows and wf_worker.activity_stream is None

    caplog.clear()
    act_worker = await Durable.Worker.create(connection=admin, task_queue="orders", workflow=order_workflow,
                                             worker_credentials=activities_only)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(activities_only.role_name in m and "does not cover orders:" in m for m in warnings), warnings
    assert not act_worker.workflows and act_worker.activity_stream == "orders-activity"

    # Between them, the two half-covered workers run the whole workflow.
    client = Durable.Client(connection=admin)
    [handle] = await start_orders(client, ["s-1"])
    await wait_for(lambda: asleep(handle), "the order to charge and fall asleep")
    await skip_the_hour(dsn)
    assert await handle.result(timeout=DEADLINE) == "receipt-s-1"


# -- revoke ----------------------------------------------------------------------------------------

async def test_revoking_a_role_mid_way_loses_no_work_and_a_new_role_finishes_it(dsn, admin):
    old = await Durable.provision_worker_role(connection=admin, stream_names=["orders", "orders-activity"])
    gate = asyncio.Event()
    GATES.update({"slow-1": gate, "slow-2": gate})
    old_worker = await Durable.Worker.create(connection=admin, task_queue="orders", workflow=order_workflow,
                                             activities=[charge, notify], worker_credentials=old,
                                             lease_seconds=2)
    client = Durable.Client(connection=admin)
    handles = await start_orders(client, ["fast-1", "fast-2", "slow-1", "slow-2"])
    # Mid-way: the fast orders are charged and asleep, the slow ones are being charged.
    for handle in handles[:2]:
        await wait_for(lambda h=handle: asleep(h), f"{handle.workflow_id} to fall asleep")

    async def slow_charges_running() -> bool:
        return {"slow-1", "slow-2"} <= set(CHARGED)

    await wait_for(slow_charges_running, "the slow charges to start")
    assert (await sessions_by_user(dsn))[old.role_name] > 0

    await revoke_for_good(admin, old.role_name)

    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        await login(dsn, old.role_name, old.password)
    await wait_for(lambda: _no_sessions_of(dsn, old.role_name), "the revoked role's live sessions to end")
    [listed] = [r for r in await Durable.list_worker_roles(connection=admin) if r.role_name == old.role_name]
    assert listed.revoked_at is not None and listed.stream_names == ["orders", "orders-activity"]

    # The old worker's charges finish now, but their results cannot be recorded under a revoked
    # role; their leases lapse and the new role's worker runs them again.
    gate.set()
    stopping = asyncio.create_task(old_worker.shutdown(grace=0.5))
    new = await Durable.provision_worker_role(connection=admin, stream_names=["orders-activity", "orders"])
    assert new.role_name != old.role_name
    await Durable.Worker.create(connection=admin, task_queue="orders", workflow=order_workflow,
                                activities=[charge, notify], worker_credentials=new, lease_seconds=2)
    for handle in handles:
        await wait_for(lambda h=handle: asleep(h), f"{handle.workflow_id} to fall asleep")
    await skip_the_hour(dsn)

    results = [await h.result(timeout=DEADLINE) for h in handles]
    assert results == ["receipt-fast-1", "receipt-fast-2", "receipt-slow-1", "receipt-slow-2"]
    for handle in handles:
        await assert_each_activity_recorded_once(handle)
    assert Counter(CHARGED)["fast-1"] == Counter(CHARGED)["fast-2"] == 1  # finished before the revoke
    assert set(NOTIFIED) == {"fast-1", "fast-2", "slow-1", "slow-2"}  # executed at least once each
    await stopping


async def revoke_for_good(admin: Durable.Connection, role_name: str) -> None:
    """Revokes a role, then again: the second call ends a session that a worker reconnecting at
    once opened while the first call committed (as the DBA guide says)."""
    await Durable.revoke_worker_role(connection=admin, role_name=role_name)
    await Durable.revoke_worker_role(connection=admin, role_name=role_name)


async def test_worker_whose_role_is_revoked_logs_the_refused_login_as_an_error_every_30_s(dsn, admin, caplog):
    caplog.set_level(logging.DEBUG, logger="pgdurable.worker")
    cred = await Durable.provision_worker_role(connection=admin, stream_names=["orders", "orders-activity"])
    await Durable.Worker.create(connection=admin, task_queue="orders", workflow=order_workflow,
                                activities=[charge, notify], worker_credentials=cred)
    await revoke_for_good(admin, cred.role_name)

    def refused(level: int) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "pgdurable.worker" and r.levelno == level
                and cred.role_name in r.getMessage() and "not permitted to log in" in r.getMessage()]

    async def error_logged() -> bool:
        return bool(refused(logging.ERROR))

    await wait_for(error_logged, "an ERROR naming the refused role")
    # The worker keeps trying (a DBA may restore the login), quietly: the ERROR repeats every 30 s.
    tried = len(refused(logging.DEBUG))

    async def tried_again() -> bool:
        return len(refused(logging.DEBUG)) >= tried + 3

    await wait_for(tried_again, "three more refused logins")
    assert len(refused(logging.ERROR)) == 1, [r.getMessage() for r in refused(logging.ERROR)]


async def test_creating_a_worker_with_a_revoked_role_fails_at_once_with_authorization_error(dsn, admin):
    cred = await Durable.provision_worker_role(connection=admin, stream_names=["orders", "orders-activity"])
    await Durable.revoke_worker_role(connection=admin, role_name=cred.role_name)
    with pytest.raises(errors.AuthorizationError, match="not permitted to log in") as caught:
        await asyncio.wait_for(Durable.Worker.create(connection=admin, task_queue="orders",
                                                     workflow=order_workflow, worker_credentials=cred), 10)
    assert cred.role_name in str(caught.value) and "provision" in str(caught.value)


# -- rotate (a server that checks passwords) -------------------------------------------------------

ADMIN_PASSWORD = "pgdurable-roles-admin"


@pytest.fixture(scope="module")
def scram_server() -> Iterator[str]:
    """An embedded Postgres of its own whose pg_hba.conf requires scram-sha-256 on TCP (the shared
    test server trusts every local login). Yields a superuser DSN (with password) of a migrated
    database; stops the server and removes its directory afterwards."""
    from pgdurable._migrate import migrate

    with own_server("roles") as server:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(ADMIN_PASSWORD)))
            conn.execute("CREATE DATABASE pgdurable_roles")
        (server.data_dir / "pg_hba.conf").write_text(
            "local all postgres trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n")
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
        admin_dsn = make_conninfo(server.dsn("pgdurable_roles"), password=ADMIN_PASSWORD)

        def password_required() -> bool:
            try:
                psycopg.connect(server.dsn("pgdurable_roles")).close()
            except psycopg.OperationalError as exc:
                assert "password" in str(exc)
                return True
            return False

        # The reload is asynchronous: wait until a password is really required.
        wait_until(password_required, "the pg_hba.conf reload to take effect", timeout=10)
        migrate(admin_dsn)
        yield admin_dsn
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            roles = [r[0] for r in conn.execute("SELECT role_name FROM durable.list_worker_roles()")]
            for role in roles:
                conn.execute(sql.SQL("DROP OWNED BY {0}; DROP ROLE {0}").format(sql.Identifier(role)))


async def test_rotating_a_password_locks_out_the_old_one_and_workers_run_on_the_new_one(scram_server):
    admin = Durable.Connection(scram_server)
    try:
        cred = await Durable.provision_worker_role(connection=admin, password=HOSTILE_PASSWORD,
                                                   stream_names=["orders", "orders-activity"])
        assert cred.password == HOSTILE_PASSWORD
        assert await login(scram_server, cred.role_name, HOSTILE_PASSWORD) == cred.role_name
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            await login(scram_server, cred.role_name, "not-the-password")

        rotated = await Durable.rotate_worker_password(connection=admin, role_name=cred.role_name)
        new_password = rotated["password"]
        assert new_password != HOSTILE_PASSWORD and len(new_password) >= 32
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            await login(scram_server, cred.role_name, HOSTILE_PASSWORD)
        assert await login(scram_server, cred.role_name, new_password) == cred.role_name
        [listed] = await Durable.list_worker_roles(connection=admin)
        assert listed.rotated_at is not None and listed.revoked_at is None

        # A worker given the old password cannot start; one given the new password runs the order.
        with pytest.raises(errors.AuthorizationError, match="password authentication failed"):
            await Durable.Worker.create(connection=admin, task_queue="orders", workflow=order_workflow,
                                        worker_credentials=cred)
        await Durable.Worker.create(connection=admin, task_queue="orders", workflow=order_workflow,
                                    activities=[charge, notify],
                                    worker_credentials={"user": cred.role_name, "password": new_password})
        client = Durable.Client(connection=admin)
        [handle] = await start_orders(client, [f"r-{Durable.guid(8)}"])
        await wait_for(lambda: asleep(handle), "the order to charge and fall asleep")
        await skip_the_hour(scram_server)
        assert (await handle.result(timeout=DEADLINE)).startswith("receipt-r-")

        # Rotating to a given password with quotes and unicode sets exactly that password.
        hostile = "\"; DROP ROLE postgres; --'ä€"
        rotated = await Durable.rotate_worker_password(connection=admin, role_name=cred.role_name,
                                                       new_password=hostile)
        assert rotated == {"password": hostile}
        assert await login(scram_server, cred.role_name, hostile) == cred.role_name
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            await login(scram_server, cred.role_name, new_password)
    finally:
        await Durable.shutdown(grace=1)
