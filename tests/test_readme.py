"""Every code block of README.md runs, in document order, against one fresh database.

Convention (for whoever edits the README):

- A fence opens with its language: ```python, ```sh (or ```bash) and ```sql
  blocks are executed; blocks of any other language (```text, ...) are not code.
- ```python blocks run with ``exec`` in a fresh namespace that holds ``DSN``,
  the DSN of an empty database (no engine: the README's own
  ``Durable.migrate(DSN)`` installs it). Each block stands alone: its own imports.
- ```sh blocks run with ``bash -euo pipefail`` from the repository root, with
  ``$DSN`` in the environment and this interpreter's scripts (``pgdurable``,
  ``alembic``) on ``PATH``; they must exit 0.
- ```sql blocks run against ``DSN`` (psycopg, autocommit).
- A block right after a ``<!-- not-tested -->`` line is skipped: install and
  test commands, commands that serve forever. Keep those few.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
NOT_TESTED = "<!-- not-tested -->"
EXECUTED = {"python", "sh", "bash", "sql"}

_FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*\n(?P<body>.*?)^```\s*$", re.M | re.S)


@dataclass
class Block:
    lang: str
    body: str
    line: int
    tested: bool


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").splitlines()
        marked = bool(before) and before[-1].strip().startswith(NOT_TESTED[:-4])
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(match.group("lang"), match.group("body"), line, not marked))
    return blocks


def test_the_quick_start_commands_are_there_and_marked_not_tested():
    untested = [b.body.strip() for b in readme_blocks() if not b.tested]
    assert "pip install -e . && pgdurable demo" in untested
    assert "bash scripts/test" in untested


def test_every_block_is_executed_or_marked_or_not_code():
    blocks = readme_blocks()
    assert blocks, "no code blocks found in README.md"
    for block in blocks:
        assert block.lang, f"README.md:{block.line}: give the fence a language"
        if block.lang in ("console", "shell", "py", "python3", "psql"):
            raise AssertionError(f"README.md:{block.line}: use python, sh or sql so the block runs")
    assert sum(b.tested and b.lang == "python" for b in blocks) >= 2


def test_every_tested_block_of_the_readme_runs(empty_dsn, capsys, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("PGDURABLE_DSN", empty_dsn)  # what a reader exports before running a block
    env = {k: v for k, v in os.environ.items() if k not in ("PGDURABLE_DSN", "DATABASE_URL")}
    env["DSN"] = empty_dsn
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    ran = 0
    for block in readme_blocks():
        if not block.tested or block.lang not in EXECUTED:
            continue
        where = f"README.md:{block.line}"
        if block.lang == "python":
            namespace = {"DSN": empty_dsn, "__name__": "__readme__"}
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                # dont_inherit: a block runs as the script a reader saves, without this file's
                # `from __future__ import annotations` (a dataclass there needs real annotations).
                exec(compile(block.body, where, "exec", dont_inherit=True), namespace)  # noqa: S102 - ours
        elif block.lang in ("sh", "bash"):
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.body], cwd=REPO_ROOT, env=env,
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, f"{where} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        else:
            with psycopg.connect(empty_dsn, autocommit=True) as conn:
                conn.execute(block.body.encode())
        ran += 1
    assert ran >= 5


def test_the_tour_runs_as_printed_and_prints_the_history_it_promises(empty_dsn, tmp_path):
    # Exactly as a reader would: saved to a file, run by python, with only $PGDURABLE_DSN set.
    tour = next(b for b in readme_blocks() if b.lang == "python" and "order_workflow" in b.body)
    (tmp_path / "tour.py").write_text(tour.body, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PGDURABLE_DSN", "DATABASE_URL", "DSN")}
    env["PGDURABLE_DSN"] = empty_dsn
    proc = subprocess.run([sys.executable, "tour.py"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    printed = proc.stdout
    assert "order-123 paid: receipt-order-123" in printed
    for event in ("workflow_started", "activity_scheduled", "timer_started", "timer_fired",
                  "workflow_completed"):
        assert event in printed


def test_every_test_the_threat_model_names_exists_in_the_security_suite() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index("### What a scoped worker can and cannot do")
    section = text[start:text.index("### Hardening checklist")]
    named = set(re.findall(r"`(test_\w+)`", section))
    defined: set[str] = set()
    for path in (REPO_ROOT / "tests" / "security").glob("test_*.py"):
        defined |= set(re.findall(r"^(?:async )?def (test_\w+)", path.read_text(encoding="utf-8"), re.M))
    assert len(named) >= 30, "the threat model names the tests behind its claims"
    assert sorted(named - defined) == []
