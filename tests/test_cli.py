"""The command line as testers and operators use it: real subprocesses of the installed CLI."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
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
    files = [str(TRANSCRIPTS / name) for name in ("qt.txt", "the.txt", "hs.txt", "errors.txt", "forms.txt", "corrections.txt", "conversation.txt")]
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
    (root / "smsgw.toml").write_text('[carriers.generic]\nsecret = "k"\nmode = "sync"\n', encoding="utf-8")
    store = root / "store"
    store.mkdir()
    shutil.copy(records_db, store / "records.db")
    # The read-only cases get a store of their own: were another case to open the shared one at the
    # same moment, its -wal and -shm would let SQLite read it even from a read-only mount.
    read_only_store = root / "read-only"
    read_only_store.mkdir()
    shutil.copy(records_db, read_only_store / "records.db")
    return {"root": root, "folder": root / "folder", "latin1": root / "latin1.toml",
            "corrupt": root / "corrupt.db", "store": store, "db": store / "records.db",
            "config": root / "smsgw.toml", "read_only": read_only_store, "ro_db": read_only_store / "records.db"}


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
    ("serve --db a directory", ["serve", "--db", "{folder}", "--config", "{config}"], "--db {folder}: is a directory, not a database file"),
    ("db import --db in a missing folder", ["db", "import", str(RECORDS), "--db", "{root}/nonexistent/x.db"],
     "--db {root}/nonexistent/x.db: the folder {root}/nonexistent does not exist"),
    ("a config that is not UTF-8", ["send", "--db", "{db}", "--from", PHONE, "--config", "{latin1}", "BH"],
     "{latin1}:2: not UTF-8 text (byte 0xd0); TOML files are UTF-8"),
    ("--config a directory", ["serve", "--db", "{db}", "--config", "{folder}"],
     "{folder}: is a directory, not a TOML file"),
    ("serve --port 80000", ["serve", "--db", "{db}", "--port", "80000", "--config", "{config}"],
     "--port 80000: must be 0-65535 (0 picks a free port)"),
    ("serve --port -1", ["serve", "--db", "{db}", "--port", "-1", "--config", "{config}"], "--port -1: must be 0-65535 (0 picks a free port)"),
    ("serve --host 999.1.1.1", ["serve", "--db", "{db}", "--host", "999.1.1.1", "--config", "{config}"], "--host 999.1.1.1: not an IP address"),
    ("serve on a port in use", ["serve", "--db", "{db}", "--port", "{held_port}", "--config", "{config}"],
     "cannot listen on 127.0.0.1:{held_port}: address already in use"),
    ("billing summary on a corrupt database", ["billing", "summary", "--month", "2026-11", "--db", "{corrupt}"],
     "--db {corrupt}: not an SQLite database (file is not a database)"),
    ("report understanding on a corrupt database", ["report", "understanding", "--db", "{corrupt}"],
     "--db {corrupt}: not an SQLite database (file is not a database)"),
    ("billing summary on a read-only file system", ["billing", "summary", "--month", "2026-11", "--db", "{ro_db}"],
     "--db {ro_db}: on a read-only file system (unable to open database file): the message store is opened for "
     "writing (its tables are created when missing); copy the file to a writable place"),
    ("report understanding on a read-only file system", ["report", "understanding", "--db", "{ro_db}"],
     "--db {ro_db}: on a read-only file system (unable to open database file): the message store is opened for "
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
    mountable = can_mount_read_only(hostile["read_only"])
    running = {}
    try:
        for case, argv, expected in HOSTILE_CASES:
            command = [sys.executable, "-m", "smsgw", *(part.format(**paths) for part in argv)]
            if "read-only" in case:
                if not mountable:
                    continue
                command = read_only(hostile["read_only"], *command)
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


# --- every subcommand, one hostile argument at a time ------------------------------------------

def leaf_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command words, parser) of every runnable subcommand, found in the parser itself."""
    groups = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not groups:
        yield path, parser
        return
    for name, child in groups[0].choices.items():
        yield from leaf_commands(child, path + (name,))


def arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The arguments a user can give (not -h, not the supervisor's hidden --worker)."""
    return [action for action in parser._actions
            if action.help is not argparse.SUPPRESS and not isinstance(action, argparse._HelpAction)]


def argument_key(action: argparse.Action) -> str:
    return action.option_strings[0] if action.option_strings else action.dest


@pytest.fixture(scope="module")
def walk_inputs(tmp_path_factory, records_db) -> tuple[dict[str, str], dict[str, list[str]], dict[str, list[str]]]:
    """(a valid value of each argument, values that must be refused, values at the edges: any exit, no traceback)."""
    root = tmp_path_factory.mktemp("walk")
    folder = root / "folder"
    folder.mkdir()
    db = root / "records.db"
    shutil.copy(records_db, db)
    truncated = root / "truncated.db"
    truncated.write_bytes(db.read_bytes()[:8192])      # a valid header, most pages gone
    corrupt = root / "corrupt.db"
    corrupt.write_bytes(b"\x00garbage" * 600)
    cp1258 = root / "cp1258.txt"
    cp1258.write_bytes("0912345678 > BH THE\n# Đai ly\n".encode("cp1258"))
    empty = root / "empty.txt"
    empty.write_text("# no message\n", encoding="utf-8")
    bad_csv = root / "csv"
    bad_csv.mkdir()
    (bad_csv / "persons.csv").write_bytes("ssn,personal_id,full_name,date_of_birth,phone\n"
                                          "0110129425,,Đai,1990-03-15,\n".encode("cp1258"))
    not_toml = root / "config.toml"
    not_toml.write_text("[gateway\nunicode = yes\n", encoding="utf-8")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    config = root / "smsgw.toml"
    config.write_text('[carriers.generic]\nsecret = "k"\nmode = "sync"\n', encoding="utf-8")
    valid = {"--db": str(db), "--config": str(config), "--from": PHONE, "--persons": "1", "--days": "30", "--month": "2026-11",
             "text": "BH", "files": str(TRANSCRIPTS / "hs.txt"), "directory": str(RECORDS),
             "--to": str(root / "backup.db"), "--phone": PHONE, "name": "clinic", "number": "Q1",
             "file": str(ROOT / "fixtures" / "faq" / "faq.csv"), "--role": "viewer"}
    paths = [str(folder), str(root / "missing" / "x.db"), str(corrupt), str(truncated)]
    refused = {
        "--db": paths, "--config": [str(folder), str(cp1258), str(not_toml), str(root / "missing.toml")],
        "--out": [str(folder), str(root / "missing" / "out.csv")],
        "--today": ["2026-13-45", "yesterday"], "--since": ["2026-02-30", "2026/11/01"],
        "--month": ["2026-13", "11/2026", "2026-1", "0001-01"],
        "--port": ["80000", "-1", "x"], "--host": ["999.1.1.1", "::zz"], "--workers": ["0", "-3", "100000"],
        "--persons": ["-1", "many"], "--rate": ["-1", "x"], "--classes": ["", "otp,sms"], "--seed": ["x"], "--days": ["-1", "x", "99999999"],
        "--from": ["hello", "", "0912"], "--phone": ["hello", "0912"], "--now": ["yesterday", "2026-13-01"],
        "--to": [str(folder), str(root / "missing" / "copy.db"), str(db)], "--url": ["not a url", "http://127.0.0.1:99999", f"http://127.0.0.1:{closed_port}"],
        "files": [str(folder), str(root / "missing.txt"), str(cp1258), str(empty)],
        "directory": [str(root / "missing"), str(empty), str(bad_csv), str(folder)],
        "number": ["Q99999999999999999999999", "X1", "", "Q-1"],
        "file": [str(folder), str(root / "missing.csv"), str(cp1258), str(empty)],
        "name": ["", "a b", "x" * 65, "tên"], "--role": ["root", ""],
    }
    edges = {
        "--today": ["0001-01-01", "9999-12-31"], "--since": ["0001-01-01", "9999-12-31"],
        "--month": ["9999-12"], "--carrier": ["no-such-carrier", ""], "--secret": [""],
        "text": ["\udcff\udcfe", "", "BH QT " + "9" * 100_000], "--seed": ["-1", str(10**30)],
    }
    return valid, refused, edges


def hostile_walk(parser: argparse.ArgumentParser, inputs) -> list[tuple[tuple[str, ...], list[str], bool]]:
    """(command words, argv, must be refused) for every argument of every subcommand, one bad value at a time."""
    valid, refused, edges = inputs
    cases = []
    for words, leaf in leaf_commands(parser):
        actions = arguments(leaf)
        missing = [argument_key(a) for a in actions if (a.required or not a.option_strings) and
                   a.nargs != "?" and argument_key(a) not in valid]
        assert not missing, f"smsgw {' '.join(words)}: give the walk a valid value for {missing}"
        for target in actions:
            key = argument_key(target)
            bad = [(value, True) for value in refused.get(key, ["x"] if target.type is int else [])]
            bad += [(value, False) for value in edges.get(key, [])]
            if not bad and target.type is not int:
                bad = [(value, False) for value in (refused["--db"][0], "\udcff")]   # an argument new to the walk
            for value, must_refuse in bad:
                argv = list(words)
                for action in actions:
                    key_of = argument_key(action)
                    given = value if action is target else valid.get(key_of)
                    needed = action.required or (words == ("serve",) and key_of == "--config")   # serve refuses none
                    if given is None or (action is not target and not needed and action.option_strings):
                        continue
                    argv += [key_of, given] if action.option_strings else [given]
                cases.append((words, argv, must_refuse))
    return cases


def test_every_subcommand_with_hostile_arguments_never_prints_a_traceback(walk_inputs, capfd, monkeypatch):
    import structlog

    from smsgw import cli, workers

    monkeypatch.setattr(workers, "pin_to_one_core", lambda index=None: None)   # replay would pin pytest itself
    cases = hostile_walk(cli.build_parser(), walk_inputs)
    covered = {words for words, _, _ in cases}
    assert {("send",), ("serve",), ("db", "seed"), ("billing", "export"), ("report", "understanding")} <= covered
    served = [case for case in cases if case[0] == ("serve",)]
    logging_config = structlog.get_config()
    failures = []
    try:
        for words, argv, must_refuse in cases:
            if words == ("serve",):
                continue
            try:
                status = cli.main(argv)
            except SystemExit as exit_:
                status = exit_.code
            except BaseException as exc:   # escaped main(): the user would see a traceback
                status = f"raised {type(exc).__name__}: {exc}"
            out, err = capfd.readouterr()
            failures += judge(argv, must_refuse, status, err)
    finally:
        structlog.reset_defaults()
        structlog.configure(**logging_config)
    failures += run_serve_cases(served)
    assert not failures, "\n".join(failures)
    assert len(cases) > 100


def judge(argv: list[str], must_refuse: bool, status, err: str) -> list[str]:
    """What is wrong with one hostile run: a traceback, an unexpected status, a message not `smsgw: ...`."""
    shown = "smsgw " + " ".join(part[:60] for part in argv)
    if "Traceback" in err or "internal error" in err or not isinstance(status, int):
        return [f"{shown}: {status}\n{err}"]
    if status not in ((1, 2) if must_refuse else (0, 1, 2)):
        return [f"{shown}: exit {status}, expected a refusal\n{err}"]
    if status == 1 and not err.rstrip("\n").rpartition("\n")[2].startswith("smsgw: "):   # serve logs before
        return [f"{shown}: exit 1 without `smsgw: ...` last on stderr:\n{err}"]
    return []


def run_serve_cases(cases) -> list[str]:
    """The serve cases in real processes, all started at once; one still running after 30 s is a failure too."""
    holder = held_port()
    cases = cases + [(("serve",), ["serve", "--db", next(argv[argv.index("--db") + 1] for _, argv, _ in cases
                                                         if "--port" in argv), "--port", str(holder.getsockname()[1])],
                      True)]
    running = [(argv, must_refuse, subprocess.Popen([sys.executable, "-m", "smsgw", *argv], stdout=subprocess.PIPE,
                                                     stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                                     errors="replace"))
               for _, argv, must_refuse in cases]
    failures = []
    try:
        for argv, must_refuse, process in running:
            try:
                _, err = process.communicate(timeout=30)
                failures += judge(argv, must_refuse, process.returncode, err)
            except subprocess.TimeoutExpired:
                failures.append(f"smsgw {' '.join(argv)}: still serving after 30 s")
    finally:
        holder.close()
        for _, _, process in running:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
    return failures


def test_an_unforeseen_failure_is_an_internal_error_line_not_a_traceback(monkeypatch, capsys):
    from smsgw import cli, service

    def broken(text, today=None):
        raise KeyError("grammar table")

    monkeypatch.setattr(service, "parse_result", broken)
    assert cli.main(["parse", "BH"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("smsgw: internal error: KeyError: 'grammar table'\n  this is a bug in smsgw")
    assert "Traceback" not in err
    monkeypatch.setenv("SMSGW_TRACEBACK", "1")    # for whoever reports the bug
    assert cli.main(["parse", "BH"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_version_as_V_and_every_option_says_what_it_takes_and_its_default():
    assert smsgw("-V").stdout == smsgw("--version").stdout == f"smsgw {__import__('smsgw').__version__}\n"
    serve_help = " ".join(smsgw("serve", "--help").stdout.split())
    assert "--host H address or host name to listen on" in serve_help and "(default 127.0.0.1)" in serve_help
    assert "--port P TCP port to listen on, 0-65535; 0 picks a free one (default 8079)" in serve_help
    assert "--workers N processes sharing the port" in serve_help and "(default 1)" in serve_help
    assert "--db PATH records database: an SQLite file, or a postgresql:// URL (required)" in serve_help
    send_help = " ".join(smsgw("send", "--help").stdout.split())
    assert "TEXT the message as the phone sent it" in send_help

    from smsgw.cli import build_parser

    for words, leaf in leaf_commands(build_parser()):
        for action in arguments(leaf):
            assert action.help, f"smsgw {' '.join(words)} {argument_key(action)}: no help"
            if action.option_strings and not action.required and "version" not in action.dest:
                assert "default" in action.help, f"smsgw {' '.join(words)} {argument_key(action)}: no default"


def test_parse_names_the_line_of_standard_input_that_is_not_utf8():
    result = subprocess.run([sys.executable, "-m", "smsgw", "parse"], input=b"BH\n\xd0ai ly\n", capture_output=True,
                            timeout=60)
    assert result.returncode == 1
    assert json.loads(result.stdout.decode())["command"] == "HELP"     # the lines before it are answered
    assert result.stderr.decode() == "smsgw: standard input:2: not UTF-8 text (byte 0xd0)\n"


def test_replay_url_refuses_a_carrier_that_is_not_generic(tmp_path):
    config = tmp_path / "smsgw.toml"
    config.write_text('[carriers.kannel]\nadapter = "kannel"\nauth = "none"\n', encoding="utf-8")
    result = smsgw("replay", str(TRANSCRIPTS / "hs.txt"), "--url", "http://127.0.0.1:9", "--config", str(config),
                   "--carrier", "kannel")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("smsgw: --carrier kannel: replay --url sends the generic carrier's signed JSON")


UNREACHABLE_WITH_PASSWORD = "postgresql://smsgw:s3cret-pw@127.0.0.1:9/smsgw"   # port 9 (discard): refused


@pytest.mark.parametrize("command", [
    "db seed --persons 1", "db migrate", "db import fixtures/records", "db prune", "billing summary --month 2026-11",
    "billing export --month 2026-11", "report understanding", "report satisfaction --month 2026-11",
    "data export --phone 0912345678", "data erase --phone 0912345678", "notify card-expiry --days 30",
    "faq import fixtures/faq/faq.csv", "api-keys create k1", "questions list", "questions close Q1",
])
def test_a_database_url_never_shows_its_password(command, capfd):
    """A `--db` URL with a password that cannot be reached: a refusal naming the URL, password masked."""
    from smsgw import cli

    argv = [*command.split(), "--db", UNREACHABLE_WITH_PASSWORD]
    try:
        status = cli.main(argv)
    except SystemExit as exit_:
        status = exit_.code
    out, err = capfd.readouterr()
    assert status == 1, err
    assert "s3cret-pw" not in out + err
    assert err.rstrip("\n").rpartition("\n")[2].startswith(("smsgw: --db postgresql://smsgw:***@127.0.0.1:9/smsgw: ",
                                                             "smsgw: postgresql://smsgw:***@127.0.0.1:9/smsgw: ")), err
