"""Initial engine: the whole of sql/ as of the first release.

Revision ID: 0001_initial
Revises:
Create Date: 2025-11-25

Applies migrations/sql/0001_initial.up.sql, generated from sql/ by
scripts/freeze_sql.py (frozen at the first release: migrations/README); the
downgrade applies 0001_initial.down.sql, which drops the `durable` schema
(cluster-wide worker roles are left to the DBA: `durable.revoke_worker_role` /
DROP ROLE).
"""

from __future__ import annotations

from pathlib import Path

from pgdurable._migrate import execute_sql_file

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"


def upgrade() -> None:
    execute_sql_file(SQL_DIR / f"{revision}.up.sql")


def downgrade() -> None:
    execute_sql_file(SQL_DIR / f"{revision}.down.sql")
