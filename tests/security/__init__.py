"""Attack tests of the worker-role contract (issue 11): what a compromised worker role must not
be able to do. Every file is marked ``sql`` and also runs on Debian Postgres 15."""
