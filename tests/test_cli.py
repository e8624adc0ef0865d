"""The command line as testers and operators use it: real subprocesses of the installed CLI."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TRANSCRIPTS = ROOT / "fixtures" / "transcripts"
RECORDS = ROOT / "fixtures" / "records"
PHONE = "0912345678"


def smsgw(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "smsgw", *args], input=stdin, capture_output=True, text=True,
        encoding="utf-8", cwd=cwd, timeout=120,
    )


@pytest.fixture(scope="module")
def records_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("records") / "records.db"
    result = smsgw("db", "import", str(RECORDS), "--db", str(db))
    assert result.returncode == 0, result.stderr
    return db


def test_parse_prints_the_contract_json_from_any_directory(tmp_path):
    result = smsgw("parse", "bh qt 0110129425 2016 2017", cwd=tmp_path)
    assert result.returncode == 0
    assert json.loads(result.stdout) == {
        "ok": True, "command": "QT", "id": "0110129425", "id_kind": "ssn", "from": "2016-01", "to": "2017-12"}


def test_parse_reads_every_line_of_stdin_in_order_and_exits_0():
    result = smsgw("parse", stdin="BH HS 04486.g/2019/08708\n\nBH QT 0110129425 13/2016\nHD\n")
    assert result.returncode == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r.get("command") or r.get("error") for r in rows] == ["HS", "empty", "bad_period", "HELP"]
    assert rows[0]["id"] == "04486.G/2019/08708" and rows[0]["id_kind"] == "dossier"
    assert rows[3] == {"ok": True, "command": "HELP", "id": None, "id_kind": None, "from": None, "to": None}
    assert rows[2]["ok"] is False and "012016" in rows[2]["reply"]


def test_send_prints_reply_encoding_segments_and_billing(records_db):
    result = smsgw("send", "--db", str(records_db), "--from", "+84912345678", "BH THE HC4010110129425")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["reply"] == "The BHYT HC4010110129425 co gia tri den 31/12/2099."
    assert (out["encoding"], out["segments"], out["message_type"]) == ("gsm7", 1, 1)


def test_send_with_unicode_config_goes_as_ucs2(records_db):
    result = smsgw("send", "--db", str(records_db), "--from", "0912345678",
                   "--config", str(ROOT / "fixtures" / "config" / "unicode.toml"), "BH QT 0110129425 2016 2017")
    out = json.loads(result.stdout)
    assert out["encoding"] == "ucs2" and "năm" in out["reply"]
    assert out["segments"] == 3  # 142 UTF-16 units: 67 + 67 + 8


def test_send_refuses_a_sender_that_is_not_a_phone_number(records_db):
    result = smsgw("send", "--db", str(records_db), "--from", "hello", "BH")
    assert result.returncode == 1
    assert "--from 'hello'" in result.stderr


def test_send_on_a_missing_database_says_how_to_create_one(tmp_path):
    result = smsgw("send", "--db", str(tmp_path / "none.db"), "--from", "0912345678", "BH")
    assert result.returncode == 1
    assert "smsgw db seed" in result.stderr and "Traceback" not in result.stderr


def test_replay_of_the_reference_transcripts_on_a_fresh_seeded_store():
    files = [str(TRANSCRIPTS / name) for name in ("qt.txt", "the.txt", "hs.txt", "errors.txt")]
    result = smsgw("replay", *files)
    assert result.returncode == 0, result.stderr
    assert "0 mismatched" in result.stdout


def test_replay_in_unicode_mode(records_db):
    result = smsgw("replay", str(TRANSCRIPTS / "unicode.txt"), "--db", str(records_db),
                   "--config", str(ROOT / "fixtures" / "config" / "unicode.toml"))
    assert result.returncode == 0, result.stderr


def test_replay_mismatch_exits_1_with_a_readable_diff(tmp_path, records_db):
    script = tmp_path / "wrong.txt"
    script.write_text(
        "# one right, one wrong\n"
        "0912345678 > BH HS 04486.G/2019/08708\n"
        "0912345678 < Ho so 04486.G/2019/08708: dang xu ly (cap nhat 20/08/2019).\n"
        "0912345678 > BH HS 03103.C/2022/00412\n"
        "0912345678 < Ho so 03103.C/2022/00412: tu choi.\n", encoding="utf-8")
    result = smsgw("replay", str(script), "--db", str(records_db))
    assert result.returncode == 1
    assert f"{script}:4: 84912345678 > BH HS 03103.C/2022/00412" in result.stderr
    assert "- expected: Ho so 03103.C/2022/00412: tu choi." in result.stderr
    assert "+ got:      Ho so 03103.C/2022/00412: da duyet" in result.stderr
    assert "1 as expected, 1 mismatched" in result.stdout


def test_replay_names_file_and_line_of_a_malformed_transcript(tmp_path):
    script = tmp_path / "bad.txt"
    script.write_text("0912345678 > BH\nthis is not a transcript line\n", encoding="utf-8")
    result = smsgw("replay", str(script))
    assert result.returncode == 1
    assert f"{script}:2:" in result.stderr


def test_import_refusal_names_file_and_line_and_exits_1(tmp_path):
    bad = tmp_path / "csv"
    bad.mkdir()
    (bad / "persons.csv").write_text(
        "ssn,personal_id,full_name,date_of_birth,phone\n"
        "0110129425,,Nguyen Van An,1990-03-15,0912345678\n"
        "011012942,,Tran Thi B,1991-01-01,\n", encoding="utf-8")
    result = smsgw("db", "import", str(bad), "--db", str(tmp_path / "r.db"))
    assert result.returncode == 1
    assert "persons.csv:3:" in result.stderr and "Traceback" not in result.stderr


# --- hostile input: one line `smsgw: <what and where>`, exit 1, never a traceback ------------------

SEED_ARGS = ("--persons", "1")


def can_mount_read_only(folder: Path) -> bool:
    """Whether this host lets an unprivileged user namespace bind-mount `folder` read-only."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(read_only(folder, "sh", "-c", 'touch "$0/probe" 2>/dev/null && exit 9 || exit 0', str(folder)),
                           capture_output=True, timeout=10)
    return probe.returncode == 0


def read_only(folder: Path, *argv: str) -> list[str]:
    """`argv` run with `folder` mounted read-only over itself: a read-only file system, even for root."""
    return ["unshare", "-rm", "sh", "-c", 'mount -o bind,ro "$0" "$0" && exec "$@"', str(folder), *argv]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, records_db) -> dict[str, Path]:
    """Files a careless or unlucky operator points smsgw at."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "folder").mkdir()
    (root / "latin1.toml").write_bytes('[notices]\nagent = "Đai ly"\n'.encode("cp1258"))   # Windows' Vietnamese code page
    (root / "corrupt.db").write_bytes(b"not an SQLite file, whatever its name says " * 100)
    store = root / "store"
    store.mkdir()
    shutil.copy(records_db, store / "records.db")
    return {"root": root, "folder": root / "folder", "latin1": root / "latin1.toml",
            "corrupt": root / "corrupt.db", "store": store, "db": store / "records.db"}


def held_port() -> socket.socket:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


# (case, argv, the whole of stderr after `smsgw: `); {name} is a path of the `hostile` fixture.
HOSTILE_CASES = [
    ("send --db a directory", ["send", "--db", "{folder}", "--from", PHONE, "BH"],
     "--db {folder}: is a directory, not a database file"),
    ("db seed --db a directory", ["db", "seed", "--db", "{folder}", *SEED_ARGS],
     "--db {folder}: is a directory, not a database file"),
    ("serve --db a directory", ["serve", "--db", "{folder}"], "--db {folder}: is a directory, not a database file"),
    ("db import --db in a missing folder", ["db", "import", str(RECORDS), "--db", "{root}/nonexistent/x.db"],
     "--db {root}/nonexistent/x.db: the folder {root}/nonexistent does not exist"),
    ("a config that is not UTF-8", ["send", "--db", "{db}", "--from", PHONE, "--config", "{latin1}", "BH"],
     "{latin1}:2: not UTF-8 text (byte 0xd0); TOML files are UTF-8"),
    ("--config a directory", ["serve", "--db", "{db}", "--config", "{folder}"],
     "{folder}: is a directory, not a TOML file"),
    ("serve --port 80000", ["serve", "--db", "{db}", "--port", "80000"],
     "--port 80000: must be 0-65535 (0 picks a free port)"),
    ("serve --port -1", ["serve", "--db", "{db}", "--port", "-1"], "--port -1: must be 0-65535 (0 picks a free port)"),
    ("serve --host 999.1.1.1", ["serve", "--db", "{db}", "--host", "999.1.1.1"], "--host 999.1.1.1: not an IP address"),
    ("serve on a port in use", ["serve", "--db", "{db}", "--port", "{held_port}"],
     "cannot listen on 127.0.0.1:{held_port}: address already in use"),
    ("billing summary on a corrupt database", ["billing", "summary", "--month", "2026-11", "--db", "{corrupt}"],
     "--db {corrupt}: not an SQLite database (file is not a database)"),
    ("report understanding on a corrupt database", ["report", "understanding", "--db", "{corrupt}"],
     "--db {corrupt}: not an SQLite database (file is not a database)"),
    ("billing summary on a read-only file system", ["billing", "summary", "--month", "2026-11", "--db", "{db}"],
     "--db {db}: on a read-only file system (unable to open database file): the message store is opened for "
     "writing (its tables are created when missing); copy the file to a writable place"),
    ("report understanding on a read-only file system", ["report", "understanding", "--db", "{db}"],
     "--db {db}: on a read-only file system (unable to open database file): the message store is opened for "
     "writing (its tables are created when missing); copy the file to a writable place"),
    ("billing export --out into a missing folder",
     ["billing", "export", "--month", "2026-11", "--db", "{db}", "--out", "{root}/missing/billing.csv"],
     "--out {root}/missing/billing.csv: the folder {root}/missing does not exist"),
    ("billing export --out onto a directory", ["billing", "export", "--month", "2026-11", "--db", "{db}",
                                               "--out", "{folder}"], "--out {folder}: is a directory; name a file to write"),
]


@pytest.fixture(scope="module")
def hostile_results(hostile) -> dict[str, tuple[subprocess.CompletedProcess, str]]:
    """Every case of HOSTILE_CASES run at once, each in its own `smsgw` process (a few seconds in all)."""
    holder = held_port()
    paths = {name: str(path) for name, path in hostile.items()} | {"held_port": str(holder.getsockname()[1])}
    mountable = can_mount_read_only(hostile["store"])
    running = {}
    try:
        for case, argv, expected in HOSTILE_CASES:
            command = [sys.executable, "-m", "smsgw", *(part.format(**paths) for part in argv)]
            if "read-only" in case:
                if not mountable:
                    continue
                command = read_only(hostile["store"], *command)
            running[case] = (subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                              encoding="utf-8"), expected.format(**paths))
        results = {}
        for case, (process, expected) in running.items():
            try:
                out, err = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                out, err = process.communicate(timeout=10)
            results[case] = (subprocess.CompletedProcess(process.args, process.returncode, out, err), expected)
        return results
    finally:
        holder.close()
        for process, _ in running.values():
            if process.poll() is None:
                process.kill()


@pytest.mark.parametrize("case", [case for case, _, _ in HOSTILE_CASES])
def test_hostile_input_gets_one_line_naming_what_and_where_and_exit_1(hostile_results, case):
    if case not in hostile_results:
        pytest.skip("this host cannot mount a folder read-only in a user namespace (unshare -rm)")
    result, expected = hostile_results[case]
    assert (result.returncode, result.stderr) == (1, f"smsgw: {expected}\n")
