"""Cron against a brute-force reference: every UTC minute, read as local time by Vixie's rules.

The reference is written here, independently of crmrules.timers: it walks
the real timeline minute by minute, converts each minute to the zone's wall
clock and matches the five fields. Vixie cron's rules for DST changes: a
job with '*' at the start of its minute or hour field is a wildcard job and
runs at every matching wall-clock minute, both passes of a repeated hour
included; any other job runs at its wall-clock time once (the first pass),
and when the clocks jump forward over its time, it runs at the jump. Days:
when either day field starts with '*', a day must match both; otherwise
either. ``N/step`` means ``N-max/step`` (as croniter reads it; Vixie refuses it).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from crmrules.calendar import BusinessCalendar
from crmrules.rules.triggers import parse_cron
from crmrules.timers import next_cron
from scaled import examples

ZONES = ("Europe/Berlin", "America/New_York", "Europe/Moscow")
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
FIELDS = ((0, 59, []), (0, 23, []), (1, 31, []), (1, 12, MONTHS), (0, 7, DAYS))
#: How far the reference walks from each start: four days of minutes.
WINDOW = timedelta(days=4)
FIRINGS = 20


def dst_days(zone: str) -> list[date]:
    """The days of 2026 on which the zone's UTC offset changes."""
    tz = ZoneInfo(zone)
    found = []
    day = date(2026, 1, 1)
    while day.year == 2026:
        start = datetime(day.year, day.month, day.day, tzinfo=tz).utcoffset()
        following = day + timedelta(days=1)
        end = datetime(following.year, following.month, following.day, tzinfo=tz).utcoffset()
        if start != end:
            found.append(day)
        day = following
    return found


# --- the reference --------------------------------------------------------------------------


def ref_field(text: str, low: int, high: int, names: list[str]) -> set[int]:
    def number(token: str) -> int:
        lowered = token.lower()
        if lowered in names:
            return names.index(lowered) + (1 if names is MONTHS else 0)
        return int(token)

    values: set[int] = set()
    for part in text.split(","):
        body, _, step = part.partition("/")
        if body == "*":
            first, last = low, high
        elif "-" in body:
            a, b = body.split("-")
            first, last = number(a), number(b)
        else:
            first = number(body)
            last = high if step else first
        values.update(range(first, last + 1, int(step) if step else 1))
    return values


def ref_firings(expression: str, start: datetime, zone: str) -> list[datetime]:
    parts = expression.split()
    sets = [ref_field(p, lo, hi, names) for p, (lo, hi, names) in zip(parts, FIELDS, strict=True)]
    minutes, hours, doms, months, dows = sets
    dows = {d % 7 for d in dows}  # 7 is Sunday too
    wildcard = parts[0].startswith("*") or parts[1].startswith("*")
    either = not (parts[2].startswith("*") or parts[4].startswith("*"))
    tz = ZoneInfo(zone)

    def day_ok(day: date) -> bool:
        by_dom, by_dow = day.day in doms, (day.isoweekday() % 7) in dows
        return day.month in months and ((by_dom or by_dow) if either else (by_dom and by_dow))

    def wall_ok(wall: datetime) -> bool:
        return wall.minute in minutes and wall.hour in hours and day_ok(wall.date())

    found: list[datetime] = []
    moment = (start.astimezone(UTC) + timedelta(minutes=1)).replace(second=0, microsecond=0)
    end = start + WINDOW
    previous = (moment - timedelta(minutes=1)).astimezone(tz)
    while moment < end and len(found) < FIRINGS:
        wall = moment.astimezone(tz)
        jumped = wall.utcoffset() != previous.utcoffset() and (
            wall.replace(tzinfo=None) - previous.replace(tzinfo=None) > timedelta(minutes=1)
        )
        fires = False
        if wildcard:
            fires = wall_ok(wall)
        else:
            fires = wall_ok(wall) and wall.fold == 0
            if jumped:  # the wall-clock minutes the clocks skipped, run now
                skipped = previous.replace(tzinfo=None) + timedelta(minutes=1)
                while skipped < wall.replace(tzinfo=None):
                    fires = fires or wall_ok(skipped)
                    skipped += timedelta(minutes=1)
        if fires:
            found.append(moment)
        previous = wall
        moment += timedelta(minutes=1)
    return found


# --- random cron expressions ----------------------------------------------------------------


@st.composite
def cron_field(draw: st.DrawFn, index: int) -> str:
    low, high, names = FIELDS[index]
    top = 6 if index == 4 else high

    def value() -> str:
        number = draw(st.integers(low, high))
        if names and draw(st.booleans()):
            return names[(number - 1 if names is MONTHS else number) % len(names)]
        return str(number)

    def item() -> str:
        kind = draw(st.sampled_from(["*", "*/", "n", "n-n", "a-b", "a-b/", "n/"]))
        step = str(draw(st.integers(1, max(1, (high - low) // 2 + 1))))
        if kind == "*":
            return "*"
        if kind == "*/":
            return f"*/{step}"
        if kind == "n":
            return value()
        a = draw(st.integers(low, top))
        b = draw(st.integers(a, top))
        if kind == "n-n":
            return f"{a}-{a}"
        if kind == "a-b":
            return f"{a}-{b}"
        if kind == "a-b/":
            return f"{a}-{b}/{step}"
        return f"{a}/{step}"

    return ",".join(item() for _ in range(draw(st.integers(1, 3))))


@st.composite
def expressions(draw: st.DrawFn) -> str:
    # Minutes and hours dense enough that a four-day window sees firings, often.
    fields = [draw(cron_field(i)) for i in range(5)]
    return " ".join(fields)


@st.composite
def starts(draw: st.DrawFn) -> tuple[str, datetime]:
    zone = draw(st.sampled_from(ZONES))
    days = dst_days(zone) or [date(2026, 3, 29)]
    if draw(st.booleans()):
        day = draw(st.sampled_from(days)) - timedelta(days=draw(st.integers(0, 2)))
    else:
        day = date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 364)))
    minute = draw(st.integers(0, 24 * 60 - 1))
    local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)) + timedelta(
        minutes=minute, seconds=draw(st.sampled_from([0, 0, 30]))
    )
    return zone, local.astimezone(UTC)


def crmrules_firings(expression: str, start: datetime, zone: str) -> list[datetime]:
    cron = parse_cron(expression)
    calendar = BusinessCalendar(zone)
    found: list[datetime] = []
    moment = start
    while len(found) < FIRINGS:
        moment = next_cron(cron, moment, calendar)
        if moment >= start + WINDOW:
            break
        found.append(moment)
    return found


@settings(max_examples=examples(150), deadline=None)
@given(expression=expressions(), where=starts())
def test_cron_agrees_with_the_brute_force_reference(
    expression: str, where: tuple[str, datetime]
) -> None:
    zone, start = where
    try:
        parse_cron(expression)
    except ValueError as error:
        assume("never" not in str(error))
        raise
    assert crmrules_firings(expression, start, zone) == ref_firings(expression, start, zone)


def test_the_reference_sees_the_dst_days() -> None:
    assert dst_days("Europe/Berlin") == [date(2026, 3, 29), date(2026, 10, 25)]
    assert dst_days("America/New_York") == [date(2026, 3, 8), date(2026, 11, 1)]
    assert dst_days("Europe/Moscow") == []
