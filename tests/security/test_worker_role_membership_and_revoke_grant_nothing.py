"""Issue 11, finding 11: the engine trusted every caller that was not itself a provisioned worker
role. A role GRANTed a worker role's membership (it inherits its EXECUTE grants) and logged in
as itself was such a caller: it consumed every stream of every namespace. Now a worker function
accepts only a live provisioned worker role as session_user, or a member of the engine owner.
And revoking a worker role leaves it no EXECUTE, no USAGE on schema durable, no CONNECT."""

from __future__ import annotations

import secrets

import pytest
from psycopg import sql

from support.attack import Owner, WorkerRole, claim_workflow_task, refused

pytestmark = pytest.mark.sql

CLAIM = ("SELECT message_id FROM durable.claim_workflow_tasks_v1(%s, %s, "
         "ARRAY['payment_workflow', 'order_workflow'])")
CLAIM_FN = "durable.claim_workflow_tasks_v1(text, text[], text[], integer, interval, text)"


@pytest.fixture
def member(owner: Owner) -> tuple[WorkerRole, WorkerRole]:
    """A worker role of ``orders``, and a plain login role GRANTed its membership."""
    worker = owner.provision(["orders", "orders-activity"])
    member = WorkerRole(f"sec_member_{secrets.token_hex(4)}", secrets.token_hex(16), owner.dsn)
    owner.rows(sql.SQL("CREATE ROLE {} LOGIN INHERIT PASSWORD {}").format(
        sql.Identifier(member.name), sql.Literal(member.password)))
    owner.rows(sql.SQL("GRANT {} TO {}").format(sql.Identifier(worker.name), sql.Identifier(member.name)))
    return worker, member


def test_a_member_of_a_worker_role_logged_in_as_itself_is_refused_by_every_worker_function(owner, member):
    worker, member_role = member
    owner.start("p-1", task_queue="payments", workflow_name="payment_workflow")
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")
    with member_role.login() as session:
        inherited = session.execute("SELECT has_function_privilege(%s, 'EXECUTE')", [CLAIM_FN]).fetchone()
        assert inherited == (True,)  # the membership does pass EXECUTE on
        for namespace, queues in (("durable", ["payments"]), ("durable", ["orders"]), ("billing", ["x"])):
            with refused("PD005"):
                session.execute(CLAIM, [namespace, queues])
        with refused("PD005"):
            session.execute("SELECT durable.next_wakeup_v1('durable', ARRAY['orders'], ARRAY['x'])")
    # Nothing was leased to it.
    assert owner.value("SELECT count(*) FROM durable.messages WHERE lease_token IS NOT NULL") == 0


def test_a_member_that_sets_role_to_the_worker_role_is_still_refused(owner, member):
    worker, member_role = member
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")
    with member_role.login() as session:
        session.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(worker.name)))
        assert session.execute("SELECT current_user::text").fetchone() == (worker.name,)
        with refused("PD005"):
            session.execute(CLAIM, ["durable", ["orders"]])
    # The worker role itself (a real login) may.
    with worker.login() as session:
        assert claim_workflow_task(session, "orders", "order_workflow").workflow_id == "o-1"


def _grants_left(owner: Owner, role: str) -> list[tuple[str, str]]:
    return owner.rows(
        """SELECT 'function ' || p.oid::regprocedure::text, a.privilege_type
           FROM pg_proc p, aclexplode(p.proacl) a
           WHERE p.pronamespace = 'durable'::regnamespace AND a.grantee = %(role)s::regrole
           UNION ALL
           SELECT 'schema ' || n.nspname, a.privilege_type FROM pg_namespace n, aclexplode(n.nspacl) a
           WHERE a.grantee = %(role)s::regrole
           UNION ALL
           SELECT 'database ' || d.datname, a.privilege_type FROM pg_database d, aclexplode(d.datacl) a
           WHERE d.datname = current_database() AND a.grantee = %(role)s::regrole
           UNION ALL
           SELECT 'table ' || c.oid::regclass::text, a.privilege_type FROM pg_class c, aclexplode(c.relacl) a
           WHERE c.relnamespace = 'durable'::regnamespace AND a.grantee = %(role)s::regrole
           ORDER BY 1, 2""", {"role": role})


def test_a_revoked_role_keeps_no_grant_at_all(owner):
    role = owner.provision(["orders", "orders-activity"])
    assert ("schema durable", "USAGE") in _grants_left(owner, role.name)  # the check sees grants

    owner.value("SELECT durable.revoke_worker_role(%s)", [role.name])

    assert _grants_left(owner, role.name) == []
    assert owner.value("SELECT has_schema_privilege(%s, 'durable', 'USAGE')", [role.name]) is False
    assert owner.value("SELECT bool_or(has_function_privilege(%s, p.oid, 'EXECUTE')) FROM pg_proc p "
                       "WHERE p.pronamespace = 'durable'::regnamespace", [role.name]) is False
    # With nothing granted, the DBA can drop the role without DROP OWNED first.
    owner.rows(sql.SQL("DROP ROLE {}").format(sql.Identifier(role.name)))


def test_revoking_a_role_a_member_inherited_from_cuts_the_member_off_too(owner, member):
    worker, member_role = member
    owner.value("SELECT durable.revoke_worker_role(%s)", [worker.name])
    with member_role.login() as session, refused("42501"):
        session.execute(CLAIM, ["durable", ["orders"]])
