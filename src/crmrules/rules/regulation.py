"""Compiling a regulation: from merged YAML/JSON to checked, ready-to-run objects.

One pass over the document collects every problem (unknown keys, wrong
types, bad references, conditions that do not fit their fields, templates
that do not compile) and raises them together, each with its file, line and
column. Nothing from the file is executed: values are data, templates are
parsed and checked in the sandbox, patterns are RE2.
"""

from __future__ import annotations

import difflib
import gc
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from crmrules.calendar import WEEKDAY_NAMES, BusinessCalendar, Duration, WorkingHours
from crmrules.destinations import PUBLIC_ONLY, Destinations
from crmrules.errors import Location, Problem, RegulationError
from crmrules.model import Manager, Pipeline, Stage
from crmrules.people import compile_absences
from crmrules.rules import schema, validation
from crmrules.rules.action_checks import Action, ActionChecks
from crmrules.rules.catalogue import Catalogue
from crmrules.rules.catalogue import parse as parse_catalogue
from crmrules.rules.conditions import ALWAYS, All, AnyOf, Condition, Leaf, Node, Scope, parse
from crmrules.rules.directions import Direction, check_manager_directions, compile_directions
from crmrules.rules.duplicates import DuplicateRules, compile_duplicates
from crmrules.rules.events import BUILTIN_EVENT_FIELDS
from crmrules.rules.fields import (
    CUSTOM_KEY,
    FieldRegistry,
    FieldSpec,
    FieldType,
    coerce,
)
from crmrules.rules.requirements import check_paths
from crmrules.rules.segments import Segment
from crmrules.rules.source import (
    Document,
    Limits,
    PathKey,
    SourceMap,
    business_rules_hint,
    load_document,
)
from crmrules.rules.template_types import check_template_types
from crmrules.rules.templates import (
    DEFAULT_LIMITS,
    CompiledTemplate,
    Kind,
    TemplateError,
    TemplateLimits,
    compile_template,
)
from crmrules.rules.triggers import Trigger, TriggerError, parse_trigger
from crmrules.rules.validation import Bad, M
from crmrules.rules.versions import LABEL_KEYS, UNVERSIONED, RegulationVersion, version_of

SECTIONS = (
    "version",
    *LABEL_KEYS,
    "fields",
    "calendar",
    "pipelines",
    "catalogue",
    "managers",
    "territories",
    "segments",
    "directions",
    "duplicates",
    "templates",
    "rules",
)
CUSTOM_NAMESPACES = ("client", "deal", "event")


# --- the compiled regulation ----------------------------------------------------------------


@dataclass(frozen=True)
class ContactPlan:
    every: Duration
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class Territory:
    id: str
    name: str | None
    parent: str | None
    priority: int
    exclusive: bool
    condition: Condition
    managers: tuple[str, ...]
    strategy: str
    contact_plan: tuple[ContactPlan, ...]
    location: Location | None


@dataclass(frozen=True)
class MailTemplate:
    id: str
    subject: CompiledTemplate | None
    text: CompiledTemplate | None
    html: CompiledTemplate | None


@dataclass(frozen=True)
class Rule:
    id: str
    description: str | None
    trigger: Trigger
    condition: Condition
    actions: tuple[Action, ...]
    priority: int
    stop: bool
    once: str
    cooldown: Duration | None
    enabled: bool
    max_lateness: Duration | None
    location: Location | None
    #: position in the merged files; breaks priority ties ("file order")
    order: int
    #: "continue": a run-time failure undoes this rule alone; "refuse": it refuses the whole call
    on_error: str = "continue"


@dataclass(frozen=True)
class Regulation:
    version: int
    fields: FieldRegistry
    calendar: BusinessCalendar
    pipelines: Mapping[str, Pipeline]
    managers: Mapping[str, Manager]
    territories: Mapping[str, Territory]
    templates: Mapping[str, MailTemplate]
    rules: tuple[Rule, ...]
    files: tuple[str, ...]
    source: SourceMap
    segments: Mapping[str, Segment] = field(default_factory=dict)
    #: which version this is (content hash and labels; see crmrules.rules.versions)
    release: RegulationVersion = UNVERSIONED
    catalogue: Catalogue = field(default_factory=Catalogue)
    directions: Mapping[str, Direction] = field(default_factory=dict)
    #: how duplicates are recognised (crmrules.rules.duplicates); None: not declared
    duplicates: DuplicateRules | None = None

    def summary(self) -> str:
        def count(n: int, word: str) -> str:
            return f"{n} {word}{'' if n == 1 else 's'}"

        custom = sum(1 for spec in self.fields if not spec.builtin)
        parts = [
            count(len(self.rules), "rule"),
            count(len(self.pipelines), "pipeline"),
            count(len(self.territories), "territory").replace("territorys", "territories"),
            count(len(self.templates), "template"),
            count(len(self.managers), "manager"),
            count(custom, "custom field"),
        ]
        return f"{count(len(self.files), 'file')}: " + ", ".join(parts)


# --- entry points ---------------------------------------------------------------------------


def load_regulation(
    *paths: str | Path,
    actions: Mapping[str, type[BaseModel]] | None = None,
    limits: Limits | None = None,
    operators: Mapping[str, Any] | None = None,
    allow_destinations: Iterable[str] = (),
    template_limits: TemplateLimits | None = None,
) -> Regulation:
    """Load, merge, check and compile a regulation; RegulationError lists every problem.

    ``allow_destinations`` admits internal webhook addresses written literally
    (see crmrules.destinations); the notifier must allow them too, at send.
    ``template_limits`` bound each template render (default: about 1 s, 64 MB).
    """
    with _collector_paused():
        document = load_document(paths, limits)
        return compile_regulation(document, actions, operators, allow_destinations, template_limits)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a regulation is built.

    Loading creates hundreds of thousands of small containers that all stay
    alive; on CPython 3.11 the collector re-scans them again and again, which
    doubles the load time of a large regulation. Reference counting still
    frees memory meanwhile, and the collector resumes (if it was on) at the end.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def compile_regulation(
    document: Document,
    actions: Mapping[str, type[BaseModel]] | None = None,
    operators: Mapping[str, Any] | None = None,
    allow_destinations: Iterable[str] = (),
    template_limits: TemplateLimits | None = None,
) -> Regulation:
    """Check and compile a loaded document; ``actions`` and ``operators`` include plugins'."""
    compiler = _Compiler(document, actions or schema.BUILTIN_ACTIONS, operators or {})
    compiler.destinations = Destinations.allowing(allow_destinations)
    compiler.template_limits = template_limits or DEFAULT_LIMITS
    regulation = compiler.run()
    if compiler.problems or regulation is None:
        raise RegulationError(compiler.problems)
    return regulation


# --- the compiler ---------------------------------------------------------------------------


class _Compiler:
    def __init__(
        self,
        document: Document,
        actions: Mapping[str, type[BaseModel]],
        operators: Mapping[str, Any],
    ) -> None:
        self.document = document
        self.operators = operators
        self.source = document.source
        self.actions = actions
        self.problems: list[Problem] = []
        self.registry = FieldRegistry()
        self.calendar = BusinessCalendar()
        self.template_cache: dict[tuple[str, str], CompiledTemplate] = {}
        self.destinations = PUBLIC_ONLY
        self.template_limits = DEFAULT_LIMITS
        self.type_problems: dict[str, TemplateError | None] = {}
        self.pipelines: dict[str, Pipeline] = {}
        self.managers: dict[str, Manager] = {}
        self.manager_ids_known = False
        self.manager_directions: list[tuple[PathKey, list[str]]] = []
        self.territory_specs: dict[str, schema.TerritorySpec] = {}
        #: the segments rules may name; empty while segments' own conditions are parsed
        self.segment_ids: dict[str, PathKey] = {}
        self.descendants: dict[str, frozenset[str]] = {}
        self.templates: dict[str, MailTemplate] = {}
        self.rule_ids: dict[str, PathKey] = {}
        self.deferred: list[Callable[[], None]] = []
        self.action_checks = ActionChecks(self)

    # -- reporting

    def error(
        self, path: PathKey, message: str, hint: str | None = None, *, key: bool = False
    ) -> None:
        self.problems.append(Problem(message, self.source.locate(path, key=key), hint))

    def validate(self, model: type[M], data: Any, path: PathKey) -> M | None:
        return validation.validate(model, data, path, self.error)

    def validate_all(self, model: type[M], data: Any, path: PathKey) -> tuple[M, Bad] | None:
        return validation.validate_all(model, data, path, self.error)

    # -- the pass

    def run(self) -> Regulation | None:
        data = self.document.data
        if not isinstance(data, dict):
            self.error((), "a regulation must be a mapping of sections (version, rules, ...)")
            return None
        foreign = business_rules_hint(data)
        for key in data:
            if key not in SECTIONS:
                close = difflib.get_close_matches(str(key), SECTIONS, n=1)
                self.error(
                    (key,),
                    f"unknown section {key!r}",
                    foreign
                    or (
                        f"did you mean {close[0]}?" if close else f"sections: {', '.join(SECTIONS)}"
                    ),
                    key=True,
                )
        version = data.get("version")
        if version is None:
            self.problems.append(
                Problem(
                    "the regulation has no version",
                    Location(self.document.files[0], 1, 1) if self.document.files else None,
                    "add 'version: 1' at the top of one file",
                )
            )
        elif version != 1:
            self.error(("version",), f"unsupported version {version!r}", "this is version 1")
        self._fields(data.get("fields"))
        self._calendar(data.get("calendar"))
        self._pipelines(_as_list(self, data, "pipelines"))
        catalogue = parse_catalogue(self, data.get("catalogue"))
        self._managers(_as_list(self, data, "managers"))
        territories = self._territory_specs(_as_list(self, data, "territories"))
        self._templates(data.get("templates"))
        rule_specs = self._rule_specs(_as_list(self, data, "rules"))
        compiled_territories = self._territories(territories)
        segments = self._segments(_as_list(self, data, "segments"))
        directions = compile_directions(self, _as_list(self, data, "directions"))
        check_manager_directions(self, directions, self.manager_directions)
        rules = self._rules(rule_specs)
        release = version_of(data, self.error)
        duplicates = compile_duplicates(self, data.get("duplicates"))
        for check in self.deferred:
            check()
        if self.problems:
            return None
        return Regulation(
            version=1,
            fields=self.registry,
            calendar=self.calendar,
            pipelines=self.pipelines,
            managers=self.managers,
            territories=compiled_territories,
            templates=self.templates,
            rules=tuple(rules),
            files=tuple(self.document.files),
            source=self.source,
            segments=segments,
            release=release or UNVERSIONED,
            catalogue=catalogue,
            directions=directions,
            duplicates=duplicates,
        )

    # -- fields

    def _fields(self, raw: Any) -> None:
        if raw is None:
            return
        if not isinstance(raw, dict):
            self.error(("fields",), "fields must be a mapping of field paths to declarations")
            return
        custom: list[FieldSpec] = []
        for path_text, decl_raw in raw.items():
            path: PathKey = ("fields", path_text)
            namespace, _, key = path_text.partition(".")
            if namespace not in CUSTOM_NAMESPACES or not CUSTOM_KEY.fullmatch(key):
                self.error(
                    path,
                    f"{path_text!r} is not a field path",
                    "write client.<name>, deal.<name> or event.<name> (letters, digits, _)",
                    key=True,
                )
                continue
            if path_text in self.registry and path_text not in BUILTIN_EVENT_FIELDS:
                self.error(path, f"{path_text} is a built-in field", "pick another name", key=True)
                continue
            decl = self.validate(schema.FieldDecl, decl_raw, path)
            if decl is None:
                continue
            kind = FieldType(decl.type)
            values = tuple(decl.values or ())
            if kind is FieldType.ENUM and not values:
                self.error(path, f"enum field {path_text} needs values: [...]")
                continue
            if kind is not FieldType.ENUM and decl.values is not None:
                self.error((*path, "values"), "values apply to enum fields only", key=True)
                continue
            spec = FieldSpec(path_text, kind, values)
            default = decl.default
            if default is not None:
                try:
                    default = coerce(spec, default, self.calendar)
                except ValueError as error:
                    self.error((*path, "default"), f"default: {error}")
                    continue
            custom.append(FieldSpec(path_text, kind, values, default))
        self.registry = FieldRegistry(custom)

    # -- calendar

    def _calendar(self, raw: Any) -> None:
        if raw is None:
            return
        spec = self.validate(schema.CalendarSpec, raw, ("calendar",))
        if spec is None:
            return
        weekend: list[int] = []
        for index, name in enumerate(spec.weekend):
            day = WEEKDAY_NAMES.get(name.lower())
            if day is None:
                close = difflib.get_close_matches(name.lower(), list(WEEKDAY_NAMES), n=1)
                self.error(
                    ("calendar", "weekend", index),
                    f"{name!r} is not a day of the week",
                    f"did you mean {close[0]}?" if close else "write mon, tue, ... sun",
                )
                return
            weekend.append(day)
        hours = None
        if spec.working_hours is not None:
            try:
                hours = WorkingHours.parse(spec.working_hours)
            except ValueError as error:
                self.error(("calendar", "working_hours"), str(error))
                return
        try:
            self.calendar = BusinessCalendar(
                spec.timezone,
                country=spec.country,
                subdivision=spec.subdivision,
                weekend=weekend,
                holidays=spec.holidays,
                workdays=spec.workdays,
                working_hours=hours,
                short_pre_holidays=spec.short_pre_holidays,
            )
        except ValueError as error:
            text = str(error)
            key = "country" if "countr" in text else "timezone" if "zone" in text else None
            self.error(("calendar", key) if key and key in raw else ("calendar",), text)

    # -- pipelines

    def _pipelines(self, items: list[Any]) -> None:
        seen: dict[str, PathKey] = {}
        for index, raw in enumerate(items):
            path: PathKey = ("pipelines", index)
            spec = self.validate(schema.PipelineSpec, raw, path)
            if spec is None or not self._unique(seen, spec.id, path, "pipeline"):
                continue
            stages: list[Stage] = []
            stage_seen: dict[str, PathKey] = {}
            for s_index, stage in enumerate(spec.stages):
                s_path = (*path, "stages", s_index)
                if not self._unique(stage_seen, stage.id, s_path, "stage"):
                    continue
                deadline = self._duration(stage.deadline, (*s_path, "deadline"))
                if stage.won and not stage.final:
                    self.error((*s_path, "won"), "a won stage must be final", "add final: true")
                requires = check_paths(
                    self.registry, stage.requires, (*s_path, "requires"), self.error
                )
                stages.append(
                    Stage(
                        id=stage.id,
                        name=stage.name,
                        deadline=deadline,
                        final=stage.final,
                        won=stage.won,
                        requires=requires,
                    )
                )
            transitions: dict[str, tuple[str, ...]] = {}
            for t_index, transition in enumerate(spec.transitions):
                t_path = (*path, "transitions", t_index)
                targets = [transition.to] if isinstance(transition.to, str) else transition.to
                names = [("from", transition.from_, ("from",))] + [
                    ("to", target, ("to",) if isinstance(transition.to, str) else ("to", i))
                    for i, target in enumerate(targets)
                ]
                for _, stage_id, sub in names:
                    if stage_id not in stage_seen:
                        self._unknown((*t_path, *sub), "stage", stage_id, stage_seen)
                if transition.from_ in transitions:
                    self.error(
                        (*t_path, "from"),
                        f"transitions from {transition.from_!r} are listed twice",
                        "merge them into one entry",
                    )
                transitions[transition.from_] = tuple(targets)
            self.pipelines[spec.id] = Pipeline(
                id=spec.id, name=spec.name, stages=tuple(stages), transitions=transitions
            )

    # -- managers

    def _managers(self, items: list[Any]) -> None:
        seen: dict[str, PathKey] = {}
        self.manager_ids_known = bool(items)
        for index, raw in enumerate(items):
            path: PathKey = ("managers", index)
            spec = self.validate(schema.ManagerSpec, raw, path)
            if spec is None or not self._unique(seen, spec.id, path, "manager"):
                continue
            if spec.working_hours is not None:
                try:
                    WorkingHours.parse(spec.working_hours)
                except ValueError as error:
                    self.error((*path, "working_hours"), str(error))
            self.managers[spec.id] = Manager(
                id=spec.id,
                name=spec.name or spec.id,
                email=spec.email,
                skills=frozenset(spec.skills),
                capacity=spec.capacity,
                working_hours=spec.working_hours,
                territories=frozenset(spec.territories),
                active=spec.active,
                directions=frozenset(spec.directions),
                absent=compile_absences(spec.absent, (*path, "absent"), self.error),
            )
            self.manager_directions.append((path, spec.directions))
            for a_index, absence in enumerate(spec.absent):
                if absence.deputy is not None:
                    d_path = (*path, "absent", a_index, "deputy")
                    if absence.deputy == spec.id:
                        self.error(d_path, f"manager {spec.id} cannot be their own deputy")
                    self.deferred.append(partial(self._check_manager, absence.deputy, d_path))
            for t_index, territory in enumerate(spec.territories):
                t_path = (*path, "territories", t_index)
                self.deferred.append(partial(self._check_territory, territory, t_path))

    # -- territories

    def _territory_specs(self, items: list[Any]) -> list[tuple[PathKey, schema.TerritorySpec]]:
        found: list[tuple[PathKey, schema.TerritorySpec]] = []
        seen: dict[str, PathKey] = {}
        for index, raw in enumerate(items):
            path: PathKey = ("territories", index)
            checked = self.validate_all(schema.TerritorySpec, raw, path)
            if checked is None:
                continue
            spec, bad = checked
            # One with problems is still compiled (its condition and plans are
            # checked), but only a good, unique id becomes a territory to refer to.
            if "id" not in bad and self._unique(seen, spec.id, path, "territory"):
                self.territory_specs[spec.id] = spec
            found.append((path, spec))
        # Parents must exist and must not loop.
        for path, spec in found:
            if spec.parent is not None and spec.parent not in self.territory_specs:
                self._unknown((*path, "parent"), "territory", spec.parent, self.territory_specs)
        for path, spec in found:
            chain = [spec.id]
            parent = spec.parent
            while parent is not None and parent in self.territory_specs:
                if parent in chain:
                    loop = " → ".join([*chain[chain.index(parent) :], parent])
                    self.error((*path, "parent"), f"territory parents form a cycle: {loop}")
                    break
                chain.append(parent)
                parent = self.territory_specs[parent].parent
        children: dict[str, list[str]] = {}
        for spec in self.territory_specs.values():
            if spec.parent:
                children.setdefault(spec.parent, []).append(spec.id)
        for territory_id in self.territory_specs:
            below: set[str] = set()
            todo = [territory_id]
            while todo:
                current = todo.pop()
                if current not in below:
                    below.add(current)
                    todo.extend(children.get(current, ()))
            self.descendants[territory_id] = frozenset(below)
        return found

    def _territories(
        self, specs: list[tuple[PathKey, schema.TerritorySpec]]
    ) -> dict[str, Territory]:
        compiled: dict[str, Territory] = {}
        for path, spec in specs:
            condition = ALWAYS if spec.when is None else self._condition(spec.when, (*path, "when"))
            if condition is not None:
                self._client_only(condition, (*path, "when"))
            for m_index, manager in enumerate(spec.managers):
                self._check_manager(manager, (*path, "managers", m_index))
            plans: list[ContactPlan] = []
            for p_index, plan in enumerate(spec.contact_plan):
                p_path = (*path, "contact_plan", p_index)
                every = self._duration(plan.every, (*p_path, "every"))
                if every is not None and every.is_zero:
                    self.error((*p_path, "every"), "every: the period must be longer than zero")
                actions = self.action_checks.actions(plan.then, (*p_path, "then"))
                if every is not None:
                    plans.append(ContactPlan(every, actions))
            if condition is None:
                continue
            compiled[spec.id] = Territory(
                id=spec.id,
                name=spec.name,
                parent=spec.parent,
                priority=spec.priority,
                exclusive=spec.exclusive,
                condition=Condition(condition, self.calendar),
                managers=tuple(spec.managers),
                strategy=spec.strategy,
                contact_plan=tuple(plans),
                location=self.source.locate(path),
            )
        return compiled

    def _segments(self, items: list[Any]) -> dict[str, Segment]:
        """Segments: a name and a condition on the client (which cannot name a segment)."""
        compiled: dict[str, Segment] = {}
        seen: dict[str, PathKey] = {}
        for index, raw in enumerate(items):
            path: PathKey = ("segments", index)
            spec = self.validate(schema.SegmentSpec, raw, path)
            if spec is None or not self._unique(seen, spec.id, path, "segment"):
                continue
            condition = ALWAYS if spec.when is None else self._condition(spec.when, (*path, "when"))
            if condition is None:
                continue
            self._client_only(condition, (*path, "when"), "segment")
            compiled[spec.id] = Segment(
                spec.id, spec.name, Condition(condition, self.calendar), self.source.locate(path)
            )
        self.segment_ids.update(seen)
        return compiled

    def _client_only(self, node: Node, path: PathKey, what: str = "territory") -> None:
        for leaf in _leaves(node):
            if leaf.field.namespace != "client":
                where = [leaf.location] if leaf.location else []
                self.problems.append(
                    Problem(
                        f"a {what} condition reads client fields only, not {leaf.field.path}",
                        where[0] if where else self.source.locate(path),
                    )
                )

    # -- templates

    def _templates(self, raw: Any) -> None:
        if raw is None:
            return
        if not isinstance(raw, dict):
            self.error(("templates",), "templates must be a mapping of template ids")
            return
        for template_id, body in raw.items():
            path: PathKey = ("templates", template_id)
            if not re.fullmatch(r"[^\W_]([\w.\-]{0,98}[\w])?", template_id):
                self.error(path, f"invalid template id {template_id!r}", key=True)
                continue
            spec = self.validate(schema.TemplateSpec, body, path)
            if spec is None:
                continue
            if spec.text is None and spec.html is None:
                self.error(path, f"template {template_id} has no text or html body")
                continue
            self.templates[template_id] = MailTemplate(
                template_id,
                self._optional_template(spec.subject, "subject", (*path, "subject")),
                self._optional_template(spec.text, "text", (*path, "text")),
                self._optional_template(spec.html, "html", (*path, "html")),
            )

    def _optional_template(
        self, text: str | None, kind: Kind, path: PathKey
    ) -> CompiledTemplate | None:
        return None if text is None else self._template(text, kind, path)

    def _template(self, text: str, kind: Kind, path: PathKey) -> CompiledTemplate | None:
        try:
            compiled = compile_template(
                text,
                kind,
                self.registry.__contains__,
                limits=self.template_limits,
                known_fields=[spec.path for spec in self.registry],
                cache=self.template_cache,
            )
            self._check_types(text)
            return compiled
        except TemplateError as error:
            where = self.source.line_in(path, error.line or 1)
            self.problems.append(Problem(error.message, where, error.hint))
            return None

    def _check_types(self, text: str) -> None:
        """Raise the TemplateError of an operation the field types make fail; each text once."""
        if text not in self.type_problems:
            try:
                check_template_types(text, self._field_type)
                self.type_problems[text] = None
            except TemplateError as problem:
                self.type_problems[text] = problem
        found = self.type_problems[text]
        if found is not None:
            raise found

    def _field_type(self, path: str) -> FieldType | None:
        spec = self.registry.get(path)
        return None if spec is None else spec.type

    # -- rules

    def _rule_specs(self, items: list[Any]) -> list[tuple[PathKey, schema.RuleSpec, Bad]]:
        """Every rule, also one with problems: its other parts are still checked."""
        found: list[tuple[PathKey, schema.RuleSpec, Bad]] = []
        for index, raw in enumerate(items):
            path: PathKey = ("rules", index)
            checked = self.validate_all(schema.RuleSpec, raw, path)
            if checked is None:
                continue
            spec, bad = checked
            if "id" not in bad and not self._unique(self.rule_ids, spec.id, path, "rule"):
                bad |= {"id"}
            found.append((path, spec, bad))
        return found

    def _rules(self, specs: list[tuple[PathKey, schema.RuleSpec, Bad]]) -> list[Rule]:
        rules: list[Rule] = []
        for order, (path, spec, bad) in enumerate(specs):
            trigger = None if "on" in bad else self._trigger(spec.on, (*path, "on"))
            condition = ALWAYS if spec.if_ is None else self._condition(spec.if_, (*path, "if"))
            actions = (
                () if "then" in bad else self.action_checks.actions(spec.then, (*path, "then"))
            )
            cooldown = self._duration(spec.cooldown, (*path, "cooldown"))
            lateness = self._duration(spec.max_lateness, (*path, "max_lateness"))
            if trigger is None or condition is None or bad:
                continue
            if spec.max_lateness is not None and trigger.kind == "event":
                self.error(
                    (*path, "max_lateness"),
                    "max_lateness applies to time triggers only",
                    key=True,
                )
            rules.append(
                Rule(
                    id=spec.id,
                    description=spec.description,
                    trigger=trigger,
                    condition=Condition(condition, self.calendar),
                    actions=actions,
                    priority=spec.priority,
                    stop=spec.stop,
                    once=spec.once,
                    cooldown=cooldown,
                    enabled=spec.enabled,
                    max_lateness=lateness,
                    location=self.source.locate(path),
                    order=order,
                    on_error=spec.on_error,
                )
            )
        return rules

    def _trigger(self, raw: Any, path: PathKey) -> Trigger | None:
        try:
            return parse_trigger(raw, self.registry)
        except TriggerError as error:
            sub = (*path, error.key) if error.key is not None else path
            self.error(sub, str(error), key=error.at_key)
            return None

    def _condition(self, raw: Any, path: PathKey) -> Node | None:
        scope = Scope(
            self.registry,
            self.calendar,
            self.source,
            self.problems,
            self.descendants,
            self.operators,
            frozenset(self.segment_ids),
        )
        return parse(raw, path, scope)

    # -- shared checks

    def _duration(self, text: str | None, path: PathKey) -> Duration | None:
        if text is None:
            return None
        try:
            return Duration.parse(text)
        except ValueError as error:
            self.error(path, str(error))
            return None

    def _unique(self, seen: dict[str, PathKey], item_id: str, path: PathKey, what: str) -> bool:
        if item_id in seen:
            first = self.source.locate((*seen[item_id], "id"))
            self.error((*path, "id"), f"{what} id {item_id!r} is defined twice (first at {first})")
            return False
        seen[item_id] = path
        return True

    def _unknown(self, path: PathKey, what: str, name: str, known: Iterable[str]) -> None:
        close = difflib.get_close_matches(name, list(known), n=1)
        plural = "territories" if what == "territory" else f"{what}s"
        self.error(
            path,
            f"unknown {what} {name!r}",
            f"did you mean {close[0]}?" if close else f"no {what} with that id in {plural}",
        )

    def _check_manager(self, manager: str, path: PathKey) -> None:
        if self.manager_ids_known and manager not in self.managers:
            self._unknown(path, "manager", manager, self.managers)

    def _check_territory(self, territory: str, path: PathKey) -> None:
        if territory not in self.territory_specs:
            self._unknown(path, "territory", territory, self.territory_specs)

    def _check_rule(self, rule: str, path: PathKey) -> None:
        if rule not in self.rule_ids:
            self._unknown(path, "rule", rule, self.rule_ids)


# --- helpers --------------------------------------------------------------------------------


def _as_list(compiler: _Compiler, data: dict[str, Any], section: str) -> list[Any]:
    value = data.get(section)
    if value is None:
        return []
    if not isinstance(value, list):
        compiler.error((section,), f"{section} must be a list")
        return []
    return value


def _leaves(node: Node) -> list[Leaf]:
    if isinstance(node, Leaf):
        return [node]
    if isinstance(node, All | AnyOf):
        return [leaf for item in node.items for leaf in _leaves(item)]
    return []  # normalised trees have no Not; a Const has no leaves


__all__ = [
    "Action",
    "ContactPlan",
    "MailTemplate",
    "Regulation",
    "Rule",
    "Territory",
    "compile_regulation",
    "load_regulation",
]
