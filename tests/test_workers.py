"""`smsgw serve --workers 2`: two real processes on one port and one store."""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp
import pytest
from test_gateway import SECRET, SSN, make_records, mo_body

from smsgw.adapters.generic import sign
from smsgw.store import SqliteMessageStore

pytestmark = pytest.mark.slow


def test_two_workers_share_the_port_and_answer_a_retry_once(tmp_path):
    db, config = tmp_path / "records.db", tmp_path / "smsgw.toml"
    config.write_text(f'[carriers.generic]\nsecret = "{SECRET}"\nmode = "sync"\n'
                                  '[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n')

    async def run():
        await make_records(db)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smsgw", "serve", "--db", str(db), "--config", str(config), "--port", "0",
            "--workers", "2", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        try:
            line = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode()
            assert "(2 workers)" in line, line
            url = line.split()[3]

            async def post(mo_id: str) -> dict:
                body = mo_body(mo_id, text=f"BH QT {SSN}")
                headers = {"Content-Type": "application/json", "X-Smsgw-Signature": sign(SECRET, body),
                           "Connection": "close"}   # a new connection each time: either worker may take it
                async with aiohttp.ClientSession() as session:
                    async with session.post(f"{url}/carriers/generic/mo", data=body, headers=headers) as r:
                        assert r.status == 200
                        return await r.json()

            fresh = await asyncio.gather(*(post(f"m{n}") for n in range(40)))
            assert all(answer["replies"][0]["message_type"] == 1 for answer in fresh)
            retries = await asyncio.gather(*(post("same") for _ in range(20)))
            assert len({answer["mo_id"] for answer in retries}) == 1
            assert len({answer["replies"][0]["id"] for answer in retries}) == 1

            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), timeout=30) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        store = await SqliteMessageStore.open(str(db))
        try:
            rows = await store.billing()
        finally:
            await store.close()
        assert len(rows) == 41 and sum(row.amount_vnd for row in rows) == 41_000

    asyncio.run(run())
