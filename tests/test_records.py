"""The SQLite store's one-round-trip lookups agree with the RecordStore compositions they replace."""

from __future__ import annotations

import asyncio
import random

from smsgw.seed import seed_database
from smsgw.store import RecordStore, SqliteStore


def test_joined_lookups_equal_the_composed_ones(tmp_path):
    db = tmp_path / "records.db"

    async def run():
        await seed_database(str(db), 300, 7, progress=False)
        store = await SqliteStore.open(db)
        try:
            rows = await store._db.execute_fetchall("SELECT ssn, personal_id FROM persons")
            cards = [c for (c,) in await store._db.execute_fetchall("SELECT card_no FROM cards")]
            ids = [(ssn, False) for ssn, _ in rows] + [(pid, True) for _, pid in rows if pid]
            ids += [("0199999999", False), ("099999999999", True)]          # nobody
            for ident, by_pid in ids:
                joined = await store.person_with_periods(ident, personal_id=by_pid)
                composed = await RecordStore.person_with_periods(store, ident, personal_id=by_pid)
                if joined is not None:
                    joined = (joined[0], sorted(joined[1], key=repr))
                    composed = (composed[0], sorted(composed[1], key=repr))
                assert joined == composed, ident
                assert (await store.person_with_latest_card(ident, personal_id=by_pid)
                        == await RecordStore.person_with_latest_card(store, ident, personal_id=by_pid)), ident
            for card in random.Random(1).sample(cards, 100) + ["HC4019999999999", "hc4010110129425"]:
                assert await store.card_with_holder(card) == await RecordStore.card_with_holder(store, card), card
        finally:
            await store.close()

    asyncio.run(run())
