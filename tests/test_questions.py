"""`smsgw questions list|answer` with a real `smsgw serve` and a carrier's MT sink, on both backends:
a staff answer reaches the carrier exactly once, also when it races a restart of the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from test_crash import Carrier, start_server
from test_gateway import OWNER, SECRET, mo_body, records_db  # noqa: F401 (a fixture)

from smsgw.adapters.generic import sign

pytestmark = pytest.mark.slow

ANSWER = "Ban mang CCCD den dai ly thu BHXH gan nha de lam lai so."


class Sink(Carrier):
    """The carrier's MT endpoint: keeps every attempt; refuses the answers while `refuse_answers`."""

    def __init__(self) -> None:
        super().__init__()
        self.flaky = False
        self.refuse_answers = False

    def refuses(self, mt: dict) -> bool:
        return self.refuse_answers and mt["text"].startswith("Tra loi")

    def answers(self, accepted: bool = True) -> list[dict]:
        return [mt for mt in (self.accepted if accepted else self.attempts) if mt["text"].startswith("Tra loi")]


async def smsgw(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "smsgw", *args,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode, out.decode(), err.decode()


async def ask(url: str, mo_id: str, text: str) -> int:
    body = mo_body(mo_id, text=text)
    headers = {"Content-Type": "application/json", "X-Smsgw-Signature": sign(SECRET, body)}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/carriers/generic/mo", data=body, headers=headers) as response:
            return response.status


async def until(condition, seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=30)


async def kill_left(process: asyncio.subprocess.Process | None) -> None:
    if process is not None and process.returncode is None:
        process.kill()
        await asyncio.wait_for(process.wait(), timeout=30)


def write_config(path, sink_url: str) -> None:
    path.write_text("[carriers.generic]\n"
                    f'secret = "{SECRET}"\nmode = "async"\nmt_url = "{sink_url}"\n'
                    "retry_initial = 0.05\nretry_max = 0.2\n"
                    "[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n")


async def asked(db: str, config, stderr, sink: Sink, count: int) -> tuple[asyncio.subprocess.Process, list[str]]:
    """A gateway serving, and `count` questions asked through it, acknowledged at the sink: their numbers."""
    process, url = await start_server(db, config, stderr)
    for n in range(count):
        assert await ask(url, f"hoi-{n}", f"BH HOI Tôi mất sổ BHXH, câu {n}?") == 202
    await until(lambda: len(sink.accepted) >= count)
    numbers = [re.search(r"cau hoi so (Q\d+)\.", mt["text"]).group(1) for mt in sink.accepted[:count]]
    return process, numbers


@contextlib.asynccontextmanager
async def carrier_and_config(tmp_path) -> AsyncIterator[tuple[Sink, Path, BinaryIO]]:
    """A carrier sink on 127.0.0.1, a gateway config sending to it, and the file for serve's log."""
    sink = Sink()
    config = tmp_path / "smsgw.toml"
    async with TestServer(sink.app, host="127.0.0.1", port=0) as server:
        write_config(config, str(server.make_url("/mt")))
        with open(tmp_path / "serve.log", "wb") as stderr:
            yield sink, config, stderr


def test_an_answer_racing_a_restart_of_serve_reaches_the_carrier_once(tmp_path, records_db, monkeypatch):
    monkeypatch.setenv("SMSGW_LEASE_SECONDS", "2")   # PostgreSQL: a taken-over lease would show within the test

    async def run():
        async with carrier_and_config(tmp_path) as (sink, config, stderr):
            process = None
            try:
                process, numbers = await asked(records_db, config, stderr, sink, 3)
                for delay, number in zip((0.0, 0.05, 0.2), numbers):
                    answering = asyncio.create_task(smsgw("questions", "answer", number, ANSWER, "--by", "lan",
                                                          "--db", records_db, "--config", str(config)))
                    await asyncio.sleep(delay)
                    await stop(process)                        # the restart races the answer
                    process, _ = await start_server(records_db, config, stderr)
                    code, out, err = await answering
                    assert code == 0, err
                    assert out.startswith(f"{number} answered by lan: 1 SMS to generic, sent"), out
                await until(lambda: len(sink.answers()) >= 3)
                await asyncio.sleep(3.0)                       # two leases: a second send would be here by now
                await stop(process)
                again = await smsgw("questions", "answer", numbers[0], "other", "--db", records_db,
                                    "--config", str(config))
                listed = await smsgw("questions", "list", "--db", records_db)
                opened = await smsgw("questions", "list", "--open", "--db", records_db)
            finally:   # a failed assertion must not leave a gateway running
                await kill_left(process)
        return sink, numbers, again, listed, opened

    sink, numbers, again, listed, opened = asyncio.run(run())
    answers = sink.answers(accepted=False)
    assert sorted(mt["text"] for mt in answers) == sorted(
        f"Tra loi cau hoi {number}: {ANSWER} Danh gia: soan BH DG <1-5> gui 8079." for number in numbers)
    assert len({mt["id"] for mt in answers}) == 3
    assert all((mt["to"], mt["from"], mt["message_type"]) == (OWNER, "8079", 3) for mt in answers)
    assert again[0] == 1 and re.fullmatch(
        rf"smsgw: {numbers[0]} was answered already by lan at \d{{4}}-\d\d-\d\d \d\d:\d\d \(Vietnam time\)\n", again[2])
    assert listed[0] == 0 and len(listed[1].splitlines()) == 3 and "answered by lan" in listed[1]
    assert OWNER not in listed[1] and "Tôi mất sổ BHXH, câu 0?" in listed[1]
    assert opened[1] == "" and opened[2] == "questions: 0 open\n"


def test_an_answer_the_carrier_refuses_for_now_is_delivered_by_the_gateway(tmp_path, records_db, monkeypatch):
    monkeypatch.setenv("SMSGW_LEASE_SECONDS", "2")

    async def run():
        async with carrier_and_config(tmp_path) as (sink, config, stderr):
            process = None
            try:
                process, (number,) = await asked(records_db, config, stderr, sink, 1)
                sink.refuse_answers = True
                code, out, err = await smsgw("questions", "answer", number, ANSWER, "--db", records_db,
                                             "--config", str(config))
                assert code == 0 and ", pending (the gateway's outbox retries it)" in out, (out, err)
                sink.refuse_answers = False
                # the running gateway takes it: PostgreSQL at once (the hand-over notifies), SQLite
                # within handover.LEFT_OVER_INTERVAL
                await until(lambda: len(sink.answers()) == 1)
                await asyncio.sleep(1.0)
                await stop(process)
            finally:   # a failed assertion must not leave a gateway running
                await kill_left(process)
        return sink

    sink = asyncio.run(run())
    (delivered,) = sink.answers()
    attempts = sink.answers(accepted=False)
    assert len(attempts) >= 2 and {mt["id"] for mt in attempts} == {delivered["id"]}


def test_a_question_number_is_q_and_digits_0_to_9():
    from smsgw.store.messages import question_digits

    assert [question_digits(n) for n in ("Q12", "q12", "12")] == [12, 12, 12]
    assert [question_digits(n) for n in ("Q\u00b3", "Q\u0663", "Q", "Q-1", "Q1.5")] == [None] * 5   # '³', '٣'


def test_answer_refusals_name_what_is_wrong(tmp_path):
    db = tmp_path / "records.db"

    async def run():
        seeded = await smsgw("db", "seed", "--db", str(db), "--persons", "5")
        assert seeded[0] == 0
        sent = await smsgw("send", "--db", str(db), "--from", "0912345678", "BH HOI luong huu tinh the nao")
        return (json.loads(sent[1]),
                await smsgw("questions", "answer", "Q99", "x", "--db", str(db)),
                await smsgw("questions", "answer", "Q1", "  ", "--db", str(db)),
                await smsgw("questions", "answer", "Q1", "x", "--db", str(db)))

    sent, unknown, empty, no_carrier = asyncio.run(run())
    assert sent["command"] == "HOI" and "cau hoi so Q1." in sent["reply"]
    assert unknown[:2] == (1, "") and unknown[2] == f"smsgw: no question Q99 in {db}\n"
    assert empty[2] == "smsgw: the answer is empty\n"
    assert no_carrier[2].startswith("smsgw: Q1 came by carrier 'local', which the configuration does not have")
