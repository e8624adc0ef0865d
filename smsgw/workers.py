"""`smsgw serve --workers N`: N gateway processes sharing one port (SO_REUSEPORT) and one store.

The supervisor picks the port (a free one for port 0), starts each worker as
`smsgw serve ... --port P --worker I/N`, prints `smsgw listening on http://HOST:PORT` once every
worker listens, and forwards SIGTERM/SIGINT so that each one stops taking messages, finishes
and flushes. The kernel spreads connections over the workers; each worker is pinned to its
own core. They share the SQLite file: the unique key of MOs holds across processes (a retry
that reaches another worker gets the first answer), and WAL lets one write at a time. Worker 0
also resumes the MTs left pending by a previous run; every worker delivers the MTs it stores.
On PostgreSQL every worker is a gateway like any other: each one claims MTs free to take.
If a worker dies, the supervisor stops the others and exits non-zero: a process manager
(systemd, Kubernetes) restarts the whole gateway, and the pending MTs resume. If the supervisor
itself dies (SIGKILL, OOM killer), Linux sends each worker SIGTERM (PR_SET_PDEATHSIG, set in the
worker before it runs smsgw): the workers stop as on a SIGTERM of the supervisor, instead of
keeping the port for a gateway that a process manager starts again.

/metrics counts every worker whichever one is scraped: the supervisor makes a directory of its
own for this run (under $RUNTIME_DIRECTORY when systemd gives one, else the temporary folder),
passes it in PROMETHEUS_MULTIPROC_DIR, and removes it when the workers have stopped (metrics.py).
Being new, it holds nothing of an earlier run: the counters start at 0 with the workers.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Config

_LISTENING = re.compile(r"smsgw listening on (http://\S+)")


def pin_to_one_core(index: int | None = None) -> None:
    """Keep the event loop and the records store's thread on one core (worker `index`'s, or this pid's).

    A store call hands work to the SQLite store's thread and back; when the two threads run on
    different cores every hand-off crosses caches and costs several times more (measured:
    in-process replay 6k messages/s unpinned vs 12k pinned on 2 cores). One process is one
    core's worth of Python anyway; to use more cores, run more processes.
    """
    if hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        if len(allowed) > 1:
            core = allowed[(os.getpid() if index is None else index) % len(allowed)]
            os.sched_setaffinity(0, {core})


def serve_worker(config: Config, *, db_path: str, host: str, port: int, index: int = 0, count: int = 1) -> None:
    """Run this process's gateway: worker `index` of `count` shares the port and is pinned to its
    own core; a lone gateway (count 1) takes the port for itself. On SQLite only worker 0 resumes
    the MTs left pending (the file's outbox has one owner); on PostgreSQL every worker claims MTs
    free to take (leases, FOR UPDATE SKIP LOCKED: each MT by one of them), as separate gateways do."""
    from .server import serve
    from .store import is_postgres

    pin_to_one_core(index if count > 1 else None)
    if count > 1:   # every line this worker logs says which one it is
        import structlog

        structlog.contextvars.bind_contextvars(worker=index)
    serve(config, db_path=db_path, host=host, port=port, reuse_port=count > 1,
          resume_pending=index == 0 or is_postgres(db_path))


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """A bound (not listening) SO_REUSEPORT socket holding `port` (a free one for 0)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host, port))
    return holder, holder.getsockname()[1]


def supervise(argv: list[str], *, host: str, port: int, workers: int) -> int:
    """Run `workers` copies of `smsgw serve` (argv without --port/--workers); their exit status."""
    from .metrics import MULTIPROCESS_VARIABLE

    holder, port = reserve_port(host, port)
    children: list[subprocess.Popen] = []
    stopping = False
    shared = tempfile.mkdtemp(prefix="smsgw-metrics-", dir=os.environ.get("RUNTIME_DIRECTORY") or None)
    environment = {**os.environ, MULTIPROCESS_VARIABLE: shared}

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for index in range(workers):
            children.append(subprocess.Popen(
                [sys.executable, "-m", "smsgw", "serve", *argv, "--port", str(port), "--worker", f"{index}/{workers}"],
                stdout=subprocess.PIPE, text=True, env=environment, preexec_fn=_stop_with(os.getpid())))
        url = _wait_listening(children)
        if url is None:
            stop(signal.SIGTERM, None)
        else:
            print(f"smsgw listening on {url} ({workers} workers)", flush=True)
        holder.close()
        statuses = []
        while children and (status := _wait_any(children)) is not None:
            statuses.append(status)
            if not stopping:   # one worker died by itself: stop the others
                stop(signal.SIGTERM, None)
        return 0 if stopping and all(s == 0 for s in statuses) and url else 1
    finally:
        holder.close()
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        shutil.rmtree(shared, ignore_errors=True)


_PR_SET_PDEATHSIG = 1   # <linux/prctl.h>


def _stop_with(supervisor: int) -> Callable[[], None] | None:
    """In the worker between fork and exec: SIGTERM when the supervisor dies (None where Linux's
    prctl is not there). The flag outlives exec; a supervisor already gone stops it at once."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def stop_with_supervisor() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != supervisor:
            os.kill(os.getpid(), signal.SIGTERM)

    return stop_with_supervisor


def _wait_listening(children: list[subprocess.Popen]) -> str | None:
    url = None
    for child in children:
        line = child.stdout.readline()
        match = _LISTENING.search(line)
        if match is None:
            return None
        url = match.group(1)
    return url


def _wait_any(children: list[subprocess.Popen]) -> int | None:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        return None
    for child in list(children):
        if child.pid == pid:
            child.returncode = os.waitstatus_to_exitcode(status)
            children.remove(child)
            return child.returncode
    return 0
