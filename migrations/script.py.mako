"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Applies the frozen SQL delta migrations/sql/${up_revision}.up.sql; the
downgrade applies migrations/sql/${up_revision}.down.sql. Write both files by
hand (the delta from the previous release's sql/ to this one), never edit them
after release.
"""

from __future__ import annotations

from pathlib import Path

from pgdurable._migrate import execute_sql_file

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"


def upgrade() -> None:
    execute_sql_file(SQL_DIR / f"{revision}.up.sql")


def downgrade() -> None:
    execute_sql_file(SQL_DIR / f"{revision}.down.sql")
