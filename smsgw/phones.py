"""Phone numbers: one normaliser for every place a number enters (CSV, `--from`, webhooks).

Numbers are kept as E.164 digits without the '+': `0912345678`, `84912345678` and
`+84912345678` are all `84912345678`. Validity comes from the `phonenumbers` metadata for
region VN; Vietnamese numbers must be mobile numbers, foreign numbers are kept when valid.

Carriers also deliver MOs from senders that are not phones: short codes (another service's
`9029`) and alphanumeric brandnames (`VIETTEL`, `BHXHVN`). `classify_sender` tells the three
apart for every adapter; the gateway stores such MOs and never answers them.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType, carrier

from .errors import SmsgwError

_SEPARATORS = re.compile(r"[\s.\-()]")
_DIGITS = re.compile(r"\+?[0-9]+")
_MOBILE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)
# A Vietnamese mobile number written 0XXXXXXXXX, 84XXXXXXXXX or +84XXXXXXXXX, and phonenumbers' own
# pattern of VN mobile national numbers: a match is exactly a number the full parse finds valid
# and mobile (a batch of 100,000 API recipients is checked in ~1 s instead of ~7 s).
_VN_MOBILE = re.compile(r"(?:\+?84|0)([0-9]{9})")
_VN_MOBILE_NATIONAL = re.compile(phonenumbers.PhoneMetadata.metadata_for_region("VN").mobile.national_number_pattern)
_SHOWN_DIGITS = 7
_HIDDEN_AT_LEAST = 4
# Short codes and service numbers: 3 to 8 digits (8079, 9029, 1900xxxx), never beginning with the
# trunk prefix 0 (`0912` is a number cut short). An alphanumeric sender
# (GSM 03.40 allows 11 characters) begins with a letter: a string of digits with letters after
# them is a mistyped number, not a brandname.
_SHORT_CODE = re.compile(r"[1-9][0-9]{2,7}")
_ALPHANUMERIC = re.compile(r"[A-Za-z][A-Za-z0-9 ._&'-]{0,10}")


class InvalidPhone(SmsgwError, ValueError):
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
    fast = _VN_MOBILE.fullmatch(compact)
    if fast is not None and _VN_MOBILE_NATIONAL.fullmatch(fast.group(1)):
        return "84" + fast.group(1)   # what the full parse below gives, at a tenth of its cost
    return _normalize_parsed(compact)


def _normalize_parsed(compact: str) -> str:
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


class SenderKind(str, enum.Enum):
    PHONE = "phone"
    SHORT_CODE = "short_code"
    ALPHANUMERIC = "alphanumeric"


@dataclass(frozen=True)
class Sender:
    kind: SenderKind
    value: str                 # the MSISDN normalised (`84912345678`), or the code or name as sent


@functools.lru_cache(maxsize=65536)
def classify_sender(raw: str) -> Sender:
    """What an MO's sender is: a phone (normalised), a short code, or an alphanumeric name.

    Raises InvalidPhone (with `normalize`'s reason) for anything else: empty, a broken number,
    characters no sender has. Adapters call this on the carrier's `from` field and put
    `value` in `InboundMessage.sender`.
    """
    try:
        return Sender(SenderKind.PHONE, normalize(raw))
    except InvalidPhone as not_a_phone:
        stripped = raw.strip()
        if _SHORT_CODE.fullmatch(stripped):
            return Sender(SenderKind.SHORT_CODE, stripped)
        if _ALPHANUMERIC.fullmatch(stripped):
            return Sender(SenderKind.ALPHANUMERIC, stripped)
        raise not_a_phone


def network(msisdn: str) -> str:
    """The mobile network a normalised number was allocated to (`Viettel`, `Vinaphone`,
    `MobiFone`, `Vietnamobile`, `G-Mobile`), from phonenumbers' carrier data; "" when unknown.

    The data follows number prefixes: a number ported to another network (Vietnam has had
    number portability since 2018) still shows its first network.
    """
    if len(msisdn) == 11 and msisdn.startswith("84"):   # the carrier data's VN prefixes have at most 5 digits
        prefix = msisdn[:5]
        found = _NETWORK_OF_PREFIX.get(prefix)
        if found is None:
            found = _NETWORK_OF_PREFIX[prefix] = _network(msisdn)
        return found
    return _network(msisdn)


_NETWORK_OF_PREFIX: dict[str, str] = {}


@functools.lru_cache(maxsize=65536)
def _network(msisdn: str) -> str:
    try:
        number = phonenumbers.parse("+" + msisdn)
    except phonenumbers.NumberParseException:
        return ""
    return carrier.name_for_valid_number(number, "en")
