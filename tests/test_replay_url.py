"""`smsgw replay --url` against a real `smsgw serve` process: what testers replay is what carriers get."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TRANSCRIPTS = ROOT / "fixtures" / "transcripts"
REFERENCE = ("qt.txt", "the.txt", "hs.txt", "errors.txt", "forms.txt", "corrections.txt", "conversation.txt")
SECRET = "replay-secret"


def smsgw(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smsgw", *args], capture_output=True, text=True, encoding="utf-8",
                          timeout=120)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> tuple[str, Path]:
    """A running `smsgw serve` over the records an in-process replay seeds (100 persons, seed 0), with a
    generic sync carrier that requires timestamped signatures, and no per-phone limits (one phone replays
    many messages); its URL and its configuration file."""
    folder = tmp_path_factory.mktemp("replay-url")
    db = folder / "records.db"
    seeded = smsgw("db", "seed", "--db", str(db), "--persons", "100", "--seed", "0")
    assert seeded.returncode == 0, seeded.stderr
    config = folder / "smsgw.toml"
    config.write_text(f'[carriers.generic]\nsecret = "{SECRET}"\nrequire_timestamp = true\n'
                      "[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n", encoding="utf-8")
    with open(folder / "serve.log", "w", encoding="utf-8") as log:
        process = subprocess.Popen([sys.executable, "-m", "smsgw", "serve", "--db", str(db), "--config", str(config),
                                    "--port", "0"], stdout=subprocess.PIPE, stderr=log, text=True, encoding="utf-8")
        try:
            listening = process.stdout.readline()
            assert listening.startswith("smsgw listening on http://127.0.0.1:"), (folder / "serve.log").read_text()
            yield listening.split()[-1], config
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
                raise
            finally:
                process.stdout.close()
    assert process.returncode == 0, (folder / "serve.log").read_text()


def test_the_reference_transcripts_replayed_over_http_match_and_exit_0(gateway):
    url, config = gateway
    result = smsgw("replay", *(str(TRANSCRIPTS / name) for name in REFERENCE), "--url", url, "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert " 0 mismatched" in result.stdout and result.stderr == ""


def test_a_transcript_the_gateway_answers_otherwise_exits_1_with_a_diff(gateway, tmp_path):
    url, config = gateway
    script = tmp_path / "wrong.txt"
    script.write_text("0912345678 > BH HS 04486.G/2019/08708\n"
                      "0912345678 < Ho so 04486.G/2019/08708: dang xu ly (cap nhat 20/08/2019).\n"
                      "0912345678 > BH HS 04486.G/2019/08708\n"
                      "0912345678 < Ho so 04486.G/2019/08708: da duyet.\n", encoding="utf-8")
    result = smsgw("replay", str(script), "--url", url, "--config", str(config))
    assert result.returncode == 1
    assert f"{script}:3: 84912345678 > BH HS 04486.G/2019/08708" in result.stderr
    assert "- expected: Ho so 04486.G/2019/08708: da duyet." in result.stderr
    assert "+ got:      Ho so 04486.G/2019/08708: dang xu ly (cap nhat 20/08/2019)." in result.stderr
    assert "1 as expected, 1 mismatched" in result.stdout


def test_a_wrong_secret_is_one_line_naming_the_refusal(gateway):
    url, _ = gateway
    result = smsgw("replay", str(TRANSCRIPTS / "hs.txt"), "--url", url, "--secret", "not-the-secret")
    assert result.returncode == 1
    assert result.stderr.startswith(f"smsgw: {url}/carriers/generic/mo: HTTP 401: wrong X-Smsgw-Signature")
    assert "Traceback" not in result.stderr
