#!/usr/bin/env python3
"""Generate the initial migration's SQL file from the engine in sql/.

Until the first release, run it after every change to sql/:

    python scripts/freeze_sql.py            # writes migrations/sql/0001_initial.up.sql
    python scripts/freeze_sql.py --check    # exit 1 if that file differs from sql/

At the first release 0001 is frozen and later revisions hold hand-written
deltas (migrations/README); tests/test_migrations.py proves that sql/ and the
migrations still build identical schemas.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

from pgdurable._resources import engine_sql  # noqa: E402

HEADER = (
    "-- Generated from sql/ (manifest order) by scripts/freeze_sql.py: edit sql/,\n"
    "-- then regenerate with `python scripts/freeze_sql.py` (see migrations/README).\n\n"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "migrations" / "sql" / "0001_initial.up.sql",
        help="file to write (default: %(default)s)",
    )
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args()

    frozen = HEADER + engine_sql()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else None
        if current != frozen:
            print(f"{args.out} differs from sql/: run scripts/freeze_sql.py", file=sys.stderr)
            return 1
        print(f"{args.out} matches sql/")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(frozen, encoding="utf-8")
    print(f"wrote {args.out} ({len(frozen.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
