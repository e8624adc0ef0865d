"""Dossier results (CONTRACT §7): an import that moves a dossier to needs_more, approved, rejected or
returned records the change; its holder gets one notice per dossier and status, from
`smsgw notify dossier-results` or from the running gateway within a minute.

On both backends (`db` / `records_db`: an SQLite file, and a PostgreSQL database when its programs
are installed)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from test_gateway import OWNER, SSN, make_records, records_db  # noqa: F401 (a fixture)

from smsgw import gsm
from smsgw.config import parse_config
from smsgw.gateway import STORE, create_app
from smsgw.importer import import_directory
from smsgw.replies import dossier_result_notice
from smsgw.store import DOSSIER_RESULTS, open_records

CODE = "04486.G/2019/08708"
OTHER = "04486.G/2019/08709"
NO_PHONE_SSN = "0220000002"
EVERY = 0.2   # s between the gateway's runs, in place of the default 30


def import_files(directory: Path, dossiers: list[tuple[str, str, str]]) -> Path:
    """persons.csv (the reference person, and one without a phone) and dossiers.csv of (code, ssn, status)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "persons.csv").write_text(
        "ssn,personal_id,full_name,date_of_birth,phone\n"
        f"{SSN},,Nguyễn Văn A,1990-01-01,{OWNER}\n{NO_PHONE_SSN},,Trần Thị B,1985-05-05,\n", encoding="utf-8")
    (directory / "dossiers.csv").write_text(
        "dossier_code,ssn,status,updated_at\n"
        + "".join(f"{code},{ssn},{status},2026-11-20\n" for code, ssn, status in dossiers), encoding="utf-8")
    return directory


def do_import(tmp_path: Path, db: str, name: str, dossiers: list[tuple[str, str, str]]) -> int:
    """Import the files into `db`; how many dossier results it recorded."""
    return asyncio.run(import_directory(import_files(tmp_path / name, dossiers), db)).results


async def unsettled(db: str) -> list[tuple[str, str]]:
    records = await open_records(db)
    try:
        return [(change.code, change.status) for change in await records.unsettled_dossier_changes()]
    finally:
        await records.close()


class Sink:
    """The carrier's MT endpoint on 127.0.0.1: every MT it is sent."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.app = web.Application()
        self.app.router.add_post("/mt", self.receive)

    async def receive(self, request: web.Request) -> web.Response:
        self.received.append(json.loads(await request.read()))
        return web.Response(status=200)


def carrier_config(mt_url: str, **notices) -> dict:
    return {"carriers": {"generic": {"secret": "k", "mode": "async", "mt_url": mt_url, "networks": ["*"]}},
            "notices": {"quiet_hours": "", "dossier_results_every": EVERY, **notices}}


@pytest.mark.parametrize("status", DOSSIER_RESULTS)
def test_each_result_is_worded_with_and_without_diacritics_within_three_sms(status):
    folded = dossier_result_notice(CODE, "Nguyễn Thị Phương Thảo", status)
    marked = dossier_result_notice(CODE, "Nguyễn Thị Phương Thảo", status, unicode=True)
    assert CODE in folded and "Nguyen Thi Phuong Thao" in folded and gsm.is_gsm7(folded)
    assert "Nguyễn Thị Phương Thảo" in marked and gsm.fold(marked) == folded
    assert gsm.measure(folded).segments == 1 and gsm.measure(marked).segments <= 3
    with pytest.raises(ValueError, match="no dossier result notice for status 'processing'"):
        dossier_result_notice(CODE, "A", "processing")


def test_an_import_records_the_changes_to_a_result_once_and_a_first_load_none(db, tmp_path):
    first = [(CODE, SSN, "received"), (OTHER, SSN, "approved")]
    assert do_import(tmp_path, db, "1", first) == 0                  # a first load: old results are no news
    assert do_import(tmp_path, db, "2", [(CODE, SSN, "needs_more"), (OTHER, SSN, "approved")]) == 1
    assert do_import(tmp_path, db, "3", [(CODE, SSN, "needs_more"), (OTHER, SSN, "approved")]) == 0
    assert do_import(tmp_path, db, "4", [(CODE, SSN, "processing")]) == 0   # not a result
    new = "04486.G/2019/08710"
    assert do_import(tmp_path, db, "5", [(CODE, SSN, "approved"), (new, NO_PHONE_SSN, "rejected")]) == 2
    assert asyncio.run(unsettled(db)) == [(CODE, "needs_more"), (CODE, "approved"), (new, "rejected")]


def test_notify_dossier_results_sends_one_notice_per_dossier_and_status(db, tmp_path):
    async def smsgw(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smsgw", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        return process.returncode, out.decode(), err.decode()

    do_import(tmp_path, db, "1", [(CODE, SSN, "received"), (OTHER, NO_PHONE_SSN, "received")])
    do_import(tmp_path, db, "2", [(CODE, SSN, "approved"), (OTHER, NO_PHONE_SSN, "rejected")])

    async def run():
        sink = Sink()
        async with TestServer(sink.app, host="127.0.0.1", port=0) as server:
            config = tmp_path / "smsgw.toml"
            config.write_text(f'[notices]\nquiet_hours = ""\n[carriers.generic]\nsecret = "k"\nmode = "async"\n'
                              f'mt_url = "{server.make_url("/mt")}"\nnetworks = ["*"]\n', encoding="utf-8")
            first = await smsgw("notify", "dossier-results", "--db", db, "--config", str(config))
            again = await smsgw("notify", "dossier-results", "--db", db, "--config", str(config))
            return sink.received, first, again

    received, first, again = asyncio.run(run())
    assert first[0] == 0 and first[1].splitlines() == [
        "notify dossier-results: 2 dossier changes to a result status",
        "  queued now: 1 (generic 1); queued by an earlier run: 0",
        "  not sent: 1 without a phone on file, 0 on a network no carrier takes, 0 opted out (BH TC)",
        "  delivery: 1 sent, 0 failed, 0 left pending for the gateway's outbox",
    ], first
    assert again[0] == 0 and "notify dossier-results: 0 dossier changes" in again[1]
    ((mt,),) = [received]
    assert (mt["to"], mt["message_type"], mt["in_reply_to"]) == (OWNER, 3, None)
    assert mt["text"] == f"Ho so {CODE} cua ong/ba Nguyen Van A da duoc duyet. Tran trong."
    assert asyncio.run(unsettled(db)) == []


def test_the_gateway_sends_a_dossier_result_within_its_interval_and_once(records_db, tmp_path):
    """A status change in an import produces exactly one notice from the running gateway; a second
    identical import none; a later result of the same dossier one more."""

    async def run():
        sink = Sink()
        async with TestServer(sink.app, host="127.0.0.1", port=0) as server:
            config = parse_config(carrier_config(str(server.make_url("/mt"))))
            app = create_app(config, db_path=records_db)
            async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
                await asyncio.to_thread(do_import, tmp_path, records_db, "1", [(CODE, SSN, "received")])
                changed_at = time.monotonic()
                assert await asyncio.to_thread(do_import, tmp_path, records_db, "2", [(CODE, SSN, "needs_more")]) == 1
                while not sink.received:
                    assert time.monotonic() - changed_at < 10, "no dossier result from the gateway"
                    await asyncio.sleep(0.02)
                took = time.monotonic() - changed_at
                assert await asyncio.to_thread(do_import, tmp_path, records_db, "3", [(CODE, SSN, "needs_more")]) == 0
                await asyncio.sleep(10 * EVERY)
                assert len(sink.received) == 1, "a second notice for the same dossier and status"
                assert await asyncio.to_thread(do_import, tmp_path, records_db, "4", [(CODE, SSN, "returned")]) == 1
                while len(sink.received) < 2:
                    assert time.monotonic() - changed_at < 20, "no notice of the dossier's next result"
                    await asyncio.sleep(0.02)
                await asyncio.sleep(5 * EVERY)
                billing = await client.app[STORE].billing()
        assert took < 5.0, f"sent {took:.2f} s after the import began (runs every {EVERY} s)"
        assert [mt["text"].split(" cua ong/ba ")[1] for mt in sink.received] == [
            "Nguyen Van A can bo sung giay to. Vui long lien he noi da nop ho so de duoc huong dan. Tran trong.",
            "Nguyen Van A da co ket qua va da duoc tra. Tran trong."]
        assert {mt["to"] for mt in sink.received} == {OWNER}
        assert [(row.kind, row.amount_vnd, row.message_type) for row in billing] == [("push", 0, 3)] * 2
        assert await unsettled(records_db) == []

    asyncio.run(run())


def test_a_dossier_result_in_quiet_hours_is_held_until_the_morning(records_db, tmp_path):
    from smsgw.clock import VIETNAM
    from smsgw.notices import NoticeSummary, queue_dossier_results
    from smsgw.store import open_messages
    from datetime import datetime

    do_import(tmp_path, records_db, "1", [(CODE, SSN, "received")])
    do_import(tmp_path, records_db, "2", [(CODE, SSN, "rejected")])
    night = datetime(2026, 12, 1, 23, 30, tzinfo=VIETNAM).timestamp()
    morning = datetime(2026, 12, 2, 7, 0, tzinfo=VIETNAM).timestamp()

    async def run():
        config = parse_config(carrier_config("http://127.0.0.1:9/mt", quiet_hours="21:00-07:00"))
        records, store = await open_records(records_db), await open_messages(records_db)
        summary = NoticeSummary("dossier_result", "")
        due = await queue_dossier_results(records, store, config, summary, now=night)
        await records.close()
        await store.close()
        return due, summary

    due, summary = asyncio.run(run())
    assert due == [] and (summary.held, summary.held_until) == (1, morning)
    assert asyncio.run(unsettled(records_db)) == []   # queued, held: the change is done with


def test_notify_refuses_a_database_whose_schema_is_older_naming_the_command_that_upgrades_it(tmp_path):
    import sqlite3
    import subprocess

    from smsgw.store.schema import CURRENT

    db = str(tmp_path / "old.db")
    asyncio.run(make_records(db))
    with sqlite3.connect(db) as conn:   # as a file made before the notices' step was
        conn.execute("DELETE FROM schema_version WHERE version > 1")
    done = subprocess.run([sys.executable, "-m", "smsgw", "notify", "dossier-results", "--db", db],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (
        1, f"smsgw: --db {db}: schema version 1, this smsgw needs {CURRENT}: run smsgw db migrate --db {db}\n")


@pytest.mark.slow
def test_a_real_serve_sends_the_result_of_a_real_import_once_across_a_restart(records_db, tmp_path):
    """`smsgw db import` and `smsgw serve` as processes: the serve sends the notice on its own; a
    second identical import, and a restart, send nothing more; SIGTERM stops it cleanly."""
    import signal

    from test_crash import start_server

    async def smsgw(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smsgw", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(process.communicate(), timeout=60)
        return process.returncode, err.decode()

    async def run():
        sink = Sink()
        async with TestServer(sink.app, host="127.0.0.1", port=0) as server:
            config = tmp_path / "smsgw.toml"
            config.write_text(f'[notices]\nquiet_hours = ""\ndossier_results_every = {EVERY}\n'
                              f'[carriers.generic]\nsecret = "k"\nmode = "async"\nmt_url = "{server.make_url("/mt")}"\n'
                              'networks = ["*"]\n', encoding="utf-8")
            imports = [import_files(tmp_path / name, [(CODE, SSN, status)])
                       for name, status in (("1", "received"), ("2", "approved"))]
            assert (await smsgw("db", "import", str(imports[0]), "--db", records_db))[0] == 0
            with open(tmp_path / "serve.log", "wb") as stderr:
                process, _ = await start_server(records_db, config, stderr)
                status, err = await smsgw("db", "import", str(imports[1]), "--db", records_db)
                assert status == 0 and "; 1 dossier results to notify" in err, err
                for _ in range(500):
                    if sink.received:
                        break
                    await asyncio.sleep(0.02)
                status, err = await smsgw("db", "import", str(imports[1]), "--db", records_db)
                assert status == 0 and "dossier results" not in err, err
                await asyncio.sleep(5 * EVERY)
                process.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(process.wait(), timeout=20) == 0
                process, _ = await start_server(records_db, config, stderr)
                await asyncio.sleep(5 * EVERY)
                process.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(process.wait(), timeout=20) == 0
        return sink.received

    received = asyncio.run(run())
    assert [(mt["to"], mt["text"]) for mt in received] == [
        (OWNER, f"Ho so {CODE} cua ong/ba Nguyen Van A da duoc duyet. Tran trong.")]
