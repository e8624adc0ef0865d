"""The log masks: the quick check in front of them never lets a personal number through."""

import io
import json
import logging
import re

import structlog
from hypothesis import given, settings, strategies as st

from smsgw.logs import _CARD, _DIGIT_RUN, _SHOWN, configure_logging, mask_text


def masked_without_the_quick_check(text: str) -> str:
    text = _CARD.sub(lambda m: m[1] + "*" * 12, text)
    return _DIGIT_RUN.sub(lambda m: m[0][:_SHOWN] + re.sub(r"[0-9]", "*", m[0][_SHOWN:]), text)


# Digits, the separators a run may contain, card letters and a few others: the shapes near the edge.
TEXTS = st.text(alphabet="0123456789 .-+HNDCabc/", max_size=40)


@settings(max_examples=2000)
@given(TEXTS)
def test_the_quick_check_changes_nothing(text):
    assert mask_text(text) == masked_without_the_quick_check(text)


@given(st.integers(10**8, 10**15 - 1), st.sampled_from(["", " ", "-", "."]))
def test_every_run_of_nine_digits_or_more_is_hidden(number, separator):
    digits = str(number)
    spaced = separator.join(digits[i:i + 3] for i in range(0, len(digits), 3))
    masked = mask_text(f"so {spaced} nhe")
    assert digits not in (masked.replace(separator, "") if separator else masked)
    assert sum(c.isdigit() for c in masked) == _SHOWN


def test_library_records_are_masked_json_lines_too():
    """aiohttp and asyncio log through the standard library: their lines, tracebacks included,
    go through the same masks and come out as JSON."""
    stream = io.StringIO()
    configure_logging(stream)
    try:
        try:
            raise ValueError("Invalid header: b'X-Phone: 84912345678 HC4010110129425'")
        except ValueError:
            logging.getLogger("aiohttp.server").exception("Error handling request from %s", "0912345678")
        logging.getLogger("asyncio").error("socket.accept() out of system resource")
    finally:
        structlog.reset_defaults()
        configure_logging(io.StringIO())   # the root logger's handler off the test's stream
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["logger"], line["level"]) for line in lines] == [("aiohttp.server", "error"), ("asyncio", "error")]
    assert "ValueError" in lines[0]["exception"]
    for personal in ["84912345678", "4010110129425", "0912345678"]:
        assert personal not in stream.getvalue()
