"""MT pacing: the token bucket of a carrier's `tps`, the measured rate, and the outbox using them."""

from __future__ import annotations

import asyncio
import time

import pytest
from test_gateway import SECRET, gateway, mo_body, post_mo
from test_outbox import eventually

from smsgw.adapters.mock import MockAdapter
from smsgw.adapters.generic import GenericSettings
from smsgw.throttle import RateMeter, Throttle, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_quiet_bucket_takes_one_second_of_burst_then_paces():
    clock = Clock()
    bucket = TokenBucket(5, clock=clock)
    assert [bucket.take() for _ in range(5)] == [0.0] * 5
    assert bucket.take() == pytest.approx(0.2)
    assert bucket.take() == pytest.approx(0.2)    # asking again takes nothing
    clock.now += 0.2
    assert bucket.take() == 0.0
    clock.now += 3600
    assert [bucket.take() for _ in range(6)] == [0.0] * 5 + [pytest.approx(0.2)]


def test_a_slow_carrier_still_gets_one_sms_at_a_time():
    clock = Clock()
    bucket = TokenBucket(0.5, clock=clock)
    assert bucket.burst == 1
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(2.0)


def test_a_message_larger_than_the_burst_waits_for_a_full_bucket_and_leaves_a_debt():
    clock = Clock()
    bucket = TokenBucket(2, clock=clock)
    assert bucket.take() == 0.0
    assert bucket.take(3) == pytest.approx(0.5)   # the bucket (2) must be full first
    clock.now += 0.5
    assert bucket.take(3) == 0.0                  # 2 - 3: one token owed
    assert bucket.take() == pytest.approx(1.0)    # the debt, then one token
    clock.now += 1.0
    assert bucket.take() == 0.0


def test_over_any_span_the_bucket_lets_through_at_most_burst_plus_rate_times_span():
    clock = Clock()
    bucket = TokenBucket(10, clock=clock)
    sent: list[float] = []
    while len(sent) < 200:
        wait = bucket.take()
        if wait:
            clock.now += wait
        else:
            sent.append(clock.now)
    for first in range(len(sent)):
        for last in range(first, len(sent)):
            assert last - first + 1 <= bucket.burst + bucket.rate * (sent[last] - sent[first]) + 1e-6


def test_the_measured_rate_covers_the_last_window_only():
    clock = Clock()
    meter = RateMeter(window=10, clock=clock)
    assert meter.rate() == 0.0
    for _ in range(20):
        clock.now += 0.5
        meter.record(3)
    assert meter.rate() == pytest.approx(6.0)
    clock.now += 5
    assert meter.rate() == pytest.approx(3.0)
    clock.now += 5
    assert meter.rate() == 0.0


def test_an_unlimited_throttle_never_waits_and_still_measures():
    clock = Clock()
    throttle = Throttle(None, clock=clock)
    assert [throttle.take(3) for _ in range(100)] == [0.0] * 100
    assert (throttle.limit, throttle.measured) == (None, pytest.approx(30.0))
    paced = Throttle(1, clock=clock)
    assert (paced.take(1), paced.take(1) > 0, paced.measured) == (0.0, True, pytest.approx(0.1))


def mock_carrier(name: str, tps: float | None, sent: list[tuple[str, float]]) -> MockAdapter:
    config = GenericSettings(name=name, adapter="mock", secret=SECRET, mode="async", mt_url="http://127.0.0.1:9/mt",
                             tps=tps)
    return MockAdapter(config, shortcode="8079", handler=lambda mt: sent.append((mt.carrier, time.monotonic())))


def test_the_outbox_keeps_each_carrier_to_its_tps_without_holding_up_the_others(tmp_path):
    async def run():
        sent: list[tuple[str, float]] = []
        adapters = {"paced": mock_carrier("paced", 4, sent), "slow": mock_carrier("slow", 0.5, sent),
                    "free": mock_carrier("free", None, sent)}
        carriers = {name: {"secret": SECRET, "mode": "async", "mt_url": "http://127.0.0.1:9/mt"} for name in adapters}
        async with gateway(tmp_path, carriers, adapters=adapters, mt_concurrency=1) as client:
            for n in range(4):
                assert (await post_mo(client, mo_body(f"s-{n}", text="BH HD"), carrier="slow"))[0] == 202
            for n in range(10):
                assert (await post_mo(client, mo_body(f"p-{n}", text="BH HD"), carrier="paced"))[0] == 202
                assert (await post_mo(client, mo_body(f"f-{n}", text="BH HD"), carrier="free"))[0] == 202
            await eventually(lambda: sum(carrier == "paced" for carrier, _ in sent) == 10)
            assert sum(carrier == "free" for carrier, _ in sent) == 10
            assert sum(carrier == "slow" for carrier, _ in sent) < 4
            paced = [at for carrier, at in sent if carrier == "paced"]
            for index, at in enumerate(paced):
                # the first 4 (one second of burst) at once, then one every 1/4 s at the earliest
                assert at - paced[0] >= (index - 3) / 4 - 0.01
            metrics = await (await client.get("/metrics")).text()
            assert 'smsgw_mt_rate_limit{carrier="paced"} 4.0' in metrics
            assert 'smsgw_mt_rate_limit{carrier="free"}' not in metrics
            assert 'smsgw_mt_rate{carrier="paced"} 1.0' in metrics      # 10 SMS over the 10 s window
            assert 'smsgw_mt_rate{carrier="free"} 1.0' in metrics

    asyncio.run(run())
