"""Phone numbers: one normaliser for every place a number enters (CSV, `--from`, webhooks).

Numbers are kept as E.164 digits without the '+': `0912345678`, `84912345678` and
`+84912345678` are all `84912345678`. Validity comes from the `phonenumbers` metadata for
region VN; Vietnamese numbers must be mobile numbers, foreign numbers are kept when valid.
"""

from __future__ import annotations

import functools
import re

import phonenumbers
from phonenumbers import PhoneNumberType

_SEPARATORS = re.compile(r"[\s.\-()]")
_DIGITS = re.compile(r"\+?[0-9]+")
_MOBILE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)
_SHOWN_DIGITS = 7
_HIDDEN_AT_LEAST = 4


class InvalidPhone(ValueError):
    """A phone number that cannot be used; the message says why."""


@functools.lru_cache(maxsize=65536)
def normalize(raw: str) -> str:
    """Return the number as E.164 digits without '+' (`84912345678`), or raise InvalidPhone.

    Accepted: national form (`0912345678`), international with or without '+' or `00`
    (`+84912345678`, `84912345678`, `0084912345678`), with spaces, dots, dashes or
    parentheses anywhere. Foreign numbers need their country code. Results are cached: the
    same few numbers arrive again and again, and the metadata lookups cost ~50 µs each.
    """
    compact = _SEPARATORS.sub("", raw)
    if not compact:
        raise InvalidPhone("not a phone number: empty")
    if not _DIGITS.fullmatch(compact):
        raise InvalidPhone("not a phone number: only digits, spaces, dots, dashes and a leading '+' are allowed")
    number = _parse(compact)
    if number is None:
        raise InvalidPhone("not a valid number: no such number in Vietnam or abroad")
    if phonenumbers.region_code_for_number(number) == "VN" and phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise InvalidPhone("not a valid number: a Vietnamese number must be a mobile number")
    return f"{number.country_code}{number.national_number}"


def _parse(compact: str) -> phonenumbers.PhoneNumber | None:
    """The valid reading of the digits: Vietnamese first, then E.164 written without '+'."""
    candidates = [compact]
    if not compact.startswith(("+", "0")):
        candidates.append("+" + compact)
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, "VN")
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return number
    return None


def mask(msisdn: str) -> str:
    """Hide the subscriber part for logs: `84912345678` -> `8491234****`.

    At most the first 7 characters are kept and at least the last 4 are hidden.
    """
    shown = max(0, min(_SHOWN_DIGITS, len(msisdn) - _HIDDEN_AT_LEAST))
    return msisdn[:shown] + "*" * (len(msisdn) - shown)
