"""B0 calibration: what this server on this machine can do right now, without pgdurable.

- ``pgbench -N`` (simple update, no branch/teller contention) TPS with 8 clients,
  in its own database (``pgbench -i -s 1``), with the server's own pgbench;
- single-client commit latency (one-row INSERTs in autocommit) p50;
- a NOTIFY round trip p50 (one connection LISTENs, another NOTIFYs).

Every later throughput is also printed as a ratio to the pgbench TPS, every
latency as a multiple of the commit latency.
"""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .common import BenchServer, percentile


def _pg_env(dsn: str) -> tuple[list[str], dict[str, str]]:
    """pgbench connection options for a DSN (host/port/user flags, password in the environment)."""
    import os

    params = conninfo_to_dict(dsn)
    args: list[str] = []
    env = dict(os.environ)
    if params.get("host"):
        args += ["-h", str(params["host"])]
    if params.get("port"):
        args += ["-p", str(params["port"])]
    if params.get("user"):
        args += ["-U", str(params["user"])]
    if params.get("password"):
        env["PGPASSWORD"] = str(params["password"])
    for key, var in (("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT")):
        if params.get(key):
            env[var] = str(params[key])
    return args, env


def pgbench_tps(server: BenchServer, seconds: float, clients: int = 8) -> dict[str, Any]:
    """``pgbench -N -c clients -T seconds`` TPS in a fresh database; the database is dropped after."""
    if server.bin_dir is None or not (server.bin_dir / "pgbench").exists():
        return {"error": f"no pgbench found for Postgres {server.major} "
                         f"(looked in /usr/lib/postgresql/{server.major}/bin, pg_config --bindir, the wheel)"}
    pgbench = str(server.bin_dir / "pgbench")
    dsn = server.create_database("pgbench")
    try:
        args, env = _pg_env(dsn)
        dbname = str(conninfo_to_dict(dsn)["dbname"])
        init = subprocess.run([pgbench, *args, "-i", "-s", "1", "-q", dbname], env=env,
                              capture_output=True, text=True)
        if init.returncode != 0:
            return {"error": f"pgbench -i failed: {init.stderr.strip()[-400:]}"}
        run = subprocess.run([pgbench, *args, "-N", "-c", str(clients), "-j", "2", "-T",
                              str(max(1, round(seconds))), dbname],
                             env=env, capture_output=True, text=True)
        if run.returncode != 0:
            return {"error": f"pgbench failed: {run.stderr.strip()[-400:]}"}
        tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", run.stdout)
        lat = re.search(r"latency average = ([0-9.]+) ms", run.stdout)
        if tps is None:
            return {"error": f"cannot read pgbench output: {run.stdout[-400:]}"}
        return {"tps": float(tps.group(1)), "latency_avg_ms": float(lat.group(1)) if lat else None,
                "clients": clients, "seconds": max(1, round(seconds)), "pgbench": pgbench}
    finally:
        server.drop_database(dsn)


def commit_latency_ms(dsn: str, samples: int = 200) -> dict[str, Any]:
    """p50/p99 of one single-row INSERT + commit, one client, nothing else of ours running."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_commit_probe (id bigint)")  # a real (WAL-logged) table
        times = []
        for i in range(samples):
            t0 = time.perf_counter()
            conn.execute("INSERT INTO bench_commit_probe VALUES (%s)", (i,))
            times.append((time.perf_counter() - t0) * 1000)
        conn.execute("DROP TABLE bench_commit_probe")
    return {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99), "samples": samples}


def notify_round_trip_ms(dsn: str, samples: int = 200) -> dict[str, Any]:
    """p50/p99 from NOTIFY (sent in autocommit) to its arrival on a LISTENing connection."""
    with psycopg.connect(dsn, autocommit=True) as listener, psycopg.connect(dsn, autocommit=True) as sender:
        listener.execute("LISTEN bench_rtt")
        times = []
        for i in range(samples):
            t0 = time.perf_counter()
            sender.execute("SELECT pg_notify('bench_rtt', %s)", (str(i),))
            for _ in listener.notifies(timeout=5.0, stop_after=1):
                times.append((time.perf_counter() - t0) * 1000)
        listener.execute("UNLISTEN bench_rtt")
    return {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99), "samples": len(times)}


def run(server: BenchServer, seconds: float, samples: int) -> dict[str, Any]:
    """B0 in one dict: pgbench, commit latency, NOTIFY round trip."""
    out: dict[str, Any] = {"pgbench": pgbench_tps(server, seconds)}
    dsn = server.create_database("calib")
    try:
        out["commit"] = commit_latency_ms(dsn, samples)
        out["notify"] = notify_round_trip_ms(dsn, samples)
    finally:
        server.drop_database(dsn)
    return out
