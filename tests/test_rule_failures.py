"""A rule is the unit of failure: one that fails at run time is rolled back alone.

Every test runs on the memory store, a SQLite file and (when configured)
PostgreSQL: the memory store undoes a failed rule from its undo log, the SQL
store with a SAVEPOINT.
"""

from __future__ import annotations

import multiprocessing
import socket
import textwrap
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from crmrules import ActionPlugin, Client, Deal, Engine, Event, SimulatedClock, hookimpl
from crmrules.adapters import migrate
from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.cli import main
from crmrules.engine import ActionError, RefusedError
from crmrules.errors import StoreError
from crmrules.store import FailureStatus, Store
from databases import POSTGRES, Database, database, open_database
from isolation_workers import retry_failed
from tcpproxy import TcpProxy, tcp_proxy

__all__ = ["database"]

MSK = ZoneInfo("Europe/Moscow")
START = datetime(2026, 6, 1, 10, 0, tzinfo=MSK)
#: Names of Python classes an admin must never read in a reason.
INTERNAL = ("Error", "Exception", "Traceback", "TypeError", "Undefined", "jinja")

HEADER = """\
version: 1
calendar: {timezone: Europe/Moscow}
pipelines:
  - id: sales
    stages: [{id: new}, {id: offer}, {id: won, final: true}]
"""

RULES = """\
rules:
  - id: premium
    on: deal.stage_changed
    priority: 10
    then:
      - create_task: {title: "Подготовить КП"}
      - create_task: {title: "Сумма с наценкой {{ deal.amount * 2 }}"}
  - id: notify-offer
    on: deal.stage_changed
    then: [{create_task: {title: "Сделка {{ deal.id }} на этапе {{ deal.stage }}"}}]
"""


class Recorder:
    """Keeps what the action_failed hook was told."""

    def __init__(self) -> None:
        self.failed: list[tuple[str, str, str]] = []

    @hookimpl
    def action_failed(
        self, action: str, rule: str, event: Event, error: BaseException, reason: str
    ) -> None:
        self.failed.append((rule, action, reason))


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A way to open the same store again (a second engine, after a fix)."""
    if request.param == "memory":
        memory = MemoryStore()
        yield lambda: memory
        return
    opened: list[SQLAlchemyStore] = []
    with open_database(request.param, tmp_path) as db:

        def open_sql() -> Store:
            opened.append(SQLAlchemyStore(db.url, schema=db.schema))
            return opened[-1]

        yield open_sql
        for store in opened:
            store.close()


def make(
    tmp_path: Path, store: Store, rules: str = RULES, plugins: tuple[object, ...] = ()
) -> Engine:
    path = tmp_path / "regulation.yaml"
    path.write_text(HEADER + textwrap.dedent(rules), encoding="utf-8")
    return Engine.from_path(
        path, store=store, clock=SimulatedClock(START), plugins=plugins, entry_points=False
    )


def setup_deal(engine: Engine) -> None:
    engine.create_client(Client(id="c1", name="ООО Ромашка"))
    engine.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="new"))


def test_a_failing_rule_is_rolled_back_alone_and_the_host_change_commits(
    tmp_path: Path, store_factory: Any
) -> None:
    recorder = Recorder()
    engine = make(tmp_path, store_factory(), plugins=(recorder,))
    setup_deal(engine)

    result = engine.move_stage("d1", "offer", event_id="move-1")

    deal = engine.get_deal("d1")
    assert deal is not None and deal.stage == "offer"  # the host's change
    assert [t.title for t in engine.tasks()] == ["Сделка d1 на этапе offer"]  # the other rule
    assert result.failed == ["premium"]
    assert "notify-offer" in result.fired
    (outcome,) = [o for o in result.outcomes if o.status == "failed"]
    assert outcome.reason.startswith("action 2 (create_task): ")
    assert "empty" in outcome.reason
    assert not any(word in outcome.reason for word in INTERNAL), outcome.reason
    assert any("premium" in error for error in result.errors)
    assert "! premium: failed: action 2 (create_task)" in result.explain()
    assert recorder.failed == [("premium", "create_task", outcome.reason)]
    with engine.store.transaction() as tx:
        kinds = [(e.kind, e.rule) for e in tx.audit_log(event_id=outcome.event_id)]
    assert ("failed", "premium") in kinds
    assert ("fired", "premium") not in kinds

    (failure,) = engine.failures()
    assert (failure.rule, failure.action, failure.action_index) == ("premium", "create_task", 1)
    assert failure.reason == outcome.reason
    assert failure.status is FailureStatus.FAILED

    # Fix the data, run the failed rule again: both its tasks appear, once.
    engine.update_deal("d1", {"amount": Decimal("1000")}, event_id="amount-1")
    (retried,) = engine.retry_failed()
    assert retried.fired == ["premium"]
    again = make(tmp_path, store_factory())  # another engine on the same store
    assert again.retry_failed() == []
    assert sorted(t.title for t in again.tasks()) == [
        "Подготовить КП",
        "Сделка d1 на этапе offer",
        "Сумма с наценкой 2000",
    ]
    (resolved,) = again.failures(status=FailureStatus.RESOLVED)
    assert resolved.key == failure.key
    assert again.failures() == [resolved]
    assert again.failures(status=FailureStatus.FAILED) == []


def test_a_rule_failing_again_on_retry_stays_listed_with_one_more_attempt(
    tmp_path: Path, store_factory: Any
) -> None:
    engine = make(tmp_path, store_factory())
    setup_deal(engine)
    engine.move_stage("d1", "offer", event_id="move-1")
    (result,) = engine.retry_failed()
    assert result.failed == ["premium"]
    (failure,) = engine.failures(status=FailureStatus.FAILED)
    assert failure.attempts == 2
    assert [t.title for t in engine.tasks()] == ["Сделка d1 на этапе offer"]


def test_on_error_refuse_refuses_the_whole_call_with_the_reason(
    tmp_path: Path, store_factory: Any
) -> None:
    rules = RULES.replace("    priority: 10\n", "    priority: 10\n    on_error: refuse\n")
    engine = make(tmp_path, store_factory(), rules)
    setup_deal(engine)
    with pytest.raises(RefusedError) as refused:
        engine.move_stage("d1", "offer", event_id="move-1")
    assert isinstance(refused.value, ActionError)
    assert "rule premium" in refused.value.reason
    assert "action 2 (create_task)" in refused.value.reason
    assert not any(word in refused.value.reason for word in INTERNAL)
    deal = engine.get_deal("d1")
    assert deal is not None and deal.stage == "new"
    assert engine.tasks() == []
    assert engine.failures() == []


class BoomParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Boom:
    """A plugin action with a bug in it."""

    @hookimpl
    def register_actions(self, register: Any) -> None:
        def boom(params: BoomParams, context: Any) -> None:
            context.effect("boom", "about to fail")
            raise KeyError("segment")

        register(ActionPlugin("boom", BoomParams, boom))


def test_a_plugin_action_raising_fails_its_rule_only(tmp_path: Path, store_factory: Any) -> None:
    rules = """\
    rules:
      - id: broken
        on: ping
        then: [{create_task: {title: first}}, {boom: {}}]
      - id: healthy
        on: ping
        then: [{create_task: {title: healthy}}]
    """
    engine = make(tmp_path, store_factory(), rules, plugins=(Boom(),))
    setup_deal(engine)
    result = engine.handle(Event(id="p1", type="ping", occurred_at=START, client="c1"))
    assert result.failed == ["broken"] and result.fired == ["healthy"]
    assert [e.kind for e in result.effects] == ["task_created"]
    assert [t.title for t in engine.tasks()] == ["healthy"]
    (failure,) = engine.failures()
    assert failure.reason.startswith("action 2 (boom): ")
    assert "segment" in failure.reason
    assert "KeyError" not in failure.reason


def test_crmrules_failures_lists_the_failed_rule_runs(
    tmp_path: Path, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SQLAlchemyStore(database.url, schema=database.schema)
    engine = make(tmp_path, store)
    setup_deal(engine)
    engine.move_stage("d1", "offer", event_id="move-1")
    store.close()
    args = ["failures", "--store", database.url]
    if database.schema:
        args += ["--schema", database.schema]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "premium" in out and "action 2 (create_task)" in out
    assert "1 failed rule run(s)" in out


def test_two_processes_retrying_at_once_run_the_failed_rule_once(
    tmp_path: Path, database: Database
) -> None:
    store = SQLAlchemyStore(database.url, schema=database.schema)
    engine = make(tmp_path, store)
    setup_deal(engine)
    engine.move_stage("d1", "offer", event_id="move-1")
    engine.update_deal("d1", {"amount": Decimal("10")}, event_id="amount-1")
    spawn = multiprocessing.get_context("spawn")
    go = spawn.Event()
    regulation = str(tmp_path / "regulation.yaml")
    children = [
        spawn.Process(target=retry_failed, args=(database.url, database.schema, regulation, go))
        for _ in range(2)
    ]
    for child in children:
        child.start()
    go.set()
    for child in children:
        child.join(120)
    assert [child.exitcode for child in children] == [0, 0]
    titles = sorted(t.title for t in engine.tasks())
    assert titles == ["Подготовить КП", "Сделка d1 на этапе offer", "Сумма с наценкой 20"]
    (failure,) = engine.failures()
    assert failure.status is FailureStatus.RESOLVED
    store.close()


# -- infrastructure errors: the whole call rolls back with one StoreError


class CutParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Cut:
    """An action that cuts the database connection under the running call."""

    def __init__(self, proxy: TcpProxy) -> None:
        self.proxy = proxy

    @hookimpl
    def register_actions(self, register: Any) -> None:
        def cut(params: CutParams, context: Any) -> None:
            self.proxy.drop_connections()

        register(ActionPlugin("cut", CutParams, cut))


def test_the_database_gone_mid_call_raises_one_store_error(tmp_path: Path) -> None:
    if not POSTGRES:
        pytest.skip("needs CRMRULES_TEST_POSTGRES_URL")
    url = sa.make_url(POSTGRES)
    schema = f"crmrules_cut_{socket.gethostname()[:4]}_{id(tmp_path) % 100000}"
    migrate.upgrade(POSTGRES, schema=schema)
    admin = sa.create_engine(POSTGRES.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with tcp_proxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
            proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
            rules = """\
            rules:
              - id: cutter
                on: ping
                then: [{create_task: {title: before}}, {cut: {}}, {create_task: {title: after}}]
            """
            store = SQLAlchemyStore(proxied, schema=schema)
            engine = make(tmp_path, store, rules, plugins=(Cut(proxy),))
            engine.create_client(Client(id="c1", name="ООО Ромашка"))
            with pytest.raises(StoreError) as raised:
                engine.handle(Event(id="p1", type="ping", occurred_at=START, client="c1"))
            assert "nothing of the call was written" in str(raised.value)
            assert engine.tasks() == []  # the pool reconnects; nothing was committed
            assert engine.failures() == []
            store.close()
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


# -- property: whatever rules fail, exactly the healthy ones take effect


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    plan=st.lists(
        st.tuples(st.booleans(), st.integers(min_value=0, max_value=2), st.booleans()),
        min_size=1,
        max_size=6,
    )
)
def test_exactly_the_healthy_rules_take_effect(
    tmp_path: Path, plan: list[tuple[bool, int, bool]]
) -> None:
    """Oracle: a rule's tasks exist iff none of its actions fails; the failed ones are listed.

    Each rule has up to three good actions before an optional failing one
    (a template computing with an empty field), and may set a field too.
    """
    lines = ["rules:"]
    for index, (fails, good, sets) in enumerate(plan):
        lines += [f"  - id: r{index}", "    on: ping", f"    priority: {100 - index}", "    then:"]
        if sets:
            lines.append(f"      - set_field: {{field: client.note, value: r{index}}}")
        lines += [f"      - create_task: {{title: r{index}-{n}}}" for n in range(good)]
        if fails:
            lines.append('      - create_task: {title: "{{ deal.amount * 2 }}"}')
        if not sets and not good and not fails:
            lines.append(f"      - create_task: {{title: r{index}-only}}")
    header = HEADER + "fields:\n  client.note: {type: string}\n"
    path = tmp_path / f"property-{uuid.uuid4().hex}.yaml"
    path.write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
    engine = Engine.from_path(
        path, store=MemoryStore(), clock=SimulatedClock(START), entry_points=False
    )
    setup_deal(engine)
    result = engine.handle(Event(id="p1", type="ping", occurred_at=START, deal="d1"))

    healthy = [(i, good, sets) for i, (fails, good, sets) in enumerate(plan) if not fails]
    expected_titles = sorted(
        title
        for i, good, sets in healthy
        for title in ([f"r{i}-{n}" for n in range(good)] or ([] if sets else [f"r{i}-only"]))
    )
    assert sorted(t.title for t in engine.tasks()) == expected_titles
    assert result.failed == [f"r{i}" for i, (fails, _, _) in enumerate(plan) if fails]
    assert sorted(f.rule for f in engine.failures()) == sorted(result.failed)
    setters = [i for i, good, sets in healthy if sets]
    stored = engine.get_client("c1")
    assert stored is not None
    assert stored.fields.get("note") == (f"r{setters[-1]}" if setters else None)
