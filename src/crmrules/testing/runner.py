"""Running scenarios: steps against a Simulation, expectations checked, failures explained.

Each scenario starts from the file's ``given`` on a fresh in-memory store
and runs its steps in order; the first failing step ends it. A failure is
a readable report, never a traceback: which step, what was expected, what
was found, and what the rules involved did (for a rule that did not fire:
the condition that failed with its actual value, the policy that held it,
or why it was never considered).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from crmrules.engine import RefusedError
from crmrules.errors import CrmRulesError, RegulationError
from crmrules.result import Result
from crmrules.testing.matching import Pattern, assign, closest, describe_item
from crmrules.testing.scenario import (
    MAILING_FIELDS,
    NOTIFICATION_FIELDS,
    TASK_FIELDS,
    TIMER_FIELDS,
    Advance,
    CancelTask,
    CompleteTask,
    CreateRecords,
    EmitEvent,
    Expectation,
    LogInteraction,
    MoveClock,
    Realign,
    Scenario,
    ScenarioFile,
    Step,
    UpdateRecord,
    load_scenario_file,
)
from crmrules.testing.simulation import (
    RULE_TIMERS,
    Happening,
    Simulation,
    StepError,
    kept_out_of_collections,
    mailing_fields,
    notification_fields,
    task_fields,
    timer_fields,
)

#: How many lines of "what happened" a failure report shows at most.
STORY_LINES = 40
#: How many lines of one rule's story a failure report shows at most.
RULE_LINES = 12
#: The actions that make what each expectation looks at; their rules are explained first.
ACTIONS_FOR = {
    "tasks": ("create_task",),
    "open_tasks": ("create_task", "cancel_tasks"),
    "mailings": ("send_mailing",),
    "notifications": ("notify",),
    "deals": ("move_stage", "set_field"),
    "clients": (
        "set_field",
        "assign_manager",
        "add_to_territory",
        "remove_from_territory",
        "clear_territory_override",
        "add_to_segment",
        "remove_from_segment",
        "clear_segment_override",
    ),
}


@dataclass
class ScenarioResult:
    """The outcome of one scenario: passed, or the readable reasons it did not."""

    file: str
    name: str
    passed: bool
    failures: list[str] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"

    def report(self) -> str:
        return "\n\n".join(self.failures)


def run_file(
    path: str | Path, *, display: str | None = None, only: str | None = None
) -> list[ScenarioResult]:
    """Run every scenario of a file (or the one named ``only``).

    A file that does not load gives one failed result named after the file,
    whose failure lists every problem with its location.
    """
    name = display or str(path)
    try:
        loaded = load_scenario_file(path, display=name)
    except RegulationError as error:
        return [ScenarioResult(name, "", False, [problems_report(error)])]
    scenarios = loaded.scenarios
    if only is not None:
        scenarios = tuple(s for s in scenarios if s.name == only)
        if not scenarios:
            known = ", ".join(repr(s.name) for s in loaded.scenarios)
            return [ScenarioResult(name, only, False, [f"no scenario {only!r} (known: {known})"])]
    return [run_scenario(loaded, s, display=name) for s in scenarios]


def problems_report(error: RegulationError) -> str:
    count = len(error.problems)
    head = f"{count} problem{'s' if count != 1 else ''}:"
    return "\n".join([head, *(f"  {p}" for p in error.problems)])


def run_scenario(
    scenario_file: ScenarioFile, scenario: Scenario, *, display: str | None = None
) -> ScenarioResult:
    """Run one scenario from the file's ``given``; stops at the first failing step."""
    name = display or str(scenario_file.path)
    simulation = Simulation.from_regulation(
        scenario_file.regulation, now=scenario_file.now, plugins=scenario_file.plugins
    )
    failures: list[str] = []
    with kept_out_of_collections() as keep:  # a year's records stay out of full collections
        keep()  # what is loaded already: the library, the regulation
        _run_steps(simulation, scenario_file, scenario, failures, keep)
        timeline = simulation.timeline_text().splitlines()
    return ScenarioResult(name, scenario.name, not failures, failures, timeline)


def _run_steps(
    simulation: Simulation,
    scenario_file: ScenarioFile,
    scenario: Scenario,
    failures: list[str],
    keep: Callable[[], None],
) -> None:
    """The scenario's starting state (then ``keep``), then its steps; what fails goes in
    ``failures``."""
    try:
        given = scenario.given.on_top_of(scenario_file.given)
        simulation.given(
            managers=given.managers,
            clients=given.clients,
            deals=given.deals,
            contacts=given.contacts,
            tasks=given.tasks,
        )
        keep()
        _Runner(simulation).run(scenario.steps, failures)
    except CrmRulesError as error:
        failures.append(f"the starting state (given) cannot be stored: {error}")
    except Exception as error:  # a bug in crmrules, not in the scenario: say so in one line
        if os.environ.get("CRMRULES_DEBUG"):
            raise
        failures.append(
            f"internal error: {type(error).__name__}: {error}\n"
            "This is a bug in crmrules; run again with CRMRULES_DEBUG=1 and report the output."
        )


class _Runner:
    """Runs the steps of one scenario; remembers where the previous ``expect`` was."""

    def __init__(self, simulation: Simulation) -> None:
        self.sim = simulation
        self.tz = simulation.regulation.calendar.tz
        self.mark = len(simulation.timeline)
        simulation.tasks()
        simulation.mailings()
        simulation.notifications()

    def run(self, steps: Sequence[Step], failures: list[str]) -> None:
        for step in steps:
            failure = self.step(step)
            if failure is not None:
                self.sim.note(f"step {step.number}: FAILED")
                failures.append(failure)
                return

    def step(self, step: Step) -> str | None:
        action = step.action
        if isinstance(action, Expectation):
            return self.expect(step, action)
        before = self.sim.snapshot() if step.refused else None
        start = len(self.sim.timeline)
        try:
            self.act(step)
        except RefusedError as refusal:
            if not step.refused:
                return (
                    f"{step.where}: {step.kind} was refused: {refusal.reason}\n"
                    "  (if the regulation should refuse it, write refused: true on the step)"
                )
            if self.sim.snapshot() != before:
                return f"{step.where}: {step.kind} was refused, but something changed"
            return None
        except StepError as error:
            return f"{step.where}: {error}"
        except CrmRulesError as error:
            return f"{step.where}: {step.kind} failed: {error}"
        if step.refused:
            story = self.story(self.sim.timeline[start:])
            return "\n".join(
                [
                    f"{step.where}: expected the regulation to refuse this {step.kind}, "
                    "but it was accepted",
                    *story,
                ]
            )
        return None

    def act(self, step: Step) -> None:
        action, sim = step.action, self.sim
        if isinstance(action, EmitEvent):
            sim.emit(
                action.type,
                client=action.client,
                deal=action.deal,
                data=action.data,
                id=action.id,
            )
        elif isinstance(action, CreateRecords):
            sim.create(clients=action.clients, deals=action.deals)
        elif isinstance(action, UpdateRecord):
            if action.namespace == "client":
                sim.update(client=action.id, set=action.changes)
            else:
                sim.update(deal=action.id, set=action.changes)
        elif isinstance(action, CompleteTask):
            sim.complete_task_by_id(self.task_id(step.kind, action.task_id, action.pattern))
        elif isinstance(action, CancelTask):
            sim.cancel_task_by_id(self.task_id(step.kind, action.task_id, action.pattern))
        elif isinstance(action, LogInteraction):
            values = dict(action.values)
            if action.occurred_at is not None:
                values["occurred_at"] = action.occurred_at
            sim.log_interaction(**values)
        elif isinstance(action, Advance):
            end = sim.regulation.calendar.add(sim.now, action.duration)
            sim.note(f"step {step.number}: advance {action.duration} (to {_when(end, self.tz)})")
            sim.at(end)
        elif isinstance(action, MoveClock):
            sim.note(f"step {step.number}: at {_when(action.moment, self.tz)}")
            sim.at(action.moment)
        elif isinstance(action, Realign):
            sim.realign()

    def task_id(self, kind: str, task_id: str | None, pattern: Pattern | None) -> str:
        """The task a complete_task / cancel_task step names; StepError if there is none."""
        if task_id is None:
            assert pattern is not None
            return self.sim.pick_task(pattern, kind).id
        if not any(t.id == task_id for t in self.sim.all_tasks()):
            listing = ", ".join(f"{t.id} ({t.kind} {t.title!r})" for t in self.sim.open_tasks())
            raise StepError(f"{kind}: no task {task_id!r} (open tasks: {listing or 'none'})")
        return task_id

    # -- expectations

    def expect(self, step: Step, expectation: Expectation) -> str | None:
        window = self.sim.timeline[self.mark :]
        self.mark = len(self.sim.timeline)
        new_tasks: list[dict[str, Any]] = []
        if expectation.tasks is not None:
            new_tasks = [task_fields(t) for t in self.sim.tasks()]
        else:  # the mark moves all the same, without a copy of every task
            self.sim.mark_tasks()
        new_mailings = [mailing_fields(m) for m in self.sim.mailings()]
        new_notifications = [notification_fields(m) for m in self.sim.notifications()]
        timers = [timer_fields(t) for t in self.sim.pending_timers() if t.kind in RULE_TIMERS]
        fired = {rule for h in window if h.result is not None for rule in h.result.fired}
        problems: list[str] = []
        named: list[str] = []
        checks: list[tuple[str, Callable[[], list[str] | None]]] = [
            (
                "tasks",
                lambda: self.items(
                    "task",
                    "created since the previous expect",
                    expectation.tasks,
                    new_tasks,
                    TASK_FIELDS,
                ),
            ),
            (
                "open_tasks",
                lambda: (
                    None
                    if expectation.open_tasks is None  # not asked: no copy of every open task
                    else self.items(
                        "open task",
                        "open now",
                        expectation.open_tasks,
                        [task_fields(t) for t in self.sim.open_tasks()],
                        TASK_FIELDS,
                    )
                ),
            ),
            (
                "mailings",
                lambda: self.items(
                    "mailing",
                    "sent since the previous expect",
                    expectation.mailings,
                    new_mailings,
                    MAILING_FIELDS,
                ),
            ),
            (
                "notifications",
                lambda: self.items(
                    "notification",
                    "queued since the previous expect",
                    expectation.notifications,
                    new_notifications,
                    NOTIFICATION_FIELDS,
                ),
            ),
            (
                "timers",
                lambda: self.items(
                    "timer", "pending now", expectation.timers, timers, TIMER_FIELDS
                ),
            ),
            ("deals", lambda: self.records("deal", expectation.deals)),
            ("clients", lambda: self.records("client", expectation.clients)),
            ("fired", lambda: self.fired(expectation.fired, fired)),
            ("not_fired", lambda: self.not_fired(expectation.not_fired, fired)),
        ]
        failed_keys: list[str] = []
        for key, check in checks:
            lines = check()
            if lines:
                where = expectation.locations.get(key)
                problems.append(f"  expect {key}" + (f" ({where})" if where else "") + ":")
                problems.extend("    " + line for line in lines)
                failed_keys.append(key)
        if not problems:
            self.sim.note(f"step {step.number}: expect ok")
            return None
        related: list[str] = []
        for key in failed_keys:
            explicit, others = self.rules_named(key, expectation)
            named += explicit
            related += others
        considered = {o.rule for h in window if h.result is not None for o in h.result.outcomes}
        waiting = {t.rule for t in self.sim.pending_timers() if t.kind in ("rule", "schedule")}
        waiting |= {
            f"{t.rule}.contact_plan.{t.data.get('index', 0)}"
            for t in self.sim.pending_timers()
            if t.kind == "plan"
        }
        rules = _unique([*named, *(r for r in related if r in considered or r in waiting)])
        lines = [f"{step.where}: expect failed", *problems]
        lines += self.explain_rules(rules, window)
        lines += ["  what happened since the previous expect:"]
        lines += ["    " + line for line in self.story(window)]
        return "\n".join(lines)

    def items(
        self,
        what: str,
        since: str,
        patterns: Sequence[Pattern] | None,
        found: list[dict[str, Any]],
        keys: Sequence[str],
    ) -> list[str] | None:
        if patterns is None:
            return None
        matching = assign(patterns, found, self.tz)
        if len(matching) == len(patterns) == len(found):
            return None
        lines = [f"expected {_count(len(patterns), what)} {since}, found {len(found)}"]
        lines.append("expected:" if patterns else "expected: none")
        used = set(matching.values())
        spare = [item for j, item in enumerate(found) if j not in used]
        for i, pattern in enumerate(patterns):
            mark = "✓" if i in matching else "✗"
            lines.append(f"  {mark} {pattern}")
            if i in matching:
                continue
            near = closest(pattern, spare or found, self.tz)
            if near is None:
                lines.append(f"      no {what} to match")
            else:
                j, diff = near
                item = (spare or found)[j]
                lines.append(f"      closest: {describe_item(item, keys, self.tz)}")
                lines.extend(f"        {d}" for d in diff)
        lines.append("found:" if found else "found: none")
        for j, item in enumerate(found):
            mark = "✓" if j in used else "✗ not expected:"
            lines.append(f"  {mark} {describe_item(item, keys, self.tz)}")
        return lines

    def records(self, what: str, patterns: Mapping[str, Pattern] | None) -> list[str] | None:
        if patterns is None:
            return None
        lines: list[str] = []
        for record_id, pattern in patterns.items():
            record = self.sim.client(record_id) if what == "client" else self.sim.deal(record_id)
            if record is None:
                lines.append(f"{what} {record_id} does not exist")
                continue
            diff = pattern.mismatches(record.record(), self.tz)
            lines.extend(f"{what} {record_id}: {d}" for d in diff)
        return lines or None

    def fired(self, expected: Sequence[str] | None, fired: set[str]) -> list[str] | None:
        if expected is None:
            return None
        missing = [r for r in expected if r not in fired]
        if not missing:
            return None
        shown = ", ".join(sorted(fired)) or "none"
        return [f"did not fire since the previous expect: {', '.join(missing)}", f"fired: {shown}"]

    def not_fired(self, expected: Sequence[str] | None, fired: set[str]) -> list[str] | None:
        if expected is None:
            return None
        wrong = [r for r in expected if r in fired]
        if not wrong:
            return None
        return [f"fired since the previous expect, but should not have: {', '.join(wrong)}"]

    # -- explanations

    def rules_named(self, key: str, expectation: Expectation) -> tuple[list[str], list[str]]:
        """The rules a failing check names, and those whose actions make what it checks."""
        named: list[str] = []
        related: list[str] = []
        if key == "fired":
            named += expectation.fired or ()
        elif key == "not_fired":
            named += expectation.not_fired or ()
        patterns: Iterable[Pattern] = {
            "tasks": expectation.tasks or (),
            "open_tasks": expectation.open_tasks or (),
            "mailings": expectation.mailings or (),
            "notifications": expectation.notifications or (),
            "timers": expectation.timers or (),
        }.get(key, ())
        named += [str(p.fields["rule"]) for p in patterns if "rule" in p.fields]
        actions = ACTIONS_FOR.get(key, ())
        regulation = self.sim.regulation
        related += [r.id for r in regulation.rules if any(a.name in actions for a in r.actions)]
        if "create_task" in actions or "send_mailing" in actions:
            related += [
                f"{t.id}.contact_plan.{i}"
                for t in regulation.territories.values()
                for i, plan in enumerate(t.contact_plan)
                if any(a.name in actions for a in plan.actions)
            ]
        return named, related

    def explain_rules(self, rules: Sequence[str], window: Sequence[Happening]) -> list[str]:
        if not rules:
            return []
        lines = ["  the rules involved:"]
        for rule in rules[:15]:
            lines.append(f"    {rule}:")
            lines.extend("      " + line for line in self.rule_story(rule, window))
        if len(rules) > 15:
            lines.append(f"    ... and {len(rules) - 15} more")
        return lines

    def rule_story(self, rule_id: str, window: Sequence[Happening]) -> list[str]:
        """What one rule did since the previous expect, or why it never came up."""
        lines: list[str] = []
        for happening in window:
            result = happening.result
            if result is None:
                continue
            for outcome in result.outcomes:
                if outcome.rule != rule_id:
                    continue
                when = _when(happening.at, self.tz)
                about = _about(result, outcome.event_id)
                if outcome.status == "fired":
                    lines.append(f"{when} on {outcome.event_type}{about}: fired")
                    lines.extend(
                        f"  → {e.summary}"
                        for e in result.effects
                        if e.rule == rule_id and e.event_id == outcome.event_id
                    )
                else:
                    word = {"not_matched": "not matched", "failed": "failed"}.get(
                        outcome.status, "held"
                    )
                    lines.append(f"{when} on {outcome.event_type}{about}: {word}: {outcome.reason}")
        if len(lines) > RULE_LINES:
            hidden = len(lines) - RULE_LINES
            lines = [
                *lines[: RULE_LINES // 2],
                f"... {hidden} more lines ...",
                *lines[-RULE_LINES // 2 :],
            ]
        return lines or [self.why_not_considered(rule_id)]

    def why_not_considered(self, rule_id: str) -> str:
        regulation = self.sim.regulation
        rule = next((r for r in regulation.rules if r.id == rule_id), None)
        pending = [t for t in self.sim.pending_timers() if t.rule == rule_id]
        if rule is None:  # a territory's contact plan
            territory = rule_id.split(".contact_plan.", 1)[0]
            pending = [
                t for t in self.sim.pending_timers() if t.kind == "plan" and t.rule == territory
            ]
            return _next_timer("not run since the previous expect", pending, self.tz)
        if not rule.enabled:
            return "not run: the rule is disabled (enabled: false)"
        if rule.trigger.kind == "event":
            return (
                f"not considered: it runs on {rule.trigger.describe()}, and no such event "
                "happened since the previous expect"
            )
        return _next_timer(
            f"not run since the previous expect (it runs {rule.trigger.describe()})",
            pending,
            self.tz,
        )

    def story(self, window: Sequence[Happening]) -> list[str]:
        lines = [
            line
            for happening in window
            if happening.result is None or _interesting(happening.result)
            for line in happening.lines(self.tz)
        ]
        if not lines:
            return ["nothing"]
        if len(lines) > STORY_LINES:
            hidden = len(lines) - STORY_LINES
            lines = [*lines[:STORY_LINES], f"... {hidden} more lines (crmrules simulate shows all)"]
        return lines


def _interesting(result: Result) -> bool:
    return bool(result.outcomes or result.effects or result.errors)


def _about(result: Result, event_id: str) -> str:
    event = next((e for e in result.events if e.id == event_id), None)
    if event is None:
        return ""
    parts = [f"{k} {v}" for k, v in (("client", event.client), ("deal", event.deal)) if v]
    return f" ({', '.join(parts)})" if parts else ""


def _next_timer(head: str, pending: Sequence[Any], tz: Any) -> str:
    if not pending:
        return f"{head}; no timer is planned for it"
    first = min(pending, key=lambda t: t.due_at)
    subject = ", ".join(
        f"{k} {v}" for k, v in (("client", first.client), ("deal", first.deal)) if v
    )
    about = f" ({subject})" if subject else ""
    return f"{head}; its next timer is due {_when(first.due_at, tz)}{about}"


def _when(moment: datetime, tz: Any) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


__all__ = ["ScenarioResult", "problems_report", "run_file", "run_scenario"]
