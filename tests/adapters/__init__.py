"""What a carrier relies on when an adapter refuses its request, shared by the adapters' fuzz tests."""

from __future__ import annotations

import re
from collections.abc import Iterable

from hypothesis import strategies as st

from smsgw.errors import RequestError

# kind -> what its reason must say; `field` names the field at fault, one the carrier sends.
_SAYS = {
    "missing_field": r"missing field '(?P<field>\w+)'|missing our MT id: the StatusCallback URL ends in \?id=",
    "wrong_type": r"field '(?P<field>\w+)' must be a string, not \w+|body must be a JSON object, not \w+",
    "bad_value": r"field '(?P<field>\w+)' (must|is longer)|unsupported charset ['\"].*['\"]",
    "bad_phone": r"field '(?P<field>\w+)': \S",
    "invalid_utf8": r"(body|field '(?P<field>\w+)'|text)? ?is not valid [\w-]+",
    "bad_json": r"body is not valid JSON: \S",
    "bad_form": r"field '(?P<field>\w+)' given twice|a form body must be ASCII \(percent-encoded UTF-8\)",
    "bad_xml": r"body is not well-formed XML: \S|not a SOAP envelope: unexpected <\w+>|a SOAP message must not "
               r"have a DTD|the SOAP Body must hold one element|field '(?P<field>\w+)' given twice",
    "content_type": r"content type must be [\w/+-]+, not \S|charset must be utf-8, not \S|the text comes in the URL",
    "missing_signature": r"missing X-[\w-]+ header",
    "bad_signature": r"wrong X-[\w-]+",
    "missing_token": r"missing token", "bad_token": r"wrong token",
    "missing_credentials": r"missing (username|password)", "bad_credentials": r"wrong username or password",
    "wrong_account": r"AccountSid is not this carrier's account", "ip_not_allowed": r"peer address not in allow_ips",
}


def assert_refusal_names_the_problem(error: RequestError, fields: Iterable[str]) -> None:
    """A refusal a carrier can act on: a specific kind (never the catch-all `bad_request`), and a
    reason that says what was wrong, naming the field at fault by the name the carrier sends."""
    assert error.kind in _SAYS, f"refusal of an unnamed kind {error.kind!r}: {error.reason!r}"
    said = re.search(_SAYS[error.kind], error.reason)
    assert said is not None, f"{error.kind} refusal does not say what was wrong: {error.reason!r}"
    field = said.groupdict().get("field")
    assert field is None or field in set(fields), f"{error.reason!r} names {field!r}, not a field of the carrier's"


phones = st.sampled_from(["0912345678", "84912345678", "+84912345678", "0987654321", "0352000111"])
carrier_ids = st.text(st.characters(min_codepoint=0x30, max_codepoint=0x7A, categories=["Lu", "Ll", "Nd"]),
                      min_size=1, max_size=24)
texts = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=40)
"""A well-formed MO's parts: the fuzz tests mix one into every example and it must be taken."""


def msisdn(phone: str) -> str:
    digits = phone.lstrip("+")
    return "84" + digits[1:] if digits.startswith("0") else digits
