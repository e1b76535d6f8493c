"""Scenario files (``*.regulation.yaml``): read, check and turn into steps.

A scenario file names the regulation under test, the simulated start time,
a starting state (``given``) and scenarios made of steps (see
docs/regulation-tests.md). Everything an admin can get wrong here is
reported as a :class:`RegulationError` whose problems carry the scenario
file's line and column: an unknown key or step, an unknown rule, client,
deal, manager or field, a value of the wrong type, a regulation that does
not load. Nothing is run until the whole file is known to be good.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from crmrules.calendar import BusinessCalendar, Duration
from crmrules.errors import Location, Problem, RegulationError
from crmrules.model import Client, Contact, Deal, Manager, Task
from crmrules.plugins import PluginManager
from crmrules.rules.events import BUILTIN_EVENT_DATA
from crmrules.rules.fields import coerce, coerce_datetime
from crmrules.rules.regulation import Regulation, load_regulation
from crmrules.rules.source import Limits, PathKey, SourceMap, parse_text, read_source
from crmrules.testing import scenario_expect as expect
from crmrules.testing import scenario_records as records
from crmrules.testing.matching import Pattern
from crmrules.testing.scenario_expect import (
    MAILING_FIELDS,
    NOTIFICATION_FIELDS,
    TASK_FIELDS,
    TIMER_FIELDS,
    Expectation,
)

#: The file names a scenario file may have; both the CLI and pytest collect them.
SCENARIO_SUFFIXES = (".regulation.yaml", ".regulation.yml")
TOP_KEYS = ("regulation", "now", "given", "scenarios")
GIVEN_KEYS = ("managers", "clients", "deals", "contacts", "tasks")
SCENARIO_KEYS = ("name", "description", "given", "steps")
STEP_KINDS = (
    "event", "create", "update", "complete_task", "cancel_task", "log_interaction",
    "advance", "at", "realign", "expect",
)  # fmt: skip
#: Steps that ask the engine for something it may refuse.
REFUSABLE = (
    "event", "create", "update", "complete_task", "cancel_task", "log_interaction", "realign",
)  # fmt: skip
EVENT_KEYS = ("type", "id", "client", "deal", "data")


M = TypeVar("M", bound=BaseModel)


class _Record(Protocol):
    @property
    def id(self) -> str: ...


R = TypeVar("R", bound=_Record)


def is_scenario_file(path: Path) -> bool:
    return path.name.endswith(SCENARIO_SUFFIXES)


# --- what a scenario file holds ---------------------------------------------------------------


@dataclass(frozen=True)
class EmitEvent:
    type: str
    id: str | None
    client: str | None
    deal: str | None
    data: Mapping[str, Any]


@dataclass(frozen=True)
class CreateRecords:
    clients: tuple[Client, ...]
    deals: tuple[Deal, ...]


@dataclass(frozen=True)
class UpdateRecord:
    namespace: Literal["client", "deal"]
    id: str
    changes: Mapping[str, Any]


@dataclass(frozen=True)
class CompleteTask:
    """Complete the task with ``task_id``, or the one open task ``pattern`` picks."""

    pattern: Pattern | None
    task_id: str | None = None


@dataclass(frozen=True)
class CancelTask:
    """Cancel the task with ``task_id``, or the one open task ``pattern`` picks."""

    pattern: Pattern | None
    task_id: str | None = None


@dataclass(frozen=True)
class LogInteraction:
    """A call, meeting or e-mail the host logs; ``values`` are Interaction fields."""

    values: Mapping[str, Any]
    occurred_at: datetime | None


@dataclass(frozen=True)
class Advance:
    duration: Duration


@dataclass(frozen=True)
class MoveClock:
    moment: datetime


@dataclass(frozen=True)
class Realign:
    pass


StepAction = (
    EmitEvent
    | CreateRecords
    | UpdateRecord
    | CompleteTask
    | CancelTask
    | LogInteraction
    | Advance
    | MoveClock
    | Realign
    | Expectation
)


@dataclass(frozen=True)
class Step:
    number: int  # from 1, as an admin counts
    kind: str
    action: StepAction
    refused: bool
    location: Location | None

    @property
    def where(self) -> str:
        return f"step {self.number}" + (f" ({self.location})" if self.location else "")


@dataclass(frozen=True)
class Given:
    managers: tuple[Manager, ...] = ()
    clients: tuple[Client, ...] = ()
    deals: tuple[Deal, ...] = ()
    contacts: tuple[Contact, ...] = ()
    tasks: tuple[Task, ...] = ()

    def on_top_of(self, base: Given) -> Given:
        """``base`` with these records added; one with the same id replaces base's."""

        return Given(
            _merged(base.managers, self.managers),
            _merged(base.clients, self.clients),
            _merged(base.deals, self.deals),
            _merged(base.contacts, self.contacts),
            _merged(base.tasks, self.tasks),
        )


def _merged(below: tuple[R, ...], above: tuple[R, ...]) -> tuple[R, ...]:
    ids = {record.id for record in above}
    return (*(r for r in below if r.id not in ids), *above)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str | None
    steps: tuple[Step, ...]
    location: Location | None
    #: the scenario's own starting records, on top of the file's
    given: Given = field(default_factory=Given)


@dataclass(frozen=True)
class ScenarioFile:
    path: Path
    regulation_path: Path
    regulation: Regulation
    plugins: PluginManager
    now: datetime
    given: Given
    scenarios: tuple[Scenario, ...]

    def scenario(self, name: str) -> Scenario | None:
        return next((s for s in self.scenarios if s.name == name), None)


# --- loading ----------------------------------------------------------------------------------


def load_scenario_file(
    path: str | Path, *, plugins: PluginManager | None = None, display: str | None = None
) -> ScenarioFile:
    """Read and check a scenario file and the regulation it names.

    ``display`` is the file name used in messages (default: ``path`` as given).
    Raises RegulationError with every problem found, located in the file.
    """
    path = Path(path)
    name = display or str(path)
    text = read_source(path, name)
    data, source = parse_text(text, name, Limits())
    reader = _Reader(path, name, source, plugins or PluginManager())
    return reader.read(data)


class _Reader:
    """Checks a parsed scenario file, collecting every problem before giving up."""

    def __init__(self, path: Path, name: str, source: SourceMap, plugins: PluginManager) -> None:
        self.path = path
        self.name = name
        self.source = source
        self.plugins = plugins
        self.problems: list[Problem] = []
        self.regulation: Regulation | None = None
        self.managers: set[str] = set()
        self.given_clients: set[str] = set()
        self.given_deals: set[str] = set()
        self.given_contacts: set[str] = set()
        self.given_tasks: set[str] = set()

    # -- reporting

    def error(
        self, path: PathKey, message: str, hint: str | None = None, *, key: bool = False
    ) -> None:
        location = self.source.locate(path, key=key) or Location(self.name, 1, 1)
        self.problems.append(Problem(message, location, hint))

    def fail(self) -> RegulationError:
        return RegulationError(self.problems)

    def mapping(
        self,
        value: Any,
        path: PathKey,
        what: str,
        allowed: Iterable[str],
        required: Iterable[str] = (),
    ) -> dict[str, Any] | None:
        """``value`` if it is a mapping with only ``allowed`` keys and every ``required`` one."""
        if not isinstance(value, dict):
            self.error(path, f"{what} must be a mapping, not {_kind(value)}")
            return None
        allowed = tuple(allowed)
        for key in value:
            if key not in allowed:
                self.unknown(
                    (*path, key), f"unknown key {key!r} in {what}", key, allowed, key_pos=True
                )
        for key in required:
            if key not in value:
                self.error(path, f"{what} needs {key!r}")
        return value

    def unknown(
        self, path: PathKey, message: str, name: str, known: Iterable[str], *, key_pos: bool = False
    ) -> None:
        known = sorted(set(known))
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            hint = f"did you mean {close[0]!r}?"
        elif known and len(known) <= 12:
            hint = "known: " + ", ".join(known)
        else:
            hint = None
        self.error(path, message, hint, key=key_pos)

    def items(self, value: Any, path: PathKey, what: str) -> list[tuple[PathKey, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"{what} must be a list, not {_kind(value)}")
            return []
        return [((*path, i), item) for i, item in enumerate(value)]

    def text(self, value: Any, path: PathKey, what: str) -> str | None:
        if isinstance(value, int | str) and not isinstance(value, bool) and str(value).strip():
            return str(value)
        self.error(path, f"{what} must be text, not {_kind(value)}")
        return None

    # -- the file

    def read(self, data: Any) -> ScenarioFile:
        top = self.mapping(data, (), "a scenario file", TOP_KEYS, ("regulation", "scenarios"))
        if top is None:
            raise self.fail()
        regulation_path = self.load_regulation(top.get("regulation"))
        if self.regulation is None or regulation_path is None:
            raise self.fail()
        calendar = self.regulation.calendar
        self.managers = set(self.regulation.managers)
        now = self.moment(top.get("now"), ("now",), calendar) if "now" in top else None
        if "now" not in top:
            self.error((), "a scenario file needs 'now'", "e.g. now: 2026-03-02T10:00:00+03:00")
        given = self.given(top.get("given"), ("given",))
        scenarios = self.scenarios(top.get("scenarios"), ("scenarios",))
        if self.problems or now is None:
            raise self.fail()
        return ScenarioFile(
            path=self.path,
            regulation_path=regulation_path,
            regulation=self.regulation,
            plugins=self.plugins,
            now=now,
            given=given,
            scenarios=tuple(scenarios),
        )

    def load_regulation(self, value: Any) -> Path | None:
        if value is None:
            return None
        text = self.text(value, ("regulation",), "regulation")
        if text is None:
            return None
        target = (self.path.parent / text).resolve()
        if not target.exists():
            self.error(
                ("regulation",),
                f"regulation {text!r} not found (looked for {target})",
                "the path is relative to the scenario file",
            )
            return None
        try:
            self.regulation = load_regulation(
                target,
                actions=self.plugins.action_models(),
                operators=self.plugins.operators(),
            )
        except RegulationError as error:
            count = len(error.problems)
            self.error(
                ("regulation",),
                f"the regulation {text!r} does not load ({count} "
                f"problem{'s' if count != 1 else ''}, each listed with its file and line)",
            )
            self.problems.extend(error.problems)
            return None
        return target

    def moment(self, value: Any, path: PathKey, calendar: BusinessCalendar) -> datetime | None:
        try:
            if not isinstance(value, str):
                raise ValueError(
                    f"expected a moment such as 2026-03-02T10:00:00+03:00, got {_kind(value)}"
                )
            return coerce_datetime(value, calendar)
        except ValueError as error:
            self.error(path, str(error))
            return None

    # -- given

    def given(self, value: Any, path: PathKey) -> Given:
        if value is None:
            return Given()
        given = self.mapping(value, path, "given", GIVEN_KEYS)
        if given is None:
            return Given()
        managers = [
            m
            for p, raw in self.items(given.get("managers"), (*path, "managers"), "managers")
            if (m := self.manager(raw, p)) is not None
        ]
        self.managers |= {m.id for m in managers}
        clients = [
            c
            for p, raw in self.items(given.get("clients"), (*path, "clients"), "clients")
            if (c := self.record("client", raw, p, self.given_clients)) is not None
        ]
        self.given_clients.update(c.id for c in clients)
        deals: list[Deal] = []
        for p, raw in self.items(given.get("deals"), (*path, "deals"), "deals"):
            deal = self.record("deal", raw, p, self.given_clients)
            if isinstance(deal, Deal):
                deals.append(deal)
                self.given_deals.add(deal.id)
        contacts = records.contacts(self, given.get("contacts"), (*path, "contacts"))
        self.given_contacts.update(c.id for c in contacts)
        tasks = records.tasks(self, given.get("tasks"), (*path, "tasks"))
        self.given_tasks.update(t.id for t in tasks)
        return Given(
            tuple(managers),
            tuple(c for c in clients if isinstance(c, Client)),
            tuple(deals),
            tuple(contacts),
            tuple(tasks),
        )

    def manager(self, raw: Any, path: PathKey) -> Manager | None:
        if not isinstance(raw, dict):
            self.error(path, f"a manager must be a mapping, not {_kind(raw)}")
            return None
        return self.validated(Manager, raw, path, "manager")

    def validated(self, model: type[M], raw: dict[str, Any], path: PathKey, what: str) -> M | None:
        try:
            return model.model_validate(raw)
        except ValidationError as error:
            for item in error.errors():
                loc = tuple(item["loc"])
                where = (*path, loc[0]) if loc and loc[0] in raw else path
                field_name = ".".join(str(p) for p in loc) or what
                self.error(where, f"{what} {field_name}: {item['msg']}", key=False)
            return None

    def record(
        self, namespace: Literal["client", "deal"], raw: Any, path: PathKey, clients: set[str]
    ) -> Client | Deal | None:
        """A client or deal written flat: built-in fields to the model, the rest to ``fields``."""
        if not isinstance(raw, dict):
            self.error(path, f"a {namespace} must be a mapping, not {_kind(raw)}")
            return None
        if "id" not in raw:
            self.error(path, f"a {namespace} needs an 'id'")
            return None
        if namespace == "client":
            self.check_manager(raw.get("responsible"), (*path, "responsible"))
        values = self.field_values(namespace, raw, path, creating=True)
        if values is None:
            return None
        direct, custom = values
        if namespace == "client":
            return self.validated(Client, {**direct, "fields": custom}, path, "client")
        if "client" in direct and str(direct["client"]) not in clients:
            self.unknown(
                (*path, "client"),
                f"unknown client {direct['client']!r}",
                str(direct["client"]),
                clients,
            )
        for key in ("pipeline", "stage", "client"):
            if key not in direct:
                self.error(path, f"a deal needs {key!r}")
                return None
        assert self.regulation is not None
        pipeline = self.regulation.pipelines.get(str(direct["pipeline"]))
        if pipeline is None:
            self.unknown(
                (*path, "pipeline"),
                f"unknown pipeline {direct['pipeline']!r}",
                str(direct["pipeline"]),
                self.regulation.pipelines,
            )
            return None
        if pipeline.stage(str(direct["stage"])) is None:
            self.unknown(
                (*path, "stage"),
                f"pipeline {pipeline.id} has no stage {direct['stage']!r}",
                str(direct["stage"]),
                [s.id for s in pipeline.stages],
            )
            return None
        return self.validated(Deal, {**direct, "fields": custom}, path, "deal")

    def field_values(
        self, namespace: str, raw: Mapping[str, Any], path: PathKey, *, creating: bool
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Split and coerce flat values into (built-in, custom); None if any is wrong."""
        assert self.regulation is not None
        registry = self.regulation.fields
        model = Client if namespace == "client" else Deal
        direct: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        ok = True
        for key, value in raw.items():
            where = (*path, key)
            if key in ("fields", "territories") or (key == "id" and not creating):
                hint = (
                    "territories are computed from the regulation's territories"
                    if key == "territories"
                    else "write custom fields flat, next to the built-in ones"
                    if key == "fields"
                    else None
                )
                self.error(where, f"{namespace} field {key!r} cannot be set here", hint, key=True)
                ok = False
                continue
            spec = registry.get(f"{namespace}.{key}")
            if spec is None and key not in model.model_fields:
                self.unknown(
                    where,
                    f"unknown {namespace} field {key!r}; custom fields must be declared under "
                    "fields: in the regulation",
                    key,
                    [s.key for s in registry.of(namespace)],
                    key_pos=True,
                )
                ok = False
                continue
            if spec is not None and value is not None:
                try:
                    value = coerce(spec, value, self.regulation.calendar)
                except ValueError as error:
                    self.error(where, f"{namespace} field {key!r}: {error}")
                    ok = False
                    continue
            if key in model.model_fields:
                direct[key] = value
            else:
                custom[key] = value
        return (direct, custom) if ok else None

    def check_manager(self, value: Any, path: PathKey) -> None:
        if value is not None and str(value) not in self.managers:
            self.unknown(path, f"unknown manager {value!r}", str(value), self.managers)

    # -- scenarios

    def scenarios(self, value: Any, path: PathKey) -> list[Scenario]:
        found: list[Scenario] = []
        names: dict[str, PathKey] = {}
        entries = self.items(value, path, "scenarios")
        if value is not None and isinstance(value, list) and not entries:
            self.error(path, "scenarios is empty", "add at least one scenario")
        for p, raw in entries:
            scenario = self.mapping(raw, p, "a scenario", SCENARIO_KEYS, ("name", "steps"))
            if scenario is None:
                continue
            name = (
                self.text(scenario.get("name"), (*p, "name"), "a scenario name")
                if "name" in scenario
                else None
            )
            if name is not None and name in names:
                first = self.source.locate((*names[name], "name"))
                self.error((*p, "name"), f"scenario {name!r} is defined twice (first at {first})")
            if name is not None:
                names[name] = p
            # The scenario's own given adds to what its steps may name, for it alone.
            known = self.known_ids()
            given = self.given(scenario.get("given"), (*p, "given"))
            steps = self.steps(scenario.get("steps"), (*p, "steps"))
            self.restore_ids(known)
            description = scenario.get("description")
            if name is not None:
                found.append(
                    Scenario(
                        name=name,
                        description=None if description is None else str(description),
                        steps=tuple(steps),
                        location=self.source.locate(p),
                        given=given,
                    )
                )
        return found

    def known_ids(self) -> tuple[set[str], ...]:
        return tuple(
            set(known)
            for known in (
                self.managers,
                self.given_clients,
                self.given_deals,
                self.given_contacts,
                self.given_tasks,
            )
        )

    def restore_ids(self, known: tuple[set[str], ...]) -> None:
        (
            self.managers,
            self.given_clients,
            self.given_deals,
            self.given_contacts,
            self.given_tasks,
        ) = known

    def steps(self, value: Any, path: PathKey) -> list[Step]:
        clients = set(self.given_clients)
        deals = set(self.given_deals)
        steps: list[Step] = []
        for p, raw in self.items(value, path, "steps"):
            if not isinstance(raw, dict):
                self.error(
                    p, f"a step must be a mapping such as {{advance: 1 day}}, not {_kind(raw)}"
                )
                continue
            kinds = [k for k in raw if k != "refused"]
            for key in kinds:
                if key not in STEP_KINDS:
                    self.unknown((*p, key), f"unknown step {key!r}", key, STEP_KINDS, key_pos=True)
            kinds = [k for k in kinds if k in STEP_KINDS]
            if len(kinds) != 1:
                if not any(k not in STEP_KINDS and k != "refused" for k in raw):
                    self.error(
                        p,
                        f"a step does one thing; this one has {len(kinds)} "
                        f"({', '.join(kinds) or 'none'})",
                        "write each as its own list item",
                    )
                continue
            kind = kinds[0]
            refused = raw.get("refused", False)
            if not isinstance(refused, bool):
                self.error((*p, "refused"), "refused must be true or false")
                refused = False
            if refused and kind not in REFUSABLE:
                self.error(
                    (*p, "refused"),
                    f"{kind} steps cannot be refused",
                    f"refused: true goes on {', '.join(REFUSABLE)} steps",
                )
            action = self.step(kind, raw[kind], (*p, kind), clients, deals)
            if action is not None:
                steps.append(Step(len(steps) + 1, kind, action, refused, self.source.locate(p)))
        return steps

    def step(
        self, kind: str, value: Any, path: PathKey, clients: set[str], deals: set[str]
    ) -> StepAction | None:
        assert self.regulation is not None
        calendar = self.regulation.calendar
        if kind == "event":
            return self.event(value, path, clients, deals)
        if kind == "create":
            return self.create(value, path, clients, deals)
        if kind == "update":
            return self.update(value, path, clients, deals)
        if kind in ("complete_task", "cancel_task"):
            return records.close_task(self, kind, value, path, clients, deals)
        if kind == "log_interaction":
            return records.log_interaction(self, value, path, clients, deals)
        if kind == "advance":
            try:
                return Advance(Duration.parse(value if isinstance(value, str) else str(value)))
            except ValueError as error:
                self.error(path, f"advance: {error}")
                return None
        if kind == "at":
            moment = self.moment(value, path, calendar)
            return None if moment is None else MoveClock(moment)
        if kind == "realign":
            if value not in (None, {}):
                self.error(path, "realign takes no parameters; write realign: {}")
            return Realign()
        return expect.expectation(self, value, path, clients, deals)

    def event(
        self, value: Any, path: PathKey, clients: set[str], deals: set[str]
    ) -> EmitEvent | None:
        event = self.mapping(value, path, "an event", EVENT_KEYS, ("type",))
        if event is None or "type" not in event:
            return None
        event_type = self.text(event["type"], (*path, "type"), "the event type")
        data = event.get("data") or {}
        if not isinstance(data, dict):
            self.error((*path, "data"), f"event data must be a mapping, not {_kind(data)}")
            data = {}
        assert self.regulation is not None
        builtin = BUILTIN_EVENT_DATA.get(event_type or "", frozenset())
        for key, raw in data.items():
            spec = self.regulation.fields.get(f"event.{key}")
            if spec is None and key not in builtin:
                self.unknown(
                    (*path, "data", key),
                    f"unknown event field {key!r}; declare it under `fields:` in the regulation "
                    f"as event.{key}",
                    key,
                    [s.key for s in self.regulation.fields.of("event")],
                    key_pos=True,
                )
            elif spec is not None and raw is not None:
                try:
                    coerce(spec, raw, self.regulation.calendar)
                except ValueError as error:
                    self.error((*path, "data", key), f"event field {key!r}: {error}")
        client = self.reference(event.get("client"), (*path, "client"), "client", clients)
        deal = self.reference(event.get("deal"), (*path, "deal"), "deal", deals)
        event_id = None if event.get("id") is None else str(event["id"])
        if event_type is None:
            return None
        return EmitEvent(event_type, event_id, client, deal, dict(data))

    def reference(self, value: Any, path: PathKey, what: str, known: set[str]) -> str | None:
        if value is None:
            return None
        text = str(value)
        if text not in known:
            self.unknown(path, f"unknown {what} {text!r}", text, known)
        return text

    def create(
        self, value: Any, path: PathKey, clients: set[str], deals: set[str]
    ) -> CreateRecords | None:
        create = self.mapping(value, path, "create", ("clients", "deals"))
        if create is None:
            return None
        new_clients: list[Client] = []
        for p, raw in self.items(create.get("clients"), (*path, "clients"), "clients"):
            client = self.record("client", raw, p, clients)
            if isinstance(client, Client):
                new_clients.append(client)
                clients.add(client.id)
        new_deals: list[Deal] = []
        for p, raw in self.items(create.get("deals"), (*path, "deals"), "deals"):
            deal = self.record("deal", raw, p, clients)
            if isinstance(deal, Deal):
                new_deals.append(deal)
                deals.add(deal.id)
        return CreateRecords(tuple(new_clients), tuple(new_deals))

    def update(
        self, value: Any, path: PathKey, clients: set[str], deals: set[str]
    ) -> UpdateRecord | None:
        update = self.mapping(value, path, "update", ("client", "deal", "set"), ("set",))
        if update is None:
            return None
        targets = [k for k in ("client", "deal") if k in update]
        if len(targets) != 1:
            self.error(
                path, "update names one record: {client: c1, set: {...}} or {deal: d1, set: {...}}"
            )
            return None
        namespace: Literal["client", "deal"] = "client" if targets[0] == "client" else "deal"
        record_id = self.reference(
            update[namespace],
            (*path, namespace),
            namespace,
            clients if namespace == "client" else deals,
        )
        changes = update.get("set")
        if not isinstance(changes, dict) or not changes:
            self.error((*path, "set"), "set must be a mapping of fields to new values")
            return None
        values = self.field_values(namespace, changes, (*path, "set"), creating=False)
        if values is None or record_id is None:
            return None
        if namespace == "client" and "responsible" in changes:
            self.check_manager(changes["responsible"], (*path, "set", "responsible"))
        direct, custom = values
        return UpdateRecord(namespace, record_id, {**direct, **custom})


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the text {value!r}"
    return f"the number {value}"


__all__ = [
    "MAILING_FIELDS",
    "NOTIFICATION_FIELDS",
    "SCENARIO_SUFFIXES",
    "STEP_KINDS",
    "TASK_FIELDS",
    "TIMER_FIELDS",
    "Advance",
    "CancelTask",
    "CompleteTask",
    "CreateRecords",
    "EmitEvent",
    "Expectation",
    "Given",
    "LogInteraction",
    "MoveClock",
    "Realign",
    "Scenario",
    "ScenarioFile",
    "Step",
    "UpdateRecord",
    "is_scenario_file",
    "load_scenario_file",
]
