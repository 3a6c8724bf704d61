"""Issue 11, finding 3: where schema ``public`` is writable (databases from before Postgres 15, or
a DBA's ``GRANT CREATE ON SCHEMA public``), a worker role plants
``public.hashtextextended(text, integer)``: an exact match for the engine's unqualified
``hashtextextended(..., 0)``, so it beats ``pg_catalog``'s ``(text, bigint)`` in any function
that does not pin its search_path. The engine owner (often a superuser) starting a workflow or
sending a signal must never run it. And every function of schema durable pins
``search_path = pg_catalog, pg_temp``."""

from __future__ import annotations

import pytest
from psycopg import sql

from pgdurable import Durable
from support.attack import Owner, WorkerRole

pytestmark = pytest.mark.sql

PLANT = """
CREATE TABLE public.planted_calls (who text NOT NULL, at timestamptz NOT NULL DEFAULT now());
GRANT INSERT ON public.planted_calls TO PUBLIC;
CREATE FUNCTION public.hashtextextended(text, integer) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    -- A real attack would ALTER ROLE <itself> SUPERUSER here; recording who ran it is proof enough.
    INSERT INTO public.planted_calls (who) VALUES (current_user);
    RETURN pg_catalog.hashtextextended($1, $2::bigint);
END $$;
"""


@pytest.fixture
def planted(owner: Owner) -> WorkerRole:
    role = owner.provision(["orders", "orders-activity"])
    owner.rows(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(role.name)))
    with role.login() as session:
        session.execute(PLANT)
    return role


def _planted_calls(owner: Owner) -> list[str]:
    return [row[0] for row in owner.rows("SELECT who FROM public.planted_calls ORDER BY at")]


def _owner_path(owner: Owner) -> str:
    return str(owner.value("SHOW search_path"))


def test_the_owner_starting_workflows_and_sending_signals_in_sql_never_runs_the_planted_function(
        owner, planted):
    assert "public" in _owner_path(owner)  # the owner's default search_path reaches the plant
    with owner.connect() as conn:
        start = "SELECT * FROM durable.start_workflow_v1('durable', 'o-1', 'order_workflow', 'orders', '[]'"
        conn.execute(start + ")")
        conn.execute(start + ", NULL, 'return_existing')")
        conn.execute("SELECT durable.send_signal_v1('durable', 'approve-o-1', '\"yes\"')")
        conn.execute("SELECT durable.send_signal_v1('billing', 'approve-o-1', '\"yes\"')")
        conn.execute("SELECT * FROM durable.provision_worker_role(ARRAY['invoices'], 'billing')")
        conn.execute("SELECT durable.cancel_workflow_v1('durable', 'o-1')")
        conn.execute("SELECT durable.interrupt_workflow_v1('durable', 'o-1')")

    assert _planted_calls(owner) == []

    # The plant works (the test can fail): the owner's own unqualified call runs it.
    owner.value("SELECT hashtextextended('anything', 0)")
    assert _planted_calls(owner) == [owner.value("SELECT current_user::text")]


async def test_the_owner_starting_and_signalling_through_the_sdk_never_runs_the_planted_function(
        owner, planted, dsn):
    connection = Durable.Connection(dsn)
    try:
        client = Durable.Client(connection=connection)
        handle = await client.workflow.start(args=["o-2"], task_queue="orders",
                                             workflow_name="order_workflow", workflow_id="o-2")
        await client.workflow.signal("approve-o-2", {"by": "finance"})
        await handle.signal("approve-o-2-again", True)
        await handle.cancel()
    finally:
        await connection.close()
    assert _planted_calls(owner) == []


def test_every_function_in_schema_durable_pins_search_path_to_pg_catalog_and_pg_temp(owner):
    unpinned = owner.rows(
        "SELECT p.oid::regprocedure::text, p.proconfig FROM pg_proc p "
        "WHERE p.pronamespace = 'durable'::regnamespace "
        "  AND NOT ('search_path=pg_catalog, pg_temp' = ANY (coalesce(p.proconfig, '{}'))) ORDER BY 1")
    assert unpinned == []
    assert int(owner.value("SELECT count(*) FROM pg_proc WHERE pronamespace = 'durable'::regnamespace")) > 50
