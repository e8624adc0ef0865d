"""Replies that correct the message (CONTRACT §1b), through parse, `smsgw send` and HTTP."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.gsm import measure
from smsgw.commands import ERROR_CODES
from smsgw.language import ParseError, parse
from smsgw.syntax_replies import syntax_reply, syntax_reply_for

ROOT = Path(__file__).resolve().parent.parent
TRANSCRIPTS = ROOT / "fixtures" / "transcripts"
TODAY = date(2026, 11, 23)
ASKS = "Co phai ban muon gui tin nhan sau?"


def reply(text: str, routes: frozenset[str] = frozenset()) -> tuple[str, str]:
    result = parse(text, today=TODAY, routes=routes)
    assert isinstance(result, ParseError), text
    assert measure(syntax_reply_for(result)).encoding == "gsm7" and measure(syntax_reply_for(result)).segments == 1, syntax_reply_for(result)
    return result.error, syntax_reply_for(result)


@pytest.mark.parametrize("sent, error, corrected", [
    ("BH QY 7936491863", "unknown_command", "BH QT 7936491863"),
    ("BJ QT 7936491863 2016 2017", "unknown_keyword", "BH QT 7936491863 2016 2017"),
    ("B H QT 7936491863", "unknown_keyword", "BH QT 7936491863"),
    ("BH THE 04486.G/2019/08708", "bad_id", "BH HS 04486.G/2019/08708"),
    ("BH QT 7936491863 2018 2016", "range_reversed", "BH QT 7936491863 2016 2018"),
    ("bh qy 7936491863 tu 01/2016 den 12/2017", "unknown_command", "BH QT 7936491863 01/2016 12/2017"),
    ("BH TQ 7936491863", "unknown_command", "BH QT 7936491863"),
    ("BH Q T 7936491863", "unknown_command", "BH QT 7936491863"),
    ("BH QT HC4010110129425", "bad_id", "BH THE HC4010110129425"),
    ("BH QT 7936 491 863 tu 2018 den 2016", "range_reversed", "BH QT 7936491863 2016 2018"),
    ("BH QY 7936491863 tu 2016", "unknown_command", "BH QT 7936491863 2016 DEN NAY"),
    ("BH QY 7936491863 den 2016", "unknown_command", "BH QT 7936491863 DEN 2016"),
    ("BHXX QT 7936491863", "unknown_command", "BH QT 7936491863"),
    ("BH QY 001090012345 01/2016 12/2017", "unknown_command", "BH QT 001090012345 01/2016 12/2017"),
])
def test_contract_1b_examples(sent, error, corrected):
    got_error, text = reply(sent)
    assert got_error == error
    assert text.endswith(": " + corrected), text


@pytest.mark.parametrize("sent", [
    "BH HS 7936491863",        # the identifier fits QT and THE
    "BH TD",                   # HD and TC
    "BH QYY 7936491863",       # two keystrokes
    "BH TRA 7936491863",
    "BH QT 7936491863 2018 2017 2019",
    "BH QT 12345",
    "BH QT 7936491863 13/2016",
    "BJ",                      # a help request already gets the help text
])
def test_no_likely_correction_gives_the_plain_syntax(sent):
    result = parse(sent, today=TODAY)
    assert result.correction is None
    assert syntax_reply_for(result) == syntax_reply(result.error, result.command)


def test_a_keyword_of_another_service_is_never_corrected():
    assert ASKS in reply("BDQT 7936491863")[1]
    assert ASKS not in reply("BDQT 7936491863", routes=frozenset({"BD"}))[1]
    assert ASKS in reply("BH QY 7936491863")[1]
    assert ASKS not in reply("BH QY 7936491863", routes=frozenset({"QY"}))[1]


def test_a_correction_never_makes_a_question_or_a_rating_the_citizen_did_not_write():
    """HOI and DG carry the citizen's own words and score: a typo is answered with the syntax,
    never with a quoted question or rating (`BJ HOI ...`, `BH HOU ...`, `BH DH 5`)."""
    for sent in ("BH HOU cau hoi ve the", "BH HIO the het han", "BH DH 5", "BH GD 4 tot"):
        result = parse(sent, today=TODAY)
        assert result.error == "unknown_command" and result.correction is None, sent
    result = parse("BJ HOI the het han", today=TODAY)
    assert result.error == "unknown_keyword" and result.correction is None


def test_stop_and_resume_typos_are_corrected_like_any_command():
    """TC and DK take no argument: a typo of them is quoted corrected (the citizen sends it again)."""
    assert parse("BH TX", today=TODAY).correction == "BH TC"
    assert parse("BH DJ", today=TODAY).correction == "BH DK"
    assert parse("BH TQ 7936491863", today=TODAY).correction == "BH QT 7936491863"


# --- every command word, every single keystroke --------------------------------------------

ARGUMENTS = {  # the argument each command is tried with, and every command that argument fits
    "QT": ("7936491863", {"QT", "THE", "HOI"}),
    "THE": ("HC4010110129425", {"THE", "HOI"}),
    "HS": ("04486.G/2019/08708", {"HS", "HOI"}),
    "HD": ("", {"HD", "HELP", "TC", "DK"}),
    "HELP": ("", {"HD", "HELP", "TC", "DK"}),
    "HOI": ("xin hoi ve the bhyt", {"HOI"}),
    "DG": ("5", {"DG", "HOI"}),
    "TC": ("", {"HD", "HELP", "TC", "DK"}),
    "DK": ("", {"HD", "HELP", "TC", "DK"}),
}
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
NOT_SERVED = {"HOI", "DG"}   # count for ambiguity, never offered: a question or a rating the citizen did not write


def osa(a: str, b: str) -> int:
    """Optimal string alignment distance (the reference the implementation is checked against)."""
    d = [[max(i, j) if not i * j else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def edits(word: str) -> set[str]:
    out = {word[:i] + word[i + 1:] for i in range(len(word))}
    out |= {word[:i] + c + word[i + 1:] for i in range(len(word)) for c in LETTERS}
    out |= {word[:i] + c + word[i:] for i in range(len(word) + 1) for c in LETTERS}
    out |= {word[:i] + word[i + 1] + word[i] + word[i + 2:] for i in range(len(word) - 1)}
    out |= {word[:i] + " " + word[i:] for i in range(1, len(word))}
    return {e for e in out if e and e not in ARGUMENTS}


CASES = sorted((word, edit) for word in ARGUMENTS for edit in edits(word))


def test_every_edit_is_tried():
    assert len(CASES) > 1300


@pytest.mark.parametrize("word, edit", CASES)
def test_each_single_keystroke_edit_of_a_command_gets_the_one_correction_or_the_syntax(word, edit):
    argument, fits = ARGUMENTS[word]
    message = f"BH {edit} {argument}".strip()
    result = parse(message, today=TODAY)
    assert isinstance(result, ParseError), message
    assert result.error in ERROR_CODES
    assert measure(syntax_reply_for(result)).segments == 1
    typed = edit.replace(" ", "") if " " in edit else edit
    likely = {command for command in fits
              if (" " in edit and typed == command) or (" " not in edit and osa(edit, command) == 1)}
    if len(likely) == 1 and not likely & NOT_SERVED:
        command = likely.pop()
        assert syntax_reply_for(result).endswith(f": BH {command} {argument.upper()}".rstrip()), (message, syntax_reply_for(result))
    else:
        assert ASKS not in syntax_reply_for(result), (message, likely, syntax_reply_for(result))


@pytest.mark.parametrize("keyword", ["BH", "BHXH"])
def test_each_single_keystroke_edit_of_the_keyword_is_corrected(keyword):
    for edit in sorted(edits(keyword) - {"BH", "BHXH"}):
        result = parse(f"{edit} QT 7936491863 2016 2017", today=TODAY)
        assert isinstance(result, ParseError)
        assert syntax_reply_for(result).endswith(": BH QT 7936491863 2016 2017"), (edit, syntax_reply_for(result))


# --- every correcting reply is one GSM-7 SMS ---------------------------------------------

month_year = st.builds(lambda m, y: f"{m:02d}/{y}", st.integers(1, 12), st.integers(1960, 2026))


@given(number=st.text("0123456789", min_size=12, max_size=12), first=month_year, second=month_year,
       typo=st.sampled_from(["QY", "Q", "QTT", "TQ", "Q T", "AT"]), reverse=st.booleans())
@settings(max_examples=200)
def test_long_corrected_messages_still_fit_one_sms(number, first, second, typo, reverse):
    start, end = sorted([first, second], key=lambda t: (t[3:], t[:2]))
    if start[3:] == end[3:] and start[:2] == end[:2]:
        return
    message = f"BH {typo} {number} {start} {end}" if not reverse else f"BH QT {number} {end} {start}"
    result = parse(message, today=TODAY)
    assert syntax_reply_for(result).endswith(f": BH QT {number} {start} {end}"), syntax_reply_for(result)
    assert (measure(syntax_reply_for(result)).encoding, measure(syntax_reply_for(result)).segments) == ("gsm7", 1)


# --- through smsgw send and the HTTP gateway ----------------------------------------------

def smsgw(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smsgw", *args], capture_output=True, text=True,
                          encoding="utf-8", timeout=120)


@pytest.fixture(scope="module")
def records_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("records") / "records.db"
    assert smsgw("db", "import", str(ROOT / "fixtures" / "records"), "--db", str(db)).returncode == 0
    return db


def test_send_prints_the_correcting_reply_refunded(records_db):
    result = smsgw("send", "--db", str(records_db), "--from", "0912345678", "BH QY 0110129425")
    out = json.loads(result.stdout)
    assert out["reply"].endswith(": BH QT 0110129425")
    assert (out["encoding"], out["segments"], out["message_type"]) == ("gsm7", 1, 21)


def test_send_keeps_the_keyword_of_a_configured_route_uncorrected(records_db, tmp_path):
    config = tmp_path / "routes.toml"
    config.write_text('[routes.BD]\ntext = "Ket qua bong da"\n', encoding="utf-8")
    plain = smsgw("send", "--db", str(records_db), "--from", "0912345678", "BDQT 0110129425")
    routed = smsgw("send", "--db", str(records_db), "--from", "0912345678", "--config", str(config),
                   "BDQT 0110129425")
    assert json.loads(plain.stdout)["reply"].endswith(": BH QT 0110129425")
    assert ASKS not in json.loads(routed.stdout)["reply"]


def test_transcripts_of_the_new_forms_and_corrections_over_http(records_db, tmp_path):
    from test_crash import start_server

    config = tmp_path / "smsgw.toml"
    config.write_text('[carriers.generic]\nsecret = "s3cret"\nmode = "sync"\n\n'
                      "[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n", encoding="utf-8")
    files = [str(TRANSCRIPTS / name) for name in ("forms.txt", "corrections.txt", "errors.txt")]

    async def run() -> subprocess.CompletedProcess:
        with open(tmp_path / "serve.log", "wb") as log:
            process, url = await start_server(records_db, config, log)
            try:
                return await asyncio.to_thread(smsgw, "replay", *files, "--url", url, "--config", str(config))
            finally:
                process.terminate()
                await asyncio.wait_for(process.wait(), timeout=30)

    result = asyncio.run(run())
    assert result.returncode == 0, result.stderr
    assert "0 mismatched" in result.stdout
