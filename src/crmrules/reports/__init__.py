"""Reports over a SQL store: lead conversion, demand, funnel, manager load, compliance.

Each report is a function returning typed rows, computed by SQL aggregates
(the same numbers on SQLite and PostgreSQL) over local days of the
calendar's time zone (``Span``); ``report(name, ...)`` wraps any of them as a
``Report`` that ``crmrules.reports.formats`` writes as text, CSV, JSON or
HTML. ``clients`` (a SQLAlchemy condition on ``crmrules_clients``) narrows a
report to some clients. See docs/reports.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from crmrules.reports import conversion as _conversion
from crmrules.reports import items as _demand
from crmrules.reports import load as _load
from crmrules.reports import rule_tasks as _compliance
from crmrules.reports import stages as _funnel
from crmrules.reports.base import ReportError, nearest_rank, source
from crmrules.reports.conversion import ConversionRow
from crmrules.reports.items import DemandRow
from crmrules.reports.load import ActivityRow, LoadRow, ManagerLoad
from crmrules.reports.periods import BY, By, Span
from crmrules.reports.rule_tasks import ComplianceRow
from crmrules.reports.stages import Funnel, FunnelRow

Filter = sa.ColumnElement[bool] | None


def lead_conversion(store: object, span: Span, *, clients: Filter = None) -> list[ConversionRow]:
    """Requests, contacts, conversions, won deals and costs per period, campaign and channel."""
    with source(store, span, clients) as src:
        return _conversion.conversion(src)


def demand(
    store: object, span: Span, *, catalogue: Iterable[str] = (), clients: Filter = None
) -> list[DemandRow]:
    """Requests per catalogue item and period (every item of ``catalogue`` listed)."""
    with source(store, span, clients) as src:
        return _demand.demand(src, catalogue)


def funnel(store: object, span: Span, *, clients: Filter = None) -> Funnel:
    """Deals per stage, time in stage (median, 90th percentile), the stall stage."""
    with source(store, span, clients) as src:
        return _funnel.funnel(src)


def manager_load(store: object, span: Span, *, clients: Filter = None) -> ManagerLoad:
    """Calls and meetings planned vs held per period; open and overdue work vs capacity."""
    with source(store, span, clients) as src:
        return _load.manager_load(src)


def compliance(store: object, span: Span, *, clients: Filter = None) -> list[ComplianceRow]:
    """Per rule that makes tasks: done on time, late, not done, pending; the delays."""
    with source(store, span, clients) as src:
        return _compliance.compliance(src)


@dataclass(frozen=True)
class Report:
    """A report ready to format: its tables of rows (dataclasses) and a few notes."""

    name: str
    title: str
    span: Span
    tables: Mapping[str, list[Any]]
    notes: Mapping[str, str] = field(default_factory=dict)


def _conversion_report(store: object, span: Span, clients: Filter, **_: Any) -> Report:
    rows = lead_conversion(store, span, clients=clients)
    return Report("conversion", "Lead conversion by campaign", span, {"conversion": rows})


def _demand_report(store: object, span: Span, clients: Filter, **kw: Any) -> Report:
    rows = demand(store, span, catalogue=kw.get("catalogue", ()), clients=clients)
    return Report("demand", "Demand by catalogue item", span, {"demand": rows})


def _funnel_report(store: object, span: Span, clients: Filter, **_: Any) -> Report:
    found = funnel(store, span, clients=clients)
    notes = {f"stall stage ({p})": s or "none yet" for p, s in sorted(found.stalls.items())}
    return Report(
        "funnel", "Pipeline funnel and time in stage", span, {"funnel": found.rows}, notes
    )


def _load_report(store: object, span: Span, clients: Filter, **_: Any) -> Report:
    found = manager_load(store, span, clients=clients)
    tables: dict[str, list[Any]] = {"load": found.load, "activity": found.activity}
    return Report("load", "Manager activity and load", span, tables)


def _compliance_report(store: object, span: Span, clients: Filter, **_: Any) -> Report:
    rows = compliance(store, span, clients=clients)
    return Report("compliance", "Regulation compliance", span, {"compliance": rows})


#: Report name -> what makes it (the command line's ``crmrules report NAME``).
REPORTS: Mapping[str, Callable[..., Report]] = {
    "conversion": _conversion_report,
    "demand": _demand_report,
    "funnel": _funnel_report,
    "load": _load_report,
    "compliance": _compliance_report,
}


def report(
    name: str,
    store: object,
    span: Span,
    *,
    clients: Filter = None,
    catalogue: Iterable[str] = (),
) -> Report:
    """The report called ``name`` (one of ``REPORTS``)."""
    if name not in REPORTS:
        raise ReportError(f"no report {name!r}; reports: {', '.join(REPORTS)}")
    return REPORTS[name](store, span, clients, catalogue=tuple(catalogue))


__all__ = [
    "BY",
    "REPORTS",
    "ActivityRow",
    "By",
    "ComplianceRow",
    "ConversionRow",
    "DemandRow",
    "Funnel",
    "FunnelRow",
    "LoadRow",
    "ManagerLoad",
    "Report",
    "ReportError",
    "Span",
    "compliance",
    "demand",
    "funnel",
    "lead_conversion",
    "manager_load",
    "nearest_rank",
    "report",
]
