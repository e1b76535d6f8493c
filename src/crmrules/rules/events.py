"""The events crmrules raises itself, and the data each carries: one registry.

The rule language's reference, the field registry (``event.<key>`` of a
built-in event is a built-in field), the engine and the scenario reader
(which data keys an event may carry undeclared) all read it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class EventKey:
    """A key of the data a built-in event carries (``event.<key>`` once declared)."""

    key: str
    type: str
    meaning: str


@dataclass(frozen=True)
class BuiltinEvent:
    """An event crmrules raises itself: when, and the data it carries."""

    type: str
    raised: str
    data: tuple[EventKey, ...] = ()


_TASK = EventKey("task", "string", "the task's id")
_TASK_KIND = EventKey("kind", "string", "the task's kind (call, meeting, ...)")
_TASK_RULE = EventKey("rule", "string", "the rule that made the task; empty for a host's task")
_TERRITORY = EventKey("territory", "string", "the territory's id")
_REQUEST = EventKey("request", "string", "the request's id")
_CHANNEL = EventKey("channel", "string", "the channel it came by (phone, site, exhibition...)")
_CAMPAIGN = EventKey("campaign", "string", "the campaign's id; empty when none")
_ITEMS = EventKey("items", "set", "the catalogue items asked about")

#: The built-in events, in the order the reference lists them. Their data keys
#: are fields a rule reads without declaring them (``event.territory``); a
#: regulation may still declare one, to give it a stricter type.
BUILTIN_EVENT_INFO: tuple[BuiltinEvent, ...] = (
    BuiltinEvent(
        "client.created",
        "a client is created (host call, scenario or import)",
        (
            EventKey("import", "string", "the import that created it (absent otherwise)"),
            EventKey("source", "string", "the import's source (its file, or as the mapping says)"),
        ),
    ),
    BuiltinEvent(
        "client.updated",
        "a client's fields change; `changed`, `changed_from` and `changed_to` see the change",
    ),
    BuiltinEvent(
        "client.merged",
        "another client is merged into this one (`merge_clients`); its records moved here",
        (
            EventKey("merge", "string", "the merge's id (for `unmerge`)"),
            EventKey("merged", "string", "the id of the client merged in (now gone)"),
        ),
    ),
    BuiltinEvent("deal.created", "a deal is created"),
    BuiltinEvent(
        "deal.updated",
        "a deal's fields change (its stage included); the change operators see the change",
    ),
    BuiltinEvent(
        "deal.stage_changed",
        "a deal moves to another stage; `deal.stage changed_to: offer` tells which",
    ),
    BuiltinEvent(
        "deal.stage_overdue",
        "a deal stays in a stage past the stage's `deadline`",
        (
            EventKey("stage", "string", "the stage the deal overstayed"),
            EventKey("deadline", "string", "the stage's deadline as written (3 business days)"),
        ),
    ),
    BuiltinEvent(
        "interaction.logged",
        "the host logs a call, meeting or e-mail (`log_interaction`)",
        (
            EventKey("interaction", "string", "the interaction's id"),
            EventKey("kind", "string", "call, meeting or email"),
            EventKey("direction", "string", "in or out"),
            EventKey("outcome", "string", "as the host logged it: reached, no_answer, ..."),
        ),
    ),
    BuiltinEvent("task.completed", "a task is completed", (_TASK, _TASK_KIND, _TASK_RULE)),
    BuiltinEvent(
        "task.overdue",
        "an open task passes its due date",
        (_TASK, _TASK_KIND, EventKey("title", "string", "the task's title"), _TASK_RULE),
    ),
    BuiltinEvent(
        "request.created",
        "the host records an inbound request (`create_request`)",
        (_REQUEST, _CHANNEL, _CAMPAIGN, _ITEMS),
    ),
    BuiltinEvent(
        "request.converted",
        "a request becomes a deal (`convert_request`)",
        (_REQUEST, _CHANNEL, _CAMPAIGN, _ITEMS, EventKey("deal", "string", "the deal's id")),
    ),
    BuiltinEvent("territory.entered", "a client enters a territory", (_TERRITORY,)),
    BuiltinEvent("territory.left", "a client leaves a territory", (_TERRITORY,)),
)
#: What a rule with a time trigger (after/before/every/cron) sees as its event.
TIMER_EVENT = BuiltinEvent(
    "timer",
    "a time trigger's moment comes (the rule's `on` is after/before/every/cron)",
    (
        EventKey("timer", "string", "the timer's key"),
        EventKey("due_at", "string", "the moment the timer was due (ISO 8601)"),
    ),
)
#: Events crmrules raises itself.
BUILTIN_EVENTS = tuple(event.type for event in BUILTIN_EVENT_INFO)

#: Event type -> the data keys crmrules puts on it (time-trigger events included).
BUILTIN_EVENT_DATA: Mapping[str, frozenset[str]] = {
    event.type: frozenset(key.key for key in event.data)
    for event in (*BUILTIN_EVENT_INFO, TIMER_EVENT)
    if event.data
}

#: ``event.<key>`` -> its type, for every data key of a built-in event.
BUILTIN_EVENT_FIELDS: Mapping[str, str] = {
    f"event.{key.key}": key.type
    for event in (*BUILTIN_EVENT_INFO, TIMER_EVENT)
    for key in event.data
}

__all__ = [
    "BUILTIN_EVENTS",
    "BUILTIN_EVENT_DATA",
    "BUILTIN_EVENT_FIELDS",
    "BUILTIN_EVENT_INFO",
    "TIMER_EVENT",
    "BuiltinEvent",
    "EventKey",
]
