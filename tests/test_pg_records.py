"""The records lookups on PostgreSQL answer as SQLite's do, also when many run at the same moment.

Lookups arriving together go in one statement (pg_records._lookup, one round trip for all): each
caller must still get its own key's rows, in the order its query gives them. The same seeded
records (`seed_database`, deterministic) in an SQLite file and a PostgreSQL database; every lookup
of a sample of keys, all at once on PostgreSQL, one at a time on SQLite. Real servers
(tests/pgcluster.py); skipped, saying why, without PostgreSQL's server programs.
"""

from __future__ import annotations

import asyncio

from smsgw.seed import seed_database
from smsgw.store import open_records


def lookups(store, persons, cards, dossiers) -> list:
    """Every single-key lookup of the record store for the sample keys (and keys that match nothing)."""
    calls = []
    for ssn, personal_id in persons + [("0000000000", "000000000000")]:
        calls += [store.person_by_ssn(ssn), store.periods(ssn), store.latest_card(ssn),
                  store.person_with_periods(ssn), store.person_with_latest_card(ssn)]
        if personal_id:
            calls += [store.person_by_personal_id(personal_id),
                      store.person_with_periods(personal_id, personal_id=True),
                      store.person_with_latest_card(personal_id, personal_id=True)]
    for card_no in cards + ["GD0000000000000"]:
        calls += [store.card(card_no.lower()), store.card_with_holder(card_no)]
    for code in dossiers + ["NOPE"]:
        calls += [store.dossier(code)]
    return calls


def unordered(found):
    """person_with_periods' periods in one order (neither backend's query orders them: no one relies on it)."""
    if isinstance(found, tuple) and len(found) == 2 and isinstance(found[1], list):
        return found[0], sorted(found[1], key=lambda period: (period.scheme, period.start, period.end, period.employer))
    return found


def test_lookups_run_together_on_postgresql_answer_as_sqlite_one_at_a_time(pg_database, tmp_path):
    async def go():
        sqlite_db = str(tmp_path / "records.db")
        for db in (sqlite_db, pg_database):
            await seed_database(db, 300, progress=False)
        sqlite, pg = await open_records(sqlite_db), await open_records(pg_database)
        rows = await pg._fetch("SELECT ssn, personal_id FROM persons ORDER BY ssn LIMIT 60")
        persons = [(row[0], row[1]) for row in rows]
        cards = [row[0] for row in await pg._fetch("SELECT card_no FROM cards ORDER BY card_no LIMIT 40")]
        dossiers = [row[0] for row in await pg._fetch("SELECT dossier_code FROM dossiers ORDER BY 1 LIMIT 40")]
        expected = [unordered(await call) for call in lookups(sqlite, persons, cards, dossiers)]
        got = [unordered(found) for found in await asyncio.gather(*lookups(pg, persons, cards, dossiers))]
        assert got == expected
        assert any(isinstance(found, list) and len(found) > 1 for found in got), \
            "no person with several periods in the sample: their order is not checked"
        await sqlite.close()
        await pg.close()

    asyncio.run(asyncio.wait_for(go(), timeout=120))
