"""Async MT delivery: retries with back-off, recovery, giving up with a refund, resuming.

On both backends (`records_db`: SQLite, and PostgreSQL when its programs are installed)."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable

from aiohttp import web
from aiohttp.test_utils import TestServer
from test_gateway import OWNER, SECRET, gateway, mo_body, post_mo, records_db  # noqa: F401 (a fixture)

from smsgw.adapters.mock import MockAdapter
from smsgw.adapters.generic import GenericSettings
from smsgw.errors import PermanentDeliveryError, TemporaryDeliveryError
from smsgw.gateway import STORE
from smsgw.outbox import backoff

FAST = {"retry_initial": 0.02, "retry_max": 0.1}


def test_backoff_doubles_up_to_the_cap_and_jitter_takes_at_most_half():
    assert [backoff(n, initial=1, maximum=30, jitter=0) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    for n in range(1, 80):
        ceiling = min(30, 2 ** (n - 1))
        spread = backoff(n, initial=1, maximum=30, jitter=0.999)
        assert max(1, ceiling / 2) <= spread <= ceiling


class FakeCarrier:
    """An MT endpoint answering `status()` for each request and keeping what it accepted."""

    def __init__(self, status: Callable[[], int]) -> None:
        self.status = status
        self.attempts: list[dict] = []
        self.accepted: list[dict] = []
        self.app = web.Application()
        self.app.router.add_post("/mt", self.receive)

    async def receive(self, request: web.Request) -> web.Response:
        mt = json.loads(await request.read())
        self.attempts.append(mt)
        status = self.status()
        if status < 300:
            self.accepted.append(mt)
        return web.Response(status=status)


async def eventually(condition: Callable[[], object], seconds: float = 10.0) -> None:
    """Wait until `condition()` (or the awaitable it returns) is true."""
    for _ in range(int(seconds / 0.01)):
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def async_carrier(mt_url: str, **options) -> dict:
    return {"generic": {"secret": SECRET, "mode": "async", "mt_url": mt_url, **FAST, **options}}


def test_every_mt_arrives_with_its_original_id_once_the_carrier_recovers(records_db):
    async def run():
        refusals = iter(range(60))
        carrier = FakeCarrier(lambda: 503 if next(refusals, None) is not None else 200)
        async with TestServer(carrier.app, host="127.0.0.1", port=0) as server:
            async with gateway(records_db, async_carrier(str(server.make_url("/mt")))) as client:
                answers = [await post_mo(client, mo_body(f"m-{n}")) for n in range(20)]
                assert {status for status, _ in answers} == {202}
                await eventually(lambda: len({mt["id"] for mt in carrier.accepted}) == 20)
                store = client.app[STORE]
                mos = [await store.find_mo("generic", f"m-{n}") for n in range(20)]

                async def all_marked_sent() -> bool:   # the carrier's 200 comes before the mark's commit
                    return all([(await store.mt_state(mo.replies[0].id)).status == "sent" for mo in mos])

                await eventually(all_marked_sent)
                for n, ((_, answer), stored) in enumerate(zip(answers, mos)):
                    assert stored.mo_id == answer["mo_id"]
                    sent = [mt for mt in carrier.attempts if mt["in_reply_to"] == f"m-{n}"]
                    assert {mt["id"] for mt in sent} == {stored.replies[0].id}
                assert await store.pending() == []
                metrics = await (await client.get("/metrics")).text()
                assert 'smsgw_mt_retries_total{carrier="generic"} 60.0' in metrics
                assert 'smsgw_mt_sent_total{carrier="generic"} 20.0' in metrics

    asyncio.run(run())


def test_an_mt_never_taken_is_given_up_the_mo_failed_and_refunded(records_db):
    async def run():
        carrier = FakeCarrier(lambda: 503)
        async with TestServer(carrier.app, host="127.0.0.1", port=0) as server:
            config = async_carrier(str(server.make_url("/mt")), give_up_after=0.3)
            async with gateway(records_db, config) as client:
                _, answer = await post_mo(client, mo_body("doomed"))
                store = client.app[STORE]
                mt_id = (await store.find_mo("generic", "doomed")).replies[0].id

                async def failed() -> bool:
                    return (await store.find_mo("generic", "doomed")).status == "failed"

                await eventually(failed)
                assert (await store.mt_state(mt_id)).status == "failed"
                rows = await store.billing(answer["mo_id"])
                assert [(row.kind, row.amount_vnd) for row in rows] == [("charge", 1000), ("refund", -1000)]
                assert len(carrier.attempts) >= 2 and {mt["id"] for mt in carrier.attempts} == {mt_id}
                metrics = await (await client.get("/metrics")).text()
                assert 'smsgw_mt_failures_total{carrier="generic"} 1.0' in metrics

    asyncio.run(run())


def test_pending_mts_resume_after_a_restart_with_the_same_id(records_db):
    async def run():
        up = False
        carrier = FakeCarrier(lambda: 200 if up else 503)
        async with TestServer(carrier.app, host="127.0.0.1", port=0) as server:
            config = async_carrier(str(server.make_url("/mt")), retry_initial=5.0, retry_max=5.0)
            async with gateway(records_db, config) as client:
                _, answer = await post_mo(client, mo_body("survivor", text="BH HD"))
                await eventually(lambda: len(carrier.attempts) == 1)
            up = True
            async with gateway(records_db, config) as client:
                await eventually(lambda: len(carrier.accepted) == 1)
                assert carrier.accepted[0]["id"] == carrier.attempts[0]["id"]
                assert carrier.accepted[0]["in_reply_to"] == "survivor"
                assert carrier.accepted[0]["to"] == OWNER
                assert await post_mo(client, mo_body("survivor", text="BH HD")) == (202, answer)

    asyncio.run(run())


def test_the_mock_adapter_records_attempts_and_a_permanent_error_gives_up_at_once(records_db):
    async def run():
        carrier = GenericSettings(name="generic", adapter="mock", secret=SECRET, mode="async",
                                  mt_url="http://127.0.0.1:9/mt", **FAST)
        failures = iter([TemporaryDeliveryError("busy"), TemporaryDeliveryError("busy")])

        def flaky(mt) -> None:
            error = next(failures, None)
            if error is not None:
                raise error

        def broken(mt) -> None:
            raise PermanentDeliveryError("no route")

        mock = MockAdapter(carrier, shortcode="8079", handler=flaky)
        async with gateway(records_db, async_carrier("http://127.0.0.1:9/mt"), adapters={"generic": mock}) as client:
            await post_mo(client, mo_body("flaky"))
            await eventually(lambda: len(mock.delivered) == 1)
            assert len(mock.sent) == 3 and len({mt.id for mt in mock.sent}) == 1
            assert [message.carrier_id for message in mock.received] == ["flaky"]
            mock.handler = broken
            _, answer = await post_mo(client, mo_body("broken"))
            await eventually(lambda: len(mock.sent) == 4)
            store = client.app[STORE]

            async def failed() -> bool:
                return (await store.find_mo("generic", "broken")).status == "failed"

            await eventually(failed)
            rows = await store.billing(answer["mo_id"])
            assert [row.kind for row in rows] == ["charge", "refund"]

    asyncio.run(run())


def metric_value(metrics: str, name: str) -> float:
    (line,) = [line for line in metrics.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


def test_the_age_of_the_oldest_mt_waiting_is_on_metrics_until_it_is_sent(records_db):
    """smsgw_mt_oldest_pending_seconds, which deploy/alerts.yml alerts on: how long the oldest MT
    waiting for its next attempt has been stored; 0 once none waits."""
    async def run():
        refusing = True
        carrier = FakeCarrier(lambda: 503 if refusing else 200)
        async with TestServer(carrier.app, host="127.0.0.1", port=0) as server:
            config = async_carrier(str(server.make_url("/mt")), retry_initial=2.0, retry_max=2.0)
            async with gateway(records_db, config) as client:
                assert metric_value(await (await client.get("/metrics")).text(), "smsgw_mt_oldest_pending_seconds") == 0
                await post_mo(client, mo_body("waits"))
                await eventually(lambda: carrier.attempts)
                await asyncio.sleep(0.3)
                age = metric_value(await (await client.get("/metrics")).text(), "smsgw_mt_oldest_pending_seconds")
                assert 0.3 <= age < 2.0
                refusing = False
                await eventually(lambda: carrier.accepted)

                async def none_waits() -> bool:
                    metrics = await (await client.get("/metrics")).text()
                    return metric_value(metrics, "smsgw_mt_oldest_pending_seconds") == 0

                await eventually(none_waits)
                assert await client.app[STORE].pending() == []

    asyncio.run(run())
