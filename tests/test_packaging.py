"""The wheel carries the engine SQL and the migrations, and finds them when installed."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SQL_DIR = REPO_ROOT / "sql"
MIGRATIONS_DIR = REPO_ROOT / "migrations"


def _manifest_entries() -> list[str]:
    entries = []
    for raw in (SQL_DIR / "manifest.txt").read_text(encoding="utf-8").splitlines():
        name = raw.split("#", 1)[0].strip()
        if name:
            entries.append(name)
    return entries


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (REPO_ROOT / "pyproject.toml").is_file():
        pytest.skip("not a source checkout")
    outdir = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--wheel", "--outdir", str(outdir)]
    # Reuse the installed backend when there is one: no download, much faster.
    if importlib.util.find_spec("hatchling") is not None:
        command.append("--no-isolation")
    result = subprocess.run(
        [*command, str(REPO_ROOT)], capture_output=True, text=True, check=False, timeout=300
    )
    assert result.returncode == 0, f"wheel build failed:\n{result.stdout}\n{result.stderr}"
    wheels = list(outdir.glob("pgdurable-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_wheel_carries_the_manifest_and_every_engine_file(wheel_names):
    assert "pgdurable/_sql/manifest.txt" in wheel_names
    entries = _manifest_entries()
    assert entries, "sql/manifest.txt lists no files"
    for name in entries:
        assert f"pgdurable/_sql/{name}" in wheel_names
    for path in SQL_DIR.glob("*.sql"):
        assert f"pgdurable/_sql/{path.name}" in wheel_names


def test_wheel_carries_the_migrations(wheel_names):
    assert "pgdurable/_migrations/env.py" in wheel_names
    assert "pgdurable/_migrations/script.py.mako" in wheel_names
    assert "pgdurable/_migrations/versions/0001_initial.py" in wheel_names
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        assert f"pgdurable/_migrations/versions/{path.name}" in wheel_names
    for path in (MIGRATIONS_DIR / "sql").glob("*.sql"):
        assert f"pgdurable/_migrations/sql/{path.name}" in wheel_names
    assert "pgdurable/_migrations/sql/0001_initial.up.sql" in wheel_names
    assert "pgdurable/_migrations/sql/0001_initial.down.sql" in wheel_names


def test_wheel_has_the_package_and_the_cli_but_no_bytecode(wheel_names):
    assert "pgdurable/_resources.py" in wheel_names
    assert "pgdurable/cli/__init__.py" in wheel_names
    assert not [name for name in wheel_names if "__pycache__" in name or name.endswith(".pyc")]
    entry_points = [name for name in wheel_names if name.endswith(".dist-info/entry_points.txt")]
    assert entry_points, "no entry_points.txt"


def test_wheel_carries_the_dashboards_templates_and_stylesheet(wheel_names):
    package = REPO_ROOT / "python" / "pgdurable" / "ui"
    files = [p for p in (package / "templates").glob("*.html")] + [package / "static" / "dashboard.css"]
    assert len(files) > 5
    for path in files:
        assert f"pgdurable/ui/{path.relative_to(package).as_posix()}" in wheel_names


def test_installed_wheel_finds_its_own_sql_and_migrations(wheel, tmp_path):
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    probe = (
        "import json\n"
        "from pgdurable import _resources\n"
        "from pgdurable._migrate import head\n"
        "print(json.dumps({'sql': str(_resources.sql_dir()),\n"
        "                  'migrations': str(_resources.migrations_dir()),\n"
        "                  'engine_sql': len(_resources.engine_sql()),\n"
        "                  'head': head()}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PGDURABLE_SQL_DIR"}
    env["PYTHONPATH"] = str(unpacked)
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["sql"] == str(unpacked / "pgdurable" / "_sql")
    assert found["migrations"] == str(unpacked / "pgdurable" / "_migrations")
    assert found["engine_sql"] > 0
    assert found["head"] == "0001_initial"
