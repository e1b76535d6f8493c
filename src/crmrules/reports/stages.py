"""The pipeline funnel and time in stage, with the stage where deals stall most.

Read from the deals' stage moves (``crmrules_stage_moves``). For each
pipeline and stage, over the moves made in the span:

- ``deals``: distinct deals that entered the stage (a deal reopened and
  entering it again counts once), and ``of_first``: that as a share of the
  deals that entered the pipeline's first stage;
- ``stays``: entries into the stage; ``left``: those the deal has left since
  (by its next move, whenever it came), ``still_there``: the others;
- ``median_seconds``, ``p90_seconds``: nearest-rank percentiles of the time
  in stage of the stays that were left, in whole seconds of wall-clock time.

The stall stage of a pipeline is its non-final stage with the longest median
time in stage (the earlier stage on a tie).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from crmrules.reports.base import Source, rank_of, ranked
from crmrules.reports.periods import epoch_seconds, in_span


@dataclass(frozen=True)
class FunnelRow:
    pipeline: str
    stage: str
    position: int
    final: bool
    deals: int
    of_first: float | None
    stays: int
    left: int
    still_there: int
    median_seconds: int | None
    p90_seconds: int | None


@dataclass(frozen=True)
class Funnel:
    rows: list[FunnelRow]
    #: pipeline -> the stage where deals stall most (None: no stay was left yet)
    stalls: dict[str, str | None]


def stays_query(src: Source) -> sa.Subquery:
    """Each move with the moment the deal left that stage (its next move), or NULL."""
    m = src.campaigns.stage_moves
    left_at = sa.func.lead(m.c.entered_at).over(partition_by=m.c.deal_id, order_by=m.c.seq)
    inner = sa.select(m, left_at.label("left_at")).where(src.for_clients(m.c.client_id)).subquery()
    return sa.select(inner).where(in_span(inner.c.entered_at, src.span)).subquery()


def counts_query(src: Source) -> sa.Select[*tuple[Any, ...]]:
    s = stays_query(src)
    return sa.select(
        s.c.pipeline,
        s.c.stage,
        sa.func.min(s.c.position).label("position"),
        sa.func.max(sa.case((s.c.final.is_(True), 1), else_=0)).label("final"),
        sa.func.count(sa.distinct(s.c.deal_id)).label("deals"),
        sa.func.count().label("stays"),
        sa.func.count(s.c.left_at).label("left"),
    ).group_by(s.c.pipeline, s.c.stage)


def percentiles_query(src: Source) -> sa.Select[*tuple[Any, ...]]:
    s = stays_query(src)
    duration = (epoch_seconds(s.c.left_at) - epoch_seconds(s.c.entered_at)).label("duration")
    rank, size = ranked(duration, s.c.pipeline, s.c.stage)
    ranks = (
        sa.select(s.c.pipeline, s.c.stage, duration, rank.label("rank"), size.label("size"))
        .where(s.c.left_at.is_not(None))
        .subquery()
    )
    return sa.select(
        ranks.c.pipeline,
        ranks.c.stage,
        sa.func.max(sa.case((ranks.c.rank == rank_of(50, ranks.c.size), ranks.c.duration))),
        sa.func.max(sa.case((ranks.c.rank == rank_of(90, ranks.c.size), ranks.c.duration))),
    ).group_by(ranks.c.pipeline, ranks.c.stage)


def funnel(src: Source) -> Funnel:
    times = {
        (row[0], row[1]): (int(row[2]), int(row[3])) for row in src.rows(percentiles_query(src))
    }
    counted = sorted(src.rows(counts_query(src)), key=lambda r: (r.pipeline, r.position, r.stage))
    first: dict[str, int] = {}
    rows = []
    for row in counted:
        first.setdefault(row.pipeline, int(row.deals))
        median, p90 = times.get((row.pipeline, row.stage), (None, None))
        rows.append(
            FunnelRow(
                pipeline=row.pipeline,
                stage=row.stage,
                position=int(row.position),
                final=bool(row.final),
                deals=int(row.deals),
                of_first=int(row.deals) / first[row.pipeline] if first[row.pipeline] else None,
                stays=int(row.stays),
                left=int(row.left),
                still_there=int(row.stays) - int(row.left),
                median_seconds=median,
                p90_seconds=p90,
            )
        )
    return Funnel(rows, stalls(rows))


def stalls(rows: list[FunnelRow]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    best: dict[str, tuple[int, int]] = {}
    for row in rows:
        found.setdefault(row.pipeline, None)
        if row.final or row.median_seconds is None:
            continue
        key = (row.median_seconds, -row.position)
        if row.pipeline not in best or key > best[row.pipeline]:
            best[row.pipeline] = key
            found[row.pipeline] = row.stage
    return found


__all__ = ["Funnel", "FunnelRow", "counts_query", "funnel", "percentiles_query", "stalls"]
