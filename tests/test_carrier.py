"""The adapters' shared recipient check: an MO must be sent to one of our numbers, in any
form the carriers of `fixtures/carriers/` write it."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from smsgw.carrier import load_adapter, number_forms, recipient_key
from smsgw.config import parse_config
from smsgw.errors import BadRequest
from smsgw.wire import CarrierRequest, InboundMessage

CARRIERS = Path(__file__).resolve().parent.parent / "fixtures" / "carriers"
NOW = datetime(2025, 1, 31, 8, 0, tzinfo=timezone.utc)
FORM = "application/x-www-form-urlencoded"


def adapter(name: str, table: dict, shortcode: str = "8079"):
    config = parse_config({"gateway": {"shortcode": shortcode}, "carriers": {name: {"auth": "none", **table}}})
    return load_adapter(config.carriers[name], shortcode=config.shortcode)


def fixture_mo(carrier: str, name: str) -> CarrierRequest:
    data = (CARRIERS / carrier / name).read_bytes()
    if carrier == "kannel":
        return CarrierRequest({}, "", None, b"", method="GET", target=f"/carriers/kannel/mo?{data.decode()}")
    return CarrierRequest({}, FORM, None, data)


def message(to: str) -> InboundMessage:
    return InboundMessage(carrier="c", carrier_id="1", sender="84912345678", to=to, text="BH", received_at=NOW)


@pytest.mark.parametrize(("number", "forms"), [
    ("8079", {"8079", "848079"}),
    ("84898765432", {"84898765432", "0898765432"}),
    ("0898765432", {"0898765432", "84898765432"}),
    ("14155550100", {"14155550100"}),
])
def test_the_forms_of_our_numbers(number, forms):
    assert number_forms(number) == forms


@pytest.mark.parametrize(("raw", "key"), [
    ("8079", "8079"), ("+848079", "848079"), ("00848079", "848079"), ("+84 89-876.5432", "84898765432"),
    ("(0898) 765 432", "0898765432"), ("", ""), ("BHXHVN", "BHXHVN"),
])
def test_recipient_keys(raw, key):
    assert recipient_key(raw) == key


@pytest.mark.parametrize(("carrier", "table", "name"), [
    ("kannel", {"adapter": "kannel"}, "mo.query"),
    ("vn-cp", {"adapter": "vn-cp"}, "mo.form"),
    ("twilio", {"adapter": "twilio", "numbers": ["+84898765432"]}, "mo.form"),
])
def test_each_carriers_real_mo_is_to_our_number(carrier, table, name):
    chosen = adapter(carrier, table)
    chosen.check_recipient(chosen.parse_inbound(fixture_mo(carrier, name), received_at=NOW))


@pytest.mark.parametrize(("carrier", "table", "reason"), [
    ("generic", {}, "to: '9999' is not this gateway's short code 8079"),
    ("kannel", {"adapter": "kannel"}, "to: '9999' is not this gateway's short code 8079"),
    ("vn-cp", {"adapter": "vn-cp"}, "Service_ID: '9999' is not this gateway's short code 8079"),
    ("twilio", {"adapter": "twilio", "numbers": ["+84898765432"]},
     "To: '9999' is not a number of carrier 'twilio' (84898765432)"),
])
def test_an_mo_to_another_number_is_refused_in_the_carriers_field(carrier, table, reason):
    with pytest.raises(BadRequest) as info:
        adapter(carrier, table).check_recipient(message("9999"))
    assert (info.value.status, info.value.kind, info.value.reason) == (400, "wrong_recipient", reason)


def test_a_twilio_long_number_is_ours_only_where_the_config_says_so():
    body = fixture_mo("twilio", "mo.form")
    without = adapter("twilio", {"adapter": "twilio"})
    with pytest.raises(BadRequest, match=r"^To: '\+84898765432' is not this gateway's short code 8079$"):
        without.check_recipient(without.parse_inbound(body, received_at=NOW))
    as_shortcode = adapter("twilio", {"adapter": "twilio"}, shortcode="84898765432")
    as_shortcode.check_recipient(as_shortcode.parse_inbound(body, received_at=NOW))
    for written in ("+84898765432", "84898765432", "0898765432", "+84 898 765 432"):
        adapter("twilio", {"adapter": "twilio", "numbers": ["0898765432"]}).check_recipient(message(written))


def test_a_carrier_with_several_short_codes_takes_each_and_no_other():
    vn_cp = adapter("vn-cp", {"adapter": "vn-cp", "numbers": ["8079", "8179"]})
    for ours in ("8079", "8179", "848179"):
        vn_cp.check_recipient(message(ours))
    with pytest.raises(BadRequest, match=r"^Service_ID: '8279' is not a number of carrier 'vn-cp' \(8079, 8179\)$"):
        vn_cp.check_recipient(message("8279"))


def test_a_long_recipient_is_cut_in_the_reason():
    with pytest.raises(BadRequest) as info:
        adapter("generic", {}).check_recipient(message("9" * 500))
    assert info.value.reason == f"to: '{'9' * 32}...' is not this gateway's short code 8079"
