"""Issue 11, finding 13: a "password" that is already an md5 or SCRAM hash is stored by Postgres
as that hash, verbatim: whoever has the hash (a leaked dump of pg_authid, an old backup) can
log in as the role, and the DBA believes a password was set. Provision and rotate refuse such
values (PD004, "pre-hashed"). And ``rotate_worker_password(..., p_end_sessions => true)`` ends
the role's live sessions, so a session holding the old password cannot set it back."""

from __future__ import annotations

import psycopg
import pytest

from pgdurable import Durable, errors
from support.attack import Owner, refused
from support.polling import wait_until

pytestmark = pytest.mark.sql

MD5_HASH = "md5" + "0123456789abcdef" * 2


def _verifier(owner: Owner, role: str) -> str:
    return str(owner.value("SELECT rolpassword FROM pg_authid WHERE rolname = %s", [role]))


@pytest.fixture
def scram_verifier(owner: Owner) -> str:
    """A real SCRAM-SHA-256 verifier (of another role), the kind Postgres would store verbatim."""
    donor = owner.provision(["donor"])
    verifier = _verifier(owner, donor.name)
    assert verifier.startswith("SCRAM-SHA-256$")
    return verifier


def test_provisioning_with_a_pre_hashed_password_is_refused(owner, scram_verifier):
    for hashed in (MD5_HASH, scram_verifier):
        with refused("PD004") as refusal:
            owner.provision(["orders"], password=hashed)
        assert "pre-hashed" in refusal.message
        assert hashed not in refusal.message  # and the error does not echo the secret
    assert owner.rows("SELECT role_name FROM durable.list_worker_roles() "
                      "WHERE stream_names = ARRAY['orders']") == []


def test_re_provisioning_an_existing_role_with_a_pre_hashed_password_leaves_its_password(owner):
    role = owner.provision(["orders"])
    before = _verifier(owner, role.name)
    with refused("PD004"):
        owner.provision(["orders"], password=MD5_HASH)
    assert _verifier(owner, role.name) == before


def test_rotating_to_a_pre_hashed_password_is_refused_and_changes_nothing(owner, scram_verifier):
    role = owner.provision(["orders"])
    before = _verifier(owner, role.name)
    for hashed in (MD5_HASH, scram_verifier):
        with refused("PD004") as refusal:
            owner.value("SELECT durable.rotate_worker_password(%s, %s)", [role.name, hashed])
        assert "pre-hashed" in refusal.message
    assert _verifier(owner, role.name) == before


def test_passwords_that_merely_look_like_hashes_are_still_fine(owner):
    for i, password in enumerate(("md5 is not a hash here", "SCRAM-SHA-256 but plain text")):
        role = owner.provision([f"ok-{i}"], password=password)
        assert role.password == password


async def test_the_sdk_raises_invalid_argument_for_a_pre_hashed_password(dsn):
    connection = Durable.Connection(dsn)
    try:
        with pytest.raises(errors.InvalidArgumentError, match="pre-hashed"):
            await Durable.provision_worker_role(connection=connection, stream_names=["orders"],
                                                password=MD5_HASH)
    finally:
        await connection.close()


def test_rotating_with_end_sessions_ends_the_roles_live_sessions(owner):
    role = owner.provision(["orders"])
    live = [role.login(), role.login()]
    try:
        new_password = owner.value("SELECT durable.rotate_worker_password(%s, p_end_sessions => true)",
                                   [role.name])
        wait_until(lambda: owner.sessions_of(role.name) == 0, "the role's live sessions to end")
        for session in live:
            with pytest.raises(psycopg.OperationalError):
                session.execute("ALTER ROLE CURRENT_USER PASSWORD %s", [role.password])
        role.password = new_password
        role.login().close()  # the new password works
    finally:
        for session in live:
            session.close()


def test_rotating_without_end_sessions_keeps_them_as_documented(owner):
    role = owner.provision(["orders"])
    with role.login() as live:
        owner.value("SELECT durable.rotate_worker_password(%s)", [role.name])
        assert live.execute("SELECT 1").fetchone() == (1,)
