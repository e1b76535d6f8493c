"""Managers as people: when they are away, who stands in, and whose hours a due time counts.

An absence (``Manager.absent``) is a span of days or moments with a deputy.
While a manager is away, assignment (crmrules.rules.assignment) skips them,
and a task that falls due in the absence goes to the deputy, with a note
saying why (``stand_in``); a deputy who is away too passes it on to their
own deputy, and so on. Nobody to pass to: the task stays with the manager
and the note says so.

Whose hours count (docs/access-and-people.md has the table): a task's due
time, when it counts business days (``due: 2 business days``), follows the
working hours of the manager it is assigned to, on the company's working
days and in its time zone, as a task deadline in Bitrix24 follows the
responsible's schedule. Everything that is the company's promise rather than
one person's day (stage deadlines, time triggers, cooldowns, contact plans,
schedules, ``older_than`` in conditions) counts by the company calendar.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime

from pydantic import ValidationError

from crmrules.calendar import BusinessCalendar, WorkingHours
from crmrules.model import Absence, Manager
from crmrules.rules.schema import AbsenceSpec
from crmrules.rules.source import PathKey

#: How many deputies a task is passed along at most (a loop stops earlier).
DEPUTY_CHAIN = 5

FindManager = Callable[[str], Manager | None]


def _start(value: datetime | date, calendar: BusinessCalendar) -> datetime:
    return value if isinstance(value, datetime) else calendar.start_of_day(value)


def _end(value: datetime | date, calendar: BusinessCalendar) -> datetime:
    if isinstance(value, datetime):
        return value
    return calendar.start_of_day(date.fromordinal(value.toordinal() + 1))


def covers(absence: Absence, moment: datetime, calendar: BusinessCalendar) -> bool:
    """Whether ``moment`` is inside the absence (days whole, in the calendar's zone)."""
    return _start(absence.start, calendar) <= moment < _end(absence.end, calendar)


def away(manager: Manager, moment: datetime, calendar: BusinessCalendar) -> Absence | None:
    """The absence ``manager`` is in at ``moment``, if any (the first listed)."""
    return next((a for a in manager.absent if covers(a, moment, calendar)), None)


def describe(absence: Absence) -> str:
    reason = f" ({absence.reason})" if absence.reason else ""
    return f"away {absence.start.isoformat()} to {absence.end.isoformat()}{reason}"


def stand_in(
    find: FindManager, manager: Manager, moment: datetime, calendar: BusinessCalendar
) -> tuple[Manager, str]:
    """Who does ``manager``'s work at ``moment``, and a note when it is not them.

    Follows deputies while each is away; an unknown, inactive or looping
    deputy ends the chain with the last manager who could take it.
    """
    current, notes, seen = manager, [], {manager.id}
    for _ in range(DEPUTY_CHAIN):
        absence = away(current, moment, calendar)
        if absence is None:
            break
        if absence.deputy is None:
            notes.append(f"{current.id} is {describe(absence)} and has no deputy")
            break
        deputy = find(absence.deputy)
        if deputy is None or not deputy.active or deputy.id in seen:
            state = "unknown" if deputy is None else "inactive" if not deputy.active else "looping"
            notes.append(f"{current.id} is {describe(absence)}; deputy {absence.deputy} is {state}")
            break
        notes.append(f"{current.id} is {describe(absence)}: deputy {deputy.id}")
        seen.add(deputy.id)
        current = deputy
    return current, "; ".join(notes)


def compile_absences(
    specs: Sequence[AbsenceSpec], at: PathKey, error: Callable[[PathKey, str, str | None], None]
) -> tuple[Absence, ...]:
    """A regulation manager's ``absent:`` list at ``at``; ``error`` reports the bad entries."""
    found: list[Absence] = []
    for index, spec in enumerate(specs):
        try:
            found.append(
                Absence(start=spec.from_, end=spec.to, deputy=spec.deputy, reason=spec.reason)
            )
        except ValidationError as problem:
            message = problem.errors()[0]["msg"].removeprefix("Value error, ")
            error((*at, index, "to"), message, None)
    return tuple(found)


def hours_of(manager: Manager | None, calendar: BusinessCalendar) -> BusinessCalendar:
    """The company calendar with ``manager``'s own working hours, if they have any."""
    if manager is None or manager.working_hours is None:
        return calendar
    return calendar.with_hours(WorkingHours.parse(manager.working_hours))


__all__ = [
    "DEPUTY_CHAIN",
    "away",
    "compile_absences",
    "covers",
    "describe",
    "hours_of",
    "stand_in",
]
