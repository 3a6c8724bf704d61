"""What every benchmark shares: the server, databases, statistics, CPU and transaction meters."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def _port_range() -> range:
    low, _, high = os.environ.get("PGDURABLE_BENCH_PORT_RANGE", "55800-55899").partition("-")
    return range(int(low), int(high) + 1)


PORT_RANGE = _port_range()
"""Ports the benchmark may give a server it starts itself (``PGDURABLE_BENCH_PORT_RANGE``, default
55800-55899: runs sharing a machine give each its own)."""


# -- statistics -------------------------------------------------------------------

def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median of the runs with their min and max (the figure the table prints)."""
    clean = [v for v in values if v is not None and v == v]
    if not clean:
        return {"median": None, "min": None, "max": None, "runs": list(values)}
    return {"median": statistics.median(clean), "min": min(clean), "max": max(clean), "runs": list(values)}


def load_avg() -> tuple[float, float, float]:
    """``os.getloadavg()``: the machine is shared, so every figure travels with it."""
    return os.getloadavg()


# -- the server ---------------------------------------------------------------------

@dataclass
class BenchServer:
    """The one server a benchmark run uses."""

    admin_dsn: str
    major: int
    bin_dir: Path | None
    postmaster_pid: int | None
    embedded: bool
    data_dir: Path | None = None
    _embedded: Any = None
    created_databases: list[str] = field(default_factory=list)

    def dsn(self, dbname: str) -> str:
        return make_conninfo(self.admin_dsn, dbname=dbname)

    def create_database(self, prefix: str) -> str:
        """A new database named ``bench_<prefix>_<random>``, dropped by :meth:`close`; returns its DSN."""
        name = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.created_databases.append(name)
        return self.dsn(name)

    def drop_database(self, dsn: str) -> None:
        """Drops a database this run created (never any other)."""
        name = conninfo_to_dict(dsn).get("dbname")
        if name not in self.created_databases:
            return
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        self.created_databases.remove(name)

    def close(self) -> None:
        """Drops the databases this run created; stops and deletes a server this run started."""
        for name in list(self.created_databases):
            with contextlib.suppress(Exception):
                self.drop_database(self.dsn(name))
        if self._embedded is not None:
            with contextlib.suppress(Exception):
                self._embedded.stop()
            if self.data_dir is not None:
                shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def server_major(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    return int(row[0]) // 10000


def _postmaster_of(dsn: str) -> int | None:
    """The postmaster's pid when the server runs on this machine (for the CPU split), else None."""
    try:
        import psutil
    except ImportError:
        return None
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    try:
        backend = psutil.Process(int(row[0]))
        parent = backend.parent()
        if parent is None or "postgres" not in (parent.name() + " ".join(parent.cmdline())):
            return None
        return parent.pid
    except (psutil.Error, OSError):
        return None  # another machine, or a pid this process cannot see


def find_bin_dir(major: int) -> Path | None:
    """The client tools (pgbench) of this major: Debian's layout, ``pg_config --bindir``, the wheel's."""
    debian = Path(f"/usr/lib/postgresql/{major}/bin")
    if (debian / "pgbench").exists():
        return debian
    pg_config = shutil.which("pg_config")
    if pg_config:
        import subprocess

        with contextlib.suppress(Exception):
            version = subprocess.run([pg_config, "--version"], capture_output=True, text=True).stdout
            if f" {major}." in version or f" {major}beta" in version:
                bindir = Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
                              .stdout.strip())
                if (bindir / "pgbench").exists():
                    return bindir
    with contextlib.suppress(Exception):
        from pgdurable.embedded import _embedded_bin_dir

        wheel = _embedded_bin_dir()
        if major == 18 and (wheel / "pgbench").exists():
            return wheel
    return None


def start_server(dsn: str | None) -> BenchServer:
    """``dsn``'s server, or a fresh embedded Postgres 18 in ``/tmp/bench-*`` with default settings."""
    if dsn:
        major = server_major(dsn)
        return BenchServer(admin_dsn=dsn, major=major, bin_dir=find_bin_dir(major),
                           postmaster_pid=_postmaster_of(dsn), embedded=False)
    from pgdurable.embedded import EmbeddedPostgres, free_port_in

    root = Path(tempfile.mkdtemp(prefix="bench-", dir="/tmp"))
    os.chmod(root, 0o755)
    data_dir = root / "data"
    server = EmbeddedPostgres(data_dir, free_port_in(PORT_RANGE))
    try:
        server.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    admin = server.dsn()
    return BenchServer(admin_dsn=admin, major=server_major(admin), bin_dir=server.bin_dir,
                       postmaster_pid=server._postmaster_pid(), embedded=True, data_dir=data_dir,
                       _embedded=server)


def as_url(dsn: str) -> str:
    """Any libpq DSN as a ``postgresql://`` URL (what SQLAlchemy-based peers want)."""
    params = conninfo_to_dict(dsn)
    user = params.pop("user", None)
    password = params.pop("password", None)
    host = params.pop("host", None) or "localhost"
    port = params.pop("port", None)
    dbname = params.pop("dbname", None) or ""
    auth = ""
    if user:
        auth = quote(str(user), safe="")
        if password:
            auth += ":" + quote(str(password), safe="")
        auth += "@"
    netloc = host if "/" not in str(host) else ""
    if port:
        netloc += f":{port}"
    query = {k: str(v) for k, v in params.items()}
    if host and "/" in str(host):
        query["host"] = str(host)
    return f"postgresql://{auth}{netloc}/{quote(dbname, safe='')}" + (f"?{urlencode(query)}" if query else "")


# -- meters -----------------------------------------------------------------------------

@dataclass
class CpuSample:
    wall: float
    python: float
    postgres: float | None
    python_wait: float | None = None
    postgres_wait: float | None = None
    machine: float | None = None
    """CPU seconds the whole machine was busy (all cores, every process: ours and other load's)."""
    steal: float | None = None
    """CPU seconds the hypervisor gave to other guests (a VM's noisy neighbours)."""


def _machine_busy() -> tuple[float | None, float | None]:
    try:
        import psutil
    except ImportError:
        return None, None
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    return sum(times) - idle - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0), \
        getattr(times, "steal", None)


def _schedstat_wait(pid: int, threads: bool) -> float | None:
    """Seconds the process (all its threads) spent runnable but waiting for a CPU (Linux schedstat)."""
    paths = [f"/proc/{pid}/task/{tid}/schedstat" for tid in os.listdir(f"/proc/{pid}/task")] if threads \
        else [f"/proc/{pid}/schedstat"]
    total = 0
    for path in paths:
        try:
            with open(path) as fh:
                total += int(fh.read().split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


class CpuMeter:
    """CPU seconds of this Python process (all its threads) and of the server's process tree, and the
    time each spent waiting for a CPU (run-queue delay: the machine is shared)."""

    def __init__(self, postmaster_pid: int | None, python_pid: int | None = None,
                 extra_python_pids: Sequence[int] = ()) -> None:
        self.postmaster_pid = postmaster_pid
        self.python_pid = python_pid
        self.extra_python_pids = tuple(extra_python_pids)
        """Other Python processes counted on the Python side (B7's worker processes)."""

    def _python(self) -> float:
        if self.python_pid is None:
            times = os.times()
            total = times.user + times.system
        else:
            import psutil

            ptimes = psutil.Process(self.python_pid).cpu_times()
            total = ptimes.user + ptimes.system
        if self.extra_python_pids:
            import psutil

            for pid in self.extra_python_pids:
                with contextlib.suppress(psutil.Error):
                    ptimes = psutil.Process(pid).cpu_times()
                    total += ptimes.user + ptimes.system
        return total

    def _postgres(self) -> tuple[float | None, float | None]:
        if self.postmaster_pid is None:
            return None, None
        try:
            import psutil
        except ImportError:
            return None, None
        try:
            master = psutil.Process(self.postmaster_pid)
            times = master.cpu_times()
            # Backends that exited since the start are in the postmaster's children_* times.
            total = times.user + times.system + times.children_user + times.children_system
            wait = _schedstat_wait(master.pid, threads=False) or 0.0
            for child in master.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    ct = child.cpu_times()
                    total += ct.user + ct.system
                    wait += _schedstat_wait(child.pid, threads=False) or 0.0
            return total, wait
        except (psutil.Error, OSError):
            return None, None

    def sample(self) -> CpuSample:
        pg, pg_wait = self._postgres()
        try:
            py_wait = _schedstat_wait(self.python_pid or os.getpid(), threads=True)
            for pid in self.extra_python_pids:
                with contextlib.suppress(OSError):
                    py_wait = (py_wait or 0.0) + (_schedstat_wait(pid, threads=True) or 0.0)
        except OSError:
            py_wait = None
        machine, steal = _machine_busy()
        return CpuSample(time.perf_counter(), self._python(), pg, py_wait, pg_wait, machine, steal)

    @staticmethod
    def split(start: CpuSample, end: CpuSample) -> dict[str, Any]:
        """CPU used and CPU waited for, by each side, as fractions of one core over the interval."""
        wall = max(end.wall - start.wall, 1e-9)

        def rate(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else max(b - a, 0.0) / wall

        out = {"wall_s": wall, "python_cpu": rate(start.python, end.python),
               "postgres_cpu": rate(start.postgres, end.postgres),
               "python_cpu_wait": rate(start.python_wait, end.python_wait),
               "postgres_cpu_wait": rate(start.postgres_wait, end.postgres_wait),
               "machine_cpu": rate(start.machine, end.machine), "steal_cpu": rate(start.steal, end.steal),
               "load_1m": load_avg()[0]}
        # What the rest of the box used meanwhile: the machine's busy time minus the measured processes'
        # (the bench's Python processes and the server's backends), plus what the hypervisor stole.
        if out["machine_cpu"] is not None:
            own = (out["python_cpu"] or 0.0) + (out["postgres_cpu"] or 0.0)
            out["other_cpu"] = max(out["machine_cpu"] - own, 0.0) + (out["steal_cpu"] or 0.0)
        return out


def xact_count(dsn: str) -> int:
    """Committed + rolled-back transactions of ``dsn``'s database (pg_stat_database)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


STATS_FLUSH_SECONDS = 10.5
"""A backend that goes idle flushes its pending statistics (the transactions it counted) only after
PGSTAT_IDLE_INTERVAL, 10 s in Postgres 15 to 18; a busy one flushes every second or so. Reading
pg_stat_database sooner misses up to a second of work at one end of a window and counts a second
of the work before it at the other (measured: per workflow, 1.2 s settles read 2x the statements
pgdurable sent; 10.5 s settles read them within 2 %)."""


def settle_stats() -> None:
    """Waits until every idle backend has flushed the transactions it counted."""
    time.sleep(STATS_FLUSH_SECONDS)


@contextlib.contextmanager
def measure(meter: CpuMeter) -> Iterator[dict[str, Any]]:
    """Fills the yielded dict with the CPU split of the block."""
    out: dict[str, Any] = {}
    start = meter.sample()
    try:
        yield out
    finally:
        out.update(CpuMeter.split(start, meter.sample()))


def bottleneck(cpu: dict[str, Any] | None, cores: int | None = None) -> str:
    """One phrase naming what limited a throughput figure, from its measured CPU split: the side that
    used (or waited for) the CPU, else the database round trips (commit latency)."""
    if not cpu:
        return "unknown (no CPU split)"
    cores = cores or os.cpu_count() or 1
    py = cpu.get("python_cpu") or 0.0
    pg = cpu.get("postgres_cpu")
    py_wait = cpu.get("python_cpu_wait") or 0.0
    pg_wait = cpu.get("postgres_cpu_wait") or 0.0
    if pg is None:
        return f"python CPU {py:.0%}" if py >= 0.85 else f"waiting (python CPU {py:.0%}; postgres unmeasured)"
    used = f"python {py:.0%}, postgres {pg:.0%} of a core"
    if py >= 0.85:
        return f"python CPU {py:.0%} (postgres {pg:.0%})"
    if pg >= 0.75 * cores:
        return f"postgres CPU {pg:.0%} (python {py:.0%})"
    if py + pg >= 0.85 * cores:
        return f"machine CPU full ({used})"
    if py_wait + pg_wait >= 0.25 and py_wait + pg_wait >= 0.5 * (py + pg):
        waited = f"waited for a core python {py_wait:.0%} + postgres {pg_wait:.0%}"
        other = cpu.get("other_cpu")
        if other is None:  # no machine-wide figure: say what was seen, blame no one
            load = cpu.get("load_1m")
            load_text = f"; load {load:.1f}" if load is not None else ""
            return f"CPU contention: {waited} ({used}{load_text} on {cores} cores)"
        if other >= 0.25 and other >= 0.25 * (py + pg):
            return (f"CPU starved by other load: the rest of the box used {other:.0%} of a core while "
                    f"the bench's processes {waited} ({used}; {cores} cores)")
        # Almost all the busy CPU was the bench's own: client + workers (Python) and the backends.
        return (f"CPU contention among the bench's own processes: {waited} ({used}; other load "
                f"{other:.0%}; {cores} cores)")
    return f"round trips / commit latency ({used})"


async def lanes(duration: float, in_flight: int, one: Callable[[], Awaitable[Any]]) -> tuple[int, float]:
    """``in_flight`` coroutines call ``one()`` back to back until ``duration`` passes;
    returns (calls completed, seconds until the last one completed)."""
    deadline = time.perf_counter() + duration
    done = 0

    async def lane() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await one()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(in_flight)))
    return done, time.perf_counter() - start


def peer_main(prog: str, run: Callable[[str, dict[str, Any], int | None], Awaitable[dict[str, Any]]],
              argv: list[str] | None = None) -> int:
    """The command line of a peer's benchmark process: runs ``run(dsn, params, postmaster)`` and
    writes its result as JSON to ``--out``."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--params", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--postmaster", type=int, default=None)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.dsn, json.loads(args.params), args.postmaster))
    with open(args.out, "w") as fh:
        json.dump(result, fh)
    return 0
