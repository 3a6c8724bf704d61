"""Benchmarks of pgdurable, side by side with DBOS Transact and procrastinate.

Run them with ``python -m bench`` (``--help`` for the options). One run uses
one Postgres server (an embedded Postgres 18 started in a temp directory with
default durability settings, or ``--dsn``) and measures, in order:

- B0 calibration: ``pgbench -N`` TPS, single-client commit latency and a
  NOTIFY round trip, so every other figure can be read as a ratio to what
  this server, on this machine, at this moment, can do at all;
- B1 empty workflows, B2 activities, B3 wake-up latencies, B4 replay cost,
  B6 pending timers (pgdurable);
- the same kinds of figures for DBOS Transact and procrastinate, each in its
  own database of the same server, each in its own process.

Benchmarks print figures; tests never assert timings (``tests/test_bench_smoke.py``
only checks that the harness runs).
"""
