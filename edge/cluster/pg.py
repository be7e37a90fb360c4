"""A private PostgreSQL server in a directory edge owns: for `scripts/cluster`, the tests
and the anycast lab (one implementation, used three times).

``PrivateServer(data_dir).start()`` runs ``initdb`` on first use and ``pg_ctl start``
on a loopback port, as the unprivileged ``postgres`` user when edge runs as root
(PostgreSQL refuses to run as root, and it should). Local connections are trusted:
the server listens on 127.0.0.1 and on a socket inside its own directory only.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.errors import StartupError

PG_BIN_DIRS = (Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin"))
SERVICE_USER = "postgres"  # who runs the server when edge runs as root
SUPERUSER = "edge"  # the database role initdb creates (trust auth on loopback only)
START_TIMEOUT = 30.0


def find_bin_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """Where initdb and pg_ctl are: $EDGE_PG_BIN, Debian's versioned dirs, or $PATH."""
    env = os.environ if env is None else env
    candidates = [Path(env["EDGE_PG_BIN"])] if env.get("EDGE_PG_BIN") else []
    candidates += list(PG_BIN_DIRS)
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(Path(found).parent)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    return None


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class RunAs:
    """The user the server's commands run as (None: this process's own user)."""

    uid: int | None
    gid: int | None

    @classmethod
    def for_server(cls) -> RunAs:
        if os.geteuid() != 0:
            return cls(None, None)
        try:
            entry = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise StartupError(
                f"running as root, but there is no {SERVICE_USER!r} user to run PostgreSQL "
                "as; install Debian's postgresql package or run as an ordinary user"
            ) from None
        return cls(entry.pw_uid, entry.pw_gid)

    def run(self, argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        extra: dict[str, object] = {}
        if self.uid is not None:
            extra = {"user": self.uid, "group": self.gid, "extra_groups": []}
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            list(argv), text=True, capture_output=True, **extra, **kwargs
        )

    def own(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)


class PrivateServer:
    """One PostgreSQL server with its data in ``data_dir`` (created on first start)."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise StartupError(
                "PostgreSQL's server programs (initdb, pg_ctl) were not found; install "
                "Debian's postgresql package or set EDGE_PG_BIN to their directory"
            )
        self.bin_dir = bin_dir
        self.data_dir = data_dir.resolve()
        self.socket_dir = self.data_dir / "sockets"
        self.run_as = RunAs.for_server()
        self._port = port

    @property
    def port(self) -> int:
        if self._port is None:
            self._port = self._configured_port() or free_loopback_port()
        return self._port

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _configured_port(self) -> int | None:
        conf = self.data_dir / "edge.conf"
        if not conf.exists():
            return None
        for line in conf.read_text().splitlines():
            if line.startswith("port"):
                return int(line.split("=")[1])
        return None

    def _check(self, argv: Sequence[str], what: str) -> str:
        done = self.run_as.run(argv, cwd="/")
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise StartupError(f"{what} failed: {detail[-1] if detail else done.returncode}")
        return done.stdout

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        """initdb into ``data_dir`` (mode 0700, owned by the server's user)."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.run_as.own(self.data_dir)
        if self.run_as.uid is not None and not self._reachable_by_server():
            raise StartupError(
                f"PostgreSQL runs as {SERVICE_USER!r}, which cannot reach {self.data_dir}; "
                "use a state directory every user can traverse (e.g. under /var/tmp)"
            )
        initdb = self.bin_dir / "initdb"
        argv = [str(initdb), "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust"]
        self._check([*argv, "-E", "UTF8", "--no-instructions"], "initdb")
        conf_lines = [
            f"port = {self.port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.socket_dir}'",
            "max_connections = 200",
            "fsync = on",
            "log_min_messages = warning",
        ]
        (self.data_dir / "edge.conf").write_text("\n".join(conf_lines) + "\n")
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("include = 'edge.conf'\n")
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self.run_as.own(self.socket_dir)
        self.run_as.own(self.data_dir / "edge.conf")

    def _reachable_by_server(self) -> bool:
        probe = self.run_as.run(["test", "-w", str(self.data_dir)])
        return probe.returncode == 0

    def start(self) -> PrivateServer:
        """Initialise if needed, start, and wait until it accepts connections."""
        if not self.initialised():
            self.init()
        if self.running():
            return self
        log = self.data_dir / "server.log"
        pg_ctl = str(self.bin_dir / "pg_ctl")
        self._check([pg_ctl, "-D", str(self.data_dir), "-l", str(log), "-w", "start"], "pg_ctl")
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        raise StartupError(f"PostgreSQL in {self.data_dir} did not start within {timeout:g} s")

    def pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
        except (OSError, IndexError):
            return None
        return int(first)

    def running(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop (``fast``: roll back open transactions; ``immediate``: like a crash)."""
        if not self.running():
            return
        pg_ctl = str(self.bin_dir / "pg_ctl")
        self._check([pg_ctl, "-D", str(self.data_dir), "-m", mode, "-w", "stop"], "pg_ctl stop")

    def crash(self) -> None:
        """Stop the way a crash does (``immediate``: no checkpoint, recovery at restart)."""
        self.stop("immediate")

    def create_database(self, name: str) -> str:
        """A new empty database ``name``; its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)
