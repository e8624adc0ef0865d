"""SMS encoding: the GSM 03.38 7-bit alphabet or UCS-2, and how many parts a text takes.

A text made only of GSM-7 characters goes as GSM-7: 160 septets fit one SMS, a longer text is
sent in parts of 153 septets (the rest of each part is the concatenation header). The extension
characters (`^{}\\[~]|€` and form feed) are an escape septet plus one, and a part never splits
such a pair. Any other text goes as UCS-2: 70 UTF-16 code units fit one SMS, else parts of 67,
and a part never splits a surrogate pair. The empty text is one (empty) SMS.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["gsm7", "ucs2"]

# GSM 03.38 default alphabet, indexed by septet value; 0x1B is the escape to the extension table.
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "\f^{}\\[]~|€"

GSM7_SINGLE = 160
GSM7_PART = 153
UCS2_SINGLE = 70
UCS2_PART = 67

_BASIC = frozenset(GSM7_BASIC) - {"\x1b"}
_EXTENSION = frozenset(GSM7_EXTENSION)
_GSM7 = _BASIC | _EXTENSION
_D_WITH_STROKE = str.maketrans({"đ": "d", "Đ": "D", "Ð": "D"})


def is_diacritic_mark(char: str) -> bool:
    """A mark of the Combining Diacritical Marks block: every Vietnamese tone and vowel mark.

    Marks of other scripts (Devanagari vowel signs, ...) are letters of their words: not these.
    """
    return "\u0300" <= char <= "\u036f"


def fold(text: str, *, drop: Callable[[str], bool] = is_diacritic_mark) -> str:
    """Vietnamese (and other Latin) text without diacritics: `Thẻ hết hạn` -> `The het han`.

    Each character is decomposed (NFD) and the characters `drop` names (by default the combining
    diacritical marks) are dropped, standing alone or from a decomposition; đ, Đ and the
    look-alike Ð become d, D, D. Characters without such marks are returned unchanged. The one
    diacritics stripper of the project: replies fold their templates with it, and the message
    language (`normalize.normalize`) folds what citizens type, dropping every mark and format
    character there, since its grammar is ASCII.
    """
    folded = []
    for char in text.translate(_D_WITH_STROKE):
        if drop(char):
            continue
        decomposed = unicodedata.normalize("NFD", char)
        stripped = "".join(c for c in decomposed if not drop(c))
        folded.append(char if stripped == decomposed else unicodedata.normalize("NFC", stripped))
    return "".join(folded)


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM 03.38 default alphabet or its extension table."""
    return _GSM7.issuperset(text)


@dataclass(frozen=True)
class Measure:
    encoding: Encoding
    units: int       # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int    # SMS parts the text is sent in


def _costs(text: str) -> tuple[Encoding, list[int]]:
    if is_gsm7(text):
        return "gsm7", [2 if char in _EXTENSION else 1 for char in text]
    return "ucs2", [2 if ord(char) > 0xFFFF else 1 for char in text]


def _part_starts(encoding: Encoding, costs: list[int]) -> list[int]:
    """Index of the first character of each part, packing greedily."""
    single, part = (GSM7_SINGLE, GSM7_PART) if encoding == "gsm7" else (UCS2_SINGLE, UCS2_PART)
    if sum(costs) <= single:
        return [0]
    starts = [0]
    used = 0
    for index, cost in enumerate(costs):
        if used + cost > part:
            starts.append(index)
            used = 0
        used += cost
    return starts


def measure(text: str) -> Measure:
    """Encoding, length in units and number of SMS parts of `text`, as it would be sent."""
    if len(text) <= GSM7_SINGLE and _BASIC.issuperset(text):  # the common case: one plain SMS
        return Measure("gsm7", len(text), 1)
    encoding, costs = _costs(text)
    return Measure(encoding, sum(costs), len(_part_starts(encoding, costs)))


def split(text: str) -> list[str]:
    """The parts `text` is sent in: `len(split(t)) == measure(t).segments`, `''.join` gives `t`."""
    encoding, costs = _costs(text)
    starts = _part_starts(encoding, costs)
    ends = starts[1:] + [len(text)]
    return [text[start:end] for start, end in zip(starts, ends)]
