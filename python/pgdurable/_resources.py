"""Locate the engine SQL and the alembic migrations shipped with pgdurable.

An installed wheel carries them inside the package (``pgdurable/_sql`` and
``pgdurable/_migrations``, mapped there by the build); an editable install or a
source checkout reads the repository's top-level ``sql/`` and ``migrations/``.
``PGDURABLE_SQL_DIR`` overrides the SQL directory (scratch engines, tests).
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_REPO_ROOT = _PACKAGE_DIR.parents[1]  # python/pgdurable -> repo root

MANIFEST = "manifest.txt"


def sql_dir() -> Path:
    """The directory holding the engine SQL files and their ``manifest.txt``."""
    override = os.environ.get("PGDURABLE_SQL_DIR")
    if override:
        return Path(override).resolve()
    packaged = _PACKAGE_DIR / "_sql"
    if packaged.is_dir():
        return packaged
    return _REPO_ROOT / "sql"


def migrations_dir() -> Path:
    """The alembic script directory (``env.py``, ``versions/``, frozen ``sql/`` deltas)."""
    packaged = _PACKAGE_DIR / "_migrations"
    if packaged.is_dir():
        return packaged
    return _REPO_ROOT / "migrations"


def manifest_files(directory: Path | None = None) -> list[Path]:
    """The engine files named by ``manifest.txt``, in load order.

    One file name per line; ``#`` starts a comment; blank lines are ignored.
    """
    directory = sql_dir() if directory is None else directory
    manifest = directory / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"engine manifest not found: {manifest}")
    files: list[Path] = []
    for lineno, raw in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        name = raw.split("#", 1)[0].strip()
        if not name:
            continue
        path = directory / name
        if not path.is_file():
            raise FileNotFoundError(f"{manifest}:{lineno}: listed file not found: {path}")
        files.append(path)
    return files


def engine_sql(directory: Path | None = None) -> str:
    """The whole engine as one SQL text: the manifest's files concatenated in order."""
    parts: list[str] = []
    for path in manifest_files(directory):
        text = path.read_text(encoding="utf-8")
        if not text.endswith("\n"):
            text += "\n"
        parts.append(f"-- >>> {path.name}\n{text}")
    return "\n".join(parts)
