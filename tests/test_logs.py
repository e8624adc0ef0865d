"""The log masks: the quick check in front of them never lets a personal number through."""

import re

from hypothesis import given, settings, strategies as st

from smsgw.logs import _CARD, _DIGIT_RUN, _SHOWN, mask_text


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
