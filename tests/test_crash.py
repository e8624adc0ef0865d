"""A real `smsgw serve` killed with SIGKILL in the middle of a burst loses nothing it acknowledged.

On both backends (`records_db`: an SQLite file, and PostgreSQL when its programs are installed)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections import defaultdict
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from test_gateway import OWNER, SECRET, SSN, mo_body, records_db  # noqa: F401 (a fixture)

from smsgw.adapters.generic import sign

pytestmark = pytest.mark.slow

BURST = 300
KILL_AFTER = 100


class Carrier:
    """The carrier's MT endpoint: keeps every attempt; refuses the MTs `refuses` names (every other one
    while `flaky`)."""

    def __init__(self) -> None:
        self.flaky = True
        self.calls = 0
        self.attempts: list[dict] = []
        self.accepted: list[dict] = []
        self.app = web.Application()
        self.app.router.add_post("/mt", self.receive)

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        assert request.headers["X-Smsgw-Signature"] == sign(SECRET, body)
        mt = json.loads(body)
        self.attempts.append(mt)
        self.calls += 1
        if self.refuses(mt):
            return web.Response(status=503)
        self.accepted.append(mt)
        return web.Response(status=200)

    def refuses(self, mt: dict) -> bool:
        return self.flaky and self.calls % 2 == 1


async def start_server(db: str, config: Path, stderr) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smsgw", "serve", "--db", str(db), "--config", str(config), "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=stderr,
    )
    line = (await asyncio.wait_for(process.stdout.readline(), timeout=15)).decode()
    assert line.startswith("smsgw listening on http://127.0.0.1:"), line
    return process, line.split()[-1]


async def post(session: aiohttp.ClientSession, url: str, mo_id: str) -> tuple[int, dict]:
    body = mo_body(mo_id, text=f"BH QT {SSN}")
    headers = {"Content-Type": "application/json", "X-Smsgw-Signature": sign(SECRET, body)}
    async with session.post(f"{url}/carriers/generic/mo", data=body, headers=headers) as response:
        return response.status, await response.json()


def test_sigkill_mid_burst_then_restart_answers_every_acknowledged_mo(tmp_path, records_db, monkeypatch):
    # On PostgreSQL the restarted gateway takes the killed one's MTs over when their leases run out
    # (README, "Pending MTs across gateways"): 2 s leases here, as in tests/test_pg_faults.py.
    # SQLite ignores the variable (one gateway per file, its pending MTs resumed at start).
    monkeypatch.setenv("SMSGW_LEASE_SECONDS", "2")

    async def run():
        db, config, log = records_db, tmp_path / "smsgw.toml", tmp_path / "serve.log"
        carrier = Carrier()
        async with TestServer(carrier.app, host="127.0.0.1", port=0) as mt_server:
            config.write_text(
                "[carriers.generic]\n"
                f'secret = "{SECRET}"\nmode = "async"\nmt_url = "{mt_server.make_url("/mt")}"\n'
                "retry_initial = 0.05\nretry_max = 0.2\n"
                "[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n"
            )
            acked: dict[str, str] = {}
            with open(log, "wb") as stderr:
                process, url = await start_server(db, config, stderr)
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
                    async def one(n: int) -> None:
                        try:
                            status, answer = await post(session, url, f"burst-{n}")
                        except aiohttp.ClientError:
                            return
                        assert status == 202
                        acked[f"burst-{n}"] = answer["mo_id"]

                    burst = [asyncio.create_task(one(n)) for n in range(BURST)]
                    while len(acked) < KILL_AFTER:
                        await asyncio.sleep(0.001)
                    process.send_signal(signal.SIGKILL)
                    await process.wait()
                    await asyncio.gather(*burst)
                assert KILL_AFTER <= len(acked) < BURST

                carrier.flaky = False
                process, url = await start_server(db, config, stderr)
                async with aiohttp.ClientSession() as session:
                    for _ in range(1500):
                        answered = {mt["in_reply_to"] for mt in carrier.accepted}
                        if answered >= set(acked):
                            break
                        await asyncio.sleep(0.01)
                    assert set(acked) <= answered
                    ids_per_mo = defaultdict(set)
                    for mt in carrier.attempts:
                        ids_per_mo[mt["in_reply_to"]].add(mt["id"])
                        assert mt["to"] == OWNER and mt["from"] == "8079"
                    assert all(len(ids) == 1 for ids in ids_per_mo.values())
                    for carrier_id, mo_id in list(acked.items())[:20]:
                        assert await post(session, url, carrier_id) == (202, {"mo_id": mo_id})
                    async with session.get(f"{url}/healthz") as response:
                        assert response.status == 200
                process.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(process.wait(), timeout=20) == 0
            logged = log.read_text()
            assert OWNER not in logged and SSN not in logged
            assert '"event": "message"' in logged

    asyncio.run(run())


def test_sigterm_mid_burst_finishes_what_it_took_and_exits_cleanly(tmp_path, records_db):
    async def run():
        db, config = records_db, tmp_path / "smsgw.toml"
        config.write_text(f'[carriers.generic]\nsecret = "{SECRET}"\nmode = "sync"\n'
                                  '[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n')
        with open(tmp_path / "serve.log", "wb") as stderr:
            process, url = await start_server(db, config, stderr)
            answered: dict[str, dict] = {}
            statuses: list[int] = []
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
                async def one(n: int) -> None:
                    try:
                        status, answer = await post(session, url, f"term-{n}")
                    except aiohttp.ClientError:
                        return
                    statuses.append(status)
                    if status == 200:
                        answered[f"term-{n}"] = answer

                burst = [asyncio.create_task(one(n)) for n in range(BURST)]
                while len(answered) < KILL_AFTER:
                    await asyncio.sleep(0.001)
                process.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(process.wait(), timeout=20) == 0
                await asyncio.gather(*burst)
            assert all(status in (200, 503) for status in statuses)

            process, url = await start_server(db, config, stderr)
            async with aiohttp.ClientSession() as session:
                for carrier_id, answer in answered.items():
                    assert await post(session, url, carrier_id) == (200, answer)
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), timeout=20) == 0

    asyncio.run(run())


def test_sigterm_as_soon_as_listening_is_printed_still_stops_cleanly(tmp_path, records_db):
    """The signal handlers are in place before `smsgw listening` is printed: a supervisor that
    sends SIGTERM the moment it reads that line gets a clean stop (exit 0), not a kill."""
    async def run():
        db, config, log = records_db, tmp_path / "smsgw.toml", tmp_path / "serve.log"
        config.write_text(f'[carriers.generic]\nsecret = "{SECRET}"\nmode = "sync"\n')
        with open(log, "wb") as stderr:
            process, _url = await start_server(db, config, stderr)
            process.send_signal(signal.SIGTERM)
            return await asyncio.wait_for(process.wait(), timeout=30)
    assert asyncio.run(run()) == 0
    assert '"stopped"' in (tmp_path / "serve.log").read_text()
