"""How a template becomes the text of an SMS: its two forms, the values put into it, the dates.

A template is written once, in Vietnamese with diacritics. Its default form is folded
(`gsm.fold`) to plain GSM-7 text; with `unicode=True` the diacritics stay and the text goes as
UCS-2. The modules that word replies (replies.py, syntax_replies.py) check their own templates
with `check_gsm7` and `check_one_sms` when they are imported.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import date

from . import gsm
from .commands import Month


@functools.lru_cache(maxsize=None)
def folded(template: str) -> str:
    """The default form of `template`: folded to GSM-7 (cached: templates are few)."""
    return gsm.fold(template)


def word(template: str, unicode: bool) -> str:
    """`template` in the form asked for: with diacritics when `unicode`, else folded."""
    return template if unicode else folded(template)


def value(text: str, unicode: bool) -> str:
    """A value put into a template: in the default form, folded and kept inside GSM-7."""
    if unicode or text.isascii() and gsm.is_gsm7(text):
        return text
    return "".join(char if gsm.is_gsm7(char) else "?" for char in gsm.fold(text))


def day(when: date) -> str:
    """A day as the agency writes it: `05/01/2027`."""
    return f"{when.day:02d}/{when.month:02d}/{when.year:04d}"


def month(when: Month) -> str:
    """A month as the agency writes it: `01/2016`."""
    return f"{when.month:02d}/{when.year:04d}"


def check_gsm7(templates: Iterable[str]) -> None:
    """Raise RuntimeError unless every template is GSM-7 once folded."""
    for template in templates:
        if not gsm.is_gsm7(folded(template)):
            raise RuntimeError(f"template is not GSM-7 once folded: {template!r}")


def check_one_sms(templates: Iterable[str]) -> None:
    """Raise RuntimeError unless every template, folded, fits one SMS."""
    for template in templates:
        if gsm.measure(folded(template)).segments != 1:
            raise RuntimeError(f"template does not fit one SMS once folded: {template!r}")
