"""Every plugin hook, exercised through a real Engine (docs/plugins.md lists them)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel, ConfigDict

from crmrules import Client, Event, RegulationError, SimulatedClock
from crmrules.adapters.memory import MemoryStore
from crmrules.engine import Engine
from crmrules.plugins import ActionPlugin, Hookspecs, OperatorPlugin, PluginManager, hookimpl
from crmrules.result import Effect, Result
from crmrules.rules.fields import FieldType
from crmrules.store import OutboxMessage

MSK = ZoneInfo("Europe/Moscow")
START = datetime(2026, 3, 2, 10, 0, tzinfo=MSK)
DOCS = Path(__file__).parent.parent / "docs" / "plugins.md"


class CreateLead(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    score: int = 0


def _valid_inn(raw: Any) -> bool:
    if raw is not True:
        raise ValueError("valid_inn takes true")
    return True


def _inn_checksum_ok(value: Any, _: Any) -> bool:
    digits = str(value)
    if len(digits) != 10 or not digits.isdigit():
        return False
    weights = (2, 4, 10, 3, 5, 9, 4, 6, 8)
    check = sum(int(d) * w for d, w in zip(digits, weights, strict=False)) % 11 % 10
    return check == int(digits[9])


class Recorder:
    """A plugin that implements every hook and records what it saw."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.sent: list[OutboxMessage] = []

    @hookimpl
    def register_actions(self, register: Any) -> None:
        def create_lead(params: CreateLead, context: Any) -> None:
            client, _ = context.subjects()
            context.effect("lead_created", f"lead from {params.source} ({params.score})")
            self.seen.append(f"lead for {client.id}")

        register(ActionPlugin("create_lead", CreateLead, create_lead))

    @hookimpl
    def register_operators(self, register: Any) -> None:
        register(
            OperatorPlugin(
                "valid_inn",
                frozenset({FieldType.STRING}),
                _inn_checksum_ok,
                _valid_inn,
                {"const": True, "description": "the INN's check digit is right"},
            )
        )

    @hookimpl
    def register_notifiers(self, register: Any) -> None:
        recorder = self

        class Pager:
            name = "pager"

            def send(self, message: OutboxMessage) -> None:
                recorder.sent.append(message)

        register(Pager())

    @hookimpl
    def register_stores(self, register: Any) -> None:
        def open_test_store(url: str) -> MemoryStore:
            self.seen.append(f"store {url}")
            return MemoryStore()

        register("test", open_test_store)

    @hookimpl(wrapper=True)
    def handle_event(self, event: Event, handle: Any) -> Any:
        self.seen.append(f"before {event.id}")
        result: Result = yield
        self.seen.append(f"after {event.id}: {result.fired}")
        return result

    @hookimpl
    def after_action(self, action: str, rule: str, event: Event, effects: list[Effect]) -> None:
        self.seen.append(f"{rule}/{action}: {[e.kind for e in effects]}")

    @hookimpl
    def action_failed(self, action: str, rule: str, event: Event, error: BaseException) -> None:
        self.seen.append(f"failed {rule}/{action}")


REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow}
fields:
  client.inn: {type: string}
managers:
  - {id: ivanov, email: ivanov@example.ru}
rules:
  - id: lead
    on: web.form
    if: {field: client.inn, valid_inn: true}
    then:
      - create_lead: {source: сайт, score: 5}
      - notify: {to: ivanov, message: "Лид {{ client.name }}", channel: pager}
"""


def make(tmp_path: Path, plugin: Recorder, text: str = REGULATION) -> Engine:
    path = tmp_path / "regulation.yaml"
    path.write_text(text, encoding="utf-8")
    return Engine.from_path(
        path,
        store="test://one",
        clock=SimulatedClock(START),
        plugins=[plugin],
        entry_points=False,
    )


def test_every_hook_runs_through_the_engine(tmp_path: Path) -> None:
    plugin = Recorder()
    engine = make(tmp_path, plugin)
    assert plugin.seen == ["store test://one"]
    engine.create_client(Client(id="c1", name="ООО Ромашка", fields={"inn": "7707083893"}))
    engine.create_client(Client(id="c2", name="ООО Лютик", fields={"inn": "7707083890"}))
    plugin.seen.clear()
    good = engine.handle(Event(id="f1", type="web.form", occurred_at=START, client="c1"))
    bad = engine.handle(Event(id="f2", type="web.form", occurred_at=START, client="c2"))
    assert good.fired == ["lead"] and bad.fired == []
    assert bad.outcomes[0].reason == "client.inn valid_inn true: actual 7707083890 → false"
    assert plugin.seen == [
        "before f1",
        "lead for c1",
        "lead/create_lead: ['lead_created']",
        "lead/notify: ['notification_queued']",
        "after f1: ['lead']",
        "before f2",
        "after f2: []",
    ]
    report = engine.deliver()
    assert report.sent == 1
    assert [(m.channel, m.to, m.text) for m in plugin.sent] == [
        ("pager", "ivanov@example.ru", "Лид ООО Ромашка")
    ]


def test_plugin_action_parameters_are_validated_like_built_in_ones(tmp_path: Path) -> None:
    text = REGULATION.replace("create_lead: {source: сайт, score: 5}", "create_lead: {scor: 5}")
    with pytest.raises(RegulationError) as caught:
        make(tmp_path, Recorder(), text)
    assert [str(p).split(":", 1)[1] for p in caught.value.problems] == [
        "12:22: missing required key 'source'",
        "12:23: unknown key 'scor' (did you mean score?)",
    ]


def test_plugin_operators_are_checked_against_field_types(tmp_path: Path) -> None:
    text = REGULATION.replace("client.inn, valid_inn: true", "client.created_at, valid_inn: true")
    with pytest.raises(RegulationError) as caught:
        make(tmp_path, Recorder(), text)
    (problem,) = caught.value.problems
    assert str(problem).split(":", 1)[1] == (
        "10:36: operator 'valid_inn' does not fit client.created_at, which is datetime "
        "(valid_inn works on string)"
    )


def test_plugin_actions_and_operators_are_in_the_schema() -> None:
    from crmrules.rules.schema import json_schema

    plugins = PluginManager([Recorder()], entry_points=False)
    schema = json_schema(plugins.action_models(), plugins.operator_schemas())
    assert "CreateLead" in schema["$defs"]
    variants = schema["$defs"]["Action"]["anyOf"]
    assert any("create_lead" in v["properties"] for v in variants)
    leaf = schema["$defs"]["Condition"]["anyOf"][0]["properties"]
    assert leaf["valid_inn"]["const"] is True


def test_an_unknown_store_scheme_is_a_clear_error(tmp_path: Path) -> None:
    from crmrules.errors import CrmRulesError

    with pytest.raises(
        CrmRulesError,
        match=r"no store for nosuch:// URLs \(known: memory, sqlite, postgresql, test\)",
    ):
        make(tmp_path, Recorder()).__class__.from_path(
            tmp_path / "regulation.yaml",
            store="nosuch://x",
            plugins=[Recorder()],
            entry_points=False,
        )


def test_each_engine_has_its_own_plugin_manager(tmp_path: Path) -> None:
    first, second = Recorder(), Recorder()
    one, two = make(tmp_path, first), make(tmp_path, second)
    one.create_client(Client(id="c1", fields={"inn": "7707083893"}))
    one.handle(Event(id="f1", type="web.form", occurred_at=START, client="c1"))
    assert any(s.startswith("before f1") for s in first.seen)
    assert not any(s.startswith("before") for s in second.seen)
    assert one.plugins is not two.plugins


def test_every_hook_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    hooks = [name for name in vars(Hookspecs) if not name.startswith("_")]
    assert hooks
    for name in hooks:
        assert f"### `{name}`" in text, name


def test_entry_point_plugins_reach_validate_and_schema(tmp_path: Path) -> None:
    """A plugin installed as a distribution is found through the crmrules entry point group."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "inn_plugin.py").write_text(
        textwrap.dedent(
            """
            from crmrules.plugins import OperatorPlugin, hookimpl
            from crmrules.rules.fields import FieldType

            @hookimpl
            def register_operators(register):
                register(OperatorPlugin("valid_inn", frozenset({FieldType.STRING}),
                                        lambda value, operand: len(str(value)) == 10))
            """
        ),
        encoding="utf-8",
    )
    dist = site / "inn_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: inn-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[crmrules]\ninn = inn_plugin\n")
    regulation = tmp_path / "regulation.yaml"
    regulation.write_text(
        "version: 1\nfields:\n  client.inn: {type: string}\nrules:\n"
        "  - {id: r, on: x.y, if: {field: client.inn, valid_inn: true}, "
        "then: [{create_task: {title: t}}]}\n",
        encoding="utf-8",
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    validate = subprocess.run(
        [sys.executable, "-m", "crmrules", "validate", str(regulation)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert validate.returncode == 0, validate.stderr
    schema = subprocess.run(
        [sys.executable, "-m", "crmrules", "schema"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    leaf = json.loads(schema.stdout)["$defs"]["Condition"]["anyOf"][0]["properties"]
    assert "valid_inn" in leaf


class _Listener:
    def __init__(self) -> None:
        self.heard: list[str] = []

    @hookimpl
    def after_action(self, action: str, rule: str, event: Event, effects: list[Effect]) -> None:
        self.heard.append(f"{rule}/{action}")


def test_after_action_is_heard_by_a_plugin_registered_late_and_skipped_with_none() -> None:
    manager = PluginManager(entry_points=False)
    event = Event(id="e1", type="visit", occurred_at=START)
    manager.after_action("notify", "r1", event, [])  # no one listens: nothing called
    late = _Listener()
    manager.pluggy.register(late)
    manager.after_action("notify", "r1", event, [])
    assert late.heard == ["r1/notify"]
