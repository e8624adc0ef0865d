"""Transcript fixtures, RapidSMS `TestScript` style, and their replay.

    # a comment (a line whose first non-blank character is '#'); blank lines are skipped
    0912345678 > BH QT 0110129425
    0912345678 < BHXH: 05 nam 03 thang, BHTN: 02 nam 00 thang

`MSISDN > text` is what a phone sends; each `MSISDN < text` after it is one reply that phone
must get, in order. A message followed by no `<` line must get no reply. The phone may be
written 0912345678, 84912345678 or +84912345678. One space after `>`/`<` is part of the
syntax; the rest of the line, trailing spaces included, is the text. In a reply, `{*}` stands
for any text (what depends on the store or the clock: a question's number, the time its answer
is expected).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from .errors import SmsgwError
from .phones import InvalidPhone, normalize

_LINE = re.compile(r"^\s*(\S+?)\s*([<>]) ?(.*)$")
ANY = "{*}"


def matches(expected: str, got: str | None) -> bool:
    """Whether the reply `got` is the one `expected`, where each `{*}` of it stands for any text."""
    if got is None or ANY not in expected:
        return expected == got
    pattern = ".*?".join(re.escape(part) for part in expected.split(ANY))
    return re.fullmatch(pattern, got, re.DOTALL) is not None


class TranscriptError(SmsgwError, ValueError):
    """A transcript line that is neither a comment, a message nor a reply: `file:line: reason`."""


@dataclass
class Exchange:
    file: str
    line: int
    sender: str          # normalised MSISDN
    text: str
    expected: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Mismatch:
    exchange: Exchange
    got: list[str]

    def describe(self) -> str:
        ex = self.exchange
        lines = [f"{ex.file}:{ex.line}: {ex.sender} > {ex.text}"]
        for i in range(max(len(ex.expected), len(self.got))):
            want = ex.expected[i] if i < len(ex.expected) else None
            got = self.got[i] if i < len(self.got) else None
            if want is not None and matches(want, got):
                lines.append(f"    = {got}")
                continue
            lines.append(f"    - expected: {want if want is not None else '(no reply)'}")
            lines.append(f"    + got:      {got if got is not None else '(no reply)'}")
        return "\n".join(lines)


def read_transcript(name: str, lines: Iterable[str]) -> list[Exchange]:
    exchanges: list[Exchange] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise TranscriptError(f"{name}:{number}: expected 'MSISDN > text' or 'MSISDN < reply', got {line!r}")
        phone, arrow, text = match.group(1), match.group(2), match.group(3) or ""
        try:
            sender = normalize(phone)
        except InvalidPhone as exc:
            raise TranscriptError(f"{name}:{number}: {exc}") from None
        if arrow == ">":
            exchanges.append(Exchange(name, number, sender, text))
            continue
        if not exchanges:
            raise TranscriptError(f"{name}:{number}: a reply '<' before any message '>'")
        if exchanges[-1].sender != sender:
            raise TranscriptError(
                f"{name}:{number}: reply to {phone}, but the message before came from another phone")
        exchanges[-1].expected.append(text)
    return exchanges


def load_transcripts(paths: Iterable[str]) -> list[Exchange]:
    exchanges: list[Exchange] = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fh:
                exchanges.extend(read_transcript(path, fh))
        except UnicodeDecodeError as exc:
            raise TranscriptError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
        except OSError as exc:
            raise TranscriptError(f"{path}: {exc.strerror}") from None
    return exchanges


async def replay(
    exchanges: list[Exchange],
    send: Callable[[str, str], Awaitable[list[str]]],
    on_progress: Callable[[], None] | None = None,
) -> list[Mismatch]:
    """Send every message through `send(sender, text) -> reply texts`; return the mismatches."""
    mismatches = []
    for exchange in exchanges:
        got = await send(exchange.sender, exchange.text)
        if len(got) != len(exchange.expected) or not all(map(matches, exchange.expected, got)):
            mismatches.append(Mismatch(exchange, got))
        if on_progress is not None:
            on_progress()
    return mismatches
