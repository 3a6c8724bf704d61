"""Alembic environment for pgdurable.

The DSN comes from ``pgdurable._migrate`` (``config.attributes["dsn"]``), or
``alembic -x dsn=...``, or ``PGDURABLE_DSN``, or ``DATABASE_URL``. Revisions
apply frozen SQL files; there is no SQLAlchemy metadata (no autogenerate).
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, text

from pgdurable._dsn import resolve_dsn
from pgdurable._migrate import (
    ADVISORY_LOCK_KEY,
    VERSION_TABLE,
    VERSION_TABLE_SCHEMA,
    make_engine,
)

config = context.config

# Only the alembic command line configures logging; the SDK leaves it alone.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

COMMON_OPTIONS = {
    "version_table": VERSION_TABLE,
    "version_table_schema": VERSION_TABLE_SCHEMA,
    "transactional_ddl": True,
    "transaction_per_migration": False,
}


def _dsn() -> str:
    return resolve_dsn(
        config.attributes.get("dsn") or context.get_x_argument(as_dictionary=True).get("dsn")
    )


def _lock_out_concurrent_runs(connection: Connection) -> None:
    """Serialises migrations of one database. Once the engine exists, a row lock on
    durable.secret does it (worker roles cannot touch that table); the advisory key, which
    anyone may take, only guards the very first install."""
    installed = connection.execute(text("SELECT to_regclass('durable.secret') IS NOT NULL")).scalar()
    if installed:
        connection.execute(text("SELECT 1 FROM durable.secret FOR UPDATE"))
    else:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})


def _reassert_grants(connection: Connection) -> None:
    """Ends every migration run: PUBLIC loses EXECUTE on functions a revision added, and worker
    roles hold EXECUTE on exactly the worker functions of the new version (sql/grants.sql)."""
    exists = connection.execute(
        text("SELECT to_regprocedure('durable._reassert_grants()') IS NOT NULL")
    ).scalar()
    if exists:  # not after a downgrade to base
        connection.execute(text("SELECT durable._reassert_grants()"))


def run_migrations_offline() -> None:
    """Write the migration SQL to stdout (``alembic upgrade head --sql``)."""
    context.configure(dialect_name="postgresql", literal_binds=True, **COMMON_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations in one transaction, holding an advisory lock against concurrent runs."""
    engine = make_engine(_dsn())
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, **COMMON_OPTIONS)
            with context.begin_transaction():
                _lock_out_concurrent_runs(connection)
                context.run_migrations()
                _reassert_grants(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
