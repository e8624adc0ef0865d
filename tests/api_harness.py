"""What the API's tests share: a local carrier sink, a callback receiver, a gateway with a key."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from smsgw.adapters.generic import sign
from smsgw.api import API_STORE
from smsgw.api_keys import create_key
from smsgw.config import parse_config
from smsgw.gateway import create_app

SECRET = "s3cret"
PHONE = "0912345678"          # Viettel
MSISDN = "84912345678"


class Sink:
    """A carrier's mt_url on 127.0.0.1: records every MT posted, answers `status` (200 by default)."""

    def __init__(self) -> None:
        self.attempts: list[dict] = []
        self.accepted: list[dict] = []
        self.status = 200
        self.arrived = asyncio.Event()

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        assert request.headers["X-Smsgw-Signature"] == sign(SECRET, body)
        mt = json.loads(body)
        self.attempts.append(mt)
        if self.status == 200:
            self.accepted.append(mt)
            self.arrived.set()
        return web.Response(status=self.status)

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        async def enough() -> None:
            while len(self.accepted) < count:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(enough(), timeout)


@asynccontextmanager
async def serving(app: web.Application):
    async with TestServer(app, host="127.0.0.1", port=0) as server:
        yield server


@asynccontextmanager
async def carrier_sink():
    sink = Sink()
    app = web.Application()
    app.router.add_post("/mt", sink.receive)
    async with serving(app) as server:
        sink.url = str(server.make_url("/mt"))
        yield sink


@asynccontextmanager
async def api_gateway(db: str, sink: Sink, *, key_classes=("otp", "notice", "info"), rate: int = 0,
                      long_messages: bool = False, carrier: dict | None = None, notices: dict | None = None,
                      make_key: bool = True):
    """A gateway on `db` (migrated) sending to `sink`; yields (client, headers with a fresh key, key secret)."""
    carriers = {"generic": {"secret": SECRET, "mode": "async", "mt_url": sink.url, "networks": ["*"],
                            "retry_initial": 0.05, "retry_max": 0.2, **(carrier or {})}}
    config = parse_config({"carriers": carriers, "protection": {"lookups_per_hour": 0, "repeat_limit": 0},
                           "notices": {"quiet_hours": "", **(notices or {})}})
    app = create_app(config, db_path=db)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        if not make_key:
            yield client, {}, ""
            return
        key, secret = await create_key(client.app[API_STORE], "bank", classes=key_classes, rate=rate,
                                       long_messages=long_messages)
        yield client, {"Authorization": f"Bearer {key}"}, secret


async def opt_out(db: str, msisdn: str) -> None:
    """What BH TC leaves in the store (SHARED-INTERFACES §1): a row in opt_outs."""
    import time

    if db.startswith("postgresql://"):
        import asyncpg

        conn = await asyncpg.connect(db)
        try:
            await conn.execute("INSERT INTO opt_outs (phone, since) VALUES ($1, $2)", msisdn, time.time())
        finally:
            await conn.close()
    else:
        import sqlite3

        conn = sqlite3.connect(db)
        with conn:
            conn.execute("INSERT INTO opt_outs (phone, since) VALUES (?, ?)", (msisdn, time.time()))
        conn.close()


async def mt_hold(db: str, mt_id: str) -> tuple[int, float | None]:
    """(lane, not_before) of an MT as stored."""
    query = "SELECT lane, not_before FROM mt_messages WHERE id = {}"
    if db.startswith("postgresql://"):
        import asyncpg

        conn = await asyncpg.connect(db)
        try:
            return tuple(await conn.fetchrow(query.format("$1"), mt_id))
        finally:
            await conn.close()
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return conn.execute(query.format("?"), (mt_id,)).fetchone()
    finally:
        conn.close()
