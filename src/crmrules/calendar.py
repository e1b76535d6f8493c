"""The business calendar and durations that regulation timers are measured in.

Every timer in a regulation ("reply within 2 business days", "older_than: 3 business
days") needs the same notion of time zone, working days and working hours, so they all
live here. Nothing reads the clock: every function takes the moment as an argument, which
keeps rules reproducible and testable. Every moment must be time-zone aware; a naive
datetime is refused with ValueError because guessing its zone silently shifts deadlines.

Time-zone decisions (applied by :meth:`BusinessCalendar.combine` and everything built on it):

* calendar days, weeks, months and years are wall-clock arithmetic in the calendar's zone
  (2 days after 10:00 is 10:00 local, even across a DST change); months clamp to the end
  of the month (Jan 31 + 1 month = Feb 28 or 29);
* hours, minutes and seconds are elapsed time;
* a wall-clock time that does not exist (in a DST gap) moves forward by the length of the
  gap (02:30 on the spring-forward night becomes 03:30); an ambiguous wall-clock time (in
  a DST fold) takes its first occurrence (``fold=0``).

Country holidays come from the ``holidays`` package (its default PUBLIC category only; its
WORKDAY category lists commemorative days that are *not* days off, so it is not used).
Transferred working days (e.g. a Saturday that Russia makes a working day) come from the
package's ``weekend_workdays``, which it fills for the countries whose data includes them.
"""

from __future__ import annotations

import copy
import difflib
import re
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import holidays as pyholidays

_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKDAY_NAMES: dict[str, int] = {
    **{name[:3]: number for number, name in enumerate(_DAY_NAMES)},
    **{name: number for number, name in enumerate(_DAY_NAMES)},
}
"""Weekday names as admins write them in YAML (``weekend: [sat, sun]``) -> ``date.weekday()``."""

MAX_DAYS = 36_600
"""About 100 years: longer durations are surely typos, and refusing them bounds every loop."""

_MAX_MONTHS = 1_200
_MAX_SECONDS = MAX_DAYS * 86_400
_LIMITS = {
    "months": _MAX_MONTHS,
    "days": MAX_DAYS,
    "business_days": MAX_DAYS,
    "seconds": _MAX_SECONDS,
}
_SEARCH_LIMIT_DAYS = 3_660  # how far to look for the next working day before giving up
_END_OF_DAY = time.max  # how WorkingHours stores "24:00"

_EXAMPLES = "write e.g. '2 days', '3 business days', '4 hours' or ISO 8601 'P2D'"

# unit as written (lower case, single spaces) -> (Duration field, multiplier)
_UNITS: dict[str, tuple[str, int]] = {
    name: (part, factor)
    for names, part, factor in (
        (("second", "seconds"), "seconds", 1),
        (("minute", "minutes"), "seconds", 60),
        (("hour", "hours"), "seconds", 3_600),
        (("day", "days"), "days", 1),
        (("week", "weeks"), "days", 7),
        (("business day", "business days", "working day", "working days"), "business_days", 1),
        (("month", "months"), "months", 1),
        (("year", "years"), "months", 12),
    )
    for name in names
}

_WORDS = re.compile(
    r"(?P<sign>-?)\s*(?P<number>\d+(?:[.,]\d+)?|[.,]\d+)\s*(?P<unit>[^\W\d_]+(?:\s+[^\W\d_]+)*)?"
)
_ISO_START = re.compile(r"[+-]?\s*P", re.IGNORECASE)
_ISO = re.compile(
    r"P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?"
)
_HOURS = re.compile(r"\s*(\d{1,2}):(\d{2})\s*[-–—]\s*(\d{1,2}):(\d{2})\s*")


def _plural(amount: int, unit: str) -> str:
    return f"{amount} {unit}" if amount == 1 else f"{amount} {unit}s"


@dataclass(frozen=True)
class Duration:
    """An amount of time as admins write it; applied by :meth:`BusinessCalendar.add`.

    The parts are kept apart because they mean different things: months and days are
    wall-clock arithmetic, business days follow the calendar, seconds are elapsed time.
    ``text`` is kept for messages and does not take part in equality (``2 days == P2D``).
    """

    months: int = 0
    days: int = 0  # calendar days (weeks are 7 days)
    business_days: int = 0
    seconds: int = 0  # hours/minutes/seconds, elapsed time
    text: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name, limit in _LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"Duration.{name} must be a whole number, got {value!r}")
            if value < 0:
                raise ValueError(f"Duration.{name} must be 0 or more, got {value}")
            if value > limit:
                raise ValueError(f"Duration.{name} = {value} is longer than about 100 years")

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Read ``2 days``, ``3 business days``, ``4 hours``, ``P1Y2M3DT4H5M6S`` and the like.

        Raises ValueError with a message an admin can act on.
        """
        if not isinstance(text, str):
            raise ValueError(f"{text!r} is not a duration; {_EXAMPLES}")
        stripped = text.strip()
        if _ISO_START.match(stripped):
            parts = _parse_iso(text, stripped)
        else:
            parts = _parse_words(text, stripped)
        for name, value in parts.items():
            if value > _LIMITS[name]:
                raise ValueError(f"'{text}' is too long; durations are limited to about 100 years")
        return cls(text=text.strip(), **parts)

    def __str__(self) -> str:
        if self.text:
            return self.text
        years, months = divmod(self.months, 12)
        hours, rest = divmod(self.seconds, 3_600)
        minutes, seconds = divmod(rest, 60)
        parts = [
            _plural(amount, unit)
            for amount, unit in (
                (years, "year"),
                (months, "month"),
                (self.days, "day"),
                (self.business_days, "business day"),
                (hours, "hour"),
                (minutes, "minute"),
                (seconds, "second"),
            )
            if amount
        ]
        return " ".join(parts) or "0 seconds"

    @property
    def is_zero(self) -> bool:
        """True for ``0 days`` and the like: adding it leaves a moment unchanged."""
        return not (self.months or self.days or self.business_days or self.seconds)


def _parse_words(text: str, stripped: str) -> dict[str, int]:
    """``<whole number> <unit>``; the unit is case-insensitive, singular or plural."""
    match = _WORDS.fullmatch(stripped)
    if match is None:
        raise ValueError(f"'{text}' is not a duration; {_EXAMPLES}")
    number, raw_unit = match["number"], match["unit"]
    if match["sign"]:
        raise ValueError(f"'{text}' is negative; a duration is 0 or more, e.g. '2 days'")
    if raw_unit is None:
        raise ValueError(f"'{text}' has no unit; {_EXAMPLES}")
    if not number.isdigit():
        raise ValueError(
            f"'{text}' is not a whole number; use a smaller unit, e.g. '90 minutes' "
            "instead of '1.5 hours'"
        )
    unit = " ".join(raw_unit.lower().split())
    if unit not in _UNITS:
        guess = difflib.get_close_matches(unit, list(_UNITS), n=1, cutoff=0.6)
        singular = guess[0].removesuffix("s") if guess else ""
        unit_hint = singular if number == "1" else f"{singular}s"
        hint = f"; did you mean '{number} {unit_hint}'?" if guess else ""
        raise ValueError(f"'{text}' is not a duration; {_EXAMPLES}{hint}")
    name, factor = _UNITS[unit]
    return {name: int(number) * factor}


def _parse_iso(text: str, stripped: str) -> dict[str, int]:
    """ISO 8601 ``PnYnMnWnDTnHnMnS`` with whole numbers (letters in any case)."""
    if stripped.startswith("-"):
        raise ValueError(f"'{text}' is negative; a duration is 0 or more, e.g. 'P2D'")
    if "." in stripped or "," in stripped:
        raise ValueError(
            f"'{text}' is not a whole number; use a smaller unit, e.g. 'PT90M' instead of 'PT1.5H'"
        )
    match = _ISO.fullmatch(stripped.upper().lstrip("+"))
    if match is None:
        raise ValueError(
            f"'{text}' is not a valid ISO 8601 duration; write e.g. 'P2D', 'PT3H', 'P1M' "
            "or 'P1Y2M3DT4H5M6S' (hours, minutes and seconds go after 'T')"
        )
    got = {key: int(value) for key, value in match.groupdict().items() if value is not None}
    return {
        "months": got.get("years", 0) * 12 + got.get("months", 0),
        "days": got.get("weeks", 0) * 7 + got.get("days", 0),
        "seconds": got.get("hours", 0) * 3_600 + got.get("minutes", 0) * 60 + got.get("seconds", 0),
    }


@dataclass(frozen=True)
class WorkingHours:
    """Daily opening hours, the same every working day; ``end`` of ``time.max`` means 24:00.

    Working time is ``start <= wall clock < end`` (the closing minute itself is closed).
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("working hours are wall-clock times; give them without a time zone")
        if self.end <= self.start:
            raise ValueError(
                f"working hours end ({self.end:%H:%M}) must be after they start "
                f"({self.start:%H:%M}); overnight hours are not supported"
            )

    @classmethod
    def parse(cls, text: str) -> WorkingHours:
        """Read ``"09:00-18:00"``; ``24:00`` is accepted as the end of the day."""
        example = "write e.g. '09:00-18:00'"
        match = _HOURS.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"{text!r} is not working hours; {example}")
        start_h, start_m, end_h, end_m = (int(group) for group in match.groups())
        if start_h > 23 or start_m > 59:
            raise ValueError(f"working hours '{text}': the start is not a time of day; {example}")
        if end_h == 24 and end_m == 0:
            end = _END_OF_DAY
        elif end_h > 23 or end_m > 59:
            raise ValueError(f"working hours '{text}': the end is not a time of day; {example}")
        else:
            end = time(end_h, end_m)
        start = time(start_h, start_m)
        if end <= start:
            raise ValueError(
                f"working hours '{text}' end before they start; {example} "
                "(overnight hours are not supported)"
            )
        return cls(start, end)

    def __str__(self) -> str:
        end = "24:00" if self.end == _END_OF_DAY else f"{self.end:%H:%M}"
        return f"{self.start:%H:%M}-{end}"


_ALL_DAY = WorkingHours(time(0), _END_OF_DAY)


class BusinessCalendar:
    """Working days and hours in one time zone; answers every "when" question of the rules.

    A day is a working day when it is listed in ``workdays``; otherwise when it is not in
    ``holidays``, not a public holiday of ``country`` and either not a weekend day or a
    working day the country transferred onto a weekend. Without ``working_hours`` the whole
    day (00:00-24:00) is working time.
    """

    tz: zoneinfo.ZoneInfo

    def __init__(
        self,
        timezone: str = "UTC",
        *,
        country: str | None = None,
        subdivision: str | None = None,
        weekend: Iterable[int] = (5, 6),
        holidays: Iterable[date] = (),
        workdays: Iterable[date] = (),
        working_hours: WorkingHours | None = None,
        short_pre_holidays: bool | None = None,
    ) -> None:
        self.tz = _load_zone(timezone)
        self.weekend: frozenset[int] = _check_weekend(weekend)
        self.extra_holidays: frozenset[date] = _check_dates("holidays", holidays)
        self.extra_workdays: frozenset[date] = _check_dates("workdays", workdays)
        both = sorted(self.extra_holidays & self.extra_workdays)
        if both:
            listed = ", ".join(day.isoformat() for day in both)
            raise ValueError(
                f"{listed} listed both in holidays and in workdays; keep each date in one list"
            )
        self.working_hours = working_hours
        hours = working_hours or _ALL_DAY
        self._opens = hours.start
        self._closes = hours.end
        self.country, self.subdivision = _check_country(country, subdivision)
        #: a working day right before a public holiday closes an hour early (on by default
        #: for Russia, Labour Code art. 95); only with working hours that end before midnight
        self.short_pre_holidays = (
            (self.country in _SHORT_PRE_HOLIDAY_COUNTRIES)
            if short_pre_holidays is None
            else short_pre_holidays
        )
        # year -> (days off, transferred working days, public holidays proper) of the country
        self._country_years: dict[int, _CountryYear] = {}

    def __repr__(self) -> str:
        return (
            f"BusinessCalendar({self.tz.key!r}, country={self.country!r}, "
            f"weekend={sorted(self.weekend)!r}, working_hours={self.working_hours!s})"
        )

    def with_hours(self, hours: WorkingHours) -> BusinessCalendar:
        """The same zone, working days and holidays with other daily hours (a manager's own).

        The copy shares the cache of the country's years, which never changes.
        """
        other = copy.copy(self)
        other.working_hours = hours
        other._opens, other._closes = hours.start, hours.end
        return other

    # --- moments -------------------------------------------------------------------------

    def local(self, moment: datetime) -> datetime:
        """The moment in the calendar's zone; refuses naive datetimes instead of guessing."""
        if not isinstance(moment, datetime):
            raise ValueError(f"expected a datetime, got {moment!r}")
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(
                f"datetime {moment.isoformat()} has no time zone; pass an aware datetime "
                "(e.g. with tzinfo=ZoneInfo('UTC'))"
            )
        try:
            return moment.astimezone(self.tz)
        except OverflowError:  # 9999-12-31 23:00 UTC is already year 10000 east of Greenwich
            raise ValueError(f"{moment.isoformat()} is out of range in {self.tz.key}") from None

    def start_of_day(self, day: date) -> datetime:
        """Local midnight of ``day`` (01:00 where midnight falls into a DST gap)."""
        return self.combine(day, time(0))

    def combine(self, day: date, at: time) -> datetime:
        """``day`` at wall-clock ``at`` in the calendar's zone.

        A non-existent time moves forward by the DST gap; an ambiguous one takes its first
        occurrence (fold=0). Deterministic, so the same rule always gives the same deadline.
        """
        _check_date(day)
        if at.tzinfo is not None:
            raise ValueError(f"combine takes a wall-clock time without a time zone, got {at}")
        wall = datetime.combine(day, at.replace(fold=0), tzinfo=self.tz)
        # zoneinfo reads a gap time with fold=0 at the offset from before the gap, so the
        # round trip through UTC lands the same distance past the gap.
        try:
            return wall.astimezone(UTC).astimezone(self.tz)
        except OverflowError:  # 0001-01-01 00:00 east of Greenwich is still year 0 in UTC
            raise ValueError(f"{wall.isoformat()} is out of range in {self.tz.key}") from None

    # --- days ----------------------------------------------------------------------------

    def is_holiday(self, day: date) -> bool:
        """A public holiday of the country or an extra holiday, unless listed in workdays."""
        _check_date(day)
        if day in self.extra_holidays:
            return True
        return day not in self.extra_workdays and day in self._country_year(day.year)[0]

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` counts for business days (see the class docstring)."""
        _check_date(day)
        return self._is_working_day(day)

    def is_working_time(self, moment: datetime) -> bool:
        """A working day, between opening (inclusive) and closing (exclusive)."""
        local = self.local(moment)
        return self._is_working_day(local.date()) and self._within_hours(local.date(), local.time())

    def next_opening(self, moment: datetime) -> datetime:
        """The moment itself if it is working time, otherwise the next time the office opens."""
        local = self.local(moment)
        day, now = local.date(), local.time()
        if self._is_working_day(day):
            if self._within_hours(day, now):
                return local
            if now < self._opens:
                opening = self.combine(day, self._opens)
                # An opening inside a DST fold resolves to its first occurrence, which may
                # already be past for a moment in the second one: never go back in time.
                return local if opening.timestamp() < local.timestamp() else opening
        return self.combine(self._next_working_day(day, 1), self._opens)

    # --- arithmetic ----------------------------------------------------------------------

    def add(self, moment: datetime, duration: Duration) -> datetime:
        """``moment + duration``: months, then days, then business days, then seconds.

        A zero duration returns the moment unchanged (in the calendar's zone).
        """
        result = self.local(moment)
        try:
            if duration.months or duration.days:
                day = _add_months(result.date(), duration.months) + timedelta(duration.days)
                result = self.combine(day, result.time())
            if duration.business_days:
                result = self.add_business_days(result, duration.business_days)
            if duration.seconds:
                elapsed = timedelta(seconds=duration.seconds)
                result = (result.astimezone(UTC) + elapsed).astimezone(self.tz)
        except OverflowError:
            raise ValueError(f"{moment.isoformat()} + {duration} is out of range") from None
        return result

    def subtract(self, moment: datetime, duration: Duration) -> datetime:
        """``moment - duration``, the mirror of :meth:`add`: the parts apply in reverse order
        (seconds, then business days, then days, then months)."""
        result = self.local(moment)
        try:
            if duration.seconds:
                elapsed = timedelta(seconds=duration.seconds)
                result = (result.astimezone(UTC) - elapsed).astimezone(self.tz)
            if duration.business_days:
                result = self.subtract_business_days(result, duration.business_days)
            if duration.months or duration.days:
                day = _add_months(result.date() - timedelta(duration.days), -duration.months)
                result = self.combine(day, result.time())
        except OverflowError:
            raise ValueError(f"{moment.isoformat()} - {duration} is out of range") from None
        return result

    def add_business_days(self, moment: datetime, n: int) -> datetime:
        """The same wall-clock time ``n`` working days later.

        A moment outside working hours counts from the next opening, so Friday 20:00 + 2
        is Wednesday 09:00 with 09:00-18:00 hours; 0 business days is that start itself.
        """
        _check_count(n)
        start = self.next_opening(moment)
        if n == 0:
            return start
        day = start.date()
        for _ in range(n):
            day = self._next_working_day(day, 1)
        return self._by_closing(day, start.time())

    def subtract_business_days(self, moment: datetime, n: int) -> datetime:
        """The mirror of :meth:`add_business_days`: the same wall-clock time ``n`` working
        days earlier.

        A moment outside working hours counts from the previous closing (today's closing
        after hours, else the previous working day's), so Monday 08:00 - 1 is Thursday
        18:00 with 09:00-18:00 hours; 0 business days is that previous closing. Without
        working hours the closing is 24:00, i.e. midnight after the working day.
        """
        _check_count(n)
        local = self.local(moment)
        day, now = local.date(), local.time()
        working_day = self._is_working_day(day)
        # The close of a shortened day is where adding business days lands when the
        # wall-clock time is past it, so it counts as that day's working time here.
        at_short_close = self._closes_at(day) != self._closes and now == self._closes_at(day)
        if working_day and (self._within_hours(day, now) or at_short_close):
            if n == 0:
                return local
            for _ in range(n):
                day = self._next_working_day(day, -1)
            return self._by_closing(day, now)
        if not (working_day and now >= self._opens):  # not after today's closing
            day = self._next_working_day(day, -1)
        for _ in range(n):
            day = self._next_working_day(day, -1)
        closing = self._closing(day)
        # (the mirror of next_opening's DST-fold guard: never go forward in time)
        return local if closing.timestamp() > local.timestamp() else closing

    # --- internals -----------------------------------------------------------------------

    def _within_hours(self, day: date, now: time) -> bool:
        closes = self._closes_at(day)
        return self._opens <= now and (closes == _END_OF_DAY or now < closes)

    def _closes_at(self, day: date) -> time:
        """The day's closing time: an hour early right before a public holiday, if asked."""
        closes = self._closes
        if (
            self.short_pre_holidays
            and closes != _END_OF_DAY
            and self.is_pre_holiday(day)
            and closes.hour > self._opens.hour
        ):
            return closes.replace(hour=closes.hour - 1)
        return closes

    def is_pre_holiday(self, day: date) -> bool:
        """A working day right before a public holiday (not before a weekend or a day off
        moved there, which shorten nothing)."""
        following = _shift(day, 1)
        return self._is_working_day(day) and following in self._country_year(following.year)[2]

    def _closing(self, day: date) -> datetime:
        closes = self._closes_at(day)
        if closes == _END_OF_DAY:
            return self.start_of_day(_shift(day, 1))
        return self.combine(day, closes)

    def _by_closing(self, day: date, at: time) -> datetime:
        """``day`` at ``at``, but no later than the day's closing (a shortened day's)."""
        moment = self.combine(day, at)
        closes = self._closes_at(day)
        if closes != _END_OF_DAY and at > closes:
            return self.combine(day, closes)
        return moment

    def _is_working_day(self, day: date) -> bool:
        if day in self.extra_workdays:
            return True
        if day in self.extra_holidays:
            return False
        days_off, transferred, _ = self._country_year(day.year)
        if day in days_off:
            return False
        return day.weekday() not in self.weekend or day in transferred

    def _next_working_day(self, day: date, step: int) -> date:
        """The nearest working day after (step 1) or before (step -1); bounded to 10 years."""
        current = day
        for _ in range(_SEARCH_LIMIT_DAYS):
            current = _shift(current, step)
            if self._is_working_day(current):
                return current
        direction = "after" if step > 0 else "before"
        raise ValueError(
            f"no working day within 10 years {direction} {day.isoformat()}; "
            "check the calendar's weekend, holidays and country"
        )

    def _country_year(self, year: int) -> _CountryYear:
        """The country's days off, transferred working days and holidays proper in ``year``,
        cached per year.

        The package lists a transfer with the year it belongs to even when it is published
        with the next year's data (Armenia 2003 -> 2002-12-29), so one year is enough; the
        year filter drops dates some countries carry over from other years. Holidays proper
        leave out the days off moved from elsewhere ("Day off (substituted from ...)") and
        observed days: only a holiday itself shortens the day before it.
        """
        cached = self._country_years.get(year)
        if cached is None:
            if self.country is None or not date.min.year <= year <= date.max.year:
                cached = (frozenset(), frozenset(), frozenset())
            else:
                entity = pyholidays.country_holidays(
                    self.country, subdiv=self.subdivision, years=year, expand=False
                )
                days_off = frozenset(day for day in entity if day.year == year)
                transferred = frozenset(
                    day
                    for day in entity.weekend_workdays
                    if day.year == year and day not in days_off
                )
                proper = pyholidays.country_holidays(
                    self.country, subdiv=self.subdivision, years=year, expand=False, observed=False
                )
                moved = str(getattr(proper, "substituted_label", "")).split("%", 1)[0]
                holidays_proper = frozenset(
                    day
                    for day, name in proper.items()
                    if day.year == year
                    and not (moved and all(n.startswith(moved) for n in name.split("; ")))
                )
                cached = (days_off, transferred, holidays_proper)
            self._country_years[year] = cached
        return cached


_CountryYear = tuple[frozenset[date], frozenset[date], frozenset[date]]
#: Countries whose working day before a public holiday is an hour shorter by law.
_SHORT_PRE_HOLIDAY_COUNTRIES = frozenset({"RU"})


def _shift(day: date, days: int) -> date:
    try:
        return day + timedelta(days)
    except OverflowError:
        raise ValueError(f"{day.isoformat()} + {days} days is out of the date range") from None


def _days_in_month(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (date(year, month + 1, 1) - date(year, month, 1)).days


def _add_months(day: date, months: int) -> date:
    """Calendar months, clamped to the end of the month (Jan 31 + 1 month = Feb 28/29)."""
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    if not date.min.year <= year <= date.max.year:
        raise OverflowError("year out of range")
    return date(year, month0 + 1, min(day.day, _days_in_month(year, month0 + 1)))


def _check_date(day: date) -> None:
    if isinstance(day, datetime) or not isinstance(day, date):
        raise ValueError(f"expected a date, got {day!r}; for a moment use calendar.local(m).date()")


def _check_count(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"business days must be a whole number 0 or more, got {n!r}")
    if n > MAX_DAYS:
        raise ValueError(f"{n} business days is longer than about 100 years")


def _check_weekend(weekend: Iterable[int]) -> frozenset[int]:
    days = frozenset(weekend)
    for day in days:
        if not isinstance(day, int) or isinstance(day, bool) or not 0 <= day <= 6:
            raise ValueError(f"weekend day {day!r} is not a weekday number 0 (Monday)..6 (Sunday)")
    if len(days) == 7:
        raise ValueError("a weekend of all seven days leaves no working day")
    return days


def _check_dates(what: str, days: Iterable[date]) -> frozenset[date]:
    checked = frozenset(days)
    for day in checked:
        if isinstance(day, datetime) or not isinstance(day, date):
            raise ValueError(f"{what}: {day!r} is not a date; write e.g. 2026-12-31")
    return checked


def _load_zone(name: str) -> zoneinfo.ZoneInfo:
    """ZoneInfo, or a ValueError that suggests the closest IANA name."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    zones = sorted(zoneinfo.available_timezones())
    by_lower = {zone.lower(): zone for zone in zones}
    guess = by_lower.get(str(name).lower())
    if guess is None:
        close = difflib.get_close_matches(str(name), zones, n=1, cutoff=0.6)
        guess = close[0] if close else None
    hint = f"; did you mean '{guess}'?" if guess else "; use an IANA name like 'Europe/Moscow'"
    raise ValueError(f"unknown time zone {name!r}{hint}")


def _check_country(country: str | None, subdivision: str | None) -> tuple[str | None, str | None]:
    """Normalise the codes against what the ``holidays`` package supports."""
    if country is None:
        if subdivision is not None:
            raise ValueError(f"subdivision {subdivision!r} needs a country")
        return None, None
    supported: Mapping[str, list[str]] = pyholidays.list_supported_countries()
    code = str(country).strip().upper()
    if code not in supported:
        raise ValueError(_unknown_country(str(country), supported))
    if subdivision is None:
        return code, None
    subdivisions = supported[code]
    by_upper = {sub.upper(): sub for sub in subdivisions}
    found = by_upper.get(str(subdivision).strip().upper())
    if found is not None:
        return code, found
    if not subdivisions:
        raise ValueError(f"the holidays package has no subdivisions for country {code}")
    close = difflib.get_close_matches(str(subdivision), subdivisions, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ValueError(
        f"unknown subdivision {subdivision!r} of {code}; {hint}supported: {', '.join(subdivisions)}"
    )


def _unknown_country(country: str, supported: Mapping[str, list[str]]) -> str:
    names = _country_names()
    wanted = " ".join(country.strip().lower().replace("_", " ").split())
    guess = names.get(wanted)
    if guess is None:
        close = difflib.get_close_matches(wanted, list(names), n=1, cutoff=0.75)
        guess = names[close[0]] if close else None
    hint = f"did you mean '{guess}'? " if guess else ""
    codes = ", ".join(sorted(code for code in supported if len(code) == 2))
    return (
        f"unknown country code {country!r}; {hint}"
        f"the holidays package supports these ISO 3166-1 alpha-2 codes: {codes}"
    )


def _country_names() -> dict[str, str]:
    """Lower-case English country name -> code, to suggest 'RU' when an admin writes 'Russia'."""
    try:
        from holidays.registry import COUNTRIES
    except ImportError:  # an internal module of the package; suggestions are a nicety
        return {}
    return {key.replace("_", " "): values[1] for key, values in COUNTRIES.items()}


__all__ = ["MAX_DAYS", "WEEKDAY_NAMES", "BusinessCalendar", "Duration", "WorkingHours"]
