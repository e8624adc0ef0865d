import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw.phones import InvalidPhone, mask, normalize


@pytest.mark.parametrize("raw", [
    "0912345678",
    "84912345678",
    "+84912345678",
    "0084912345678",
    "091 234 5678",
    "091.234.5678",
    "091-234-5678",
    "+84 91 234 56 78",
    "(+84) 912-345-678",
    " 0912345678\t",
])
def test_every_written_form_of_a_vietnamese_mobile_is_the_same_subscriber(raw):
    assert normalize(raw) == "84912345678"


@pytest.mark.parametrize("raw, expected", [
    ("0862345678", "84862345678"),   # Viettel
    ("0812345678", "84812345678"),   # VinaPhone
    ("0702345678", "84702345678"),   # MobiFone
    ("0562345678", "84562345678"),   # Vietnamobile
    ("0592345678", "84592345678"),   # Gmobile
])
def test_carrier_prefixes_are_accepted(raw, expected):
    assert normalize(raw) == expected


def test_a_valid_foreign_number_is_kept_in_e164_digits():
    assert normalize("+1 415 555 2671") == "14155552671"
    assert normalize("+81 90 1234 5678") == "819012345678"


@pytest.mark.parametrize("raw", ["0912345678", "+1 415 555 2671", "+81 90 1234 5678"])
def test_normalising_twice_changes_nothing(raw):
    once = normalize(raw)
    assert normalize(once) == once
    assert normalize("+" + once) == once


@pytest.mark.parametrize("raw, reason", [
    ("", "not a phone number: empty"),
    ("   ", "not a phone number: empty"),
    ("abc", "not a phone number"),
    ("0912a45678", "not a phone number"),
    ("09123+45678", "not a phone number"),
    ("841234", "not a valid number"),
    ("09123456789", "not a valid number"),
    ("0992345678", "not a valid number"),
    ("02438123456", "a Vietnamese number must be a mobile number"),
    ("18001234", "a Vietnamese number must be a mobile number"),
])
def test_unusable_numbers_are_refused_with_the_reason(raw, reason):
    with pytest.raises(InvalidPhone, match=reason):
        normalize(raw)


def test_invalid_phone_is_a_value_error():
    with pytest.raises(ValueError):
        normalize("not a phone")


def test_mask_keeps_at_most_the_first_seven_digits():
    assert mask("84912345678") == "8491234****"
    assert mask("819012345678") == "8190123*****"


def test_mask_hides_at_least_four_digits_of_a_short_number():
    assert mask("123456") == "12****"
    assert mask("123") == "***"


@given(prefix=st.sampled_from(["086", "096", "032", "039", "088", "091", "081", "090", "070", "079", "092", "056"]),
       subscriber=st.integers(min_value=0, max_value=9_999_999))
def test_national_and_international_forms_agree(prefix, subscriber):
    national = f"{prefix}{subscriber:07d}"
    expected = "84" + national[1:]
    assert normalize(national) == expected
    assert normalize("+" + expected) == expected
    assert normalize(expected) == expected
    assert "*" * 4 in mask(expected) and mask(expected)[:7] == expected[:7]


@given(st.sampled_from(["0", "84", "+84", "0084", "", "+", "8", "00"]),
       st.text(alphabet="0123456789", min_size=8, max_size=11))
def test_the_vietnamese_mobile_fast_path_agrees_with_the_full_parse(prefix, digits):
    from smsgw import phones

    def outcome(function, raw):
        try:
            return function(raw)
        except phones.InvalidPhone as exc:
            return str(exc)

    raw = prefix + digits
    assert outcome(phones.normalize, raw) == outcome(phones._normalize_parsed, raw)


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_the_network_by_prefix_agrees_with_the_carrier_data(national):
    from smsgw import phones

    msisdn = "84" + national
    assert phones.network(msisdn) == phones._network(msisdn)
