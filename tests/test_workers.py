"""`smsgw serve --workers 2`: two real processes on one port and one store."""

from __future__ import annotations

import asyncio
import json
import os
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


def _total(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


def test_every_scrape_of_two_workers_counts_both(tmp_path):
    """Each scrape reaches one worker (a fresh connection: either one), and reports the MOs of
    both: the count equals the MOs answered so far on every scrape, and never goes down. The
    workers' shared metric files live in a directory of this run, removed at the end."""
    db, config, run_dir = tmp_path / "records.db", tmp_path / "smsgw.toml", tmp_path / "run"
    run_dir.mkdir()
    config.write_text(f'[carriers.generic]\nsecret = "{SECRET}"\nmode = "sync"\n'
                      '[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n')

    async def run():
        await make_records(db)
        with open(tmp_path / "serve.log", "wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "smsgw", "serve", "--db", str(db), "--config", str(config), "--port", "0",
                "--workers", "2", stdout=asyncio.subprocess.PIPE, stderr=log,
                env={**os.environ, "RUNTIME_DIRECTORY": str(run_dir)})
        try:
            line = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode()
            url = line.split()[3]
            fresh = aiohttp.TCPConnector(force_close=True)   # a new connection each time: either worker takes it
            async with aiohttp.ClientSession(connector=fresh, timeout=aiohttp.ClientTimeout(total=10)) as session:
                async def post(mo_id: str) -> None:
                    body = mo_body(mo_id, text=f"BH QT {SSN}")
                    async with session.post(f"{url}/carriers/generic/mo", data=body, headers={
                            "Content-Type": "application/json", "X-Smsgw-Signature": sign(SECRET, body)}) as r:
                        assert r.status == 200

                async def scrape() -> str:
                    async with session.get(f"{url}/metrics") as r:
                        assert r.status == 200
                        return await r.text()

                seen = []
                for round_ in range(4):
                    await asyncio.gather(*(post(f"r{round_}-{n}") for n in range(10)))
                    for _ in range(5):
                        text = await scrape()
                        seen.append(_total(text, "smsgw_messages_total"))
                        assert seen[-1] == 10 * (round_ + 1), seen
                        assert _total(text, "smsgw_request_duration_seconds_count", route="/carriers/{name}/mo") == 10 * (round_ + 1)
                assert seen == sorted(seen)
            (shared,) = run_dir.iterdir()
            writers = {path.name for path in shared.glob("counter_*.db")}
            assert len(writers) == 2, writers   # both workers counted (one file of counters each)
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), timeout=30) == 0
        finally:
            if process.returncode is None:   # a failed assertion: SIGTERM, which the supervisor passes on to
                process.send_signal(signal.SIGTERM)   # its workers (SIGKILL would leave them running)
                try:
                    await asyncio.wait_for(process.wait(), timeout=15)
                except asyncio.TimeoutError:
                    process.kill()
                    await process.wait()
        assert list(run_dir.iterdir()) == []   # the run's metric files removed with it

    asyncio.run(run())
    lines = [json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines() if line.startswith("{")]
    answered = [line["worker"] for line in lines if line["event"] == "message"]
    assert len(answered) == 40 and set(answered) == {0, 1}   # each line says which worker logged it


@pytest.mark.parametrize("db, resuming", [("/var/lib/smsgw/smsgw.db", [True, False, False]),
                                          ("postgresql://smsgw@db1/smsgw", [True, True, True])])
def test_on_postgresql_every_worker_claims_mts_on_sqlite_worker_0_only(monkeypatch, db, resuming):
    # SQLite's outbox has one owner (worker 0 resumes what a previous run left); on PostgreSQL
    # each worker is a gateway like any other, claiming free MTs under leases (SKIP LOCKED)
    from smsgw import server, workers
    from smsgw.config import parse_config

    started = []
    monkeypatch.setattr(workers, "pin_to_one_core", lambda index=None: None)
    monkeypatch.setattr(server, "serve", lambda config, **options: started.append(options["resume_pending"]))
    for index in range(3):
        workers.serve_worker(parse_config({}), db_path=db, host="127.0.0.1", port=8079, index=index, count=3)
    assert started == resuming


def _children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return {int(child) for child in listing.read().split()}


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"   # a zombie has stopped
    except FileNotFoundError:
        return True


def test_workers_stop_when_their_supervisor_is_killed(tmp_path):
    """SIGKILL of the supervisor (no chance to forward anything): its workers stop by themselves and
    the port is free for the gateway a process manager starts again."""
    db, config = tmp_path / "records.db", tmp_path / "smsgw.toml"
    config.write_text(f'[carriers.generic]\nsecret = "{SECRET}"\nmode = "sync"\n')

    async def run():
        await make_records(db)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smsgw", "serve", "--db", str(db), "--config", str(config), "--port", "0",
            "--workers", "2", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        workers: set[int] = set()
        try:
            line = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode()
            port = int(line.split()[3].rsplit(":", 1)[1])
            workers = _children(process.pid)
            assert len(workers) == 2
            process.kill()
            await process.wait()
            for _ in range(300):   # 30 s at most
                if all(_gone(pid) for pid in workers):
                    break
                await asyncio.sleep(0.1)
            stopped = {pid for pid in workers if _gone(pid)}
            refused = False
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
            except ConnectionRefusedError:
                refused = True
            return workers, stopped, refused
        finally:
            for pid in workers:
                if not _gone(pid):
                    os.kill(pid, signal.SIGKILL)

    workers, stopped, refused = asyncio.run(run())
    assert stopped == workers and refused
