"""What the tests share (not test modules).

- :mod:`support.polling`: wait for a state with a deadline (``wait_until`` sync, ``wait_for`` async).
- :mod:`support.history`: a workflow handle's history and pending calls, and waits on them.
- :mod:`support.db`: queries as the database owner, private Postgres servers, exactly-once checks.
- :mod:`support.worker_process`: worker subprocesses (``workers.worker_process``): start, kill, reap.
- :mod:`support.attack`: the security suite's owner and worker-role sides of one database.
"""
