"""The message store: exactly-once MOs, the outbox, billing rows, DLR states, group commit."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
import uuid
from datetime import datetime, timezone

import pytest

from smsgw.billing import MessageType
from smsgw.errors import Unavailable
from smsgw.store import MessageStore, SqliteMessageStore
from smsgw.wire import DeliveryReport, DeliveryState, InboundMessage, OutboundMessage

PHONE = "84912345678"


def inbound(carrier_id: str, carrier: str = "generic") -> InboundMessage:
    return InboundMessage(carrier, carrier_id, PHONE, "8079", "BH QT 0110129425", datetime.now(timezone.utc))


def reply(mo_id: str, carrier_id: str, carrier: str = "generic", mt_id: str | None = None,
          message_type: MessageType = MessageType.CHARGED) -> OutboundMessage:
    return OutboundMessage(mt_id or str(uuid.uuid4()), mo_id, carrier_id, carrier, "8079", PHONE, "BHXH: 02 nam",
                           "gsm7", 1, message_type)


async def store_one(store: MessageStore, carrier_id: str, *, mode: str = "async", carrier: str = "generic",
                    mt_id: str | None = None, message_type: MessageType = MessageType.CHARGED):
    mo_id = str(uuid.uuid4())
    return await store.store_mo(inbound(carrier_id, carrier), mo_id=mo_id, mode=mode, command="QT", error=None,
                                replies=[reply(mo_id, carrier_id, carrier, mt_id, message_type)], now=time.time())


def test_an_mo_is_stored_once_per_carrier_id(tmp_path):
    async def run():
        store = await SqliteMessageStore.open(str(tmp_path / "m.db"))
        first = await store_one(store, "c-1")
        again = await store_one(store, "c-1")
        elsewhere = await store_one(store, "c-1", carrier="other")
        assert first.created and not again.created and elsewhere.created
        assert (again.mo_id, again.replies) == (first.mo_id, first.replies)
        assert elsewhere.mo_id != first.mo_id
        assert [(row.kind, row.amount_vnd) for row in await store.billing(first.mo_id)] == [("charge", 1000)]
        assert "5678" not in (await store.billing(first.mo_id))[0].msisdn
        await store.close()

    asyncio.run(run())


def test_concurrent_writes_share_transactions(tmp_path):
    async def run():
        batches: list[int] = []
        store = await SqliteMessageStore.open(str(tmp_path / "m.db"), on_batch=batches.append)
        results = await asyncio.gather(*(store_one(store, f"c-{n}") for n in range(50)))
        assert all(result.created for result in results)
        assert sum(batches) == 50 and max(batches) > 1
        await store.close()

    asyncio.run(run())


def test_a_failing_write_fails_alone_and_leaves_no_half_mo(tmp_path):
    async def run():
        store = await SqliteMessageStore.open(str(tmp_path / "m.db"))
        taken = await store_one(store, "c-0")
        results = await asyncio.gather(
            store_one(store, "c-1"),
            store_one(store, "c-2", mt_id=taken.replies[0].id),   # an MT id that exists already
            store_one(store, "c-3"),
            return_exceptions=True,
        )
        assert isinstance(results[1], sqlite3.IntegrityError)
        assert results[0].created and results[2].created
        assert await store.find_mo("generic", "c-2") is None
        assert await store.find_mo("generic", "c-3") is not None
        assert len(await store.billing()) == 3
        await store.close()

    asyncio.run(run())


def test_a_batch_run_again_after_a_failure_keeps_each_answer_and_charge_once(tmp_path):
    # The batch runs without savepoints; when one operation fails it is rolled back and run again,
    # each operation alone. The others must come out as if nothing had happened: a retry of an
    # MO in the same batch is still the duplicate of the first, and nothing is stored twice.
    async def run():
        batches: list[int] = []
        store = await SqliteMessageStore.open(str(tmp_path / "m.db"), on_batch=batches.append)
        taken = await store_one(store, "c-0")
        first, failed, retry, other = await asyncio.gather(
            store_one(store, "c-1"),
            store_one(store, "c-2", mt_id=taken.replies[0].id),   # fails: the MT id exists already
            store_one(store, "c-1"),
            store_one(store, "c-3"),
            return_exceptions=True,
        )
        assert batches == [1, 4]   # one committed batch for the four, after the failed attempt
        assert isinstance(failed, sqlite3.IntegrityError)
        assert first.created and not retry.created and other.created
        assert (retry.mo_id, retry.replies) == (first.mo_id, first.replies)
        assert await store.find_mo("generic", "c-2") is None
        assert [row.mo_id for row in await store.billing()] == [taken.mo_id, first.mo_id, other.mo_id]
        after = await store_one(store, "c-4")   # and the store goes on as before
        assert after.created and batches[-1] == 1
        await store.close()

    asyncio.run(run())


def test_pending_mts_survive_closing_and_reopening(tmp_path):
    async def run():
        path = str(tmp_path / "m.db")
        store = await SqliteMessageStore.open(path)
        queued = await store_one(store, "c-1")
        await store_one(store, "c-2", mode="sync")
        await store.close()
        reopened = await SqliteMessageStore.open(path)
        pending = await reopened.pending()
        assert [item.mt for item in pending] == list(queued.replies)
        await reopened.mark_sent(queued.replies[0].id)
        assert await reopened.pending() == []
        assert (await reopened.find_mo("generic", "c-1")).status == "sent"
        await reopened.close()

    asyncio.run(run())


def test_giving_up_fails_the_mo_and_refunds_its_charge_once(tmp_path):
    async def run():
        store = await SqliteMessageStore.open(str(tmp_path / "m.db"))
        stored = await store_one(store, "c-1")
        mt_id = stored.replies[0].id
        assert await store.give_up(mt_id, error="HTTP 503", now=time.time())
        assert not await store.give_up(mt_id, error="HTTP 503", now=time.time())
        await store.mark_sent(mt_id)
        rows = await store.billing(stored.mo_id)
        assert [(row.kind, row.amount_vnd, row.mt_id) for row in rows] == [("charge", 1000, mt_id),
                                                                           ("refund", -1000, mt_id)]
        assert (await store.find_mo("generic", "c-1")).status == "failed"
        assert (await store.mt_state(mt_id)).status == "failed"
        assert await store.pending() == []
        await store.close()

    asyncio.run(run())


def test_delivery_reports_in_any_order_end_on_the_first_final_state(tmp_path):
    states = [DeliveryState.ACCEPTED, DeliveryState.ENROUTE, DeliveryState.DELIVERED, DeliveryState.FAILED,
              DeliveryState.UNKNOWN]

    async def run():
        store = await SqliteMessageStore.open(str(tmp_path / "m.db"))
        for n, order in enumerate(itertools.permutations(states)):
            mt_id = (await store_one(store, f"c-{n}")).replies[0].id
            seen = []
            for state in order + order:   # every report repeated
                after = await store.record_delivery(DeliveryReport("generic", mt_id, state, None))
                seen.append(after.rank if after else 0)
            assert seen == sorted(seen)
            first_final = next(state for state in order if state.rank == 3)
            assert after is first_final
        unknown = DeliveryReport("generic", "no-such-mt", DeliveryState.DELIVERED, None)
        assert await store.record_delivery(unknown) is None
        other_carrier = DeliveryReport("other", mt_id, DeliveryState.FAILED, None)
        assert await store.record_delivery(other_carrier) is None
        await store.close()

    asyncio.run(run())


def test_a_closed_store_refuses_work(tmp_path):
    async def run():
        store = await SqliteMessageStore.open(str(tmp_path / "m.db"))
        await store.close()
        with pytest.raises(Unavailable):
            await store.probe()

    asyncio.run(run())


def test_a_writer_waits_for_another_process_holding_the_lock_then_goes_on(tmp_path):
    """`serve --workers N`: one store, several writers; the lock is waited for, not an error."""
    async def run():
        path = str(tmp_path / "m.db")
        store = await SqliteMessageStore.open(path)
        other = sqlite3.connect(path, isolation_level=None)   # another worker, in the middle of its batch
        other.execute("BEGIN IMMEDIATE")
        pending = asyncio.ensure_future(store_one(store, "c-waits"))
        await asyncio.sleep(0.3)
        assert not pending.done()
        other.execute("COMMIT")
        assert (await asyncio.wait_for(pending, 5)).created
        assert (await store.find_mo("generic", "c-waits")).replies
        other.close()
        await store.close()

    asyncio.run(run())


def test_a_lock_held_too_long_fails_the_batch_and_the_store_recovers(tmp_path, monkeypatch):
    async def run():
        path = str(tmp_path / "m.db")
        store = await SqliteMessageStore.open(path)
        monkeypatch.setattr("smsgw.store.writer.LOCK_WAIT", 0.2)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(Unavailable, match="locked"):
            await asyncio.wait_for(store_one(store, "c-refused"), 5)
        other.execute("ROLLBACK")
        other.close()
        assert (await store_one(store, "c-after")).created
        assert await store.find_mo("generic", "c-refused") is None
        await store.close()

    asyncio.run(run())
