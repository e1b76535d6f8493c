"""Timers against a plain model, through random lifecycles (hypothesis state machine).

Random sequences of anchor sets, moves, clears and restores, condition
changes, rules disabled, enabled, removed and restored through reloads,
and clock advances, on the memory and SQLite stores. After each step the
store must agree with a model that knows only the rule of the game:

- each (rule, client) has at most one pending timer, and it is due exactly
  where the current anchor says, if the rule is on and that anchor value
  has not fired yet;
- every timer that falls due fires exactly once, at its time; a task is
  made when the rule's condition holds then;
- nothing fires for a cleared anchor or a rule that is off.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from crmrules import Client, Engine, SimulatedClock
from crmrules.adapters import SQLAlchemyStore
from crmrules.adapters.memory import MemoryStore
from crmrules.rules.regulation import load_regulation
from crmrules.store import Store, TimerStatus
from scaled import examples

MSK = ZoneInfo("Europe/Moscow")
START = datetime(2026, 3, 1, 12, tzinfo=MSK)
CLIENTS = ("c1", "c2", "c3")
#: rule id -> (trigger, the model's due time for an anchor date)
RULES: dict[str, tuple[str, Any]] = {
    "after-2-days": (
        "{after: 2 days, since: client.visit_at}",
        lambda day: datetime.combine(day + timedelta(days=2), time(0), MSK),
    ),
    "before-1-day": (
        "{before: 1 day, of: client.visit_at}",
        lambda day: datetime.combine(day - timedelta(days=1), time(0), MSK),
    ),
}
ANCHORS = [date(2026, 3, 1) + timedelta(days=n) for n in range(0, 12)]


def regulation_text(state: dict[str, str]) -> str:
    """state: rule id -> on, off or removed."""
    lines = [
        "version: 1",
        "calendar: {timezone: Europe/Moscow}",
        "fields:",
        "  client.visit_at: {type: date}",
        "  client.segment: {type: enum, values: [A, B]}",
        "rules:" if any(v != "removed" for v in state.values()) else "rules: []",
    ]
    for rule_id, (trigger, _) in RULES.items():
        if state[rule_id] == "removed":
            continue
        lines += [
            f"  - id: {rule_id}",
            f"    on: {trigger}",
            f"    enabled: {'true' if state[rule_id] == 'on' else 'false'}",
            "    if: {field: client.segment, eq: A}",
            f'    then: [{{create_task: {{kind: call, title: "{rule_id}"}}}}]',
        ]
    return "\n".join(lines) + "\n"


class TimerLifecycle(RuleBasedStateMachine):
    store_kind = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="crmrules-lifecycle-"))
        self.path = self.folder / "regulation.yaml"
        self.state = dict.fromkeys(RULES, "on")
        self.path.write_text(regulation_text(self.state), encoding="utf-8")
        store: Store = (
            MemoryStore() if self.store_kind == "memory" else SQLAlchemyStore("sqlite://")
        )
        self.clock = SimulatedClock(START)
        self.engine = Engine.from_path(self.path, store=store, clock=self.clock, entry_points=False)
        self.anchor: dict[str, date | None] = dict.fromkeys(CLIENTS)
        self.segment: dict[str, str] = dict.fromkeys(CLIENTS, "A")
        self.fired: set[tuple[str, str, date]] = set()
        self.tasks: list[tuple[str, str]] = []
        for client in CLIENTS:
            self.engine.create_client(Client(id=client, name=client, fields={"segment": "A"}))

    def teardown(self) -> None:
        self.engine.store.close()

    # -- steps

    @rule(client=st.sampled_from(CLIENTS), day=st.sampled_from(ANCHORS))
    def set_anchor(self, client: str, day: date) -> None:
        self.engine.update_client(client, {"visit_at": day})
        self.anchor[client] = day

    @rule(client=st.sampled_from(CLIENTS))
    def clear_anchor(self, client: str) -> None:
        self.engine.update_client(client, {"visit_at": None})
        self.anchor[client] = None

    @rule(client=st.sampled_from(CLIENTS), segment=st.sampled_from(["A", "B"]))
    def change_condition(self, client: str, segment: str) -> None:
        self.engine.update_client(client, {"segment": segment})
        self.segment[client] = segment

    @rule(rule_id=st.sampled_from(sorted(RULES)), to=st.sampled_from(["on", "off", "removed"]))
    def reload(self, rule_id: str, to: str) -> None:
        self.state[rule_id] = to
        self.path.write_text(regulation_text(self.state), encoding="utf-8")
        self.engine.reload(load_regulation(self.path))

    @rule(hours=st.integers(1, 24 * 4))
    def advance(self, hours: int) -> None:
        end = self.clock.now() + timedelta(hours=hours)
        self.model_fire(end)
        while True:
            with self.engine.store.transaction() as tx:
                due = [t.due_at for t in tx.find_timers(status=TimerStatus.PENDING)]
            due = [d for d in due if d <= end]
            if not due:
                break
            self.clock.set(max(min(due), self.clock.now()))
            for result in self.engine.run_due().results:
                self.got += [
                    (e.data["title"], result.event_id) for e in result.effects_of("task_created")
                ]
        self.clock.set(end)

    got: list[tuple[str, str]]

    def model_fire(self, end: datetime) -> None:
        """What must fire up to ``end``: every on rule's current anchor whose due has come."""
        self.got = []
        expected = []
        for rule_id, (_, due_of) in RULES.items():
            if self.state[rule_id] != "on":
                continue
            for client in CLIENTS:
                day = self.anchor[client]
                if day is None or (rule_id, client, day) in self.fired:
                    continue
                if due_of(day) <= end:
                    self.fired.add((rule_id, client, day))
                    if self.segment[client] == "A":
                        expected.append(rule_id)
        self.expected_titles = sorted(expected)

    @precondition(lambda self: hasattr(self, "expected_titles"))
    @invariant()
    def fired_as_the_model_says(self) -> None:
        assert sorted(title for title, _ in self.got) == self.expected_titles
        assert len({event for _, event in self.got}) == len(self.got)  # one task per firing

    @invariant()
    def pending_as_the_model_says(self) -> None:
        with self.engine.store.transaction() as tx:
            pending = [
                (t.rule, t.client, t.due_at.astimezone(UTC))
                for t in tx.find_timers(kind="rule", status=TimerStatus.PENDING)
            ]
        expected = []
        for rule_id, (_, due_of) in RULES.items():
            if self.state[rule_id] != "on":
                continue
            for client in CLIENTS:
                day = self.anchor[client]
                if day is not None and (rule_id, client, day) not in self.fired:
                    expected.append((rule_id, client, due_of(day).astimezone(UTC)))
        assert sorted(pending) == sorted(expected)


class SQLiteTimerLifecycle(TimerLifecycle):
    store_kind = "sqlite"


LIFECYCLE = settings(max_examples=examples(40), stateful_step_count=25, deadline=None)
TestTimerLifecycleMemory = TimerLifecycle.TestCase
TestTimerLifecycleMemory.settings = LIFECYCLE
TestTimerLifecycleSQLite = SQLiteTimerLifecycle.TestCase
TestTimerLifecycleSQLite.settings = settings(
    max_examples=examples(15), stateful_step_count=20, deadline=None
)
