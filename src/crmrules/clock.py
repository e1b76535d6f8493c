"""Where crmrules gets the time: nothing else calls ``datetime.now()``.

Tests and regulation scenarios use :class:`SimulatedClock`, so a year of
timers runs in a moment and every run gives the same answer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything with ``now()``; the engine and timers take one so tests can control time."""

    def now(self) -> datetime:
        """The current moment, tz-aware."""
        ...


class SystemClock:
    """The real time, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """A clock that moves only when told to, and never backwards.

    It keeps the time in UTC, as :class:`SystemClock` gives it: moving an
    hour through the repeated autumn hour is sixty minutes, not a wall-clock
    step that Python would take within one zone.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulated clock needs a moment with a time zone offset")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("the simulated clock needs a moment with a time zone offset")
        if moment < self._now:
            raise ValueError(
                f"the clock cannot go back from {self._now.isoformat()} to {moment.isoformat()}"
            )
        self._now = moment.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)


__all__ = ["Clock", "SimulatedClock", "SystemClock"]
