"""`smsgw serve`: one gateway process, from start-up to a graceful stop (CONTRACT §5).

`serve` configures logging, raises the open-file limit, warns about carriers that take unsigned
or unstamped requests, and runs the app of smsgw/gateway.py behind a `Listener`
(smsgw/listener.py: connection cap and deadlines) until SIGTERM or SIGINT. Then the gate
closes (new requests get 503 with Retry-After), the requests under way finish within
`shutdown_grace`, and the app stops (MT sends in flight, the store). smsgw/workers.py runs
several of these processes on one port.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import signal

from aiohttp import web

from .adapters import TIMESTAMP_ADAPTERS
from .config import Config
from .descriptors import raise_open_file_limit
from .gateway import GATE, METRICS, create_app
from .listener import Listener
from .logs import configure_logging, get_logger

BACKLOG = 1024
LAST_WAIT = 1.0       # s for requests still answered when the shutdown grace is over

log = get_logger(component="gateway")


def serve(config: Config, *, db_path: str, host: str, port: int, reuse_port: bool = False,
          resume_pending: bool = True) -> None:
    """Run the gateway until SIGTERM or SIGINT, then stop taking messages, finish, flush.

    Prints `smsgw listening on http://HOST:PORT` on stdout once the port is bound (port 0
    picks a free one); logs go to stderr. `reuse_port` lets several workers share the port
    (smsgw.workers); `resume_pending` = False leaves MTs pending from earlier runs to worker 0.
    """
    configure_logging()
    # A fault SQLite cannot turn into an error (SIGBUS on its mapped -shm when the files change
    # under a transaction) leaves the stack on stderr rather than a silent death: code locations only.
    faulthandler.enable()
    file_limit = raise_open_file_limit()
    for carrier in config.carriers.values():
        if carrier.auth == "none":
            log.warning("carrier takes unsigned requests (auth = \"none\")", carrier=carrier.name)
        elif carrier.adapter in TIMESTAMP_ADAPTERS and not carrier.require_timestamp:
            log.warning("carrier takes signatures without X-Smsgw-Timestamp: a captured request replays "
                        "forever (set require_timestamp = true)", carrier=carrier.name)
    if not config.carriers:
        log.warning("no carrier configured: every /carriers/... request gets 404", config=config.source)
    # uvloop was measured (bench/e2e.py): no gain, the loop is not where the time goes.
    asyncio.run(_serve(config, db_path=db_path, host=host, port=port, reuse_port=reuse_port,
                       resume_pending=resume_pending, file_limit=file_limit))


async def _serve(config: Config, *, db_path: str, host: str, port: int, reuse_port: bool,
                 resume_pending: bool, file_limit: int) -> None:
    """Serve through a `Listener` (smsgw/listener.py). On SIGTERM/SIGINT: close the gate (new
    requests get 503 with Retry-After, on connections still accepted), wait up to
    `shutdown_grace` for the requests under way but stalled reads, then stop listening, close
    what is left, and let the app finish (MT sends in flight, the store)."""
    from .store import is_postgres

    limits = config.server
    # SQLite: worker 0 prunes; PostgreSQL: every gateway tries, one at a time (the store's prune lock)
    prune_daily = resume_pending or is_postgres(db_path)
    app = create_app(config, db_path=db_path, resume_pending=resume_pending, prune_daily=prune_daily)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=min(LAST_WAIT, limits.shutdown_grace))
    await runner.setup()
    assert runner.server is not None
    listener = Listener(runner.server, limits, file_limit=file_limit, metrics=app[METRICS])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):   # before "listening": a SIGTERM right after it drains too
        loop.add_signal_handler(signum, stop.set)
    try:
        bound_port = listener.start(host, port, backlog=BACKLOG, reuse_port=reuse_port)
        gc.collect()
        gc.freeze()   # start-up objects (grammar tables, metrics, config) out of every later collection
        shown_host = f"[{host}]" if ":" in host else host
        print(f"smsgw listening on http://{shown_host}:{bound_port}", flush=True)
        log.info("listening", host=host, port=bound_port, carriers=sorted(config.carriers),
                 max_connections=listener.cap, open_file_limit=file_limit)
        await stop.wait()
        app[GATE].open = False
        log.info("shutting down: no new messages, finishing those under way")
        await listener.drain(limits.shutdown_grace)
    finally:
        listener.close()
        await runner.cleanup()
    log.info("stopped")
