"""The operator console (CONTRACT §9): server-rendered pages at /console/ on the gateway's own app.

    auth.py        passwords (argon2), sessions, CSRF tokens, the lockout, roles
    web.py         the request plumbing: `page(role)` checks, rendering, the audit, cookies
    sessions.py    login and logout
    charts.py      bar charts as SVG, drawn on the server
    daily.py       counts of whole days, kept once a day is over (the 30-day pages stay fast)
    overview.py    the overview: traffic per hour and day, share understood, billing, queues
    messages.py    search, one citizen's conversation, a number revealed (admin, audited)
    questions.py   the open questions and their answers (staff, audited); satisfaction
    reading.py     understanding, billing (CSV export: admin, audited), carriers
    corrections.py corrections taken up, one whole day at a time (the understanding page)
    sending.py     notices and batches: API batches' progress, notices by kind, opt-outs, holds
    simulator.py   type as a phone, see what the carrier would get back (test traffic)
    admin.py       accounts and the audit log (admin)
    templates/, static/   Jinja2 templates; one stylesheet and one small script, nothing external

`add_console(app, config, db_path)` adds the routes and the store to the gateway app;
`[console] enabled = false` leaves them out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from ..errors import Unavailable
from ..logs import get_logger

from ..config import Config
from ..store import open_console
from .corrections import warm as warm_corrections
from .daily import DailyCounts, warm
from .web import CONSOLE_DB, CONSOLE_STORE, DAILY, PREFIX

_HERE = Path(__file__).parent
log = get_logger(component="console")
WARM_STOP_SECONDS = 10.0   # at shutdown, for the query under way in the background counting


def add_console(app: web.Application, config: Config, db_path: str) -> None:
    from . import admin, messages, overview, questions, reading, sending, sessions, simulator

    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(_HERE / "templates"), autoescape=True,
                               undefined=jinja2.StrictUndefined)
    env.filters.update(overview.FILTERS)

    async def console_store(app: web.Application) -> AsyncIterator[None]:
        store = await open_console(db_path)
        app[CONSOLE_STORE] = store
        stop = asyncio.Event()
        warming = asyncio.create_task(_warm(store, app[DAILY], stop, frozenset(config.routes)),
                                      name="smsgw-console-warm")
        yield
        stop.set()   # it ends after its current query: a query cancelled midway could leave a connection behind
        try:
            await asyncio.wait_for(asyncio.shield(warming), WARM_STOP_SECONDS)
        except asyncio.TimeoutError:
            warming.cancel()
            await asyncio.gather(warming, return_exceptions=True)
        await store.close()

    app[CONSOLE_DB] = db_path
    app[DAILY] = DailyCounts()
    app.cleanup_ctx.append(console_store)
    app.router.add_static(f"{PREFIX}/static/", _HERE / "static", append_version=False)
    for module in (sessions, overview, messages, questions, reading, sending, simulator, admin):
        app.router.add_routes(module.routes)


async def _warm(store, daily: DailyCounts, stop: asyncio.Event, routes: frozenset[str]) -> None:
    """The days' counts, in the background at start (a failure only means the first page counts them)."""
    try:
        await warm(store, daily, stop)
        if not stop.is_set():
            await warm_corrections(store, daily, routes=routes)
    except (Unavailable, OSError) as exc:
        log.warning("console: the days' counts not prepared at start", reason=str(exc))
