"""The message store's files failing under a running gateway: 503 and a reason, never a lost ack, never SIGBUS.

Real `smsgw serve` processes (tests/test_crash.py's), real files: a small tmpfs filled up, the
database deleted or replaced, the files made immutable with chattr. The tmpfs and chattr need
root; the tests that need them say so when they skip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest
from test_crash import post, start_server
from test_gateway import SECRET, gateway, make_records, mo_body, post_mo

pytestmark = pytest.mark.slow


def _config(path: Path, mode: str) -> Path:
    path.write_text(f'[carriers.generic]\nsecret = "{SECRET}"\nmode = "{mode}"\nmt_url = "http://127.0.0.1:9/mt"\n'
                    "[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n")
    return path


async def _health(session: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    async with session.get(f"{url}/healthz") as response:
        return response.status, await response.json()


async def _first_retry_recorded(session: aiohttp.ClientSession, url: str) -> None:
    """Until the outbox has recorded the first failed attempt of an MT (the retry counter moves
    after the store's write); the next attempt is a second later (retry_initial)."""
    deadline = asyncio.get_running_loop().time() + 10
    while asyncio.get_running_loop().time() < deadline:
        async with session.get(f"{url}/metrics") as response:
            if 'smsgw_mt_retries_total{carrier="generic"} 1.0' in await response.text():
                return
        await asyncio.sleep(0.02)
    pytest.fail("the MT's first attempt was not recorded within 10 s")


async def _stop(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), timeout=20)


@contextmanager
def small_tmpfs(where: Path, size: str):
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def _chattr(flag: str, *paths: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


@pytest.fixture
def chattr_works(tmp_path):
    probe = tmp_path / "chattr-probe"
    probe.touch()
    if shutil.which("chattr") is None:
        pytest.skip("no chattr")
    try:
        _chattr("+i", probe)
    except subprocess.CalledProcessError as error:
        pytest.skip(f"chattr +i does not work here: {error.stderr.decode().strip()}")
    _chattr("-i", probe)


def test_healthz_fails_while_the_disk_is_full_and_recovers_when_space_returns(tmp_path):
    """The probe writes and commits: an empty transaction commits on a full disk, an MO does not."""
    async def run(disk: Path):
        async with gateway(disk) as client:
            assert (await post_mo(client, mo_body("before-full")))[0] == 200
            assert (await client.get("/healthz")).status == 200
            filler = disk / "filler"
            with open(filler, "wb") as out, pytest.raises(OSError):
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            status, answer = await post_mo(client, mo_body("while-full"))
            assert status == 503 and "full" in answer["error"]
            health = await client.get("/healthz")
            assert health.status == 503
            assert "full" in (await health.json())["store"]
            filler.unlink()
            assert (await client.get("/healthz")).status == 200
            assert (await post_mo(client, mo_body("while-full")))[0] == 200

    with small_tmpfs(tmp_path / "disk", "3m") as disk:
        asyncio.run(run(disk))


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_deleted_or_replaced_database_gets_503_and_no_message_is_acknowledged_into_it(tmp_path, how):
    async def run():
        db, config, log = tmp_path / "records.db", _config(tmp_path / "smsgw.toml", "sync"), tmp_path / "serve.log"
        await make_records(db)
        with open(log, "wb") as stderr:
            process, url = await start_server(db, config, stderr)
            async with aiohttp.ClientSession() as session:
                assert (await post(session, url, "before"))[0] == 200
                if how == "deleted":
                    for suffix in ("", "-wal", "-shm"):
                        os.unlink(f"{db}{suffix}")
                else:   # a restore moved over it: the same name, another file
                    await make_records(tmp_path / "restored.db")
                    os.replace(tmp_path / "restored.db", db)
                statuses = [(await post(session, url, f"after-{n}"))[0] for n in range(20)]
                assert statuses == [503] * 20
                status, health = await _health(session, url)
                assert status == 503 and how in health["store"] and str(db) in health["store"]
            assert await _stop(process) == 0
        assert log.read_text().count("message store refuses writes") == 1

        if how == "deleted":
            await make_records(db)
        with open(log, "ab") as stderr:   # the operator's restart opens the path anew
            process, url = await start_server(db, config, stderr)
            async with aiohttp.ClientSession() as session:
                for n in range(20):
                    status, answer = await post(session, url, f"after-{n}")
                    assert status == 200 and answer["replies"]
                assert (await _health(session, url))[0] == 200
            assert await _stop(process) == 0

    asyncio.run(run())


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_immutable_store_files_get_503_not_sigbus_and_the_gateway_recovers(tmp_path, chattr_works, mode):
    """chattr +i on the database, -wal and -shm right after a commit: SQLite's next write to its
    shared memory (-shm, mapped) used to be a SIGBUS that killed the gateway without a log line."""
    async def run():
        db, config, log = tmp_path / "records.db", _config(tmp_path / "smsgw.toml", mode), tmp_path / "serve.log"
        await make_records(db)
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        accepted = 202 if mode == "async" else 200
        with open(log, "wb") as stderr:
            process, url = await start_server(db, config, stderr)
            try:
                async with aiohttp.ClientSession() as session:
                    assert (await post(session, url, "before"))[0] == accepted
                    if mode == "async":   # its MT's first attempt fails (port 9): wait until that is written
                        await _first_retry_recorded(session, url)
                    _chattr("+i", *files)   # between transactions: a change inside one is beyond any check
                    try:
                        statuses = [(await post(session, url, f"locked-{n}"))[0] for n in range(20)]
                        status, health = await _health(session, url)
                    finally:
                        _chattr("-i", *files)
                    assert statuses == [503] * 20
                    assert status == 503 and "immutable" in health["store"]
                    assert process.returncode is None
                    await asyncio.sleep(0.15)   # the refusal is checked again after 0.1 s
                    assert (await post(session, url, "locked-0"))[0] == accepted
                    assert (await _health(session, url))[0] == 200
            except aiohttp.ClientError:
                await asyncio.wait_for(process.wait(), timeout=5)
                pytest.fail(f"the gateway died: exit status {process.returncode}")
            assert await _stop(process) == 0
        logged = log.read_text()
        assert logged.count("message store refuses writes") == 1
        assert logged.count("message store takes writes again") == 1

    asyncio.run(run())


def test_the_stores_line_about_a_refused_batch_names_the_requests_it_failed(tmp_path, monkeypatch):
    """From the carrier's request id to the store's own line: the writer runs each operation in
    its request's log context, and its line about a failed batch lists their request ids."""
    from structlog.testing import capture_logs

    from smsgw.api_callbacks import CallbackSender
    from test_gateway import sign

    # The gateway's own periodic writes (the API's callback poll every 0.2 s, the look for MTs
    # other processes left every 5 s) would find the deleted file first when one lands between
    # the unlink and the MO (their line names no request): this test runs without them.
    async def idle(*args, **kwargs) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(CallbackSender, "start", lambda self: None)
    monkeypatch.setattr("smsgw.gateway.take_left_over", idle)

    async def run(folder):
        async with gateway(folder) as client:
            async def post(mo_id: str, request_id: str):
                body = mo_body(mo_id)
                return await client.post("/carriers/generic/mo", data=body, headers={
                    "Content-Type": "application/json", "X-Smsgw-Signature": sign(SECRET, body),
                    "X-Request-Id": request_id})

            assert (await post("before", "carrier-req-1")).status == 200
            for suffix in ("", "-wal", "-shm"):
                os.unlink(f"{folder / 'records.db'}{suffix}")
            with capture_logs() as lines:
                refused = await post("after", "carrier-req-2")
            assert refused.status == 503 and refused.headers["X-Request-Id"] == "carrier-req-2"
            return lines

    # A periodic write of the gateway's own that lands between the unlink and the MO finds the
    # deleted file first (its line names no request): another try, on a fresh store.
    for attempt in range(3):
        folder = tmp_path / str(attempt)
        folder.mkdir()
        lines = asyncio.run(run(folder))
        (store_line,) = [line for line in lines if line["event"].startswith("message store refuses writes")]
        assert "deleted" in store_line["reason"] and set(store_line["request_ids"]) <= {"carrier-req-2"}
        if store_line["request_ids"]:
            break
    assert store_line["request_ids"] == ["carrier-req-2"]
