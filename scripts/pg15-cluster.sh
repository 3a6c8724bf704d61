#!/usr/bin/env bash
# A throwaway Debian Postgres 15 cluster for the SQL-level tests and pgTAP.
#
#   scripts/pg15-cluster.sh start DIR   initdb DIR/data, start it, print its DSN
#   scripts/pg15-cluster.sh dsn DIR     print the DSN of the cluster in DIR
#   scripts/pg15-cluster.sh stop DIR    stop it and remove DIR
#
# Listens on 127.0.0.1, socket in DIR. pg_hba.conf trusts the Unix socket and
# the superuser "postgres" on TCP; every other role must give its password on
# TCP (scram-sha-256), so tests that log in as a worker role really check it.
# As root the server runs as the system user "postgres" (Debian's server
# refuses root). Environment:
#   PG15_BIN         server binaries   (default /usr/lib/postgresql/15/bin)
#   PG15_PORT        port to use       (default: first free in PG15_PORT_RANGE)
#   PG15_PORT_RANGE  ports to scan     (default 55400-55499)
set -euo pipefail

PG_BIN=${PG15_BIN:-/usr/lib/postgresql/15/bin}
MARKER=.pgdurable-pg15-cluster

usage() { echo "usage: $0 start|dsn|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    local range=${PG15_PORT_RANGE:-55400-55499}
    "${PYTHON:-python3}" - "${range%-*}" "${range#*-}" <<'PY'
import socket, sys
lo, hi = int(sys.argv[1]), int(sys.argv[2])
for port in range(lo, hi + 1):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(port)
        sys.exit(0)
sys.exit("no free port in %d-%d" % (lo, hi))
PY
}

dsn() { echo "postgresql://postgres@127.0.0.1:$(cat "$dir/port")/postgres"; }

case $cmd in
start)
    [ -x "$PG_BIN/initdb" ] || { echo "no Postgres 15 server in $PG_BIN (apt-get install postgresql-15)" >&2; exit 1; }
    touch "$dir/$MARKER"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; chmod 700 "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$PG_BIN/initdb" -D "$dir/data" --auth=trust -U postgres --encoding=UTF8 \
            --locale=C --no-instructions >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; exit 1; }
        printf '%s\n' \
            '# TYPE  DATABASE  USER      ADDRESS       METHOD' \
            'local   all       all                     trust' \
            'host    all       postgres  127.0.0.1/32  trust' \
            'host    all       postgres  ::1/128       trust' \
            'host    all       all       127.0.0.1/32  scram-sha-256' \
            'host    all       all       ::1/128       scram-sha-256' \
            | as_owner tee "$dir/data/pg_hba.conf" >/dev/null
    fi
    port=${PG15_PORT:-$(free_port)}
    echo "$port" >"$dir/port"
    if ! as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" \
        start >/dev/null; then
        cat "$dir/server.log" >&2
        exit 1
    fi
    dsn
    ;;
dsn)
    dsn
    ;;
stop)
    if [ ! -e "$dir/$MARKER" ]; then
        echo "$dir was not made by $0; not touching it" >&2
        exit 1
    fi
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
*)
    usage
    ;;
esac
