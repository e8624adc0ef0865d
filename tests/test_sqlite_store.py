import asyncio
import sqlite3
from datetime import date

import pytest

from smsgw.commands import Month
from smsgw.store import Card, Dossier, Period, Person, RecordStore, SqliteStore, StoreError

AN = ("0110129425", "001090012345", "Nguyễn Văn An", "1990-03-15", "84912345678")
BINH = ("7910234567", None, "Trần Thị Bình", "1985-11-02", None)


def run(coroutine):
    return asyncio.run(coroutine)


async def filled(path, **rows):
    store = await SqliteStore.open(path, create=True)
    async with store.transaction():
        await store.write(**rows)
    return store


async def load(path, **rows):
    store = await filled(path, **rows)
    await store.close()


def dump(path):
    with sqlite3.connect(path) as db:
        return list(db.iterdump())


def test_it_is_a_record_store():
    assert issubclass(SqliteStore, RecordStore)


def test_opening_a_missing_database_tells_how_to_create_it(tmp_path):
    path = tmp_path / "records.db"
    with pytest.raises(StoreError) as refused:
        run(SqliteStore.open(path))
    assert str(refused.value) == (
        f"no records database at {path}: create it with `smsgw db seed` or `smsgw db import`"
    )
    assert not path.exists()


def test_opening_a_file_that_is_not_a_database_is_refused(tmp_path):
    path = tmp_path / "records.db"
    path.write_bytes(b"this is not sqlite, just some bytes that are long enough to be a header" * 20)
    with pytest.raises(StoreError, match="is not a usable records database"):
        run(SqliteStore.open(path))


def test_a_path_sqlite_cannot_open_fails_cleanly_without_a_stray_thread_traceback(tmp_path, monkeypatch):
    # aiosqlite's failed connect used to leave its worker thread posting to the closed loop:
    # "RuntimeError: Event loop is closed" printed after `smsgw: ...` (db import into a missing
    # folder, --db naming a directory). The race lost most of the time: 10 tries catch it.
    import threading

    escaped: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda hook_args: escaped.append(hook_args.exc_value))
    before = set(threading.enumerate())
    for path in [tmp_path / "missing" / "records.db", tmp_path] * 5:
        with pytest.raises(StoreError, match=f"cannot open records database {path}: unable to open"):
            run(SqliteStore.open(path, create=True))
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=5)
    assert escaped == []


def test_a_new_database_is_empty_and_in_wal_mode(tmp_path):
    async def scenario():
        store = await SqliteStore.open(tmp_path / "records.db", create=True)
        try:
            return await store.is_empty(), await store.person_by_ssn(AN[0])
        finally:
            await store.close()

    assert run(scenario()) == (True, None)
    with sqlite3.connect(tmp_path / "records.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_persons_are_found_by_ssn_and_by_personal_id(tmp_path):
    async def scenario():
        store = await filled(tmp_path / "records.db", persons=[AN, BINH])
        try:
            return (await store.person_by_ssn(AN[0]), await store.person_by_personal_id(AN[1]),
                    await store.person_by_ssn(BINH[0]), await store.person_by_personal_id("000000000000"))
        finally:
            await store.close()

    an = Person("0110129425", "001090012345", "Nguyễn Văn An", date(1990, 3, 15), "84912345678")
    binh = Person("7910234567", None, "Trần Thị Bình", date(1985, 11, 2), None)
    assert run(scenario()) == (an, an, binh, None)


def test_periods_come_back_as_months_ordered_by_scheme_and_start(tmp_path):
    rows = [
        (AN[0], "BHXH", "Sở Tài chính Hà Nội", Month(2017, 10).index, Month(2024, 11).index),
        (AN[0], "BHTN", "Công ty TNHH Minh Phát", Month(2013, 1).index, Month(2016, 6).index),
        (AN[0], "BHXH", "Công ty TNHH Minh Phát", Month(2012, 7).index, Month(2016, 6).index),
        (BINH[0], "BHXH", "Công ty CP Dệt may Gia Định", Month(2008, 5).index, Month(2020, 12).index),
    ]

    async def scenario():
        store = await filled(tmp_path / "records.db", persons=[AN, BINH], periods=rows)
        try:
            return await store.periods(AN[0]), await store.periods("4801234568")
        finally:
            await store.close()

    periods, none = run(scenario())
    assert periods == [
        Period(AN[0], "BHTN", "Công ty TNHH Minh Phát", Month(2013, 1), Month(2016, 6)),
        Period(AN[0], "BHXH", "Công ty TNHH Minh Phát", Month(2012, 7), Month(2016, 6)),
        Period(AN[0], "BHXH", "Sở Tài chính Hà Nội", Month(2017, 10), Month(2024, 11)),
    ]
    assert none == []


def test_latest_card_is_the_latest_valid_to_then_valid_from_then_card_number(tmp_path):
    ssn = "8201234567"
    cards = [
        (f"GD482{ssn}", ssn, "2023-01-01", "2099-12-31", "Trung tâm Y tế"),
        (f"DN482{ssn}", ssn, "2024-01-01", "2099-12-31", "Trung tâm Y tế"),
        (f"HC482{ssn}", ssn, "2024-01-01", "2099-12-31", "Bệnh viện Tiền Giang"),
        (f"TE182{ssn}", ssn, "2000-01-01", "2005-12-31", "Bệnh viện Nhi"),
    ]

    async def scenario():
        store = await filled(tmp_path / "records.db", cards=cards)
        try:
            return (await store.latest_card(ssn), await store.card(f"te182{ssn}"),
                    await store.latest_card("0000000000"), await store.card(f"XX482{ssn}"))
        finally:
            await store.close()

    latest, by_code, nobody, unknown = run(scenario())
    assert latest == Card(f"HC482{ssn}", ssn, date(2024, 1, 1), date(2099, 12, 31), "Bệnh viện Tiền Giang")
    assert by_code == Card(f"TE182{ssn}", ssn, date(2000, 1, 1), date(2005, 12, 31), "Bệnh viện Nhi")
    assert nobody is None and unknown is None


def test_dossiers_are_found_by_code_in_any_case(tmp_path):
    async def scenario():
        store = await filled(tmp_path / "records.db",
                             dossiers=[("04486.G/2019/08708", AN[0], "processing", "2019-08-20")])
        try:
            return await store.dossier("04486.g/2019/08708"), await store.dossier("04486.G/2019/08709")
        finally:
            await store.close()

    assert run(scenario()) == (Dossier("04486.G/2019/08708", AN[0], "processing", date(2019, 8, 20)), None)


def test_writing_a_known_key_replaces_the_row_and_periods_merge_by_whole_row(tmp_path):
    period = (AN[0], "BHXH", "Công ty TNHH Minh Phát", Month(2012, 7).index, Month(2016, 6).index)

    async def scenario():
        store = await filled(tmp_path / "records.db", persons=[AN], periods=[period],
                             cards=[(f"HC401{AN[0]}", AN[0], "2024-01-01", "2024-12-31", "A")],
                             dossiers=[("04486.G/2019/08708", AN[0], "received", "2019-08-01")])
        try:
            async with store.transaction():
                await store.write(
                    persons=[(AN[0], None, "Nguyễn Văn Anh", "1990-03-16", "84987654321")],
                    periods=[period, period[:3] + (Month(2017, 1).index, Month(2017, 2).index)],
                    cards=[(f"HC401{AN[0]}", AN[0], "2025-01-01", "2099-12-31", "B")],
                    dossiers=[("04486.G/2019/08708", AN[0], "approved", "2019-09-01")],
                )
            return (await store.person_by_ssn(AN[0]), await store.person_by_personal_id(AN[1]),
                    len(await store.periods(AN[0])), await store.card(f"HC401{AN[0]}"),
                    await store.dossier("04486.G/2019/08708"))
        finally:
            await store.close()

    person, by_old_id, periods, card, dossier = run(scenario())
    assert person == Person(AN[0], None, "Nguyễn Văn Anh", date(1990, 3, 16), "84987654321")
    assert by_old_id is None
    assert periods == 2
    assert (card.valid_to, card.hospital) == (date(2099, 12, 31), "B")
    assert (dossier.status, dossier.updated_at) == ("approved", date(2019, 9, 1))


def test_a_failed_transaction_leaves_the_store_as_it_was(tmp_path):
    path = tmp_path / "records.db"
    run(load(path, persons=[AN]))
    before = dump(path)

    async def scenario():
        store = await SqliteStore.open(path)
        try:
            async with store.transaction():
                await store.write(persons=[BINH])
                raise RuntimeError("stop")
        finally:
            await store.close()

    with pytest.raises(RuntimeError):
        run(scenario())
    assert dump(path) == before


def test_two_persons_cannot_share_a_personal_id(tmp_path):
    async def scenario():
        store = await filled(tmp_path / "records.db", persons=[AN])
        try:
            async with store.transaction():
                await store.write(persons=[(BINH[0], AN[1], *BINH[2:])])
        finally:
            await store.close()

    with pytest.raises(sqlite3.IntegrityError):
        run(scenario())


def test_importer_checks_see_persons_and_personal_ids_of_the_store(tmp_path):
    async def scenario():
        store = await filled(tmp_path / "records.db", persons=[AN, BINH])
        try:
            return (await store.existing_ssns([AN[0], "4801234568", BINH[0]]),
                    await store.personal_id_owners([AN[1], "001185006789"]))
        finally:
            await store.close()

    assert run(scenario()) == ({AN[0], BINH[0]}, {AN[1]: AN[0]})


def test_bulk_load_builds_a_working_store_and_leaves_other_tables_alone(tmp_path):
    path = tmp_path / "records.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE mo_messages (id TEXT PRIMARY KEY, text TEXT)")
        db.execute("INSERT INTO mo_messages VALUES ('m1', 'BH QT 0110129425')")

    async def scenario():
        store = await SqliteStore.open(path)
        try:
            async with store.bulk_load():
                await store.write(persons=[AN, BINH],
                                  cards=[(f"HC401{AN[0]}", AN[0], "2024-01-01", "2099-12-31", "A")])
            return await store.person_by_personal_id(AN[1]), await store.latest_card(AN[0])
        finally:
            await store.close()

    person, card = run(scenario())
    assert person.ssn == AN[0] and card.card_no == f"HC401{AN[0]}"
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT * FROM mo_messages").fetchall() == [("m1", "BH QT 0110129425")]


def test_bulk_load_refuses_a_store_that_holds_records(tmp_path):
    path = tmp_path / "records.db"

    async def scenario():
        store = await filled(path, persons=[AN])
        try:
            async with store.bulk_load():
                await store.write(persons=[BINH])
        finally:
            await store.close()

    with pytest.raises(StoreError, match="already holds records: seed into a new file"):
        run(scenario())


def test_bulk_load_with_a_duplicate_key_loads_nothing(tmp_path):
    path = tmp_path / "records.db"

    async def scenario():
        store = await SqliteStore.open(path, create=True)
        try:
            async with store.bulk_load():
                await store.write(persons=[AN, AN])
        finally:
            await store.close()

    with pytest.raises(StoreError, match="broke a constraint: UNIQUE constraint failed: persons.ssn"):
        run(scenario())

    async def after():
        store = await SqliteStore.open(path)
        try:
            return await store.is_empty(), await store.person_by_ssn(AN[0])
        finally:
            await store.close()

    assert run(after()) == (True, None)
