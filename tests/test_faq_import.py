"""`smsgw faq import FILE --db DB` and `load_faq`: the FAQ stored whole, on both backends."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from smsgw.cli import main
from smsgw.faq import Faq
from smsgw.faq_store import load_faq
from smsgw.store import migrate

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "fixtures" / "faq" / "faq.csv"
HEADER = "id,question,answer\n"
LOST_CARD = 'mat-the,Mất thẻ BHYT thì làm thế nào? | Làm lại thẻ BHYT bị mất,"Nộp tờ khai TK1-TS tại cơ quan BHXH."\n'
CHILD_CARD = "the-tre-em,Trẻ em dưới 6 tuổi làm thẻ BHYT ở đâu?,Miễn phí; đăng ký cùng khai sinh.\n"
PENSION = "luong-huu,Bao nhiêu tuổi thì được lương hưu?,Nam 62 tuổi và nữ 60 tuổi (lộ trình đến 2035).\n"


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=60))


def write(tmp_path: Path, content: str | bytes, name: str = "faq.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def faq_import(path: Path, db: str, capsys) -> tuple[int, str]:
    code = main(["faq", "import", str(path), "--db", db])
    return code, capsys.readouterr().err


def stored(db: str) -> list[tuple[str, str, str]] | None:
    faq = run(load_faq(db))
    return None if faq is None else [(entry.id, entry.question, entry.answer) for entry in faq.entries]


def test_a_good_file_is_stored_in_file_order_and_matches(db, tmp_path, capsys):
    path = write(tmp_path, HEADER + PENSION + LOST_CARD + CHILD_CARD)
    code, err = faq_import(path, db, capsys)
    assert code == 0, err
    assert "3 FAQ entries" in err and "replaced" in err
    entries = stored(db)
    assert [entry[0] for entry in entries] == ["luong-huu", "mat-the", "the-tre-em"]
    assert entries[1] == ("mat-the", "Mất thẻ BHYT thì làm thế nào? | Làm lại thẻ BHYT bị mất",
                          "Nộp tờ khai TK1-TS tại cơ quan BHXH.")
    faq = run(load_faq(db))
    assert faq.entries[1].phrasings == ("Mất thẻ BHYT thì làm thế nào?", "Làm lại thẻ BHYT bị mất")
    assert faq.suggest("lam lai the bhyt bi mat", 1)[0][0].id == "mat-the"


def test_an_import_replaces_the_whole_stored_faq(db, tmp_path, capsys):
    assert faq_import(write(tmp_path, HEADER + PENSION + LOST_CARD, "first.csv"), db, capsys)[0] == 0
    assert faq_import(write(tmp_path, HEADER + CHILD_CARD + PENSION.replace("60 tuổi", "60 tuổi."), "second.csv"),
                      db, capsys)[0] == 0
    entries = stored(db)
    assert [entry[0] for entry in entries] == ["the-tre-em", "luong-huu"]   # mat-the is gone
    assert entries[1][2].endswith("60 tuổi. (lộ trình đến 2035).")


def test_a_bad_file_changes_nothing_stored(db, tmp_path, capsys):
    assert faq_import(write(tmp_path, HEADER + PENSION + LOST_CARD, "first.csv"), db, capsys)[0] == 0
    before = stored(db)
    # good rows first, the bad one last: none of them is stored
    bad = write(tmp_path, HEADER + CHILD_CARD + PENSION + "x,Hỏi gì?,\n", "bad.csv")
    code, err = faq_import(bad, db, capsys)
    assert (code, err) == (1, f"smsgw: import refused, nothing loaded: {bad}:4: answer is empty\n")
    assert stored(db) == before


def test_nothing_imported_loads_as_no_faq(db):
    run(migrate(db))
    assert run(load_faq(db)) is None


@pytest.mark.parametrize(("content", "where", "reason"), [
    ("id,question\nx,Hỏi?\n", 1, "missing column 'answer'"),
    ("id,question,answer,extra\n", 1, "unknown column 'extra'"),
    (HEADER + LOST_CARD + "the-tre-em,,Miễn phí.\n", 3, "question is empty"),
    (HEADER + "the-tre-em, | ,Miễn phí.\n", 2, "question is empty"),
    (HEADER + "the-tre-em,Trẻ em?,\n", 2, "answer is empty"),
    (HEADER + ",Trẻ em?,Miễn phí.\n", 2, "id is empty"),
    (HEADER + LOST_CARD + CHILD_CARD + LOST_CARD, 4, "duplicate id: already on line 2"),
    (HEADER + "a,b\n", 2, "expected 3 fields, found 2"),
    (HEADER + 'a,"b,c\n', 2, "malformed CSV"),
    ((HEADER + LOST_CARD).encode() + b"x,Th\xe9,\xd0\xfang\n", 3, "not valid UTF-8"),
    ("", 1, "empty file"),
    (HEADER, None, "no entries"),
])
def test_each_bad_file_is_refused_naming_file_and_line_and_creates_no_database(tmp_path, capsys, content, where,
                                                                              reason):
    path = write(tmp_path, content)
    db = tmp_path / "new.db"
    code, err = faq_import(path, str(db), capsys)
    location = f"{path}" if where is None else f"{path}:{where}"
    assert code == 1
    assert err.startswith(f"smsgw: import refused, nothing loaded: {location}: {reason}"), err
    assert err.count("\n") == 1
    assert not db.exists()


def test_command_line_messages_and_no_traceback(tmp_path):
    def smsgw(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "smsgw", *args], capture_output=True, text=True,
                              encoding="utf-8", timeout=120)

    db = tmp_path / "smsgw.db"
    missing = smsgw("faq", "import", str(tmp_path / "absent.csv"), "--db", str(db))
    assert (missing.returncode, missing.stderr) == (
        1, f"smsgw: import refused, nothing loaded: {tmp_path / 'absent.csv'}: no such file\n")
    bad = smsgw("faq", "import", str(write(tmp_path, HEADER + "a,b\n")), "--db", str(db))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.endswith("faq.csv:2: expected 3 fields, found 2\n")
    no_folder = smsgw("faq", "import", str(SHIPPED), "--db", str(tmp_path / "nowhere" / "smsgw.db"))
    assert no_folder.returncode == 1 and "Traceback" not in no_folder.stderr
    assert "does not exist" in no_folder.stderr
    good = smsgw("faq", "import", str(SHIPPED), "--db", str(db))
    assert good.returncode == 0 and good.stdout == ""
    entries = len(Faq.from_csv(SHIPPED).entries)
    assert good.stderr == (f"imported into {db}: {entries} FAQ entries, 0 examples (the previous FAQ replaced; its "
                           "examples kept where their entry id is still in the FAQ: 0 of 0; --replace-examples drops "
                           "them)\n")
    usage = smsgw("faq", "import", str(SHIPPED))
    assert usage.returncode == 2 and "--db" in usage.stderr


def test_the_shipped_faq_imports_and_loads_as_it_reads(db, capsys):
    code, err = faq_import(SHIPPED, db, capsys)
    assert code == 0, err
    loaded, read = run(load_faq(db)), Faq.from_csv(SHIPPED)
    assert loaded.entries == read.entries
    question = "the bhyt het han thi gia han o dau"
    assert loaded.match(question) == read.match(question)
