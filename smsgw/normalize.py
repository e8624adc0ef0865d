"""The lexical normaliser of the message language: what a citizen typed, as the grammar reads it.

`normalize(text)` does only what a grammar should not carry, in this order:
  1. NFKC (full-width letters, digits and punctuation become ASCII; ideographic and other
     compatibility spaces become plain spaces);
  2. format characters removed (zero-width space/joiners, word joiner, BOM, soft hyphen,
     bidi marks: Unicode category Cf);
  3. diacritics removed (NFD, combining marks dropped, đ/Đ -> D), so `BH THẺ` is `BH THE`;
  4. upper case (before 3, so that upper-casing cannot bring a mark back); every run of white
     space becomes one space; ends trimmed;
  5. trailing sentence punctuation removed: any run of `. , ! ; :` (spaces allowed) at the end.
Everything structural (keywords, commands, identifiers, bounds, glued forms) is the grammar's
(language.py). A pure function: the same text always gives the same form, and normalising a
normalised text changes nothing.
"""

from __future__ import annotations

import re
import unicodedata

from .gsm import fold

_TRAILING_PUNCT = re.compile(r"[\s.,!;:]+$")


def _mark_or_format(char: str) -> bool:
    """A combining mark of any script (Mn) or a format character (Cf): never part of a word the
    grammar knows, so normalisation drops them all."""
    return unicodedata.category(char) in ("Cf", "Mn")


def normalize(text: str) -> str:
    """The normalised form of `text` that the grammar parses (see the module docstring)."""
    if text.isascii():
        text = text.upper()
    else:
        text = fold(unicodedata.normalize("NFKC", text).upper(), drop=_mark_or_format)
    text = " ".join(text.split())
    return _TRAILING_PUNCT.sub("", text)
