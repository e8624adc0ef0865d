"""A carrier's `tps` holds across two real `smsgw serve` processes on one PostgreSQL database,
measured where the carrier would see it: at an MT sink timing every MT it receives (issue 16).

The gateways are real subprocesses (test_crash.start_server) in async mode with `tps = 20`; 200
MOs are posted to them alternately, faster than the carrier's rate, so both gateways hold a queue
and compete for the same slots. Skipped, saying why, without PostgreSQL's server programs.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from test_crash import Carrier, start_server
from test_gateway import SECRET
from test_pg_faults import Burst, delivered, run, seed, stop
from test_pg_pacing import most_in_any_window

pytestmark = pytest.mark.slow

TPS = 20
BURST = TPS            # one second's worth (throttle.TokenBucket, store/pg_pacing.py)
JITTER = 0.25          # seconds between a slot's grant and its MT's arrival at the sink, at most


class TimedSink(Carrier):
    """The carrier's MT endpoint, accepting every MT and noting when each arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.flaky = False
        self.arrivals: list[float] = []

    async def receive(self, request: web.Request) -> web.Response:
        self.arrivals.append(time.monotonic())
        return await super().receive(request)


def write_config(path: Path, mt_url: str) -> Path:
    path.write_text("[carriers.generic]\n"
                    f'secret = "{SECRET}"\nmode = "async"\nmt_url = "{mt_url}"\ntps = {TPS}\n'
                    "retry_initial = 0.05\nretry_max = 0.2\n"
                    "[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n")
    return path


def test_two_gateways_together_send_at_most_the_carriers_tps(pg_database, tmp_path):
    async def go():
        await seed(pg_database)
        sink = TimedSink()
        async with TestServer(sink.app, host="127.0.0.1", port=0) as server:
            config = write_config(tmp_path / "smsgw.toml", str(server.make_url("/mt")))
            with open(tmp_path / "serve.log", "wb") as log:
                gateways = [await start_server(pg_database, config, log) for _ in range(2)]
                try:
                    burst = Burst()
                    ids = [f"tps-{n}" for n in range(200)]
                    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
                        await asyncio.gather(*(burst.one(session, gateways[n % 2][1], carrier_id)
                                               for n, carrier_id in enumerate(ids)))
                    assert sorted(burst.acked) == sorted(ids)
                    await delivered(sink, burst.acked, 60)   # 200 at 20/s: 9 s after the burst
                finally:
                    for process, _ in gateways:
                        await stop(process)
        assert len(sink.accepted) == 200 and len({mt["id"] for mt in sink.accepted}) == 200
        arrivals = sorted(sink.arrivals)
        span = arrivals[-1] - arrivals[0]
        # Over any second: at most the burst and one second's tps (the slots' bound, GCRA), plus
        # what the arrival's jitter can squeeze in; two gateways each with its own bucket send twice that.
        busiest = most_in_any_window(arrivals, 1.0)
        assert busiest <= BURST + TPS * (1 + JITTER), f"{busiest} MTs within one second"
        # Overall: the burst, then tps. Not far below either: the gateways do not starve each other.
        rate = (len(arrivals) - BURST) / span
        assert 0.8 * TPS <= rate <= 1.1 * TPS, f"{rate:.1f} MT/s after the burst, {span:.1f} s for 200 MTs"

    run(go(), 120)
