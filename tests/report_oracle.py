"""The reports computed in plain Python over the records, to check the SQL against.

Written from the definitions in docs/reports.md, sharing no code with
crmrules.reports but the row types: local days come from zoneinfo, periods
from the calendar, percentiles from sorting.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from crmrules.campaigns import Campaign, Request, RequestStatus, StageMove
from crmrules.model import Interaction, Manager, Task, TaskStatus
from crmrules.reports import (
    ActivityRow,
    ComplianceRow,
    ConversionRow,
    DemandRow,
    FunnelRow,
    LoadRow,
)

CENT = Decimal("0.01")


@dataclass
class World:
    """Everything a store holds that the reports read."""

    campaigns: list[Campaign] = field(default_factory=list)
    clients: list[str] = field(default_factory=list)
    managers: list[Manager] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    moves: list[StageMove] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    interactions: list[Interaction] = field(default_factory=list)


@dataclass(frozen=True)
class Window:
    start: date
    end: date
    by: str
    zone: ZoneInfo

    def first_day(self, day: date) -> date:
        if self.by == "week":
            return day - timedelta(days=day.isoweekday() - 1)
        if self.by == "month":
            return date(day.year, day.month, 1)
        return day

    def last_day(self, first: date) -> date:
        if self.by == "day":
            return first
        if self.by == "week":
            return first + timedelta(days=6)
        year, month = (first.year + 1, 1) if first.month == 12 else (first.year, first.month + 1)
        return date(year, month, 1) - timedelta(days=1)

    def periods(self) -> list[date]:
        days = [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]
        return sorted({self.first_day(d) for d in days})

    def period(self, moment: datetime | None) -> date | None:
        """The period of a moment, or None outside the window."""
        if moment is None:
            return None
        day = moment.astimezone(self.zone).date()
        if not self.start <= day <= self.end:
            return None
        return self.first_day(day)

    @property
    def end_instant(self) -> datetime:
        """The first instant after the window."""
        following = self.end + timedelta(days=1)
        for minutes in range(0, 24 * 60, 15):
            naive = datetime(following.year, following.month, following.day) + timedelta(
                minutes=minutes
            )
            local = naive.replace(tzinfo=self.zone)
            if local.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) == naive:
                return local.astimezone(UTC)
        raise AssertionError("no midnight")


def whole_seconds(moment: datetime) -> int:
    """Seconds since 1970 with the fraction dropped (integer arithmetic, no float rounding)."""
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1)


def nearest(values: list[int], percent: int) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = -(-percent * len(ordered) // 100)  # ceil
    return ordered[rank - 1]


def _kept(client: str | None, only: set[str] | None) -> bool:
    return only is None or (client is not None and client in only)


def won_now(world: World) -> set[str]:
    last: dict[str, StageMove] = {}
    for move in world.moves:
        if move.deal not in last or move.seq > last[move.deal].seq:
            last[move.deal] = move
    return {deal for deal, move in last.items() if move.won}


def conversion(world: World, w: Window, only: set[str] | None = None) -> list[ConversionRow]:
    won = won_now(world)
    campaigns = {c.id: c for c in world.campaigns}
    groups: dict[tuple[date, str, str], list[Request]] = defaultdict(list)
    for r in world.requests:
        period = w.period(r.created_at)
        if period is None or not _kept(r.client, only):
            continue
        channel = campaigns[r.campaign].channel if r.campaign else r.channel
        assert channel is not None
        groups[period, r.campaign or "", channel].append(r)
    keys = {(c.id, c.channel) for c in world.campaigns if c.start <= w.end and c.end >= w.start}
    keys |= {(k[1], k[2]) for k in groups}
    rows = []
    for period in w.periods():
        for campaign_id, channel in sorted(keys):
            found = groups.get((period, campaign_id, channel), [])
            people = {r.client or f"request:{r.id}" for r in found}
            converted = sum(1 for r in found if r.status is RequestStatus.CONVERTED)
            deals = {r.deal for r in found if r.deal in won}
            clients = {r.client for r in found if r.deal in won}
            campaign = campaigns.get(campaign_id)
            budget = None
            if campaign is not None:
                first = max(period, w.start, campaign.start)
                last = min(w.last_day(period), w.end, campaign.end)
                days = max(0, (last - first).days + 1)
                total = (campaign.end - campaign.start).days + 1
                budget = (campaign.budget * days / total).quantize(CENT, ROUND_HALF_EVEN)

            def cost(n: int, budget: Decimal | None = budget) -> Decimal | None:
                return None if budget is None or not n else (budget / n).quantize(CENT)

            n = len(found)
            rows.append(
                ConversionRow(
                    period=period,
                    campaign=campaign_id,
                    channel=channel,
                    requests=n,
                    contacts=len(people),
                    converted=converted,
                    deals_won=len(deals),
                    clients_won=len(clients),
                    conversion=converted / n if n else None,
                    win_rate=len(deals) / n if n else None,
                    budget=budget,
                    currency=campaign.currency if campaign else "",
                    cost_per_request=cost(n),
                    cost_per_contact=cost(len(people)),
                    cost_per_won_deal=cost(len(deals)),
                )
            )
    return rows


def demand(
    world: World, w: Window, catalogue: list[str], only: set[str] | None = None
) -> list[DemandRow]:
    per: dict[tuple[date, str], list[Request]] = defaultdict(list)
    totals: dict[date, int] = defaultdict(int)
    for r in world.requests:
        period = w.period(r.created_at)
        if period is None or not _kept(r.client, only):
            continue
        if r.items:
            totals[period] += 1
        for item in set(r.items):
            per[period, item].append(r)
    items = list(dict.fromkeys([*catalogue, *sorted({item for _, item in per})]))
    rows = []
    for period in w.periods():
        for item in items:
            found = per.get((period, item), [])
            total = totals.get(period, 0)
            rows.append(
                DemandRow(
                    period,
                    item,
                    len(found),
                    len({r.client or f"request:{r.id}" for r in found}),
                    sum(1 for r in found if r.status is RequestStatus.CONVERTED),
                    len(found) / total if total else None,
                )
            )
    return rows


def funnel(
    world: World, w: Window, only: set[str] | None = None
) -> tuple[list[FunnelRow], dict[str, str | None]]:
    by_deal: dict[str, list[StageMove]] = defaultdict(list)
    for move in world.moves:
        if _kept(move.client, only):
            by_deal[move.deal].append(move)
    stays: dict[tuple[str, str], list[tuple[StageMove, int | None]]] = defaultdict(list)
    for moves in by_deal.values():
        moves.sort(key=lambda m: m.seq)
        for index, move in enumerate(moves):
            if w.period(move.entered_at) is None:
                continue
            following = moves[index + 1] if index + 1 < len(moves) else None
            duration = (
                None
                if following is None
                else whole_seconds(following.entered_at) - whole_seconds(move.entered_at)
            )
            stays[move.pipeline, move.stage].append((move, duration))
    rows = []
    ordered = sorted(stays, key=lambda k: (k[0], min(m.position for m, _ in stays[k]), k[1]))
    first: dict[str, int] = {}
    for pipeline, stage in ordered:
        found = stays[pipeline, stage]
        deals = len({m.deal for m, _ in found})
        first.setdefault(pipeline, deals)
        done = [d for _, d in found if d is not None]
        rows.append(
            FunnelRow(
                pipeline=pipeline,
                stage=stage,
                position=min(m.position for m, _ in found),
                final=any(m.final for m, _ in found),
                deals=deals,
                of_first=deals / first[pipeline],
                stays=len(found),
                left=len(done),
                still_there=len(found) - len(done),
                median_seconds=nearest(done, 50),
                p90_seconds=nearest(done, 90),
            )
        )
    stall: dict[str, str | None] = {}
    for pipeline in {r.pipeline for r in rows}:
        candidates = [
            r
            for r in rows
            if r.pipeline == pipeline and not r.final and r.median_seconds is not None
        ]
        best = max(candidates, key=lambda r: (r.median_seconds, -r.position), default=None)
        stall[pipeline] = None if best is None else best.stage
    return rows, stall


def manager_load(
    world: World, w: Window, only: set[str] | None = None
) -> tuple[list[ActivityRow], list[LoadRow]]:
    counts: dict[tuple[date, str, str, str], int] = defaultdict(int)
    for t in world.tasks:
        if t.kind not in ("call", "meeting") or t.status is TaskStatus.CANCELLED:
            continue
        period = w.period(t.due or t.created_at)
        if period is not None and _kept(t.client, only):
            counts[period, t.assignee or "", t.kind, "planned"] += 1
    for i in world.interactions:
        period = w.period(i.occurred_at)
        if i.kind in ("call", "meeting") and period is not None and _kept(i.client, only):
            counts[period, i.manager or "", i.kind, "held"] += 1
    end = w.end_instant
    opened: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for t in world.tasks:
        if not _kept(t.client, only):
            continue
        created = t.created_at is None or t.created_at < end
        still = t.status is TaskStatus.OPEN or (t.closed_at is not None and t.closed_at >= end)
        if created and still:
            opened[t.assignee or ""][0] += 1
            if t.due is not None and t.due < end:
                opened[t.assignee or ""][1] += 1
    managers = {m.id: m for m in world.managers}
    people = sorted(set(managers) | {k[1] for k in counts} | set(opened))
    activity = [
        ActivityRow(
            p,
            person,
            counts[p, person, "call", "planned"],
            counts[p, person, "call", "held"],
            counts[p, person, "meeting", "planned"],
            counts[p, person, "meeting", "held"],
        )
        for p in w.periods()
        for person in people
    ]
    load = []
    for person in people:
        capacity = managers[person].capacity if person in managers else None
        n, late = opened.get(person, [0, 0])
        load.append(LoadRow(person, capacity, n, late, n / capacity if capacity else None))
    return activity, load


def compliance(world: World, w: Window, only: set[str] | None = None) -> list[ComplianceRow]:
    end = w.end_instant
    per: dict[str, list[str]] = defaultdict(list)
    delays: dict[str, list[int]] = defaultdict(list)
    for t in world.tasks:
        if t.rule is None or w.period(t.created_at) is None or not _kept(t.client, only):
            continue
        done = t.status is TaskStatus.DONE and t.closed_at is not None and t.closed_at < end
        if done and t.due is not None and t.closed_at is not None and t.closed_at > t.due:
            per[t.rule].append("late")
            delays[t.rule].append(whole_seconds(t.closed_at) - whole_seconds(t.due))
        elif done:
            per[t.rule].append("on_time")
        elif (t.status is TaskStatus.CANCELLED and (t.closed_at is None or t.closed_at < end)) or (
            t.due is not None and t.due < end
        ):
            per[t.rule].append("not_done")
        else:
            per[t.rule].append("pending")
    rows = []
    for rule in sorted(per):
        outcomes = per[rule]
        on_time, late, not_done = (outcomes.count(k) for k in ("on_time", "late", "not_done"))
        settled = on_time + late + not_done
        rows.append(
            ComplianceRow(
                rule=rule,
                tasks=len(outcomes),
                on_time=on_time,
                late=late,
                not_done=not_done,
                pending=outcomes.count("pending"),
                on_time_rate=on_time / settled if settled else None,
                median_delay_seconds=nearest(delays[rule], 50),
                p90_delay_seconds=nearest(delays[rule], 90),
            )
        )
    return rows


__all__ = [
    "Window",
    "World",
    "compliance",
    "conversion",
    "demand",
    "funnel",
    "manager_load",
    "nearest",
    "whole_seconds",
]
