"""Dispatcher decisions: month arithmetic, owner policy, billing outcome."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.commands import Month
from smsgw.dispatch import covered_months, participation
from smsgw.records import Period

spans = st.lists(
    st.tuples(st.integers(0, 240), st.integers(0, 60)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=12,
)
bound = st.one_of(st.none(), st.integers(-5, 320))


@given(spans, bound, bound)
@settings(max_examples=500)
def test_covered_months_equals_brute_force_set_of_months(spans, start, end):
    months = {m for first, last in spans for m in range(first, last + 1)}
    if start is not None:
        months = {m for m in months if m >= start}
    if end is not None:
        months = {m for m in months if m <= end}
    assert covered_months(spans, start, end) == len(months)


def test_concurrent_jobs_count_once_and_gaps_do_not_count():
    jobs = [
        Period("0110129425", "BHXH", "A", Month(2010, 1), Month(2012, 12)),
        Period("0110129425", "BHXH", "B", Month(2012, 7), Month(2013, 6)),   # overlaps A
        Period("0110129425", "BHXH", "C", Month(2015, 1), Month(2015, 12)),  # after a gap
        Period("0110129425", "BHTN", "A", Month(2011, 1), Month(2011, 12)),
    ]
    whole = participation(jobs, None, None)
    assert (whole.bhxh_months, whole.bhtn_months) == (42 + 12, 12)
    within = participation(jobs, Month(2012, 1), Month(2015, 3))
    assert (within.bhxh_months, within.bhtn_months) == (18 + 3, 0)
