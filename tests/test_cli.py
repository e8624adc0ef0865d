"""The command line as testers and operators use it: real subprocesses of the installed CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TRANSCRIPTS = ROOT / "fixtures" / "transcripts"
RECORDS = ROOT / "fixtures" / "records"


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
    files = [str(TRANSCRIPTS / name) for name in ("qt.txt", "the.txt", "hs.txt", "errors.txt", "forms.txt", "corrections.txt")]
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


def test_serve_without_a_config_refuses_to_start_naming_it(records_db, tmp_path):
    result = subprocess.run([sys.executable, "-m", "smsgw", "serve", "--db", str(records_db), "--port", "0"],
                            capture_output=True, text=True, encoding="utf-8", timeout=20)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("smsgw: serve needs --config FILE: a TOML file with at least one "
                                    "[carriers.NAME] table")
    empty = tmp_path / "empty.toml"
    empty.write_text("[gateway]\nunicode = true\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "smsgw", "serve", "--db", str(records_db), "--config", str(empty),
                             "--port", "0"], capture_output=True, text=True, encoding="utf-8", timeout=20)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"smsgw: {empty}: carriers: no [carriers.NAME] table")


def test_serve_warns_about_each_generic_carrier_taking_signatures_without_a_timestamp(records_db, tmp_path):
    config = tmp_path / "smsgw.toml"
    config.write_text('[carriers.old]\nsecret = "k"\n[carriers.new]\nsecret = "k"\nrequire_timestamp = true\n',
                      encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "smsgw", "serve", "--db", str(records_db), "--config",
                                str(config), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, encoding="utf-8")
    try:
        listening = process.stdout.readline()
        assert listening.startswith("smsgw listening on http://127.0.0.1:"), listening
        # answered once the loop runs, so the SIGTERM handler is in place: a graceful stop
        with urllib.request.urlopen(f"{listening.split()[-1]}/healthz", timeout=10) as response:
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0
    warnings = [line for line in map(json.loads, stderr.splitlines()) if "X-Smsgw-Timestamp" in line["event"]]
    assert [(line["level"], line["carrier"]) for line in warnings] == [("warning", "old")]
    assert "set require_timestamp = true" in warnings[0]["event"]
