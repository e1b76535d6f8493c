"""Tests for the business calendar and durations (crmrules.calendar)."""

from __future__ import annotations

import time as wallclock
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmrules.calendar import (
    WEEKDAY_NAMES,
    BusinessCalendar,
    Duration,
    WorkingHours,
)

BERLIN = ZoneInfo("Europe/Berlin")
MOSCOW = ZoneInfo("Europe/Moscow")
NEW_YORK = ZoneInfo("America/New_York")
NINE_TO_SIX = WorkingHours(time(9), time(18))

# 2026-03-02 is a Monday; Berlin switches to summer time on 2026-03-29 and back on 2026-10-25.
MON = date(2026, 3, 2)


def moscow(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=MOSCOW)


def berlin(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, fold: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN, fold=fold)


def utc(moment: datetime) -> datetime:
    """Absolute time: datetimes sharing a tzinfo compare by wall clock, not by instant."""
    return moment.astimezone(UTC)


@pytest.fixture(scope="module")
def office() -> BusinessCalendar:
    """Moscow office hours, no public holidays: the spec examples."""
    return BusinessCalendar("Europe/Moscow", working_hours=NINE_TO_SIX)


@pytest.fixture(scope="module")
def russia() -> BusinessCalendar:
    return BusinessCalendar("Europe/Moscow", country="RU", working_hours=NINE_TO_SIX)


@pytest.fixture(scope="module")
def round_the_clock() -> BusinessCalendar:
    """No working hours: the whole of every working day counts."""
    return BusinessCalendar("Europe/Berlin")


# --- Duration.parse --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2 days", Duration(days=2)),
        ("1 day", Duration(days=1)),
        ("2 business days", Duration(business_days=2)),
        ("1 business day", Duration(business_days=1)),
        ("3 working days", Duration(business_days=3)),
        ("1 working day", Duration(business_days=1)),
        ("3 hours", Duration(seconds=3 * 3600)),
        ("1 hour", Duration(seconds=3600)),
        ("30 minutes", Duration(seconds=1800)),
        ("1 minute", Duration(seconds=60)),
        ("45 seconds", Duration(seconds=45)),
        ("1 second", Duration(seconds=1)),
        ("1 week", Duration(days=7)),
        ("2 weeks", Duration(days=14)),
        ("1 month", Duration(months=1)),
        ("3 months", Duration(months=3)),
        ("1 year", Duration(months=12)),
        ("2 years", Duration(months=24)),
        ("  2   Business \t DAYS  ", Duration(business_days=2)),
        ("2days", Duration(days=2)),
        ("3 Hours", Duration(seconds=3 * 3600)),
        ("0 days", Duration()),
        ("0 business days", Duration()),
        ("P2D", Duration(days=2)),
        ("PT3H", Duration(seconds=3 * 3600)),
        ("P1M", Duration(months=1)),
        ("PT1M", Duration(seconds=60)),
        ("P1W", Duration(days=7)),
        ("P1Y", Duration(months=12)),
        ("P1Y2M3DT4H5M6S", Duration(months=14, days=3, seconds=4 * 3600 + 5 * 60 + 6)),
        ("pt30m", Duration(seconds=1800)),
        (" P0D ", Duration()),
        ("PT0S", Duration()),
    ],
)
def test_parse_valid(text: str, expected: Duration) -> None:
    parsed = Duration.parse(text)
    assert parsed == expected
    assert (parsed.months, parsed.days, parsed.business_days, parsed.seconds) == (
        expected.months,
        expected.days,
        expected.business_days,
        expected.seconds,
    )
    assert parsed.text == text.strip()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "2 dayz",
            "'2 dayz' is not a duration; write e.g. '2 days', '3 business days', "
            "'4 hours' or ISO 8601 'P2D'",
        ),
        ("2 dayz", "did you mean '2 days'?"),
        ("1 dayz", "did you mean '1 day'?"),
        ("3 buisness days", "did you mean '3 business days'?"),
        ("1 fortnight", "'1 fortnight' is not a duration"),
        ("", "'' is not a duration"),
        ("days", "'days' is not a duration"),
        ("2 days 3 hours", "is not a duration"),
        ("+2 days", "is not a duration"),
        ("2", "'2' has no unit"),
        ("-2 days", "'-2 days' is negative"),
        ("- 1 hour", "is negative"),
        ("1.5 hours", "'1.5 hours' is not a whole number"),
        ("1,5 hours", "is not a whole number"),
        (".5 days", "is not a whole number"),
        ("P1H", "'P1H' is not a valid ISO 8601 duration"),
        ("P", "'P' is not a valid ISO 8601 duration"),
        ("PT", "is not a valid ISO 8601 duration"),
        ("P1DT", "is not a valid ISO 8601 duration"),
        ("P2D3", "is not a valid ISO 8601 duration"),
        ("P1D1Y", "is not a valid ISO 8601 duration"),
        ("-P1D", "'-P1D' is negative"),
        ("PT1.5H", "'PT1.5H' is not a whole number"),
        ("100000 days", "is too long"),
        ("P200Y", "is too long"),
        ("99999 business days", "is too long"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Duration.parse(text)
    assert message in str(caught.value)


def test_parse_refuses_a_non_string() -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        Duration.parse(2)  # type: ignore[arg-type]


def test_duration_refuses_negative_parts() -> None:
    with pytest.raises(ValueError, match="0 or more"):
        Duration(days=-1)
    with pytest.raises(ValueError, match="whole number"):
        Duration(seconds=1.5)  # type: ignore[arg-type]


def test_duration_equality_ignores_the_text() -> None:
    assert Duration.parse("2 days") == Duration.parse("P2D")
    assert hash(Duration.parse("1 week")) == hash(Duration.parse("7 days"))
    assert Duration.parse("2 days") != Duration.parse("2 business days")


def test_duration_str() -> None:
    assert str(Duration.parse(" P2D ")) == "P2D"
    assert str(Duration.parse("3 Working Days")) == "3 Working Days"
    assert str(Duration()) == "0 seconds"
    assert str(Duration(days=1)) == "1 day"
    assert (
        str(Duration(months=14, days=3, business_days=1, seconds=3661))
        == "1 year 2 months 3 days 1 business day 1 hour 1 minute 1 second"
    )


@pytest.mark.parametrize(
    "duration",
    [
        Duration(days=2),
        Duration(business_days=1),
        Duration(months=3),
        Duration(months=24),
        Duration(seconds=7200),
        Duration(seconds=59),
    ],
)
def test_normalised_str_parses_back(duration: Duration) -> None:
    assert Duration.parse(str(duration)) == duration


def test_is_zero() -> None:
    assert Duration.parse("0 days").is_zero
    assert Duration.parse("PT0S").is_zero
    assert not Duration.parse("1 second").is_zero
    assert not Duration.parse("1 business day").is_zero


def test_weekday_names() -> None:
    assert WEEKDAY_NAMES["mon"] == 0
    assert WEEKDAY_NAMES["sat"] == 5
    assert WEEKDAY_NAMES["sun"] == 6
    assert WEEKDAY_NAMES["monday"] == 0
    assert WEEKDAY_NAMES["sunday"] == 6
    assert len(WEEKDAY_NAMES) == 14
    assert {MON.replace(day=2 + n).weekday() for n in range(7)} == set(WEEKDAY_NAMES.values())


# --- WorkingHours ----------------------------------------------------------------------


def test_working_hours_parse() -> None:
    assert WorkingHours.parse("09:00-18:00") == WorkingHours(time(9), time(18))
    assert WorkingHours.parse(" 9:30 – 17:45 ") == WorkingHours(time(9, 30), time(17, 45))
    whole_day = WorkingHours.parse("00:00-24:00")
    assert whole_day.end == time.max
    assert str(whole_day) == "00:00-24:00"
    assert str(WorkingHours.parse("09:00 - 18:00")) == "09:00-18:00"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("18:00-09:00", "end before they start"),
        ("09:00-09:00", "end before they start"),
        ("25:00-26:00", "the start is not a time of day"),
        ("09:00-18:60", "the end is not a time of day"),
        ("09:00-24:30", "the end is not a time of day"),
        ("9-18", "'9-18' is not working hours; write e.g. '09:00-18:00'"),
        ("", "is not working hours"),
    ],
)
def test_working_hours_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        WorkingHours.parse(text)
    assert message in str(caught.value)


def test_working_hours_constructor_checks_order() -> None:
    with pytest.raises(ValueError, match="must be after they start"):
        WorkingHours(time(18), time(9))


# --- construction ----------------------------------------------------------------------


def test_unknown_time_zone_suggests_the_closest() -> None:
    with pytest.raises(ValueError) as caught:
        BusinessCalendar("Europe/Moskow")
    assert str(caught.value) == "unknown time zone 'Europe/Moskow'; did you mean 'Europe/Moscow'?"
    with pytest.raises(ValueError, match="did you mean 'Europe/Berlin'"):
        BusinessCalendar("europe/berlin")
    with pytest.raises(ValueError, match="unknown time zone ''"):
        BusinessCalendar("")


def test_unknown_country() -> None:
    with pytest.raises(ValueError) as caught:
        BusinessCalendar(country="XX")
    message = str(caught.value)
    assert message.startswith("unknown country code 'XX'")
    assert "RU" in message and "DE" in message
    with pytest.raises(ValueError, match="did you mean 'RU'"):
        BusinessCalendar(country="Russia")


def test_country_and_subdivision_are_normalised() -> None:
    calendar = BusinessCalendar(country="de", subdivision="by")
    assert (calendar.country, calendar.subdivision) == ("DE", "BY")
    # Epiphany is a public holiday in Bavaria but not in Berlin.
    assert calendar.is_holiday(date(2026, 1, 6))
    assert not BusinessCalendar(country="DE", subdivision="BE").is_holiday(date(2026, 1, 6))


def test_unknown_subdivision() -> None:
    with pytest.raises(ValueError, match="unknown subdivision 'BYX' of DE; did you mean 'BY'"):
        BusinessCalendar(country="DE", subdivision="BYX")
    with pytest.raises(ValueError, match="needs a country"):
        BusinessCalendar(subdivision="BY")


def test_weekend_checks() -> None:
    with pytest.raises(ValueError, match="all seven days"):
        BusinessCalendar(weekend=range(7))
    with pytest.raises(ValueError, match="weekday number"):
        BusinessCalendar(weekend=[7])
    friday_saturday = BusinessCalendar(weekend=[4, 5])
    assert not friday_saturday.is_working_day(date(2026, 3, 6))  # Friday
    assert friday_saturday.is_working_day(date(2026, 3, 8))  # Sunday


def test_date_in_both_holidays_and_workdays_is_an_error() -> None:
    with pytest.raises(ValueError) as caught:
        BusinessCalendar(holidays=[date(2026, 11, 1)], workdays=[date(2026, 11, 1)])
    assert "2026-11-01" in str(caught.value)


def test_holidays_must_be_dates() -> None:
    with pytest.raises(ValueError, match="is not a date"):
        BusinessCalendar(holidays=[datetime(2026, 12, 31, tzinfo=UTC)])


# --- naive datetimes -------------------------------------------------------------------

NAIVE = datetime(2026, 3, 2, 10, 0)
CALLS: list[Callable[[BusinessCalendar, datetime], Any]] = [
    lambda c, m: c.local(m),
    lambda c, m: c.is_working_time(m),
    lambda c, m: c.next_opening(m),
    lambda c, m: c.add(m, Duration(days=1)),
    lambda c, m: c.subtract(m, Duration(days=1)),
    lambda c, m: c.add_business_days(m, 1),
    lambda c, m: c.subtract_business_days(m, 1),
]


@pytest.mark.parametrize("call", CALLS)
def test_naive_datetime_refused(office: BusinessCalendar, call: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="has no time zone"):
        call(office, NAIVE)


def test_day_functions_refuse_moments(office: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="expected a date"):
        office.is_working_day(moscow(2026, 3, 2, 10))


# --- local time, combine, DST ----------------------------------------------------------


def test_local_converts_to_the_calendar_zone(office: BusinessCalendar) -> None:
    moment = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    assert office.local(moment) == moment
    assert office.local(moment).tzinfo is MOSCOW
    assert office.local(moment).hour == 9
    assert office.is_working_time(moment)
    assert not office.is_working_time(moment - timedelta(seconds=1))


def test_start_of_day(round_the_clock: BusinessCalendar) -> None:
    assert round_the_clock.start_of_day(date(2026, 3, 29)) == berlin(2026, 3, 29, 0, 0)
    assert round_the_clock.start_of_day(date(2026, 3, 29)).utcoffset() == timedelta(hours=1)


def test_combine_moves_a_gap_time_forward(round_the_clock: BusinessCalendar) -> None:
    result = round_the_clock.combine(date(2026, 3, 29), time(2, 30))
    assert (result.hour, result.minute) == (3, 30)
    assert result.utcoffset() == timedelta(hours=2)
    assert utc(result) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_combine_takes_the_first_occurrence_of_a_fold(round_the_clock: BusinessCalendar) -> None:
    result = round_the_clock.combine(date(2026, 10, 25), time(2, 30))
    assert (result.hour, result.minute, result.fold) == (2, 30, 0)
    assert utc(result) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_days_are_wall_clock_across_dst(round_the_clock: BusinessCalendar) -> None:
    spring = round_the_clock.add(berlin(2026, 3, 28, 10), Duration.parse("1 day"))
    assert spring == berlin(2026, 3, 29, 10)
    assert spring.utcoffset() == timedelta(hours=2)
    assert utc(spring) - utc(berlin(2026, 3, 28, 10)) == timedelta(hours=23)
    autumn = round_the_clock.add(berlin(2026, 10, 24, 10), Duration.parse("P1D"))
    assert autumn == berlin(2026, 10, 25, 10)
    assert utc(autumn) - utc(berlin(2026, 10, 24, 10)) == timedelta(hours=25)


def test_hours_are_elapsed_across_dst(round_the_clock: BusinessCalendar) -> None:
    spring = round_the_clock.add(berlin(2026, 3, 28, 10), Duration.parse("24 hours"))
    assert (spring.day, spring.hour) == (29, 11)
    autumn = round_the_clock.add(berlin(2026, 10, 24, 10), Duration.parse("PT24H"))
    assert (autumn.day, autumn.hour) == (25, 9)
    back = round_the_clock.subtract(berlin(2026, 3, 29, 3, 30), Duration.parse("2 hours"))
    assert (back.day, back.hour, back.minute) == (29, 0, 30)
    assert back.utcoffset() == timedelta(hours=1)


def test_days_into_a_gap_or_fold(round_the_clock: BusinessCalendar) -> None:
    into_gap = round_the_clock.add(berlin(2026, 3, 28, 2, 30), Duration.parse("1 day"))
    assert (into_gap.hour, into_gap.minute) == (3, 30)
    into_fold = round_the_clock.add(berlin(2026, 10, 24, 2, 30), Duration.parse("1 day"))
    assert utc(into_fold) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_business_days_across_dst_keep_the_wall_clock() -> None:
    calendar = BusinessCalendar("Europe/Berlin", country="DE", working_hours=NINE_TO_SIX)
    result = calendar.add_business_days(berlin(2026, 3, 27, 10), 1)  # Friday, winter time
    assert result == berlin(2026, 3, 30, 10)
    assert result.utcoffset() == timedelta(hours=2)
    back = calendar.subtract_business_days(berlin(2026, 10, 26, 10), 1)  # Monday, winter time
    assert back == berlin(2026, 10, 23, 10)
    assert back.utcoffset() == timedelta(hours=2)


def test_next_opening_never_goes_back_in_time() -> None:
    # Opening at 02:45 on the autumn night: its first occurrence is before 02:30 (second).
    calendar = BusinessCalendar(
        "Europe/Berlin", weekend=[], working_hours=WorkingHours(time(2, 45), time(18))
    )
    second_pass = berlin(2026, 10, 25, 2, 30, fold=1)
    assert utc(calendar.next_opening(second_pass)) == utc(second_pass)
    first_pass = berlin(2026, 10, 25, 2, 30)
    assert utc(calendar.next_opening(first_pass)) == datetime(2026, 10, 25, 0, 45, tzinfo=UTC)


def test_moscow_has_no_dst(office: BusinessCalendar) -> None:
    result = office.add(moscow(2026, 3, 28, 10), Duration.parse("2 days"))
    assert result == moscow(2026, 3, 30, 10)
    assert result.utcoffset() == timedelta(hours=3)
    assert utc(result) - utc(moscow(2026, 3, 28, 10)) == timedelta(hours=48)


# --- months ----------------------------------------------------------------------------


def test_months_clamp_to_the_end_of_the_month(office: BusinessCalendar) -> None:
    assert office.add(moscow(2026, 1, 31, 10), Duration.parse("1 month")) == moscow(2026, 2, 28, 10)
    assert office.add(moscow(2028, 1, 31, 10), Duration.parse("P1M")) == moscow(2028, 2, 29, 10)
    assert office.add(moscow(2028, 2, 29, 10), Duration.parse("1 year")) == moscow(2029, 2, 28, 10)
    assert office.add(moscow(2026, 11, 30, 8), Duration.parse("3 months")) == moscow(2027, 2, 28, 8)
    assert office.subtract(moscow(2026, 3, 31, 10), Duration.parse("1 month")) == moscow(
        2026, 2, 28, 10
    )


def test_mixed_duration_applies_months_first(office: BusinessCalendar) -> None:
    # months first: Jan 30 -> Feb 28 -> Mar 1 (days first would give Feb 28)
    assert office.add(moscow(2026, 1, 30, 10), Duration.parse("P1M1D")) == moscow(2026, 3, 1, 10)
    assert office.add(moscow(2026, 1, 30, 10), Duration.parse("P1M1DT3H")) == moscow(2026, 3, 1, 13)


def test_mixed_duration_subtracts_in_reverse_order(office: BusinessCalendar) -> None:
    # days first: Mar 31 -> Mar 29 -> Feb 28 (months first would give Feb 26)
    assert office.subtract(moscow(2026, 3, 31, 10), Duration.parse("P1M2D")) == moscow(
        2026, 2, 28, 10
    )


def test_add_zero_duration_is_the_moment(office: BusinessCalendar) -> None:
    saturday_night = moscow(2026, 3, 7, 23)
    assert office.add(saturday_night, Duration.parse("0 business days")) == saturday_night


# --- business days: the spec examples -------------------------------------------------


def test_spec_examples(office: BusinessCalendar, round_the_clock: BusinessCalendar) -> None:
    assert office.add_business_days(moscow(2026, 3, 2, 10), 2) == moscow(2026, 3, 4, 10)
    assert office.add_business_days(moscow(2026, 3, 6, 20), 2) == moscow(2026, 3, 11, 9)
    assert round_the_clock.add_business_days(berlin(2026, 3, 7, 15), 2) == berlin(2026, 3, 11, 0)
    assert round_the_clock.add_business_days(berlin(2026, 3, 4, 15), 2) == berlin(2026, 3, 6, 15)


def test_zero_business_days_is_the_start(office: BusinessCalendar) -> None:
    assert office.add_business_days(moscow(2026, 3, 2, 10), 0) == moscow(2026, 3, 2, 10)
    assert office.add_business_days(moscow(2026, 3, 6, 20), 0) == moscow(2026, 3, 9, 9)


def test_outside_working_hours(office: BusinessCalendar) -> None:
    # before opening on a working day: from today's opening
    assert office.next_opening(moscow(2026, 3, 3, 7, 30)) == moscow(2026, 3, 3, 9)
    assert office.add_business_days(moscow(2026, 3, 3, 7, 30), 1) == moscow(2026, 3, 4, 9)
    # evening: from tomorrow's opening
    assert office.add_business_days(moscow(2026, 3, 3, 19), 1) == moscow(2026, 3, 5, 9)
    # the closing minute is closed, the opening minute is open
    assert not office.is_working_time(moscow(2026, 3, 3, 18))
    assert office.is_working_time(moscow(2026, 3, 3, 17, 59, 59))
    assert office.is_working_time(moscow(2026, 3, 3, 9))
    assert office.add_business_days(moscow(2026, 3, 3, 18), 1) == moscow(2026, 3, 5, 9)
    # weekend: from Monday's opening
    assert office.add_business_days(moscow(2026, 3, 8, 12), 1) == moscow(2026, 3, 10, 9)
    assert office.add(moscow(2026, 3, 7, 12), Duration.parse("1 business day")) == moscow(
        2026, 3, 10, 9
    )


def test_next_opening_returns_a_working_moment_itself(office: BusinessCalendar) -> None:
    moment = datetime(2026, 3, 2, 8, 15, tzinfo=UTC)  # 11:15 in Moscow
    assert office.next_opening(moment) == moment
    assert office.next_opening(moment).tzinfo is MOSCOW


# --- business days: Russian public holidays --------------------------------------------


@pytest.mark.parametrize(
    "day",
    [
        *(date(2026, 1, d) for d in range(1, 9)),
        date(2026, 1, 9),  # day off transferred from Saturday 2026-01-03
        date(2026, 5, 1),
        date(2026, 5, 9),
        date(2026, 6, 12),
        date(2026, 11, 4),
        date(2026, 12, 31),  # day off transferred from Sunday 2026-01-04
    ],
)
def test_russian_public_holidays(russia: BusinessCalendar, day: date) -> None:
    assert russia.is_holiday(day)
    assert not russia.is_working_day(day)


def test_a_weekend_is_not_a_holiday(russia: BusinessCalendar) -> None:
    assert not russia.is_holiday(date(2026, 3, 7))
    assert not russia.is_working_day(date(2026, 3, 7))
    assert russia.is_working_day(date(2026, 1, 12))
    assert not russia.is_holiday(date(2026, 1, 12))


def test_russian_production_calendar_counts(russia: BusinessCalendar) -> None:
    # The official Russian production calendars: 248 working days in 2024, 247 in 2025-2026.
    for year, expected in ((2024, 248), (2025, 247), (2026, 247)):
        days = (date(year, 1, 1) + timedelta(n) for n in range(366))
        assert sum(russia.is_working_day(d) for d in days if d.year == year) == expected


def test_transferred_working_day(russia: BusinessCalendar, office: BusinessCalendar) -> None:
    # Russia made Saturday 2025-11-01 a working day (and Monday 2025-11-03 a day off).
    assert russia.is_working_day(date(2025, 11, 1))
    assert not office.is_working_day(date(2025, 11, 1))
    assert not russia.is_working_day(date(2025, 11, 3))
    assert russia.add_business_days(moscow(2025, 10, 31, 10), 1) == moscow(2025, 11, 1, 10)
    assert russia.add_business_days(moscow(2025, 10, 31, 10), 2) == moscow(2025, 11, 5, 10)


def test_business_days_across_russian_holidays(russia: BusinessCalendar) -> None:
    # New Year: 2025-12-31 and 2026-01-01..09 are days off; 01-10/11 is a weekend.
    assert russia.add_business_days(moscow(2025, 12, 30, 10), 1) == moscow(2026, 1, 12, 10)
    assert russia.add_business_days(moscow(2026, 1, 3, 12), 0) == moscow(2026, 1, 12, 9)
    # Thursday before May 1 (a Friday)
    assert russia.add_business_days(moscow(2026, 4, 30, 15), 1) == moscow(2026, 5, 4, 15)
    # Friday before Victory Day (Saturday, observed on Monday 05-11)
    assert russia.add_business_days(moscow(2026, 5, 8, 10), 1) == moscow(2026, 5, 12, 10)
    # Russia Day, Friday 06-12
    assert russia.add_business_days(moscow(2026, 6, 11, 12), 1) == moscow(2026, 6, 15, 12)
    # Unity Day, Wednesday 11-04
    assert russia.add_business_days(moscow(2026, 11, 3, 12), 1) == moscow(2026, 11, 5, 12)
    assert russia.subtract_business_days(moscow(2026, 11, 5, 12), 1) == moscow(2026, 11, 3, 12)


# --- extra holidays and workdays -------------------------------------------------------


def test_extra_holiday() -> None:
    calendar = BusinessCalendar(
        "Europe/Moscow", holidays=[date(2026, 3, 4)], working_hours=NINE_TO_SIX
    )
    assert calendar.is_holiday(date(2026, 3, 4))
    assert calendar.add_business_days(moscow(2026, 3, 2, 10), 2) == moscow(2026, 3, 5, 10)


def test_extra_workday_on_a_weekend() -> None:
    calendar = BusinessCalendar(
        "Europe/Moscow", workdays=[date(2026, 3, 7)], working_hours=NINE_TO_SIX
    )
    assert calendar.is_working_day(date(2026, 3, 7))
    assert calendar.is_working_time(moscow(2026, 3, 7, 12))
    assert calendar.add_business_days(moscow(2026, 3, 6, 10), 1) == moscow(2026, 3, 7, 10)


def test_extra_workday_wins_over_a_public_holiday() -> None:
    calendar = BusinessCalendar("Europe/Moscow", country="RU", workdays=[date(2026, 1, 5)])
    assert calendar.is_working_day(date(2026, 1, 5))
    assert not calendar.is_holiday(date(2026, 1, 5))
    assert not calendar.is_working_day(date(2026, 1, 6))


def test_extra_holiday_wins_over_a_transferred_working_day() -> None:
    calendar = BusinessCalendar("Europe/Moscow", country="RU", holidays=[date(2025, 11, 1)])
    assert not calendar.is_working_day(date(2025, 11, 1))
    assert calendar.is_holiday(date(2025, 11, 1))


# --- subtracting business days ---------------------------------------------------------


def test_subtract_inside_working_hours(office: BusinessCalendar) -> None:
    assert office.subtract_business_days(moscow(2026, 3, 4, 10), 2) == moscow(2026, 3, 2, 10)
    assert office.subtract_business_days(moscow(2026, 3, 2, 10), 1) == moscow(2026, 2, 27, 10)
    assert office.subtract_business_days(moscow(2026, 3, 4, 10), 0) == moscow(2026, 3, 4, 10)


def test_subtract_outside_working_hours(office: BusinessCalendar) -> None:
    # evening: from today's closing
    assert office.subtract_business_days(moscow(2026, 3, 2, 20), 1) == moscow(2026, 2, 27, 18)
    assert office.subtract_business_days(moscow(2026, 3, 2, 20), 0) == moscow(2026, 3, 2, 18)
    # before opening: from the previous working day's closing
    assert office.subtract_business_days(moscow(2026, 3, 3, 8), 0) == moscow(2026, 3, 2, 18)
    assert office.subtract_business_days(moscow(2026, 3, 3, 8), 1) == moscow(2026, 2, 27, 18)
    # weekend: from Friday's closing
    assert office.subtract_business_days(moscow(2026, 3, 8, 12), 1) == moscow(2026, 3, 5, 18)
    assert office.subtract(moscow(2026, 3, 8, 12), Duration.parse("3 business days")) == moscow(
        2026, 3, 3, 18
    )


def test_subtract_without_working_hours(round_the_clock: BusinessCalendar) -> None:
    # Sunday: the previous closing is Friday 24:00; one working day earlier is Thursday 24:00.
    assert round_the_clock.subtract_business_days(berlin(2026, 3, 8, 15), 1) == berlin(
        2026, 3, 6, 0
    )
    assert round_the_clock.subtract_business_days(berlin(2026, 3, 8, 15), 0) == berlin(
        2026, 3, 7, 0
    )
    assert round_the_clock.subtract_business_days(berlin(2026, 3, 4, 15), 2) == berlin(
        2026, 3, 2, 15
    )


def test_subtract_mirrors_add(office: BusinessCalendar) -> None:
    created = moscow(2026, 3, 5, 17)  # Thursday
    deadline = office.add_business_days(created, 3)
    assert deadline == moscow(2026, 3, 10, 17)
    assert office.subtract_business_days(deadline, 3) == created


def test_business_day_count_must_be_a_natural_number(office: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="0 or more"):
        office.add_business_days(moscow(2026, 3, 2, 10), -1)
    with pytest.raises(ValueError, match="100 years"):
        office.subtract_business_days(moscow(2026, 3, 2, 10), 10**6)


# --- bounded loops and speed -----------------------------------------------------------


def test_no_working_day_for_ten_years_raises() -> None:
    start = date(2026, 1, 1)
    closed = [start + timedelta(n) for n in range(4000)]
    calendar = BusinessCalendar(holidays=closed)
    with pytest.raises(ValueError, match="no working day within 10 years"):
        calendar.add_business_days(datetime(2026, 1, 1, 12, tzinfo=UTC), 1)
    with pytest.raises(ValueError, match="no working day within 10 years"):
        calendar.subtract_business_days(datetime(2036, 12, 1, 12, tzinfo=UTC), 1)


def test_business_days_are_cheap(russia: BusinessCalendar) -> None:
    moment = moscow(2026, 3, 2, 10)
    russia.add_business_days(moment, 300)  # load the holiday years once
    started = wallclock.perf_counter()
    for _ in range(100):
        russia.add_business_days(moment, 300)
    assert wallclock.perf_counter() - started < 2.0


# --- properties ------------------------------------------------------------------------

MOMENTS = st.datetimes(
    min_value=datetime(2024, 1, 1),
    max_value=datetime(2029, 12, 31),
    timezones=st.sampled_from([UTC, BERLIN, MOSCOW, NEW_YORK]),
)
CALENDARS = [
    BusinessCalendar("Europe/Moscow", country="RU", working_hours=NINE_TO_SIX),
    BusinessCalendar("Europe/Berlin", country="DE", working_hours=WorkingHours(time(8), time(17))),
    BusinessCalendar("Europe/Berlin", country="DE"),
    BusinessCalendar("America/New_York", country="US", weekend=[6]),
]


@settings(deadline=None, max_examples=200)
@given(
    calendar=st.sampled_from(CALENDARS),
    moment=MOMENTS,
    n=st.integers(0, 300),
    more=st.integers(1, 30),
)
def test_add_business_days_lands_in_working_time_and_is_monotonic(
    calendar: BusinessCalendar, moment: datetime, n: int, more: int
) -> None:
    result = calendar.add_business_days(moment, n)
    assert landed_in_working_time(calendar, result)
    assert calendar.is_working_day(calendar.local(result).date())
    assert utc(result) >= utc(moment)
    later = calendar.add_business_days(moment, n + more)
    assert utc(later) > utc(result)
    assert landed_in_working_time(calendar, later)


def landed_in_working_time(calendar: BusinessCalendar, moment: datetime) -> bool:
    """Working time, or the close of a day shortened before a holiday (a later wall-clock
    time is clamped to it)."""
    return calendar.is_working_time(moment) or calendar.is_pre_holiday(
        calendar.local(moment).date()
    )


@settings(deadline=None, max_examples=200)
@given(calendar=st.sampled_from(CALENDARS[:2]), moment=MOMENTS, n=st.integers(0, 300))
def test_subtract_business_days_undoes_add(
    calendar: BusinessCalendar, moment: datetime, n: int
) -> None:
    start = calendar.next_opening(moment)
    assert utc(start) >= utc(moment)
    there = calendar.add_business_days(moment, n)
    back = calendar.subtract_business_days(there, n)
    if calendar.local(there).time() == calendar.local(start).time():
        assert back == start
    else:  # clamped to a shortened day's close: the way back keeps that time of day
        assert calendar.local(back).date() == calendar.local(start).date()
        assert calendar.local(back).time() == calendar.local(there).time()
    earlier = calendar.subtract_business_days(moment, n)
    assert utc(earlier) <= utc(moment)
    assert calendar.is_working_day(calendar.local(earlier).date())


def test_transfer_published_with_the_next_years_data() -> None:
    # Armenia's 2003 data moves the working day of 2003-01-03 onto Sunday 2002-12-29.
    armenia = BusinessCalendar("Asia/Yerevan", country="AM")
    assert date(2002, 12, 29).weekday() == 6
    assert armenia.is_working_day(date(2002, 12, 29))
    assert not armenia.is_working_day(date(2002, 12, 22))
