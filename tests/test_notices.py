"""Notices end to end: records -> `notify` -> the durable outbox -> three carriers' HTTP endpoints."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from contextlib import AsyncExitStack
from datetime import date
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from test_gateway import post_mo

from smsgw.adapters.generic import sign
from smsgw.commands import Month
from smsgw.config import ConfigError, parse_config
from smsgw.gateway import STORE, create_app
from smsgw.notices import CARD_EXPIRY, PAYMENT_REMINDER, notice_adapters, notify
from smsgw.store import SqliteStore

TODAY = date(2026, 11, 23)
EXPIRY = date(2026, 12, 23)          # TODAY + 30 days
SECRET = "k"
# (ssn, name, phone, network)
HOLDERS = [
    ("0100000001", "Nguyễn Văn An", "84862345678", "Viettel"),
    ("0100000002", "Trần Thị Bích", "84912345678", "Vinaphone"),
    ("0100000003", "Lê Đức Hùng", "84702345678", "MobiFone"),
    ("0100000004", "Phạm Thu Hà", "84562345678", "Vietnamobile"),
    ("0100000005", "Võ Minh Tâm", None, None),
]


class Sink:
    """A carrier's MT endpoint: keeps what it is sent; answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[dict] = []
        self.app = web.Application()
        self.app.router.add_post("/mt", self.receive)

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        assert request.headers["X-Smsgw-Signature"] == sign(SECRET, body)
        self.received.append(json.loads(body))
        return web.Response(status=self.status)


async def make_records(path: Path) -> None:
    store = await SqliteStore.open(path, create=True)
    async with store.transaction():
        await store.write(
            persons=[(ssn, None, name, "1980-01-01", phone) for ssn, name, phone, _ in HOLDERS],
            cards=[(f"GD479{ssn}", ssn, "2025-12-24", EXPIRY.isoformat(), "BV") for ssn, *_ in HOLDERS]
            + [("HC4010100000001", "0100000001", "2026-01-01", "2026-12-24", "BV")],   # a day later: not selected
            periods=[("0100000001", "BHXH", "Cong ty A", Month(2010, 1).index, Month(2019, 6).index),
                     ("0100000001", "BHXH", "Tu nguyen", Month(2019, 1).index, Month(2026, 11).index),
                     ("0100000001", "BHTN", "Cong ty A", Month(2010, 1).index, Month(2019, 6).index)],
            paid_up=[("0100000001", "2026-11-30"), ("0100000002", "2026-12-31"), ("0100000005", "2026-11-15")],
        )
    await store.close()


def config_for(sinks: dict[str, Sink], servers: dict[str, TestServer], **notices) -> object:
    """The three carriers of `sinks`; no quiet hours unless `notices` sets them (tests/test_quiet_hours.py)."""
    notices.setdefault("quiet_hours", "")
    networks = {"viettel": ["Viettel"], "vinaphone": ["VinaPhone"], "mobifone": ["Mobifone"]}
    carriers = {name: {"secret": SECRET, "mode": "async", "mt_url": str(servers[name].make_url("/mt")),
                       "networks": networks[name], "retry_initial": 60.0} for name in sinks}
    return parse_config({"carriers": carriers, "notices": {"sender": "BHXHVN", "agent": "Đại lý Tân Phú",
                                                           **notices}})


async def start_sinks(stack: AsyncExitStack, **statuses: int) -> tuple[dict[str, Sink], dict[str, TestServer]]:
    sinks = {name: Sink(status) for name, status in statuses.items()}
    servers = {name: await stack.enter_async_context(TestServer(sink.app, host="127.0.0.1", port=0))
               for name, sink in sinks.items()}
    return sinks, servers


async def records_and_carriers(stack: AsyncExitStack, db, **statuses: int) -> tuple[dict[str, Sink], object]:
    """The records of `make_records` in `db`, a sink per carrier answering its status, and their config."""
    await make_records(db)
    sinks, servers = await start_sinks(stack, **statuses)
    return sinks, config_for(sinks, servers)


def test_card_expiry_notices_go_once_each_to_the_carrier_of_each_number(tmp_path):
    db = tmp_path / "records.db"

    async def run():
        async with AsyncExitStack() as stack:
            sinks, config = await records_and_carriers(stack, db, viettel=200, vinaphone=200, mobifone=200)
            first = await notify(CARD_EXPIRY, str(db), config, today=TODAY, days=30, progress=False)
            again = await notify(CARD_EXPIRY, str(db), config, today=TODAY, days=30, progress=False)
            return sinks, first, again

    sinks, first, again = asyncio.run(run())
    assert {name: [mt["to"] for mt in sink.received] for name, sink in sinks.items()} == {
        "viettel": ["84862345678"], "vinaphone": ["84912345678"], "mobifone": ["84702345678"]}
    viettel = sinks["viettel"].received[0]
    assert viettel["text"] == ("The BHYT GD4790100000001 cua ong/ba Nguyen Van An se het han vao ngay 23/12/2026."
                               " Vui long lien he Dai ly Tan Phu de gia han the. Tran trong.")
    assert (viettel["from"], viettel["in_reply_to"], viettel["message_type"], viettel["encoding"]) == (
        "BHXHVN", None, 3, "gsm7")
    assert (first.selected, first.no_phone, first.sent) == (5, 1, 3)
    assert dict(first.no_carrier) == {"Vietnamobile": 1}
    assert dict(first.queued) == {"viettel": 1, "vinaphone": 1, "mobifone": 1}
    assert (sum(again.queued.values()), again.queued_before, again.sent) == (0, 3, 0)
    assert "queued now: 3 (mobifone 1, viettel 1, vinaphone 1); queued by an earlier run: 0" in str(first)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT kind, carrier, mo_id, amount_vnd, message_type, msisdn FROM billing_rows").fetchall()
    assert sorted(rows) == [("push", name, "", 0, 3, f"{msisdn[:7]}****") for name, msisdn in
                            sorted([("mobifone", "84702345678"), ("viettel", "84862345678"),
                                    ("vinaphone", "84912345678")])]


def test_a_notice_the_carrier_refuses_stays_pending_and_the_gateway_delivers_it(tmp_path):
    db = tmp_path / "records.db"

    async def run():
        async with AsyncExitStack() as stack:
            sinks, config = await records_and_carriers(stack, db, viettel=503, vinaphone=200, mobifone=200)
            summary = await notify(CARD_EXPIRY, str(db), config, today=TODAY, days=30, progress=False)
            assert (summary.sent, summary.pending, summary.failed) == (2, 1, 0)
            (refused,) = sinks["viettel"].received
            sinks["viettel"].status = 200
            # `smsgw serve` starting on the same database resumes it, with the same id.
            app = create_app(config, db_path=str(db))
            async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
                for _ in range(500):
                    if len(sinks["viettel"].received) == 2:
                        break
                    await asyncio.sleep(0.01)
                assert [mt["id"] for mt in sinks["viettel"].received] == [refused["id"]] * 2
                report = json.dumps({"id": refused["id"], "status": "delivered"}).encode()
                assert await post_mo(client, report, carrier="viettel", secret=SECRET, path="dlr") == (
                    200, {"id": refused["id"], "state": "delivered"})
                state = await client.app[STORE].mt_state(refused["id"])
                assert (state.status, state.delivery.value) == ("sent", "delivered")

    asyncio.run(run())


def test_payment_reminders_go_to_participants_paid_up_to_this_month_once_per_period(tmp_path):
    db = tmp_path / "records.db"

    async def run():
        async with AsyncExitStack() as stack:
            sinks, config = await records_and_carriers(stack, db, viettel=200, vinaphone=200, mobifone=200)
            first = await notify(PAYMENT_REMINDER, str(db), config, today=TODAY, progress=False)
            later = await notify(PAYMENT_REMINDER, str(db), config, today=date(2026, 11, 28), progress=False)
            december = await notify(PAYMENT_REMINDER, str(db), config, today=date(2026, 12, 1), progress=False)
            return sinks, first, later, december

    sinks, first, later, december = asyncio.run(run())
    # November: 0100000001 (paid up to 30/11) and 0100000005 (no phone); 0100000002 is December's.
    assert (first.selected, first.no_phone, first.sent, later.queued_before, later.sent) == (2, 1, 1, 1, 0)
    (reminder,) = sinks["viettel"].received
    # BHXH 2010-01..2026-11, the overlap of 2019 counted once: 203 months.
    assert reminder["text"] == (
        "Ong/ba Nguyen Van An (ma so BHXH 0100000001) da dong BHXH tu nguyen den het ngay 30/11/2026, tong thoi"
        " gian: 16 nam 11 thang. De tiep tuc tham gia de nghi dong truoc ngay 30/11/2026.")
    assert (december.selected, december.sent, [mt["to"] for mt in sinks["vinaphone"].received]) == (
        1, 1, ["84912345678"])


def test_with_unicode_the_notice_keeps_its_diacritics(tmp_path):
    db = tmp_path / "records.db"

    async def run():
        async with AsyncExitStack() as stack:
            sinks, config = await records_and_carriers(stack, db, viettel=200)
            config = type(config)(**{**config.__dict__, "unicode": True})
            await notify(CARD_EXPIRY, str(db), config, today=TODAY, days=30, progress=False)
            return sinks["viettel"].received

    (mt,) = asyncio.run(run())
    assert mt["text"].startswith(
        "Thẻ BHYT GD4790100000001 của ông/bà Nguyễn Văn An sẽ hết hạn vào ngày 23/12/2026.")
    assert (mt["encoding"], mt["segments"]) == ("ucs2", 3)


def test_notices_are_paced_at_the_lower_of_the_carrier_tps_and_the_notices_rate():
    carriers = {"a": {"auth": "none", "mode": "async", "mt_url": "http://x/mt", "tps": 50},
                "b": {"auth": "none", "mode": "async", "mt_url": "http://x/mt", "tps": 2},
                "c": {"auth": "none", "mode": "async", "mt_url": "http://x/mt"}}
    adapters = notice_adapters(parse_config({"carriers": carriers, "notices": {"rate": 5}}))
    assert {name: adapter.config.tps for name, adapter in adapters.items()} == {"a": 5, "b": 2, "c": 5}


@pytest.mark.parametrize("tables, key", [
    ({"carriers": {"a": {"auth": "none", "networks": ["Viettel"]}}}, "carriers.a.mt_url"),
    ({"carriers": {"a": {"auth": "none", "mode": "async", "mt_url": "http://x", "networks": ["Viettel"]},
                   "b": {"auth": "none", "mode": "async", "mt_url": "http://x", "networks": ["viettel"]}}},
     "carriers.b.networks"),
    ({"carriers": {"a": {"auth": "none", "networks": [3]}}}, "carriers.a.networks"),
    ({"notices": {"sender": "BAOHIEMXAHOIVN"}}, "notices.sender"),
    ({"notices": {"rate": 0}}, "notices.rate"),
    ({"notices": {"agent": " "}}, "notices.agent"),
    ({"notices": {"from": "x"}}, "notices.from"),
])
def test_notice_settings_mistakes_name_the_key(tables, key):
    with pytest.raises(ConfigError, match=f"^smsgw.toml: {key}:"):
        parse_config(tables, "smsgw.toml")


def test_a_catch_all_carrier_takes_every_network_no_other_carrier_names():
    carriers = {"viettel": {"auth": "none", "mode": "async", "mt_url": "http://x", "networks": ["Viettel"]},
                "aggregator": {"auth": "none", "mode": "async", "mt_url": "http://x", "networks": ["*"]}}
    config = parse_config({"carriers": carriers})
    assert [config.carrier_for_network(name) for name in ("Viettel", "G-Mobile", "")] == [
        "viettel", "aggregator", "aggregator"]


def test_the_cli_sends_once_and_prints_the_summary(tmp_path):
    db = tmp_path / "records.db"
    config_file = tmp_path / "smsgw.toml"

    async def smsgw(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smsgw", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        return process.returncode, out.decode(), err.decode()

    async def run():
        await make_records(db)
        async with AsyncExitStack() as stack:
            sinks, servers = await start_sinks(stack, viettel=200)
            config_file.write_text(
                '[notices]\nagent = "Đại lý Tân Phú"\nquiet_hours = ""\n[carriers.viettel]\nsecret = "k"\nmode = "async"\n'
                f'mt_url = "{servers["viettel"].make_url("/mt")}"\nnetworks = ["Viettel"]\n', encoding="utf-8")
            args = ("notify", "card-expiry", "--days", "30", "--today", TODAY.isoformat(), "--db", str(db),
                    "--config", str(config_file))
            first, again = await smsgw(*args), await smsgw(*args)
            bad = await smsgw("notify", "card-expiry", "--days", "30", "--today", "23/11/2026", "--db", str(db))
            return sinks["viettel"].received, first, again, bad

    received, first, again, bad = asyncio.run(run())
    assert [mt["to"] for mt in received] == ["84862345678"]
    assert first[0] == 0 and first[1].splitlines() == [
        "notify card-expiry: 5 cards expiring on 23/12/2026",
        "  queued now: 1 (viettel 1); queued by an earlier run: 0",
        "  not sent: 1 without a phone on file, 3 on a network no carrier takes (MobiFone 1, Vietnamobile 1,"
        " Vinaphone 1), 0 opted out (BH TC)",
        "  delivery: 1 sent, 0 failed, 0 left pending for the gateway's outbox",
    ]
    assert again[0] == 0 and "queued now: 0; queued by an earlier run: 1" in again[1]
    assert bad[0] == 1 and bad[2] == "smsgw: --today '23/11/2026': expected a date YYYY-MM-DD\n"
