import asyncio
import csv
import io
import re
import sqlite3
import unicodedata
from datetime import date

import pytest

from smsgw.commands import HS, QT, THE, IdKind, Month
from smsgw.importer import ImportSummary, import_directory
from smsgw.language import parse
from smsgw.phones import normalize
from smsgw.progress import Progress
from smsgw.seed import AS_OF, seed_database
from smsgw.store import DOSSIER_STATUSES, SqliteStore, StoreError

REFERENCE_SSNS = {"0110129425", "7910234567", "3101234567", "4801234568", "0121987654", "8201234567"}
PROVINCES = {"01", "02", "04", "06", "08", "10", "11", "12", "14", "15", "17", "19", "20", "22", "24", "25", "26",
             "27", "30", "31", "33", "34", "35", "36", "37", "38", "40", "42", "44", "45", "46", "48", "49", "51",
             "52", "54", "56", "58", "60", "62", "64", "66", "67", "68", "70", "72", "74", "75", "77", "79", "80",
             "82", "83", "84", "86", "87", "89", "91", "92", "93", "94", "95", "96"}
CARRIER_PREFIXES = ("8486", "8496", "8497", "8498", "843", "8488", "8491", "8494", "8481", "8482", "8483", "8484",
                    "8485", "8489", "8490", "8493", "8470", "8476", "8477", "8478", "8479", "8492", "8456", "8458",
                    "8499", "8459")


def seeded(path, persons, seed):
    asyncio.run(seed_database(path, persons, seed, progress=False))
    with sqlite3.connect(path) as db:
        return {table: db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
                for table in ("persons", "periods", "cards", "dossiers")}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return seeded(tmp_path_factory.mktemp("seed") / "records.db", 3000, 7)


def synthetic(rows, column=0):
    return [row for row in rows if row[column] not in REFERENCE_SSNS]


def test_the_same_seed_and_count_give_the_same_database(tmp_path):
    assert seeded(tmp_path / "a.db", 500, 3) == seeded(tmp_path / "b.db", 500, 3)


def test_another_seed_gives_other_persons(tmp_path):
    first, second = seeded(tmp_path / "a.db", 500, 3), seeded(tmp_path / "b.db", 500, 4)
    assert set(first["persons"]) & set(second["persons"]) == set(first["persons"][:6])  # the reference persons


def test_the_count_is_of_synthetic_persons_and_the_reference_records_come_too(tmp_path):
    path = tmp_path / "records.db"
    summary = asyncio.run(seed_database(path, 250, progress=False))
    assert (summary.persons, summary.reference_persons) == (250, 6)

    async def look():
        store = await SqliteStore.open(path)
        try:
            return (await store.person_by_ssn("0110129425"), await store.person_by_personal_id("001185006789"),
                    await store.latest_card("0110129425"), await store.dossier("04486.G/2019/08708"),
                    len(await store.periods("0110129425")), await store.periods("4801234568"))
        finally:
            await store.close()

    an, mai, card, dossier, an_periods, no_periods = asyncio.run(look())
    assert (an.full_name, an.phone) == ("Nguyễn Văn An", "84912345678")
    assert mai.ssn == "0121987654"
    assert (card.card_no, card.valid_to) == ("HC4010110129425", date(2099, 12, 31))
    assert dossier.status == "processing"
    assert (an_periods, no_periods) == (6, [])
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM persons").fetchone() == (256,)


def test_seeding_a_database_that_holds_records_is_refused(tmp_path):
    path = tmp_path / "records.db"
    asyncio.run(seed_database(path, 10, progress=False))
    with pytest.raises(StoreError, match="already holds records"):
        asyncio.run(seed_database(path, 10, progress=False))


def test_identifiers_have_the_shapes_the_message_language_accepts(world):
    persons = synthetic(world["persons"])
    assert len(persons) == 3000
    for ssn, personal_id, _, born, _ in persons:
        assert re.fullmatch(r"[0-9]{10}", ssn) and ssn[:2] in PROVINCES
        if personal_id is not None:
            born = date.fromisoformat(born)
            sex_and_century = int(personal_id[3])
            assert re.fullmatch(r"0[0-9]{11}", personal_id)
            assert personal_id[1:3] == ssn[:2]
            assert sex_and_century // 2 == (born.year >= 2000) and personal_id[4:6] == f"{born.year % 100:02d}"
    for card_no, ssn, *_ in synthetic(world["cards"], 1):
        assert re.fullmatch(r"[A-Z]{2}[1-5][0-9]{2}[0-9]{10}", card_no) and card_no[-10:] == ssn
    for code, *_ in world["dossiers"]:
        assert re.fullmatch(r"[0-9]{5}\.[A-Z]/[0-9]{4}/[0-9]{5}", code)


def test_the_message_language_parses_every_generated_identifier(world):
    for ssn, personal_id, *_ in world["persons"][:500]:
        assert parse(f"BH QT {ssn}") == QT(ssn, IdKind.SSN)
        if personal_id:
            assert parse(f"BH QT {personal_id}") == QT(personal_id, IdKind.PERSONAL_ID)
    for card_no, *_ in world["cards"][:500]:
        assert parse(f"BH THE {card_no}") == THE(card_no, IdKind.CARD)
    for code, *_ in world["dossiers"][:500]:
        assert parse(f"BH HS {code}") == HS(code)


def test_most_but_not_all_persons_have_a_personal_id_and_a_phone(world):
    persons = synthetic(world["persons"])
    with_id = sum(row[1] is not None for row in persons) / len(persons)
    with_phone = sum(row[4] is not None for row in persons) / len(persons)
    assert 0.7 < with_id < 0.95 and 0.7 < with_phone < 0.95


def test_phones_are_normalised_mobiles_of_vietnamese_carriers(world):
    phones = [row[4] for row in synthetic(world["persons"]) if row[4]]
    for phone in phones:
        assert normalize(phone) == phone
        assert phone.startswith(CARRIER_PREFIXES) and len(phone) == 11
    assert len({phone[:4] for phone in phones}) > 20


def test_names_are_vietnamese_with_diacritics(world):
    names = [row[2] for row in synthetic(world["persons"])]
    families = {name.split()[0] for name in names}
    assert {"Nguyễn", "Trần", "Lê", "Phạm"} <= families
    assert all(len(name.split()) >= 3 and unicodedata.is_normalized("NFC", name) for name in names)
    assert sum(not name.isascii() for name in names) > 0.9 * len(names)


def test_careers_have_overlaps_gaps_and_bhtn_inside_bhxh_since_2009(world):
    jobs: dict[str, list[tuple[int, int]]] = {}
    for ssn, scheme, employer, start, end in synthetic(world["periods"]):
        assert start <= end <= Month(AS_OF.year, AS_OF.month).index and employer
        if scheme == "BHXH":
            jobs.setdefault(ssn, []).append((start, end))
    for ssn, scheme, _, start, end in synthetic(world["periods"]):
        if scheme == "BHTN":
            assert start >= Month(2009, 1).index
            assert any(job_start <= start and end <= job_end for job_start, job_end in jobs[ssn])
    overlaps = gaps = 0
    for periods in jobs.values():
        periods.sort()
        for (_, end), (start, _) in zip(periods, periods[1:]):
            overlaps += start <= end
            gaps += start > end + 1
    assert overlaps > 10 and gaps > 100
    assert len(jobs) < 3000  # some persons never worked under social insurance


def test_cards_are_valid_or_expired_and_dossiers_in_every_status(world):
    cards = synthetic(world["cards"], 1)
    assert any(date.fromisoformat(valid_to) < AS_OF for _, _, _, valid_to, _ in cards)
    assert any(date.fromisoformat(valid_to) > AS_OF for _, _, _, valid_to, _ in cards)
    assert all(valid_from <= valid_to and date.fromisoformat(valid_from) <= AS_OF
               for _, _, valid_from, valid_to, _ in cards)
    assert {status for _, _, status, _ in world["dossiers"]} == set(DOSSIER_STATUSES)


def test_a_seeded_database_exported_to_csv_imports_cleanly(world, tmp_path):
    directory = tmp_path / "export"
    directory.mkdir()
    headers = {
        "persons": "ssn,personal_id,full_name,date_of_birth,phone",
        "periods": "ssn,scheme,employer,from_month,to_month",
        "cards": "card_no,ssn,valid_from,valid_to,hospital",
        "dossiers": "dossier_code,ssn,status,updated_at",
    }
    for table, header in headers.items():
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header.split(","))
        for row in world[table]:
            if table == "periods":
                row = (*row[:3], str(Month.from_index(row[3])), str(Month.from_index(row[4])))
            writer.writerow(["" if value is None else value for value in row])
        (directory / f"{table}.csv").write_text(out.getvalue(), encoding="utf-8")
    summary = asyncio.run(import_directory(directory, tmp_path / "copy.db"))
    assert summary == ImportSummary(*(len(world[table]) for table in headers))


def test_progress_draws_on_the_stream_and_ends_with_a_final_line():
    stream = io.StringIO()
    with Progress(200, "seeding", enabled=True, stream=stream) as bar:
        for _ in range(4):
            bar.advance(50)
    output = stream.getvalue()
    assert output.endswith("\n") and output.count("\n") == 1
    final = output.rsplit("\r", 1)[1]
    assert final.startswith("seeding [") and "100%" in final and "200/200" in final


def test_progress_is_silent_when_disabled_or_not_on_a_terminal():
    stream = io.StringIO()
    with Progress(10, "seeding", stream=stream) as bar:
        bar.advance(10)
    with Progress(10, "seeding", enabled=False, stream=stream) as bar:
        bar.advance(10)
    assert stream.getvalue() == ""
