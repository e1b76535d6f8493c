"""Scenario file parts: the ``expect`` step and the patterns that pick tasks, mailings, ...

An expectation lists what to check; each item is a :class:`Pattern` of the
fields it names, checked when the file loads (unknown keys, rules, clients,
deals, templates, task statuses, values of the wrong kind) with its line and
column, then matched by the runner against what the engine made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crmrules.errors import Location
from crmrules.model import TaskStatus
from crmrules.rules.fields import FieldType
from crmrules.rules.source import PathKey
from crmrules.testing.matching import Expected, Pattern, expected_value

if TYPE_CHECKING:
    from crmrules.testing.scenario import _Reader

EXPECT_KEYS = (
    "tasks", "mailings", "notifications", "open_tasks", "timers",
    "deals", "clients", "fired", "not_fired",
)  # fmt: skip
TASK_FIELDS = (
    "kind",
    "title",
    "description",
    "assignee",
    "due",
    "status",
    "rule",
    "client",
    "deal",
)
MAILING_FIELDS = ("template", "to", "channel", "subject", "text", "rule", "client")
NOTIFICATION_FIELDS = ("to", "channel", "subject", "text", "rule", "client", "deal")
TIMER_FIELDS = ("rule", "due", "client", "deal")


@dataclass(frozen=True)
class Expectation:
    """The checks of one ``expect`` step; None where the step does not check that."""

    tasks: tuple[Pattern, ...] | None = None
    mailings: tuple[Pattern, ...] | None = None
    notifications: tuple[Pattern, ...] | None = None
    open_tasks: tuple[Pattern, ...] | None = None
    timers: tuple[Pattern, ...] | None = None
    deals: Mapping[str, Pattern] | None = None
    clients: Mapping[str, Pattern] | None = None
    fired: tuple[str, ...] | None = None
    not_fired: tuple[str, ...] | None = None
    #: where each key of the step was written
    locations: Mapping[str, Location | None] = field(default_factory=dict)


def expectation(
    reader: _Reader, value: Any, path: PathKey, clients: set[str], deals: set[str]
) -> Expectation | None:
    expect = reader.mapping(value, path, "expect", EXPECT_KEYS)
    if expect is None:
        return None
    if not expect:
        reader.error(path, "expect checks nothing", f"use one of {', '.join(EXPECT_KEYS)}")
    lists: dict[str, tuple[Pattern, ...]] = {}
    for key, fields in (
        ("tasks", TASK_FIELDS),
        ("mailings", MAILING_FIELDS),
        ("notifications", NOTIFICATION_FIELDS),
        ("open_tasks", TASK_FIELDS),
        ("timers", TIMER_FIELDS),
    ):
        if key in expect:
            found = [
                pattern(
                    reader,
                    raw,
                    p,
                    f"an expected {key[:-1].replace('_', ' ')}",
                    fields,
                    clients,
                    deals,
                )
                for p, raw in reader.items(expect[key], (*path, key), key)
            ]
            lists[key] = tuple(p for p in found if p is not None)
    records: dict[str, dict[str, Pattern]] = {}
    for key, known in (("deals", deals), ("clients", clients)):
        if key in expect:
            records[key] = record_patterns(reader, expect[key], (*path, key), key[:-1], known)
    rules: dict[str, tuple[str, ...]] = {}
    for key in ("fired", "not_fired"):
        if key in expect:
            rules[key] = tuple(rule_ids(reader, expect[key], (*path, key)))
    return Expectation(
        tasks=lists.get("tasks"),
        mailings=lists.get("mailings"),
        notifications=lists.get("notifications"),
        open_tasks=lists.get("open_tasks"),
        timers=lists.get("timers"),
        deals=records.get("deals"),
        clients=records.get("clients"),
        fired=rules.get("fired"),
        not_fired=rules.get("not_fired"),
        locations={key: reader.source.locate((*path, key), key=True) for key in expect},
    )


def known_rules(reader: _Reader) -> list[str]:
    assert reader.regulation is not None
    plans = [
        f"{t.id}.contact_plan.{i}"
        for t in reader.regulation.territories.values()
        for i in range(len(t.contact_plan))
    ]
    return [r.id for r in reader.regulation.rules] + plans


def rule_ids(reader: _Reader, value: Any, path: PathKey) -> list[str]:
    known = known_rules(reader)
    found: list[str] = []
    for p, raw in reader.items(value, path, "a list of rule ids"):
        text = reader.text(raw, p, "a rule id")
        if text is None:
            continue
        if text not in known:
            reader.unknown(p, f"unknown rule {text!r}", text, known)
        found.append(text)
    return found


def pattern(
    reader: _Reader,
    value: Any,
    path: PathKey,
    what: str,
    fields: tuple[str, ...],
    clients: set[str],
    deals: set[str],
) -> Pattern | None:
    item = reader.mapping(value, path, what, fields)
    if item is None:
        return None
    assert reader.regulation is not None
    expected: dict[str, Expected] = {}
    for key, raw in item.items():
        if key not in fields:
            continue
        where = (*path, key)
        try:
            expected[key] = expected_value(raw, time_field=key == "due")
        except ValueError as error:
            reader.error(where, f"{key}: {error}")
            continue
        if raw is None:
            continue
        if key == "rule" and str(raw) not in known_rules(reader):
            reader.unknown(where, f"unknown rule {raw!r}", str(raw), known_rules(reader))
        elif key == "status" and str(raw) not in {s.value for s in TaskStatus}:
            reader.unknown(
                where, f"unknown task status {raw!r}", str(raw), [s.value for s in TaskStatus]
            )
        elif key == "client":
            reader.reference(raw, where, "client", clients)
        elif key == "deal":
            reader.reference(raw, where, "deal", deals)
        elif key == "template" and str(raw) not in reader.regulation.templates:
            reader.unknown(
                where, f"unknown template {raw!r}", str(raw), reader.regulation.templates
            )
    return Pattern(expected, reader.source.locate(path))


def record_patterns(
    reader: _Reader, value: Any, path: PathKey, namespace: str, known: set[str]
) -> dict[str, Pattern]:
    if not isinstance(value, dict):
        reader.error(
            path,
            f"expected a mapping of {namespace} ids to fields, e.g. {{d1: {{stage: offer}}}}",
        )
        return {}
    assert reader.regulation is not None
    registry = reader.regulation.fields
    found: dict[str, Pattern] = {}
    for record_id, fields in value.items():
        where = (*path, record_id)
        if record_id not in known:
            reader.unknown(
                where, f"unknown {namespace} {record_id!r}", record_id, known, key_pos=True
            )
        if not isinstance(fields, dict):
            reader.error(where, f"expected the {namespace}'s fields, e.g. {{stage: offer}}")
            continue
        expected: dict[str, Expected] = {}
        for key, raw in fields.items():
            spec = registry.get(f"{namespace}.{key}")
            if spec is None:
                reader.unknown(
                    (*where, key),
                    f"unknown {namespace} field {key!r}",
                    key,
                    [s.key for s in registry.of(namespace)],
                    key_pos=True,
                )
                continue
            try:
                if spec.type is FieldType.SET and not isinstance(raw, list) and raw is not None:
                    raise ValueError("expected a list, e.g. [msk]")
                expected[key] = expected_value(
                    raw, time_field=spec.type in (FieldType.DATE, FieldType.DATETIME)
                )
            except ValueError as error:
                reader.error((*where, key), f"{key}: {error}")
        found[record_id] = Pattern(expected, reader.source.locate(where))
    return found


__all__ = [
    "EXPECT_KEYS",
    "MAILING_FIELDS",
    "NOTIFICATION_FIELDS",
    "TASK_FIELDS",
    "TIMER_FIELDS",
    "Expectation",
    "expectation",
    "known_rules",
    "pattern",
]
