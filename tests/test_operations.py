"""Operations against a real `smsgw serve` (CONTRACT §11): secrets from the environment or a file
reach the adapter and nowhere else; the request id goes back in X-Request-Id and follows an MO
to its MT; `smsgw db backup` during a burst gives a consistent store that serve opens."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from test_crash import Carrier
from test_gateway import OWNER, SECRET, SSN, make_records, mo_body

from smsgw.adapters.generic import sign
from smsgw.carrier import load_adapter
from smsgw.config import load_config

pytestmark = pytest.mark.slow

ENV_SECRET = "env-only-secret-4f1c9a"
FILE_SECRET = "file-only-secret-7b2e55"


async def start_server(db: Path, config: Path, stderr, env: dict[str, str] | None = None,
                       ) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smsgw", "serve", "--db", str(db), "--config", str(config), "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=stderr, env={**os.environ, **(env or {})})
    line = (await asyncio.wait_for(process.stdout.readline(), timeout=15)).decode()
    assert line.startswith("smsgw listening on http://127.0.0.1:"), line
    return process, line.split()[-1]


async def stop(process: asyncio.subprocess.Process) -> None:
    process.terminate()
    assert await asyncio.wait_for(process.wait(), timeout=30) == 0


def smsgw(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smsgw", *argv], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_secrets_from_environment_and_file_reach_the_adapter_and_never_config_check_logs_or_metrics(tmp_path):
    db, config, log = tmp_path / "records.db", tmp_path / "smsgw.toml", tmp_path / "serve.log"
    asyncio.run(make_records(db))
    (tmp_path / "secret").write_text(FILE_SECRET + "\n")
    config.write_text('[carriers.generic]\nmode = "sync"\n'                         # its secret: environment only
                      f'[carriers.other]\nmode = "sync"\nsecret_file = "{tmp_path / "secret"}"\n'
                      "[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n")
    env = {"SMSGW_CARRIERS__GENERIC__SECRET": ENV_SECRET}

    loaded = load_config(config, environ=env)
    assert load_adapter(loaded.carriers["generic"], shortcode="8079").config.secret == ENV_SECRET
    assert load_adapter(loaded.carriers["other"], shortcode="8079").config.secret == FILE_SECRET
    for flags in ([], ["--json"]):
        checked = smsgw("config", "check", "--config", str(config), *flags, env=env)
        assert checked.returncode == 0, checked.stderr
        assert ENV_SECRET not in checked.stdout + checked.stderr and FILE_SECRET not in checked.stdout
        assert checked.stdout.count("***") == 2
    assert json.loads(smsgw("config", "check", "--config", str(config), "--json", env=env).stdout
                      )["carriers"]["other"]["secret"] == "***"

    async def run() -> str:
        with open(log, "wb") as stderr:
            process, url = await start_server(db, config, stderr, env)
            async with aiohttp.ClientSession() as session:
                for carrier, secret in (("generic", ENV_SECRET), ("other", FILE_SECRET)):
                    body = mo_body(f"{carrier}-1")
                    async with session.post(f"{url}/carriers/{carrier}/mo", data=body, headers={
                            "Content-Type": "application/json", "X-Smsgw-Signature": sign(secret, body)}) as response:
                        assert response.status == 200, await response.text()
                async with session.post(f"{url}/carriers/generic/mo", data=mo_body("bad"), headers={
                        "Content-Type": "application/json", "X-Smsgw-Signature": sign("wrong", b"x")}) as response:
                    assert response.status == 401
                async with session.get(f"{url}/metrics") as response:
                    exposed = await response.text()
            await stop(process)
        return exposed

    exposed = asyncio.run(run())
    logged = log.read_text()
    assert '"event": "message"' in logged
    for secret in (ENV_SECRET, FILE_SECRET):
        assert secret not in exposed and secret not in logged


def test_request_id_goes_back_in_the_header_and_follows_the_mo_to_its_mt_and_its_delivery_report(tmp_path):
    db, config, log = tmp_path / "records.db", tmp_path / "smsgw.toml", tmp_path / "serve.log"
    asyncio.run(make_records(db))
    carrier = Carrier()
    carrier.flaky = False

    async def run() -> list[str]:
        headers_seen = []
        async with TestServer(carrier.app, host="127.0.0.1", port=0) as mt_server:
            config.write_text(f'[carriers.generic]\nsecret = "{SECRET}"\nmode = "async"\n'
                              f'mt_url = "{mt_server.make_url("/mt")}"\n')
            with open(log, "wb") as stderr:
                process, url = await start_server(db, config, stderr)
                async with aiohttp.ClientSession() as session:
                    for n, given in enumerate(["carrier-req-42", f"id {OWNER}", None]):
                        body = mo_body(f"rid-{n}", text=f"BH QT {SSN}")
                        headers = {"Content-Type": "application/json", "X-Smsgw-Signature": sign(SECRET, body)}
                        if given:
                            headers["X-Request-Id"] = given
                        async with session.post(f"{url}/carriers/generic/mo", data=body, headers=headers) as response:
                            assert response.status == 202
                            headers_seen.append(response.headers["X-Request-Id"])
                    async with session.get(f"{url}/healthz") as response:
                        assert response.headers["X-Request-Id"]
                    for _ in range(1000):
                        if len(carrier.accepted) >= 3:
                            break
                        await asyncio.sleep(0.01)
                    for mt in carrier.accepted:   # the carrier's delivery report of each, a request of its own
                        body = json.dumps({"id": mt["id"], "status": "delivered"}).encode()
                        async with session.post(f"{url}/carriers/generic/dlr", data=body, headers={
                                "Content-Type": "application/json", "X-Smsgw-Signature": sign(SECRET, body),
                                "X-Request-Id": f"dlr-{mt['id'][-8:]}"}) as response:
                            assert response.status == 200
                            assert response.headers["X-Request-Id"] == f"dlr-{mt['id'][-8:]}"
                await stop(process)
        return headers_seen

    seen = asyncio.run(run())
    assert seen[0] == "carrier-req-42"                               # the carrier's own id, kept
    assert seen[1] != f"id {OWNER}" and seen[2] and len(set(seen)) == 3   # an insane one or none: a new id
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    for request_id in seen:
        mine = [line for line in lines if line.get("request_id") == request_id]
        events = {line["event"] for line in mine}
        assert {"message", "mt sent"} <= events, (request_id, events)
        mo_ids = {line["mo_id"] for line in mine}
        assert len(mo_ids) == 1      # the summary line and the MT's send line name the same MO
        sent = next(line for line in mine if line["event"] == "mt sent")
        assert sent["mt_id"] in {mt["id"] for mt in carrier.accepted}
        # ... and from the MT to its delivery report, logged under the carrier's DLR request id
        (report,) = [line for line in lines if line["event"] == "delivery report" and line["mt_id"] == sent["mt_id"]]
        assert report["request_id"] == f"dlr-{sent['mt_id'][-8:]}" and report["state"] == "delivered"
    assert OWNER not in log.read_text()


def test_backup_during_a_burst_restores_every_mo_acknowledged_before_it_began(tmp_path):
    db, config, log = tmp_path / "records.db", tmp_path / "smsgw.toml", tmp_path / "serve.log"
    copy = tmp_path / "backup.db"
    asyncio.run(make_records(db))
    config.write_text(f'[carriers.generic]\nsecret = "{SECRET}"\nmode = "sync"\n'
                      "[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n")

    async def run() -> tuple[dict[str, str], int]:
        acked: dict[str, str] = {}
        with open(log, "wb") as stderr:
            process, url = await start_server(db, config, stderr)
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
                stop_burst = asyncio.Event()

                async def sender(lane: int) -> None:
                    n = 0
                    while not stop_burst.is_set():
                        body = mo_body(f"b-{lane}-{n}")
                        async with session.post(f"{url}/carriers/generic/mo", data=body, headers={
                                "Content-Type": "application/json", "X-Smsgw-Signature": sign(SECRET, body)}) as r:
                            assert r.status == 200
                            acked[f"b-{lane}-{n}"] = (await r.json())["mo_id"]
                        n += 1

                lanes = [asyncio.create_task(sender(lane)) for lane in range(16)]
                while len(acked) < 200:
                    await asyncio.sleep(0.005)
                before = dict(acked)
                backup = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "smsgw", "db", "backup", "--db", str(db), "--to", str(copy),
                    stderr=asyncio.subprocess.PIPE)
                _, err = await asyncio.wait_for(backup.communicate(), timeout=60)
                assert backup.returncode == 0, err
                during = len(acked) - len(before)
                stop_burst.set()
                await asyncio.gather(*lanes)
            await stop(process)
        return before, during

    before, during = asyncio.run(run())
    assert during > 0, "the burst went on while the backup ran"
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = {carrier_id: (mo_id, replies, billed) for carrier_id, mo_id, replies, billed in conn.execute(
            "SELECT m.carrier_id, m.id, (SELECT count(*) FROM mt_messages WHERE mo_id = m.id),"
            " (SELECT count(*) FROM billing_rows WHERE mo_id = m.id) FROM mo_messages AS m")}
        orphans = conn.execute("SELECT count(*) FROM mo_messages AS m WHERE NOT EXISTS"
                               " (SELECT 1 FROM mt_messages WHERE mo_id = m.id)").fetchone()[0]
    conn.close()
    for carrier_id, mo_id in before.items():
        assert rows[carrier_id] == (mo_id, 1, 1)
    assert orphans == 0   # consistent: no MO without its reply, whatever was in flight

    assert smsgw("db", "backup", "--db", str(db), "--to", str(copy)).returncode == 1   # never overwritten...
    assert smsgw("db", "backup", "--db", str(db), "--to", str(copy), "--force").returncode == 0   # ...unless asked

    async def restored() -> None:   # serve opens the copy and answers a carrier's retry from it
        with open(log, "ab") as stderr:
            process, url = await start_server(copy, config, stderr)
            carrier_id, mo_id = next(iter(before.items()))
            body = mo_body(carrier_id)
            async with aiohttp.ClientSession() as session:
                async with session.post(f"{url}/carriers/generic/mo", data=body, headers={
                        "Content-Type": "application/json", "X-Smsgw-Signature": sign(SECRET, body)}) as response:
                    assert response.status == 200 and (await response.json())["mo_id"] == mo_id
            await stop(process)

    asyncio.run(restored())
