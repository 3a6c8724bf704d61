"""Bring a database's ``durable`` schema to a revision, with alembic.

Each alembic revision applies its own frozen SQL delta (``migrations/sql/``);
this module only drives alembic from Python with a configuration built in
code, so an installed wheel needs no ``alembic.ini``. The same migrations run
from the repository root with ``alembic upgrade head``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from pgdurable._dsn import resolve_dsn
from pgdurable._resources import migrations_dir

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = [
    "VERSION_TABLE",
    "VERSION_TABLE_SCHEMA",
    "current",
    "downgrade",
    "execute_sql_file",
    "head",
    "make_engine",
    "migrate",
]

logger = logging.getLogger("pgdurable._migrate")

VERSION_TABLE = "pgdurable_alembic_version"
VERSION_TABLE_SCHEMA = "public"
# Serialises concurrent migrations of one database (taken inside the
# migration transaction, released at its end).
ADVISORY_LOCK_KEY = 0x7064_6475_7261_626C  # "pgdurabl"


def make_engine(dsn: str) -> Engine:
    """A SQLAlchemy engine over psycopg that accepts any libpq DSN (URL or key=value)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(dsn),
        poolclass=NullPool,
    )


def alembic_config(dsn: str | None = None) -> Config:
    """The alembic configuration for pgdurable's migrations, built in code.

    The DSN travels in ``config.attributes`` (never in the ini options, where
    ``%`` in a password would be taken for interpolation).
    """
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if dsn is not None:
        config.attributes["dsn"] = dsn
    return config


def migrate(dsn: str | None = None, revision: str = "head") -> None:
    """Upgrade the database at ``dsn`` to ``revision`` (default: the latest)."""
    dsn = resolve_dsn(dsn)
    logger.info("upgrading durable schema to %s", revision)
    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str | None = None, revision: str = "base") -> None:
    """Downgrade the database at ``dsn`` to ``revision``; ``base`` drops the engine entirely."""
    dsn = resolve_dsn(dsn)
    logger.info("downgrading durable schema to %s", revision)
    command.downgrade(alembic_config(dsn), revision)


def current(dsn: str | None = None) -> str | None:
    """The revision the database is at, or None when pgdurable was never migrated there."""
    dsn = resolve_dsn(dsn)
    engine = make_engine(dsn)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={"version_table": VERSION_TABLE, "version_table_schema": VERSION_TABLE_SCHEMA},
            )
            return context.get_current_revision()
    finally:
        engine.dispose()


def head() -> str | None:
    """The newest revision shipped with this version of pgdurable."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def execute_sql_file(path: Path) -> None:
    """Run a frozen SQL file from inside an alembic revision, as one statement batch.

    The text goes to psycopg unparsed (no bind-parameter processing, so ``%``
    and ``:name`` in PL/pgSQL bodies are safe), inside alembic's transaction.
    In offline mode (``alembic upgrade --sql``) the text is written out as is.
    """
    from alembic import context, op

    sql = Path(path).read_text(encoding="utf-8")
    if context.is_offline_mode():
        context.get_context().impl.static_output(sql)
        return
    driver_connection = op.get_bind().connection.driver_connection
    driver_connection.execute(sql)
