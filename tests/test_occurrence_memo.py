"""``timers.occurrence`` remembers what it worked out, per calendar; ``worked_out`` is the
oracle: the same moment for every series, in any order of asking, across DST changes,
month ends and working days, and for starts given in any zone (the autumn fold too)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from crmrules import timers
from crmrules.calendar import BusinessCalendar, Duration, WorkingHours

CALENDARS = [
    BusinessCalendar("Europe/Berlin"),
    BusinessCalendar("Europe/Moscow", country="RU", working_hours=WorkingHours(time(9), time(18))),
]
ZONES = [UTC, ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")]

periods = st.builds(
    Duration,
    months=st.integers(0, 2),
    days=st.integers(0, 8),
    business_days=st.integers(0, 3),
    seconds=st.sampled_from([0, 0, 3600, 5400]),
).filter(lambda d: d.months or d.days or d.business_days or d.seconds)

starts = st.builds(
    lambda minutes, zone, fold: (
        (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes))
        .astimezone(zone)
        .replace(fold=fold)
    ),
    st.integers(0, 366 * 24 * 60),
    st.sampled_from(ZONES),
    st.integers(0, 1),
)


@given(
    every=periods,
    at=st.none() | st.sampled_from([time(9), time(2, 30), time(23, 59)]),
    asked=st.lists(st.tuples(starts, st.integers(0, 40)), min_size=1, max_size=8),
    which=st.integers(0, len(CALENDARS) - 1),
)
def test_a_remembered_occurrence_is_the_one_worked_out(
    every: Duration, at: time | None, asked: list[tuple[datetime, int]], which: int
) -> None:
    calendar = CALENDARS[which]
    for start, n in asked + asked[::-1]:  # asked again: from memory
        remembered = timers.occurrence(every, at, start, n, calendar)
        fresh = timers.worked_out(every, at, start, n, calendar)
        assert remembered == fresh and remembered.utcoffset() == fresh.utcoffset()
