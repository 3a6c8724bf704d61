#!/usr/bin/env bash
# Run the pgTAP suite (pgtap/*.sql) with pg_prove on Debian Postgres 15.
#
#   pgtap/run.sh                 all files
#   pgtap/run.sh pgtap/queue.sql one file
#
# Starts a throwaway cluster (scripts/pg15-cluster.sh) unless PGTAP_DSN names
# a superuser DSN of a server to use (scripts/test passes its own cluster).
# The engine (sql/, manifest order) is loaded with pgtap and dblink into a
# template database; every test file then runs in its own clone of it
# (pgtap/psql-fresh-db), all under one pg_prove run and one summary.
# Environment: PGTAP_JOBS (parallel files, default 2), PG15_BIN, PSQL, PYTHON.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
PG_BIN=${PG15_BIN:-/usr/lib/postgresql/15/bin}
PYTHON=${PYTHON:-python3}
# psql: Postgres 15's own, else whatever psql is on PATH (e.g. with PGTAP_DSN
# pointing at the docker/ container).
if [ -z "${PSQL:-}" ]; then
    if [ -x "$PG_BIN/psql" ]; then PSQL=$PG_BIN/psql; else PSQL=$(command -v psql || true); fi
fi
[ -n "$PSQL" ] || { echo "psql not found" >&2; exit 1; }
export PYTHON
TEMPLATE=pgdurable_pgtap_template

command -v pg_prove >/dev/null || {
    echo "pg_prove not found: apt-get install postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl" >&2
    exit 1
}

if [ -n "${PGTAP_DSN:-}" ]; then
    admin=$PGTAP_DSN
else
    cluster=$(mktemp -d "${TMPDIR:-/tmp}/pgdurable-pgtap.XXXXXX")
    trap 'bash "$repo/scripts/pg15-cluster.sh" stop "$cluster" >/dev/null 2>&1 || true' EXIT
    admin=$(bash "$repo/scripts/pg15-cluster.sh" start "$cluster")
fi

psql_admin() { PGOPTIONS="-c client_min_messages=warning" "$PSQL" "$admin" -X -q -v ON_ERROR_STOP=1 "$@"; }
dsn_for() {
    "$PYTHON" -c 'import sys; from psycopg.conninfo import make_conninfo; print(make_conninfo(sys.argv[1], dbname=sys.argv[2]))' "$admin" "$1"
}

psql_admin -c "DROP DATABASE IF EXISTS $TEMPLATE WITH (FORCE)" -c "CREATE DATABASE $TEMPLATE"
trap_drop_template() { psql_admin -c "DROP DATABASE IF EXISTS $TEMPLATE WITH (FORCE)" >/dev/null 2>&1 || true; }
if [ -n "${PGTAP_DSN:-}" ]; then trap trap_drop_template EXIT; fi

template_dsn=$(dsn_for "$TEMPLATE")
"$PSQL" "$template_dsn" -X -q -v ON_ERROR_STOP=1 \
    -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION dblink" >/dev/null
"$PYTHON" -c 'from pgdurable._resources import engine_sql; print(engine_sql())' \
    | "$PSQL" "$template_dsn" -X -q -v ON_ERROR_STOP=1 --single-transaction -f - >/dev/null

if [ $# -gt 0 ]; then files=("$@"); else files=("$here"/*.sql); fi

export PGTAP_ADMIN_DSN=$admin PGTAP_TEMPLATE=$TEMPLATE PGTAP_PSQL=$PSQL
pg_prove --psql-bin "$here/psql-fresh-db" --dbname "$template_dsn" \
    --jobs "${PGTAP_JOBS:-2}" --failures "${files[@]}"
