import asyncio
import os
import shutil
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from smsgw.importer import ImportFailed, ImportSummary, import_directory
from smsgw.store import SqliteStore

REFERENCE = Path(__file__).resolve().parent.parent / "fixtures" / "records"
PERSONS = "ssn,personal_id,full_name,date_of_birth,phone\n"
PERIODS = "ssn,scheme,employer,from_month,to_month\n"
CARDS = "card_no,ssn,valid_from,valid_to,hospital\n"
DOSSIERS = "dossier_code,ssn,status,updated_at\n"
NEW = "0209876543,,Đỗ Văn Hùng,1980-01-01,0912000111\n"           # not in the store
NEW_2 = "0209876544,002080123456,Đỗ Thị Hoa,1980-02-02,\n"
AN = "0110129425"                                                # in the store (reference records)


@pytest.fixture(scope="module")
def reference_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("reference") / "records.db"
    asyncio.run(import_directory(REFERENCE, path))
    return path


@pytest.fixture
def db(reference_db, tmp_path):
    path = tmp_path / "records.db"
    shutil.copy(reference_db, path)
    return path


def write(directory: Path, files: dict[str, str | bytes]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, content in files.items():
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        (directory / name).write_bytes(data)
    return directory


def dump(path):
    with sqlite3.connect(path) as connection:
        return list(connection.iterdump())


async def lookups(path, *calls):
    store = await SqliteStore.open(path)
    try:
        return [await getattr(store, name)(*args) for name, *args in calls]
    finally:
        await store.close()


REFUSALS = [
    # persons.csv: header
    ({"persons.csv": "ssn,personal_id,full_name,date_of_birth\n"},
     "persons.csv:1: missing column 'phone': expected the columns ssn,personal_id,full_name,date_of_birth,phone"
     " in any order"),
    ({"persons.csv": "ssn,personal_id,full_name,date_of_birth,phone,email\n"},
     "persons.csv:1: unknown column 'email': expected the columns ssn,personal_id,full_name,date_of_birth,phone"
     " in any order"),
    ({"persons.csv": "ssn,ssn,personal_id,full_name,date_of_birth,phone\n"},
     "persons.csv:1: duplicated column 'ssn': expected the columns ssn,personal_id,full_name,date_of_birth,phone"
     " in any order"),
    ({"persons.csv": ""},
     "persons.csv:1: empty file: expected the header ssn,personal_id,full_name,date_of_birth,phone"),
    # persons.csv: rows
    ({"persons.csv": PERSONS + NEW + "0209876544,,Đỗ Thị Hoa,1980-02-02\n"},
     "persons.csv:3: expected 5 fields, found 4"),
    ({"persons.csv": PERSONS + "020987654,,Đỗ Văn Hùng,1980-01-01,\n"}, "persons.csv:2: bad ssn: expected 10 digits"),
    ({"persons.csv": PERSONS + "02098765X3,,Đỗ Văn Hùng,1980-01-01,\n"}, "persons.csv:2: bad ssn: expected 10 digits"),
    ({"persons.csv": PERSONS + "0209876543,00208012345,Đỗ Văn Hùng,1980-01-01,\n"},
     "persons.csv:2: bad personal_id: expected 12 digits, or nothing"),
    ({"persons.csv": PERSONS + "0209876543,, ,1980-01-01,\n"}, "persons.csv:2: full_name is empty"),
    ({"persons.csv": PERSONS + "0209876543,,Đỗ Văn Hùng,01/01/1980,\n"},
     "persons.csv:2: bad date_of_birth: expected YYYY-MM-DD"),
    ({"persons.csv": PERSONS + "0209876543,,Đỗ Văn Hùng,1980-02-30,\n"},
     "persons.csv:2: bad date_of_birth: not a real date"),
    ({"persons.csv": PERSONS + "0209876543,,Đỗ Văn Hùng,1980-01-01,0912\n"},
     "persons.csv:2: bad phone: not a valid number: no such number in Vietnam or abroad"),
    ({"persons.csv": PERSONS + "0209876543,,Đỗ Văn Hùng,1980-01-01,09l2345678\n"},
     "persons.csv:2: bad phone: not a phone number: only digits, spaces, dots, dashes and a leading '+' are allowed"),
    ({"persons.csv": PERSONS + "0209876543,,Đỗ Văn Hùng,1980-01-01,02438123456\n"},
     "persons.csv:2: bad phone: not a valid number: a Vietnamese number must be a mobile number"),
    ({"persons.csv": PERSONS + NEW + NEW},
     "persons.csv:3: duplicate ssn: already on line 2"),
    ({"persons.csv": PERSONS + NEW_2 + "0209876545,002080123456,Đỗ Văn Nam,1980-03-03,\n"},
     "persons.csv:3: duplicate personal_id: already given to the person on line 2"),
    ({"persons.csv": PERSONS + NEW + "0209876544,001090012345,Đỗ Thị Hoa,1980-02-02,\n"},
     "persons.csv:3: personal_id already belongs to another person in the store"),
    ({"persons.csv": PERSONS.encode() + NEW.encode() + b"0209876544,,\xff\xfe,1980-02-02,\n"},
     "persons.csv:3: not valid UTF-8 (byte 0xff)"),
    ({"persons.csv": PERSONS + NEW + '0209876544,,"Đỗ Thị Hoa,1980-02-02,\n'},
     "persons.csv:3: malformed CSV: unexpected end of data"),
    # periods.csv
    ({"persons.csv": PERSONS + NEW, "periods.csv": "ssn,scheme,employer,from,to_month\n"},
     "periods.csv:1: missing column 'from_month': expected the columns ssn,scheme,employer,from_month,to_month"
     " in any order"),
    ({"persons.csv": PERSONS + NEW, "periods.csv": PERIODS + "0209876543,BHXH,Công ty A,2016/01,2016-12\n"},
     "periods.csv:2: bad from_month: not a YYYY-MM month: '2016/01'"),
    ({"persons.csv": PERSONS + NEW, "periods.csv": PERIODS + "0209876543,BHXH,Công ty A,2016-01,2016-13\n"},
     "periods.csv:2: bad to_month: month outside 01-12: '2016-13'"),
    ({"persons.csv": PERSONS + NEW, "periods.csv": PERIODS + "0209876543,BHXH,Công ty A,2017-01,2016-12\n"},
     "periods.csv:2: from_month 2017-01 is after to_month 2016-12"),
    ({"persons.csv": PERSONS + NEW, "periods.csv": PERIODS + "0209876543,BHYT,Công ty A,2016-01,2016-12\n"},
     "periods.csv:2: unknown scheme 'BHYT': expected BHXH or BHTN"),
    ({"persons.csv": PERSONS + NEW, "periods.csv": PERIODS + "0209876549,BHXH,Công ty A,2016-01,2016-12\n"},
     "periods.csv:2: unknown person: the ssn is neither in the store nor in persons.csv"),
    ({"persons.csv": PERSONS + NEW, "periods.csv": PERIODS + "0209876543,BHXH,Công ty A,2016-01,2016-12\n"
      "0209876543,BHTN,Công ty A,2016-01,2016-12\n" + "0209876543,bhxh,Công ty A,2016-01,2016-12\n"},
     "periods.csv:4: duplicate period: the same row is already on line 2"),
    ({"persons.csv": PERSONS + NEW, "periods.csv": PERIODS + "0209876543,BHXH,Công ty A,2016-01\n"},
     "periods.csv:2: expected 5 fields, found 4"),
    # cards.csv
    ({"persons.csv": PERSONS + NEW, "cards.csv": CARDS + "HC6010209876543,0209876543,2024-01-01,2024-12-31,BV\n"},
     "cards.csv:2: bad card_no: expected 2 letters, a benefit level 1-5, 2 province digits and the holder's"
     " 10-digit ssn, e.g. HC4010110129425"),
    ({"persons.csv": PERSONS + NEW, "cards.csv": CARDS + "HC401020987654,0209876543,2024-01-01,2024-12-31,BV\n"},
     "cards.csv:2: bad card_no: expected 2 letters, a benefit level 1-5, 2 province digits and the holder's"
     " 10-digit ssn, e.g. HC4010110129425"),
    ({"persons.csv": PERSONS + NEW, "cards.csv": CARDS + "HC4010110129425,0209876543,2024-01-01,2024-12-31,BV\n"},
     "cards.csv:2: card_no does not end with the holder's ssn"),
    ({"persons.csv": PERSONS + NEW, "cards.csv": CARDS + "HC4010209876543,0209876543,2025-01-01,2024-12-31,BV\n"},
     "cards.csv:2: valid_from 2025-01-01 is after valid_to 2024-12-31"),
    ({"persons.csv": PERSONS + NEW, "cards.csv": CARDS + "HC4010209876543,0209876543,2024-01-01,2024-13-01,BV\n"},
     "cards.csv:2: bad valid_to '2024-13-01': not a real date"),
    ({"persons.csv": PERSONS + NEW, "cards.csv": CARDS + "HC4010209876543,0209876543,2024-1-1,2024-12-31,BV\n"},
     "cards.csv:2: bad valid_from '2024-1-1': expected YYYY-MM-DD"),
    ({"persons.csv": PERSONS + NEW, "cards.csv": CARDS + "HC4010209876543,0209876543,2024-01-01,2024-12-31,BV\n"
      "hc4010209876543,0209876543,2025-01-01,2025-12-31,BV\n"},
     "cards.csv:3: duplicate card_no: already on line 2"),
    ({"persons.csv": PERSONS + NEW, "cards.csv": CARDS + "HC4010209876549,0209876549,2024-01-01,2024-12-31,BV\n"},
     "cards.csv:2: unknown person: the ssn is neither in the store nor in persons.csv"),
    # dossiers.csv
    ({"persons.csv": PERSONS + NEW, "dossiers.csv": DOSSIERS + "4486.G/2019/08708,0209876543,received,2024-01-01\n"},
     "dossiers.csv:2: bad dossier_code '4486.G/2019/08708': expected NNNNN.L/YYYY/NNNNN, e.g. 04486.G/2019/08708"),
    ({"persons.csv": PERSONS + NEW, "dossiers.csv": DOSSIERS + "04486.G/2019/08709,0209876543,done,2024-01-01\n"},
     "dossiers.csv:2: unknown status 'done': expected one of received, processing, needs_more, approved, rejected,"
     " returned"),
    ({"persons.csv": PERSONS + NEW, "dossiers.csv": DOSSIERS + "04486.G/2019/08709,0209876543,received,2023-02-29\n"},
     "dossiers.csv:2: bad updated_at '2023-02-29': not a real date"),
    ({"persons.csv": PERSONS + NEW, "dossiers.csv": DOSSIERS + "04486.G/2019/08709,0209876543,received,2024-01-01\n"
      "04486.g/2019/08709,0209876543,approved,2024-02-01\n"},
     "dossiers.csv:3: duplicate dossier_code: already on line 2"),
    ({"persons.csv": PERSONS + NEW, "dossiers.csv": DOSSIERS + "04486.G/2019/08709,0209876549,received,2024-01-01\n"},
     "dossiers.csv:2: unknown person: the ssn is neither in the store nor in persons.csv"),
    # the first bad row wins, whatever its kind
    ({"persons.csv": PERSONS + NEW, "periods.csv": PERIODS + "0209876549,BHXH,Công ty A,2016-01,2016-12\n"
      "0209876543,BHXH,Công ty A,2016-01,2016-13\n"},
     "periods.csv:2: unknown person: the ssn is neither in the store nor in persons.csv"),
    ({"persons.csv": PERSONS + NEW, "periods.csv": PERIODS + "0209876543,BHXH,Công ty A,2016-01,2016-13\n"
      "0209876549,BHXH,Công ty A,2016-01,2016-12\n"},
     "periods.csv:2: bad to_month: month outside 01-12: '2016-13'"),
    ({"persons.csv": PERSONS + NEW + "0209876544,001090012345,Đỗ Thị Hoa,1980-02-02,\n0209876545,,,1980-01-01,\n"},
     "persons.csv:3: personal_id already belongs to another person in the store"),
    ({"persons.csv": PERSONS + NEW + "0209876545,,,1980-01-01,\n0209876544,001090012345,Đỗ Thị Hoa,1980-02-02,\n"},
     "persons.csv:3: full_name is empty"),
    # a later file fails: the persons of the same import are not loaded either
    ({"persons.csv": PERSONS + NEW, "periods.csv": PERIODS + "0209876543,BHXH,Công ty A,2016-01,2016-12\n",
      "cards.csv": CARDS + "HC4010209876543,0209876543,2024-01-01,2024-12-31,BV\n",
      "dossiers.csv": DOSSIERS + "04486.G/2019/08709,0209876543,closed,2024-01-01\n"},
     "dossiers.csv:2: unknown status 'closed': expected one of received, processing, needs_more, approved,"
     " rejected, returned"),
]


@pytest.mark.parametrize("files, message", REFUSALS, ids=[message for _, message in REFUSALS])
def test_a_bad_row_stops_the_import_and_leaves_the_store_exactly_as_it_was(db, tmp_path, files, message):
    directory = write(tmp_path / "import", files)
    before = dump(db)
    with pytest.raises(ImportFailed) as failed:
        asyncio.run(import_directory(str(directory), db))
    assert str(failed.value) == f"{directory}{os.sep}{message}"
    assert dump(db) == before


def test_the_failure_carries_file_line_and_reason(db, tmp_path):
    directory = write(tmp_path / "import", {"persons.csv": PERSONS + NEW + NEW})
    with pytest.raises(ImportFailed) as failed:
        asyncio.run(import_directory(directory, db))
    assert (failed.value.file, failed.value.line, failed.value.reason) == (
        str(directory / "persons.csv"), 3, "duplicate ssn: already on line 2")


def test_persons_csv_is_required(db, tmp_path):
    directory = write(tmp_path / "import", {"periods.csv": PERIODS})
    before = dump(db)
    with pytest.raises(ImportFailed) as failed:
        asyncio.run(import_directory(directory, db))
    assert str(failed.value) == f"{directory / 'persons.csv'}: missing: persons.csv is required"
    assert dump(db) == before


def test_a_missing_directory_is_refused(db, tmp_path):
    with pytest.raises(ImportFailed, match="no such directory"):
        asyncio.run(import_directory(tmp_path / "nowhere", db))


def test_a_failed_import_into_a_new_database_leaves_no_file(tmp_path):
    directory = write(tmp_path / "import", {"persons.csv": PERSONS + NEW + NEW})
    target = tmp_path / "new.db"
    with pytest.raises(ImportFailed):
        asyncio.run(import_directory(directory, target))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["import"]


def test_the_reference_records_import_into_a_new_database(tmp_path):
    target = tmp_path / "records.db"
    summary = asyncio.run(import_directory(REFERENCE, target))
    assert summary == ImportSummary(persons=6, periods=13, cards=8, dossiers=6)
    assert str(summary) == "6 persons, 13 periods, 8 cards, 6 dossiers"
    person, by_id, card, dossier = asyncio.run(lookups(
        target, ("person_by_ssn", AN), ("person_by_personal_id", "001185006789"),
        ("card", "HC4010110129425"), ("dossier", "04486.G/2019/08708")))
    assert (person.full_name, person.phone, person.date_of_birth) == ("Nguyễn Văn An", "84912345678", date(1990, 3, 15))
    assert by_id.ssn == "0121987654"
    assert (card.ssn, card.valid_to) == (AN, date(2099, 12, 31))
    assert dossier.status == "processing"


def test_files_may_order_columns_freely_carry_a_bom_crlf_and_blank_lines(db, tmp_path):
    directory = write(tmp_path / "import", {
        "persons.csv": "\ufeffphone,full_name,ssn,date_of_birth,personal_id\r\n"
                       "+84 912 000 111,Đỗ Văn Hùng,0209876543,1980-01-01,\r\n\r\n",
        "cards.csv": "ssn,card_no,hospital,valid_from,valid_to\r\n"
                     "0209876543,hc4010209876543,Bệnh viện A,2024-01-01,2099-12-31\r\n",
        "dossiers.csv": "ssn,dossier_code,updated_at,status\n0209876543,12345.g/2024/00001,2024-05-06,Approved\n",
    })
    # a dossier new to a store holding dossiers already, approved: a result for its holder
    assert asyncio.run(import_directory(directory, db)) == ImportSummary(persons=1, cards=1, dossiers=1, results=1)
    person, card, dossier = asyncio.run(lookups(
        db, ("person_by_ssn", "0209876543"), ("card", "HC4010209876543"), ("dossier", "12345.G/2024/00001")))
    assert (person.phone, person.personal_id) == ("84912000111", None)
    assert card.card_no == "HC4010209876543"
    assert (dossier.code, dossier.status) == ("12345.G/2024/00001", "approved")


def test_rows_may_refer_to_persons_of_the_store_or_of_the_same_import(db, tmp_path):
    directory = write(tmp_path / "import", {
        "persons.csv": PERSONS + NEW,
        "periods.csv": PERIODS + f"{AN},BHXH,Công ty TNHH Mới,2025-01,2025-06\n"
                                 "0209876543,BHXH,Công ty A,2016-01,2016-12\n",
    })
    assert asyncio.run(import_directory(directory, db)) == ImportSummary(persons=1, periods=2)
    an_periods, new_periods = asyncio.run(lookups(db, ("periods", AN), ("periods", "0209876543")))
    assert len(an_periods) == 7
    assert [(p.employer, str(p.start), str(p.end)) for p in new_periods] == [("Công ty A", "2016-01", "2016-12")]


def test_an_import_merges_a_known_key_replaces_and_a_known_period_is_not_doubled(db, tmp_path):
    directory = write(tmp_path / "import", {
        "persons.csv": PERSONS + f"{AN},001090012345,Nguyễn Văn Ân,1990-03-15,0987000111\n",
        "periods.csv": PERIODS + f"{AN},BHXH,Công ty TNHH Minh Phát,2012-07,2016-06\n",
        "cards.csv": CARDS + f"HC401{AN},{AN},2024-01-01,2030-12-31,Bệnh viện Hữu nghị\n",
        "dossiers.csv": DOSSIERS + f"04486.G/2019/08708,{AN},approved,2019-09-30\n",
    })
    asyncio.run(import_directory(directory, db))
    person, periods, card, dossier = asyncio.run(lookups(
        db, ("person_by_ssn", AN), ("periods", AN), ("card", f"HC401{AN}"), ("dossier", "04486.G/2019/08708")))
    assert (person.full_name, person.phone) == ("Nguyễn Văn Ân", "84987000111")
    assert len(periods) == 6
    assert (card.valid_to, card.hospital) == (date(2030, 12, 31), "Bệnh viện Hữu nghị")
    assert (dossier.status, dossier.updated_at) == ("approved", date(2019, 9, 30))


def test_an_import_may_hand_a_personal_id_to_another_person_it_also_updates(db, tmp_path):
    directory = write(tmp_path / "import", {
        "persons.csv": PERSONS + "0209876543,001090012345,Đỗ Văn Hùng,1980-01-01,\n"
                                 f"{AN},001090099999,Nguyễn Văn An,1990-03-15,0912345678\n",
    })
    asyncio.run(import_directory(directory, db))
    new_owner, an = asyncio.run(lookups(
        db, ("person_by_personal_id", "001090012345"), ("person_by_personal_id", "001090099999")))
    assert (new_owner.ssn, an.ssn) == ("0209876543", AN)
