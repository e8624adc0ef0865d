"""Throwaway PostgreSQL servers for the tests, from the installed package, on 127.0.0.1.

A `Cluster` is one real server (initdb + pg_ctl) in a temporary folder, on a free port, with its
unix socket beside its data, trust authentication for 127.0.0.1 only, fsync and synchronous commit
on. `Replicated` is a primary with a synchronous streaming-replication standby named `standby`
(pg_basebackup -R over a replication slot), for failover tests on a libpq multi-host URL.
PostgreSQL refuses to run as root: when the tests run as root, the servers run as the `postgres`
system user (the Debian package creates it), else as `nobody`.

Every wait is bounded (pg_ctl -w -t, polling with a deadline). Every server is stopped at the end:
by the fixtures' teardown, and, as a last resort, by an atexit hook that SIGKILLs whatever is left.

The tests' fixtures over these are in tests/conftest_pg.py.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from glob import glob
from pathlib import Path

WAIT = 30                                   # seconds, for every start, stop, promotion and poll
REQUIRED = ("initdb", "pg_ctl", "postgres", "pg_basebackup", "psql")
SUPERUSER = "postgres"
STANDBY = "standby"                         # the standby's application_name and replication slot
_LIVE: set[Cluster] = set()                 # started and not yet stopped: the atexit hook's list


class ClusterError(RuntimeError):
    """A PostgreSQL command failed; the message carries its output and the server log's tail."""


@dataclass(frozen=True)
class Binaries:
    bindir: Path

    def __call__(self, name: str) -> str:
        return str(self.bindir / name)


def candidate_bindirs() -> list[Path]:
    """Where PostgreSQL's server programs may be: `pg_config --bindir`, Debian's
    /usr/lib/postgresql/<newest first>/bin, then the directory of the `initdb` on PATH."""
    found: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            found.append(Path(out.stdout.strip()))
    versions = glob("/usr/lib/postgresql/*/bin")
    found += [Path(p) for p in sorted(versions, key=lambda p: [int(n) for n in re.findall(r"\d+", p)], reverse=True)]
    if initdb := shutil.which("initdb"):
        found.append(Path(initdb).resolve().parent)
    return list(dict.fromkeys(found))


def find_binaries(candidates: list[Path] | None = None) -> tuple[Binaries | None, str]:
    """The first directory holding every program of REQUIRED, or None and the reason to skip."""
    candidates = candidate_bindirs() if candidates is None else candidates
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in REQUIRED):
            return Binaries(bindir), ""
    searched = ", ".join(map(str, candidates)) or "nowhere: no pg_config, no /usr/lib/postgresql/*/bin, no initdb on PATH"
    return None, (f"PostgreSQL server programs not found ({', '.join(REQUIRED)}; searched {searched}): "
                  "install Debian's postgresql package (.ci/run does)")


def server_user() -> pwd.struct_passwd | None:
    """Whom the servers run as: None (ourselves) unless we are root, then `postgres` or `nobody`."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    raise ClusterError("running as root and there is no `postgres` or `nobody` user to run PostgreSQL as "
                       "(it refuses root): create one, e.g. `useradd --system postgres`")


def free_port() -> int:
    """A port free on 127.0.0.1 right now (another process may take it before the server binds:
    `Cluster.start` then moves to another port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _conf_value(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


class Cluster:
    """One PostgreSQL server in `root/name`: data/, socket/, server.log."""

    def __init__(self, binaries: Binaries, root: Path, name: str = "pg", port: int | None = None) -> None:
        self.bin = binaries
        self.user = server_user()
        self.home = Path(root) / name
        self.data = self.home / "data"
        self.socket_dir = self.home / "socket"
        self.log = self.home / "server.log"
        self.port = port or free_port()
        self.postmaster_pid: int | None = None
        self._ever_started = False

    # -- creating ---------------------------------------------------------------------------
    def init(self, **settings: object) -> Cluster:
        """A fresh data directory (a copy of the run's one initdb: initdb takes 1-2 s, a copy 0.1 s),
        trust for 127.0.0.1 only, and this server's settings (plus `settings`)."""
        self._make_home()
        self._run("cp", "-a", _initdb_template(self.bin), self.data)
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host all all 127.0.0.1/32 trust\n"
            "host replication all 127.0.0.1/32 trust\n")
        self.configure(fsync=True, synchronous_commit="on", shared_buffers="32MB", **settings)
        return self

    def base_backup(self, primary: Cluster, **settings: object) -> Cluster:
        """Make this a streaming standby of `primary`: pg_basebackup -R over the slot `standby`,
        application_name `standby`; no synchronous standby of its own, so it can write once
        promoted."""
        self._make_home()
        conninfo = f"host=127.0.0.1 port={primary.port} user={SUPERUSER} application_name={STANDBY}"
        self._run(self.bin("pg_basebackup"), "-D", self.data, "-d", conninfo, "-R", "-C", "-S", STANDBY,
                  "-X", "stream", "-c", "fast", "--no-sync")
        self.configure(synchronous_standby_names="", **settings)   # -R wrote primary_conninfo and the slot
        return self

    def configure(self, **settings: object) -> None:
        """Append settings to postgresql.conf (the last occurrence wins); takes effect at start."""
        base = {"listen_addresses": "127.0.0.1", "port": self.port, "unix_socket_directories": str(self.socket_dir)}
        lines = [f"{key} = {_conf_value(value)}" for key, value in {**base, **settings}.items()]
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n# smsgw tests\n" + "\n".join(lines) + "\n")

    # -- running ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start and wait until it accepts connections. On the first start, a port that another
        process took meanwhile ('could not bind') moves the server to a new free port."""
        for attempt in range(3):
            log_size = self.log.stat().st_size if self.log.exists() else 0
            try:
                self._pg_ctl("start", "-l", self.log)
                break
            except (ClusterError, subprocess.TimeoutExpired):
                self._adopt_postmaster()
                self.kill()                               # one that is still starting, too slow
                with open(self.log, errors="replace") as log:
                    log.seek(log_size)
                    bind_failed = "could not bind" in log.read()
                if self._ever_started or not bind_failed or attempt == 2:
                    raise
                self.port = free_port()
                self.configure()
        self._ever_started = True
        self._adopt_postmaster()

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop -m fast (sessions ended, checkpoint) or immediate (no checkpoint: crash
        recovery at the next start). Falls back to kill() when it does not stop in time."""
        if self.running:
            try:
                self._pg_ctl("stop", "-m", mode)
            except (ClusterError, subprocess.TimeoutExpired):
                self.kill()
        self._wait_gone(self.processes())
        self._forget_postmaster()

    def kill(self) -> None:
        """SIGKILL the postmaster and every process it started at once, as when its host dies."""
        pids = self.processes()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._wait_gone(pids)
        # The lock files name the dead postmaster. A host that died and came back would not have
        # its PID in use; here, until our init reaps it, the zombie makes the next start refuse
        # ("lock file already exists").
        (self.data / "postmaster.pid").unlink(missing_ok=True)
        (self.socket_dir / f".s.PGSQL.{self.port}.lock").unlink(missing_ok=True)
        self._forget_postmaster()

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def reload(self) -> None:
        """Re-read the configuration files (settings that need no restart)."""
        self._run(self.bin("pg_ctl"), "reload", "-D", self.data)

    def promote(self) -> None:
        """End recovery on a standby; returns when it accepts writes."""
        self._pg_ctl("promote")

    @property
    def running(self) -> bool:
        """Our postmaster is alive (a PID reused by another program does not count)."""
        pid = self.postmaster_pid
        if pid is None or not alive(pid):
            return False
        try:
            return str(self.data) in Path(f"/proc/{pid}/cmdline").read_text()   # postgres -D <data>
        except (FileNotFoundError, ProcessLookupError):
            return False

    def processes(self) -> set[int]:
        """The postmaster and its children (pg_ctl starts it in its own process group)."""
        pid = self.postmaster_pid
        if pid is None or not self.running:
            return set()
        group = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) == pid or _parent(int(entry.name)) == pid:
                        group.add(int(entry.name))
                except (ProcessLookupError, FileNotFoundError):
                    pass
        return {pid} | group

    def close(self) -> None:
        """Stop it for good and delete its folder (SIGKILL: its data is thrown away, and a
        shutdown takes seconds on a loaded machine)."""
        self.kill()
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- talking to it ----------------------------------------------------------------------
    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{db}"

    def execute(self, sql: str, db: str = "postgres") -> str:
        """Run SQL with psql; its unaligned, tuples-only output (`a|b` per row)."""
        out = subprocess.run([self.bin("psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.url(db),
                              "-c", sql], capture_output=True, text=True, timeout=WAIT, env=_clean_env())
        if out.returncode:
            raise ClusterError(f"psql on port {self.port}: {sql!r} failed: {out.stderr.strip()}")
        return out.stdout.strip()

    psql = execute

    def create_database(self, name: str) -> str:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"database name {name!r}: lower-case letters, digits and _ only")
        self.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    # -- internals --------------------------------------------------------------------------
    def _make_home(self) -> None:
        self.home.mkdir(parents=True)
        self.socket_dir.mkdir()
        if self.user:
            for path in (self.home.parent, self.home, self.socket_dir):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def _adopt_postmaster(self) -> None:
        """Take the postmaster's PID from its lock file, and list it for the atexit hook."""
        try:
            self.postmaster_pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return
        _LIVE.add(self)

    def _forget_postmaster(self) -> None:
        self.postmaster_pid = None
        _LIVE.discard(self)

    def _pg_ctl(self, action: str, *args: object) -> None:
        self._run(self.bin("pg_ctl"), action, "-D", self.data, "-w", "-t", WAIT, *args)

    def _run(self, *args: object) -> None:
        """Run a server program as the server's user, bounded; ClusterError with its output."""
        as_user = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []} if self.user else {}
        command = [str(a) for a in args]
        env = _clean_env() | ({"HOME": str(self.home)} if self.user else {})
        out = subprocess.run(command, cwd=self.home, env=env, capture_output=True, text=True,
                             timeout=WAIT + 15, **as_user)
        if out.returncode:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else "(no server log)"
            raise ClusterError(f"{Path(command[0]).name} {command[1]} (port {self.port}) exited {out.returncode}: "
                               f"{out.stdout.strip()} {out.stderr.strip()}\nserver log tail:\n{tail}")

    def _wait_gone(self, pids: set[int]) -> None:
        deadline = time.monotonic() + WAIT
        while any(alive(pid) for pid in pids):
            if time.monotonic() > deadline:
                raise ClusterError(f"processes {sorted(p for p in pids if alive(p))} of port {self.port} outlived SIGKILL")
            time.sleep(0.02)


class Replicated:
    """A primary with a synchronous streaming standby (`synchronous_standby_names = 'standby'`,
    synchronous_commit on: a commit returns once the standby has flushed it), and database `db`."""

    def __init__(self, binaries: Binaries, root: Path, db: str = "smsgw", **settings: object) -> None:
        self.db = db
        self.settings = settings                  # for both servers, e.g. max_connections=200
        self.primary = Cluster(binaries, root, "primary")
        self.standby = Cluster(binaries, root, "standby")

    def start(self) -> Replicated:
        self.primary.init(wal_level="replica", max_wal_senders=4, **self.settings)
        self.primary.start()
        self.primary.create_database(self.db)          # before the standby: no commit waits for it yet
        self.standby.base_backup(self.primary)
        self.standby.start()
        self.primary.configure(synchronous_standby_names=STANDBY)
        self.primary.reload()
        self.wait_synchronous()
        return self

    def wait_synchronous(self) -> None:
        """Wait until the primary streams to the standby as its synchronous standby."""
        query = f"SELECT sync_state FROM pg_stat_replication WHERE application_name = '{STANDBY}'"
        deadline = time.monotonic() + WAIT
        while (state := self.primary.execute(query)) != "sync":
            if time.monotonic() > deadline:
                raise ClusterError(f"the standby is not synchronous after {WAIT} s (sync_state {state!r})")
            time.sleep(0.05)

    def promote(self) -> None:
        self.standby.promote()

    def multi_host_url(self, db: str | None = None) -> str:
        """libpq multi-host URL: the primary, then the standby; a client lands on whichever writes."""
        return (f"postgresql://{SUPERUSER}@127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}/"
                f"{db or self.db}?target_session_attrs=read-write")

    def close(self) -> None:
        self.standby.close()
        self.primary.close()

    def __enter__(self) -> Replicated:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _clean_env() -> dict[str, str]:
    """Our environment without PG* variables (PGHOST, PGDATA...), which would redirect the programs."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def _mkdtemp() -> Path:
    """A temporary folder the server user can reach: under /tmp when root (pytest's own tmp_path
    is private to root)."""
    return Path(tempfile.mkdtemp(prefix="smsgw-pg-", dir="/tmp" if os.geteuid() == 0 else None))


@contextmanager
def temp_root() -> Iterator[Path]:
    """A temporary folder for servers, removed at the end."""
    root = _mkdtemp()
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


_TEMPLATES: dict[Path, Path] = {}            # bindir -> a data directory fresh from initdb, one per run


def _initdb_template(binaries: Binaries) -> Path:
    """initdb once per run (UTF8, C locale, superuser postgres); the clusters copy it. initdb's
    --no-sync: a copy is only ever used by throwaway servers, which run with fsync on."""
    if binaries.bindir not in _TEMPLATES:
        maker = Cluster(binaries, _mkdtemp(), "template")
        maker._make_home()
        maker._run(binaries("initdb"), "-D", maker.data, "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
                   "--locale=C", "--no-sync", "--no-instructions")
        _TEMPLATES[binaries.bindir] = maker.data
    return _TEMPLATES[binaries.bindir]


@atexit.register
def _kill_leftovers() -> None:
    """Last resort: no postmaster outlives the Python process that started it."""
    for cluster in list(_LIVE):
        try:
            cluster.kill()
        except ClusterError:
            pass
        shutil.rmtree(cluster.home, ignore_errors=True)
    for template in _TEMPLATES.values():
        shutil.rmtree(template.parent.parent, ignore_errors=True)
