"""Quiet hours (CONTRACT §8): no notice reaches a phone between 21:00 and 07:00 Vietnam time; it
waits for the morning, and replies to citizens are never held."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AsyncExitStack
from datetime import date, datetime, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st
from test_gateway import mo_body, post_mo
from test_notices import EXPIRY, SECRET, TODAY, make_records

from smsgw.adapters.generic import sign
from smsgw.clock import VIETNAM
from smsgw.config import ConfigError, parse_config
from smsgw.gateway import create_app
from smsgw.notices import CARD_EXPIRY, notify
from smsgw.quiet_hours import QuietHours, not_before, quiet_hours
from smsgw.store import open_messages

NIGHT = QuietHours.parse("21:00-07:00")


def vietnam(day: date, hour: int, minute: int = 0, second: float = 0.0) -> float:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=VIETNAM).timestamp() + second


@pytest.mark.parametrize(("at", "until"), [
    ((TODAY, 22, 0), (TODAY + timedelta(days=1), 7, 0)),
    ((TODAY, 21, 0), (TODAY + timedelta(days=1), 7, 0)),
    ((TODAY, 23, 59), (TODAY + timedelta(days=1), 7, 0)),
    ((TODAY, 0, 0), (TODAY, 7, 0)),
    ((TODAY, 6, 59), (TODAY, 7, 0)),
    ((TODAY, 7, 0), None),
    ((TODAY, 12, 0), None),
    ((TODAY, 20, 59), None),
])
def test_a_notice_created_in_the_quiet_hours_waits_for_their_end_vietnam_time(at, until):
    expected = vietnam(*until) if until else None
    assert NIGHT.held_until(vietnam(*at)) == expected
    assert not_before("21:00-07:00", vietnam(*at)) == expected
    assert not_before("", vietnam(*at)) is None


def test_a_span_within_one_day_and_the_settings_check():
    lunch = quiet_hours("12:00-13:30")
    assert (lunch.held_until(vietnam(TODAY, 12, 15)), lunch.held_until(vietnam(TODAY, 13, 30))) == (
        vietnam(TODAY, 13, 30), None)
    assert str(lunch) == "12:00-13:30" and quiet_hours(" ") is None
    assert parse_config({}).notices.quiet_hours == "21:00-07:00"
    assert parse_config({"notices": {"quiet_hours": " 22:00-06:00 "}}).notices.quiet_hours == "22:00-06:00"
    for bad, why in [("21h-7h", "is not HH:MM-HH:MM"), ("21:00-24:00", "24:00 is not a time of day"),
                     ("07:00-07:00", "the start and the end are the same time"), ("9:00-10:00", "is not HH:MM")]:
        with pytest.raises(ConfigError, match=f"notices.quiet_hours: .*{why}"):
            parse_config({"notices": {"quiet_hours": bad}})
    with pytest.raises(ConfigError, match="notices.quiet_hours: .*string"):
        parse_config({"notices": {"quiet_hours": 21}})


@given(st.floats(min_value=1.6e9, max_value=2.5e9), st.sampled_from(["21:00-07:00", "22:30-05:15", "00:00-06:00",
                                                                       "13:00-14:00", "07:00-21:00"]))
def test_the_release_is_the_first_instant_after_the_span_and_never_a_day_away(at, setting):
    span = QuietHours.parse(setting)
    until = span.held_until(at)
    if until is None:
        local = datetime.fromtimestamp(at, VIETNAM).time()
        inside = span.start <= local < span.end if span.start < span.end else local >= span.start or local < span.end
        assert not inside
        return
    assert at < until <= at + 24 * 3600
    assert span.held_until(until) is None                      # free at the release
    assert span.held_until(until - 0.5) == until               # and held right before it
    assert datetime.fromtimestamp(until, VIETNAM).time() == span.end


class MovableClock:
    """Real time moved by `offset` seconds: the injected clock of a notify run and a gateway."""

    def __init__(self, at: float) -> None:
        self.offset = at - time.time()

    def __call__(self) -> float:
        return time.time() + self.offset

    def set(self, at: float) -> None:
        self.offset = at - time.time()


class Sink:
    """The carrier's MT endpoint on 127.0.0.1; keeps each MT with the injected clock's time of arrival."""

    def __init__(self, clock: MovableClock) -> None:
        self.clock = clock
        self.received: list[tuple[float, dict]] = []
        self.app = web.Application()
        self.app.router.add_post("/mt", self.receive)

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        assert request.headers["X-Smsgw-Signature"] == sign(SECRET, body)
        self.received.append((self.clock(), json.loads(body)))
        return web.Response(status=200)


async def until(condition, seconds: float) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_a_notice_created_at_22_goes_out_at_07_through_the_gateway_and_a_reply_at_22_goes_at_once(tmp_path):
    db = tmp_path / "records.db"
    # the next 22:00 in Vietnam: the injected clock runs ahead of the real one, as the MTs the
    # gateway stores are stamped with the real one
    today = datetime.now(VIETNAM).date()
    evening = vietnam(today, 22, 0)
    if evening <= time.time():
        evening = vietnam(today + timedelta(days=1), 22, 0)
    morning = evening + 9 * 3600
    clock = MovableClock(evening)

    async def run():
        await make_records(db)
        async with AsyncExitStack() as stack:
            sink = Sink(clock)
            server = await stack.enter_async_context(TestServer(sink.app, host="127.0.0.1", port=0))
            carriers = {"viettel": {"secret": SECRET, "mode": "async", "mt_url": str(server.make_url("/mt")),
                                    "networks": ["*"], "tps": 2}}
            config = parse_config({"carriers": carriers, "protection": {"lookups_per_hour": 0, "repeat_limit": 0}})
            app = create_app(config, db_path=str(db), clock=clock, outbox_tick=0.1)
            client = await stack.enter_async_context(TestClient(TestServer(app, host="127.0.0.1", port=0)))
            # 22:00: the cron's notify run queues the card-expiry notices, and sends none of them
            summary = await notify(CARD_EXPIRY, str(db), config, today=TODAY, days=(EXPIRY - TODAY).days,
                                   progress=False, clock=clock)
            assert (sum(summary.queued.values()), summary.sent, summary.held, summary.held_until) == (4, 0, 4, morning)
            shown = datetime.fromtimestamp(morning, VIETNAM).strftime("%d/%m/%Y 07:00")
            assert f"quiet hours: 4 held until {shown} (Vietnam time)" in str(summary)
            # a citizen's message at 22:00 is answered at once
            status, _ = await post_mo(client, mo_body("night", text="BH HD", sender="84862345678"),
                                      carrier="viettel", secret=SECRET)
            assert status == 202
            await until(lambda: sink.received, 5)
            assert [mt["in_reply_to"] for _, mt in sink.received] == ["night"]
            await asyncio.sleep(0.5)
            clock.set(morning - 2.0)   # the night passes; the last seconds before 07:00
            await asyncio.sleep(1.0)
            assert len(sink.received) == 1, "a notice went out before 07:00"
            await until(lambda: len(sink.received) == 5, 8)
            store = await open_messages(str(db))
            pending = await store.pending()
            await store.close()
        notices = sink.received[1:]
        assert {mt["message_type"] for _, mt in notices} == {3}
        after = sorted(at - morning for at, _ in notices)
        # from 07:00, at the carrier's tps = 2: its one-second burst, then one every half second
        assert 0 <= after[0] and after[-1] < 3.0, after
        assert after[2] >= 0.45 and after[3] >= 0.95, after
        assert pending == []

    asyncio.run(run())
