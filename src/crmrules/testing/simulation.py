"""A regulation on a simulated clock: the Python API behind scenario files.

>>> sim = Simulation.from_path("regulations/", now="2026-03-02T10:00:00+03:00")
>>> sim.given(managers=[{"id": "ivanov"}],
...           clients=[{"id": "c1", "region": "Москва", "responsible": "ivanov"}])
>>> sim.emit("invoice.issued", client="c1", data={"invoice_number": "INV-17"})
>>> [t.title for t in sim.tasks()]
>>> sim.advance("7 days")

Every host operation goes through the real :class:`~crmrules.engine.Engine`
on a :class:`~crmrules.adapters.memory.MemoryStore`; time moves only when
told to, and :meth:`Simulation.advance` fires every timer that falls due in
time order, each at its own due time, so nothing waits for real time.

Everything that happened is kept as a timeline of :class:`Happening` (what,
when, and the engine's :class:`~crmrules.result.Result`), and the
``tasks()`` / ``mailings()`` / ``fired()`` readers return what is new since
they were last called.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from crmrules import timers
from crmrules.adapters.memory import MemoryStore
from crmrules.calendar import Duration
from crmrules.clock import SimulatedClock
from crmrules.engine import Engine, RefusedError
from crmrules.errors import CrmRulesError
from crmrules.model import (
    Client,
    Contact,
    Deal,
    Event,
    Interaction,
    Mailing,
    Manager,
    Task,
    TaskStatus,
)
from crmrules.plugins import PluginManager
from crmrules.result import Result
from crmrules.rules.conditions import Facts
from crmrules.rules.fields import coerce_datetime
from crmrules.rules.regulation import Regulation, load_regulation
from crmrules.rules.territories import recompute
from crmrules.store import OutboxMessage, Timer, TimerStatus
from crmrules.testing.matching import Pattern, expected_value


class StepError(CrmRulesError):
    """A step that cannot be done as written (no task to complete, the clock going back).

    Unlike a RefusedError it is not the regulation saying no, so ``refused: true``
    does not excuse it.
    """


@dataclass(frozen=True)
class Happening:
    """One line of the timeline: a host call, a timer firing, a note; with its result."""

    at: datetime
    kind: str  # event, create, update, complete_task, realign, timer, clock, given, note
    text: str
    result: Result | None = None

    def lines(self, tz: Any) -> list[str]:
        when = self.at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        lines = [f"{when}  {self.text}"]
        if self.result is not None:
            explained = self.result.explain()
            lines.extend("    " + line for line in explained.splitlines())
        return lines


class Simulation:
    """One engine, one in-memory store, one simulated clock."""

    def __init__(self, engine: Engine) -> None:
        if not isinstance(engine.clock, SimulatedClock):
            raise TypeError("a Simulation needs an engine with a SimulatedClock")
        self.engine = engine
        self.clock: SimulatedClock = engine.clock
        self.timeline: list[Happening] = []
        self._calls = 0
        self._task_mark: set[str] = set()
        self._mailing_mark: set[str] = set()
        self._notification_mark: set[str] = set()
        self._fired_mark = 0

    # -- making one

    @classmethod
    def from_path(
        cls,
        regulation: str | Path,
        *,
        now: datetime | str,
        plugins: Iterable[object] = (),
        entry_points: bool = True,
    ) -> Simulation:
        """Load the regulation at ``regulation`` and start the clock at ``now``."""
        manager = PluginManager(plugins, entry_points=entry_points)
        loaded = load_regulation(
            regulation, actions=manager.action_models(), operators=manager.operators()
        )
        return cls.from_regulation(loaded, now=now, plugins=manager)

    @classmethod
    def from_regulation(
        cls, regulation: Regulation, *, now: datetime | str, plugins: PluginManager | None = None
    ) -> Simulation:
        start = coerce_datetime(now, regulation.calendar)
        engine = Engine(
            regulation,
            MemoryStore(),
            SimulatedClock(start),
            plugin_manager=plugins or PluginManager(entry_points=False),
        )
        simulation = cls(engine)
        engine.sync_timers(start)
        return simulation

    @property
    def regulation(self) -> Regulation:
        return self.engine.regulation

    @property
    def now(self) -> datetime:
        return self.clock.now()

    # -- the starting state

    def given(
        self,
        *,
        managers: Sequence[Manager | Mapping[str, Any]] = (),
        clients: Sequence[Client | Mapping[str, Any]] = (),
        deals: Sequence[Deal | Mapping[str, Any]] = (),
        contacts: Sequence[Contact | Mapping[str, Any]] = (),
        tasks: Sequence[Task | Mapping[str, Any]] = (),
    ) -> None:
        """Store records as they are: no event is raised and no rule fires.

        Territory membership is computed, and timers that depend on the
        records (date triggers, stage deadlines, contact plans) are planned
        as of now. Client and deal mappings are flat: custom fields sit next
        to the built-in ones.
        """
        now = self.now
        regulation = self.regulation
        with self.engine.store.transaction() as tx:
            for raw_manager in managers:
                tx.put_manager(
                    raw_manager
                    if isinstance(raw_manager, Manager)
                    else Manager.model_validate(dict(raw_manager))
                )
            for raw_client in clients:
                client = self.engine.typed_client(self._client(raw_client))
                if client.created_at is None:
                    client = client.model_copy(update={"created_at": now})
                change = recompute(
                    regulation,
                    client,
                    Facts({"client": client.record()}, now),
                    tx.memberships(client.id),
                    now,
                )
                tx.set_memberships(client.id, list(change.memberships))
                tx.put_client(client.model_copy(update={"territories": change.territories}))
            for raw_deal in deals:
                deal = self.engine.typed_deal(self._deal(raw_deal))
                stamps = {
                    name: now
                    for name in ("created_at", "stage_entered_at")
                    if getattr(deal, name) is None
                }
                tx.put_deal(deal.model_copy(update=stamps))
            for raw_contact in contacts:
                tx.put_contact(_model(Contact, raw_contact))
            for raw_task in tasks:
                task = _model(Task, raw_task)
                task = task if task.created_at else task.model_copy(update={"created_at": now})
                tx.add_task(task)
                timers.plan_task(tx, task, now)
        self.engine.sync_timers(now, full=True)  # the records came in behind the engine
        names = [f"manager {_id(m)}" for m in managers]
        names += [f"client {_id(c)}" for c in clients] + [f"deal {_id(d)}" for d in deals]
        names += [f"contact {_id(c)}" for c in contacts] + [f"task {_id(t)}" for t in tasks]
        if names:
            self._note("given", "given: " + ", ".join(names))

    def _client(self, raw: Client | Mapping[str, Any]) -> Client:
        return raw if isinstance(raw, Client) else _flat(Client, raw, "client", self.regulation)

    def _deal(self, raw: Deal | Mapping[str, Any]) -> Deal:
        return raw if isinstance(raw, Deal) else _flat(Deal, raw, "deal", self.regulation)

    # -- host operations; each returns the engine's Result (RefusedError if refused)

    def emit(
        self,
        type: str,
        *,
        client: str | None = None,
        deal: str | None = None,
        data: Mapping[str, Any] | None = None,
        id: str | None = None,
    ) -> Result:
        """The host reports an event; the same ``id`` twice is one event delivered twice."""
        event = Event(
            id=id or self._next_id(type),
            type=type,
            occurred_at=self.now,
            client=client,
            deal=deal,
            data=dict(data or {}),
        )
        about = ", ".join(f"{k} {v}" for k, v in (("client", client), ("deal", deal)) if v)
        return self._call(
            "event",
            f"event {type}" + (f" ({about})" if about else ""),
            lambda: self.engine.handle(event),
        )

    def create(
        self,
        *,
        clients: Sequence[Client | Mapping[str, Any]] = (),
        deals: Sequence[Deal | Mapping[str, Any]] = (),
    ) -> list[Result]:
        """New records, each raising client.created / deal.created."""
        results: list[Result] = []
        for raw_client in clients:
            client = self._client(raw_client)
            results.append(
                self._call(
                    "create",
                    f"create client {client.id}",
                    lambda c=client: self.engine.create_client(
                        c, event_id=self._next_id(f"client.created:{c.id}")
                    ),
                )
            )
        for raw_deal in deals:
            deal = self._deal(raw_deal)
            results.append(
                self._call(
                    "create",
                    f"create deal {deal.id} ({deal.pipeline}/{deal.stage}, client {deal.client})",
                    lambda d=deal: self.engine.create_deal(
                        d, event_id=self._next_id(f"deal.created:{d.id}")
                    ),
                )
            )
        return results

    def update(
        self,
        *,
        client: str | None = None,
        deal: str | None = None,
        set: Mapping[str, Any],
    ) -> Result:
        """Change fields of one client or deal (a stage change must follow the transitions)."""
        if (client is None) == (deal is None):
            raise ValueError("update one record: client=... or deal=...")
        shown = ", ".join(f"{k}: {v}" for k, v in set.items())
        if client is not None:
            return self._call(
                "update",
                f"update client {client}: {shown}",
                lambda: self.engine.update_client(
                    client, dict(set), event_id=self._next_id(f"update:{client}")
                ),
            )
        assert deal is not None
        return self._call(
            "update",
            f"update deal {deal}: {shown}",
            lambda: self.engine.update_deal(
                deal, dict(set), event_id=self._next_id(f"update:{deal}")
            ),
        )

    def complete_task(self, **fields: Any) -> Result:
        """Mark done the one open task whose fields match ``fields`` (kind, title, client...)."""
        pattern = Pattern({k: expected_value(v, time_field=k == "due") for k, v in fields.items()})
        return self.complete_task_by_id(self.pick_task(pattern).id)

    def complete_task_by_id(self, task_id: str) -> Result:
        task = next((t for t in self.all_tasks() if t.id == task_id), None)
        shown = f"{task.kind} {task.title!r}" if task else task_id
        return self._call(
            "complete_task",
            f"complete task {shown}",
            lambda: self.engine.complete_task(
                task_id, event_id=self._next_id(f"task.completed:{task_id}")
            ),
        )

    def cancel_task_by_id(self, task_id: str) -> None:
        """The host cancels an open task: no event is raised, its due timer is cancelled.

        RefusedError if there is no such task or it is closed already, as for completing.
        """
        with self.engine.store.transaction() as tx:
            task = tx.get_task(task_id)
            refusal = None if task is None else _closed(task)
            if task is None or refusal is not None:
                reason = refusal or f"no task {task_id!r}"
                self._note("refused", f"cancel task {task_id}: refused: {reason}")
                raise RefusedError(reason)
            closed = {"status": TaskStatus.CANCELLED, "closed_at": self.now}
            tx.put_task(task.model_copy(update=closed))
            timers.cancel_task(tx, task, "cancelled by the host")
        self._note("cancel_task", f"cancel task {task.kind} {task.title!r}")

    def log_interaction(self, **values: Any) -> Result:
        """The host logs a call, meeting or e-mail (now, unless ``occurred_at`` is given)."""
        interaction = Interaction.model_validate(
            {"id": self._next_id("interaction"), "occurred_at": self.now, **values}
        )
        return self._call(
            "log_interaction",
            f"log {interaction.kind} with client {interaction.client}",
            lambda: self.engine.log_interaction(
                interaction, event_id=self._next_id(f"interaction.logged:{interaction.id}")
            ),
        )

    def notifications(self) -> list[OutboxMessage]:
        """Notifications (``notify``) queued since the previous call (or the start)."""
        with self.engine.store.transaction() as tx:
            queued = [m for m in tx.due_messages(self.now, 10**9) if m.mailing is None]
        new = [m for m in queued if m.key not in self._notification_mark]
        self._notification_mark |= {m.key for m in queued}
        return new

    def pick_task(self, pattern: Pattern, what: str = "complete_task") -> Task:
        """The one open task ``pattern`` matches; StepError (naming ``what``) if none or several."""
        tz = self.regulation.calendar.tz
        open_tasks = self.open_tasks()
        found = [t for t in open_tasks if pattern.matches(task_fields(t), tz)]
        if len(found) == 1:
            return found[0]
        listing = "; ".join(f"{t.kind} {t.title!r} for {t.assignee}" for t in open_tasks)
        found_text = "no open task" if not found else f"{len(found)} open tasks"
        raise StepError(f"{what} {pattern}: {found_text} match (open tasks: {listing or 'none'})")

    def realign(self) -> list[Result]:
        """Recompute the territories of every client (raises territory.entered / .left)."""
        with self.engine.store.transaction() as tx:
            ids = [c.id for c in tx.iter_clients()]
        self._note("realign", f"realign territories of {len(ids)} client(s)")
        return [
            self._call(
                "realign",
                f"realign client {client_id}",
                lambda c=client_id: self.engine.client_saved(
                    c, before={}, event_id=self._next_id(f"realign:{c}")
                ),
                quiet=True,
            )
            for client_id in ids
        ]

    # -- time

    def advance(self, duration: str | Duration | timedelta) -> list[Result]:
        """Move the clock forward, firing every timer that falls due, each at its own time."""
        if isinstance(duration, timedelta):
            end = self.now + duration
        else:
            step = duration if isinstance(duration, Duration) else Duration.parse(duration)
            end = self.regulation.calendar.add(self.now, step)
        return self.at(end)

    def at(self, moment: datetime | str) -> list[Result]:
        """Move the clock to ``moment`` (never backwards), firing the timers due until then."""
        end = coerce_datetime(moment, self.regulation.calendar)
        if end < self.now:
            raise StepError(
                f"the clock cannot go back from {self.now.isoformat()} to {end.isoformat()}"
            )
        results: list[Result] = []
        with kept_out_of_collections() as keep:
            while True:
                # the earliest pending timer only: a copy of every pending one each step
                # was most of a simulated year's time
                with self.engine.store.transaction() as tx:
                    earliest = tx.find_timers(status=TimerStatus.PENDING, limit=1)
                if not earliest or earliest[0].due_at > end:
                    break
                first = max(earliest[0].due_at, self.now)
                self.clock.set(first)
                report = self.engine.run_due(first)
                if not report.results:
                    raise CrmRulesError(
                        f"timers due at {first.isoformat()} did not fire: {earliest[0].key}"
                    )
                with self.engine.store.transaction() as tx:
                    # read for the timeline's text only: a store that lends gives no copy
                    read = getattr(tx, "lend_timer", tx.get_timer)
                    fired = [read(r.event_id.removeprefix("timer:")) for r in report.results]
                for result, timer in zip(report.results, fired, strict=True):
                    self.timeline.append(
                        Happening(self.now, "timer", _timer_text(timer, result), result)
                    )
                    results.append(result)
                keep()
        if end > self.now:
            self.clock.set(end)
        return results

    # -- reading

    def tasks(self) -> list[Task]:
        """Tasks created since the previous call (or the start), in creation order."""
        tasks = self.all_tasks()
        new = [t for t in tasks if t.id not in self._task_mark]
        self._task_mark = {t.id for t in tasks}
        return new

    def mark_tasks(self) -> None:
        """Move the mark ``tasks`` counts from, without copying the tasks: an expect step
        that checks none (the memory store gives the ids alone)."""
        with self.engine.store.transaction() as tx:
            ids = getattr(tx, "task_ids", None)
            self._task_mark = set(ids()) if ids is not None else {t.id for t in tx.find_tasks()}

    def mailings(self) -> list[Mailing]:
        """Mailings sent since the previous call (or the start)."""
        with self.engine.store.transaction() as tx:
            mailings = tx.find_mailings()
        new = [m for m in mailings if m.id not in self._mailing_mark]
        self._mailing_mark = {m.id for m in mailings}
        return new

    def fired(self) -> list[str]:
        """Ids of the rules that fired since the previous call, in firing order."""
        return [rule for result in self.results_since_fired() for rule in result.fired]

    def results_since_fired(self) -> list[Result]:
        """Results since the previous ``fired()`` call; moves its mark."""
        results = self.results()
        new = results[self._fired_mark :]
        self._fired_mark = len(results)
        return new

    def results(self) -> list[Result]:
        """Every result so far, in the order they happened."""
        return [h.result for h in self.timeline if h.result is not None]

    def all_tasks(self) -> list[Task]:
        with self.engine.store.transaction() as tx:
            return tx.find_tasks()

    def open_tasks(self) -> list[Task]:
        with self.engine.store.transaction() as tx:
            return tx.find_tasks(status=TaskStatus.OPEN)

    def client(self, client_id: str) -> Client | None:
        return self.engine.get_client(client_id)

    def deal(self, deal_id: str) -> Deal | None:
        return self.engine.get_deal(deal_id)

    def pending_timers(self) -> list[Timer]:
        with self.engine.store.transaction() as tx:
            return tx.find_timers(status=TimerStatus.PENDING)

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a step may change, for checking that a refused step changed nothing."""
        with self.engine.store.transaction() as tx:
            clients = list(tx.iter_clients())
            return (
                clients,
                [d for c in clients for d in tx.deals_of(c.id)],
                tx.find_tasks(),
                tx.find_mailings(),
                tx.find_timers(status=TimerStatus.PENDING),
            )

    def timeline_text(self) -> str:
        tz = self.regulation.calendar.tz
        return "\n".join(line for h in self.timeline for line in h.lines(tz))

    # -- plumbing

    def note(self, text: str) -> None:
        """Add a line to the timeline (the scenario runner notes its steps)."""
        self._note("note", text)

    def _note(self, kind: str, text: str) -> None:
        self.timeline.append(Happening(self.now, kind, text))

    def _next_id(self, what: str) -> str:
        self._calls += 1
        return f"sim-{self._calls}:{what}"

    def _call(self, kind: str, text: str, call: Any, *, quiet: bool = False) -> Result:
        try:
            result: Result = call()
        except RefusedError as refusal:
            self._note("refused", f"{text}: refused: {refusal.reason}")
            raise
        if not quiet or result.events:
            self.timeline.append(Happening(self.now, kind, text, result))
        return result


#: whether each open ``kept_out_of_collections`` scope freezes, outermost first
_scopes: list[bool] = []


@contextmanager
def kept_out_of_collections() -> Iterator[Callable[[], None]]:
    """While the clock runs, what each step keeps alive is kept out of the collector's scans.

    A simulated year keeps every task, timer, audit line and result it makes,
    and CPython's full collections scanned all of them again and again: a
    third of the CPU of a year of 1,000 clients (38 collections, 59 s of
    165). The scope gives ``keep``: called after each step, it collects the
    young generations as usual (``gc.collect(1)``: the step's own cycles)
    and freezes what survives (``gc.freeze``, constant time). When the
    outermost scope ends, everything is unfrozen for the collector to see
    again (a scenario run is one scope: ``run_scenario``). Reference counting
    frees what is dropped meanwhile, as ever. A process that froze objects
    itself, or runs without the collector, is left as it is.
    """
    active = _scopes[0] if _scopes else gc.isenabled() and gc.get_freeze_count() == 0
    _scopes.append(active)

    def keep() -> None:
        if active:
            gc.collect(1)
            gc.freeze()

    try:
        yield keep
    finally:
        _scopes.pop()
        if active and not _scopes:
            gc.unfreeze()


def task_fields(task: Task) -> dict[str, Any]:
    """A task as the fields an expectation may name."""
    return {
        "kind": task.kind,
        "title": task.title,
        "description": task.description,
        "assignee": task.assignee,
        "due": task.due,
        "status": task.status.value,
        "rule": task.rule,
        "client": task.client,
        "deal": task.deal,
    }


def mailing_fields(mailing: Mailing) -> dict[str, Any]:
    """A mailing as the fields an expectation may name."""
    return {
        "template": mailing.template,
        "to": mailing.to,
        "channel": mailing.channel,
        "subject": mailing.subject,
        "text": mailing.text,
        "rule": mailing.rule,
        "client": mailing.client,
    }


def notification_fields(message: OutboxMessage) -> dict[str, Any]:
    """A queued notification as the fields an expectation may name."""
    return {
        "to": message.to,
        "channel": message.channel,
        "subject": message.subject,
        "text": message.text,
        "rule": message.data.get("rule"),
        "client": message.data.get("client"),
        "deal": message.data.get("deal"),
    }


def timer_fields(timer: Timer) -> dict[str, Any]:
    """A pending timer of a rule as the fields an expectation may name."""
    rule = timer.rule
    if timer.kind == "plan":
        rule = f"{timer.rule}.contact_plan.{timer.data.get('index', 0)}"
    return {"rule": rule, "due": timer.due_at, "client": timer.client, "deal": timer.deal}


#: The timers that serve rules (a stage deadline or a task's due time serves no rule).
RULE_TIMERS = ("rule", "schedule", "plan")


def _closed(task: Task) -> str | None:
    """Why an already closed task cannot be closed again; None while it is open."""
    if task.status is TaskStatus.OPEN:
        return None
    return f"task {task.id} is already {task.status.value}"


def _model(model: type[M], raw: M | Mapping[str, Any]) -> M:
    return raw if isinstance(raw, model) else model.model_validate(dict(raw))


def _flat(model: type[Any], raw: Mapping[str, Any], namespace: str, regulation: Regulation) -> Any:
    """A Client or Deal from a flat mapping: built-in names to the model, the rest to fields."""
    direct: dict[str, Any] = {}
    custom: dict[str, Any] = dict(raw.get("fields") or {})
    for key, value in raw.items():
        if key == "fields":
            continue
        if key in model.model_fields:
            direct[key] = value
        else:
            regulation.fields.check_declared(namespace, str(raw.get("id", "?")), [key])
            custom[key] = value
    return model.model_validate({**direct, "fields": custom})


def _id(record: Any) -> str:
    return str(record.id if not isinstance(record, Mapping) else record.get("id", "?"))


def _timer_text(timer: Timer | None, result: Result) -> str:
    if timer is None:
        return f"timer {result.event_id.removeprefix('timer:')}"
    subject = ", ".join(
        f"{k} {v}" for k, v in (("client", timer.client), ("deal", timer.deal)) if v
    )
    what = {
        "rule": f"rule {timer.rule}",
        "schedule": f"schedule of rule {timer.rule}",
        "plan": f"contact plan of territory {timer.rule}",
        "stage": "stage deadline",
        "task": "task due",
    }.get(timer.kind, timer.kind)
    return f"timer: {what}" + (f" ({subject})" if subject else "")


M = TypeVar("M", bound=BaseModel)

__all__ = [
    "RULE_TIMERS",
    "Happening",
    "Simulation",
    "StepError",
    "kept_out_of_collections",
    "mailing_fields",
    "notification_fields",
    "task_fields",
    "timer_fields",
]
