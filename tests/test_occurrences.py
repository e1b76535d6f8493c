"""Schedules fired over the client base as a set: same tasks as client by client, each once.

The oracle is the plain per-client semantics: a client gets the rule's task
at an occurrence when the rule's condition, evaluated in Python on that
client at the occurrence's moment, is true. The set-based firing (SQL picks
the candidates, chunks of id ranges in their own transactions, in any
order, some fired twice) must give exactly those tasks, once each.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmrules import Client, Engine, SimulatedClock, Task, occurrences
from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.rules.conditions import Facts
from crmrules.store import Store, TimerStatus
from databases import Database, database
from occurrence_workers import REGULATION as HALTING
from occurrence_workers import engine as halting_engine
from scaled import examples

__all__ = ["database"]

ROOT = Path(__file__).parent.parent
START = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)  # 11:00 in Moscow; the first 09:00 is the 2nd
DUE = datetime(2026, 6, 2, 6, 0, tzinfo=UTC)

REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow}
fields:
  client.segment: {type: enum, values: [A, B, C]}
  client.employees: {type: integer}
rules:
  - id: call-segment
    on: {every: 1 day, at: "09:00"}
    if: CONDITION
    then:
      - create_task: {kind: call, title: "Позвонить {{ client.name }}"}
"""
#: Conditions SQL decides alone, and one Python must decide on the rows SQL kept.
CONDITIONS = {
    "exact": "{all: [{field: client.segment, eq: A}, {field: client.employees, gte: 50}]}",
    "any": "{any: [{field: client.segment, eq: C}, {field: client.last_contact_at, "
    "older_than: 30 days}]}",
    "python": "{all: [{field: client.name, matches: '[02468]$'}, "
    "{field: client.employees, lt: 200}]}",
}


def regulation(tmp_path: Path, condition: str) -> Path:
    path = tmp_path / "regulation.yaml"
    path.write_text(REGULATION.replace("CONDITION", CONDITIONS[condition]), encoding="utf-8")
    return path


def make_clients(seed: int, count: int) -> list[Client]:
    rng = random.Random(seed)
    clients = []
    for n in range(count):
        fields: dict[str, object] = {"segment": rng.choice("ABC")}
        if rng.random() < 0.9:
            fields["employees"] = rng.randint(1, 300)
        contact = START - timedelta(days=rng.randint(0, 60)) if rng.random() < 0.8 else None
        clients.append(
            Client(
                id=f"c{rng.randint(0, 10**6):07}-{n}",
                name=f"ООО Клиент {n}",
                created_at=START - timedelta(days=100),
                last_contact_at=contact,
                fields=fields,
            )
        )
    return clients


def open_engine(store: Store, path: Path, clock: SimulatedClock) -> Engine:
    return Engine.from_path(path, store=store, clock=clock, entry_points=False)


def expected(engine: Engine, clients: list[Client], moment: datetime) -> set[str]:
    """The oracle: the clients whose condition holds at ``moment``, one by one in Python."""
    rule = engine.rules_by_id["call-segment"]
    return {
        c.id
        for c in clients
        if rule.condition(Facts({"client": engine.typed_client(c).record()}, moment))
    }


def tasks_by_client(engine: Engine) -> Counter[str]:
    return Counter(t.client or "" for t in engine.tasks())


def seeded(store: Store, path: Path, clients: list[Client]) -> tuple[Engine, SimulatedClock]:
    clock = SimulatedClock(START)
    engine = open_engine(store, path, clock)
    engine.sync_timers()
    for client in clients:
        engine.create_client(client)
    return engine, clock


def occurrence_key(engine: Engine) -> str:
    with engine.store.transaction() as tx:
        (timer,) = tx.find_timers(kind="schedule", status=TimerStatus.PENDING)
    return timer.key


@settings(
    max_examples=examples(12),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10**6),
    count=st.integers(0, 40),
    size=st.integers(1, 9),
    condition=st.sampled_from(sorted(CONDITIONS)),
    sql=st.booleans(),
    order=st.randoms(use_true_random=False),
)
def test_chunks_in_any_order_give_the_per_client_tasks_once(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    count: int,
    size: int,
    condition: str,
    sql: bool,
    order: random.Random,
) -> None:
    folder = tmp_path_factory.mktemp("occurrence")
    path = regulation(folder, condition)
    store: Store = SQLAlchemyStore(f"sqlite:///{folder / 'crm.sqlite3'}") if sql else MemoryStore()
    clients = make_clients(seed, count)
    engine, clock = seeded(store, path, clients)
    clock.set(DUE + timedelta(minutes=1))
    key = occurrence_key(engine)
    chunks = occurrences.plan_chunks(engine, key, size)
    assert occurrences.plan_chunks(engine, key, size + 1) == chunks  # fixed once
    if not sql:  # ranges of ``size`` clients; on SQL, of ``size`` candidates
        assert len(chunks) == count // size + 1
    # A worker that sends chunks elsewhere: plain data there and back.
    sent = [occurrences.Chunk.from_dict(c.to_dict()) for c in chunks]
    twice = sent + order.sample(sent, k=len(sent) // 2)
    order.shuffle(twice)
    reports = [occurrences.fire_chunk(engine, chunk) for chunk in twice]

    want = expected(engine, clients, DUE + timedelta(minutes=1))
    assert tasks_by_client(engine) == Counter(want)
    assert [r.settled for r in reports].count(True) == 1
    fired = [r for r in reports if r.status == "fired"]
    assert sorted(r.chunk.seq for r in fired) == list(range(len(chunks)))
    assert sum(r.matched for r in fired) == len(want)
    assert sum(r.considered for r in fired) == count
    assert all(r.status in ("done", "gone") for r in reports if r not in fired)
    with engine.store.transaction() as tx:
        timer = tx.get_timer(key)
        upcoming = tx.find_timers(kind="schedule", status=TimerStatus.PENDING)
    assert timer is not None and timer.status is TimerStatus.FIRED
    assert [t.due_at for t in upcoming] == [DUE + timedelta(days=1)]
    assert occurrences.plan_chunks(engine, key) == []  # settled: nothing to hand out
    store.close()


@pytest.mark.parametrize("condition", sorted(CONDITIONS))
def test_run_due_fires_the_occurrence_over_the_base(tmp_path: Path, condition: str) -> None:
    clients = make_clients(7, 60)
    with SQLAlchemyStore(f"sqlite:///{tmp_path / 'crm.sqlite3'}") as store:
        engine, clock = seeded(store, regulation(tmp_path, condition), clients)
        clock.set(DUE)
        report = engine.run_due()
        assert report.fired == 1 and report.failed == []
        want = expected(engine, clients, DUE)
        assert tasks_by_client(engine) == Counter(want)
        (result,) = report.results
        assert sorted(result.fired) == ["call-segment"] * len(want)  # each client's outcome
        clock.set(DUE + timedelta(days=1))
        assert engine.run_due().fired == 1  # the next day's occurrence
        want_next = expected(engine, clients, DUE + timedelta(days=1))
        assert tasks_by_client(engine) == Counter(want) + Counter(want_next)


def test_the_audit_keeps_a_summary_per_occurrence_not_a_row_per_client(tmp_path: Path) -> None:
    clients = make_clients(3, 50)
    engine, clock = seeded(MemoryStore(), regulation(tmp_path, "exact"), clients)
    want = expected(engine, clients, DUE)
    assert 0 < len(want) < 50
    clock.set(DUE)
    key = occurrence_key(engine)
    engine.run_due()
    with engine.store.transaction() as tx:
        log = [e for e in tx.audit_log() if e.event_id.startswith(f"timer:{key}")]
        timer = tx.get_timer(key)
    (summary,) = [e for e in log if e.kind == "occurrence"]
    assert summary.rule == "call-segment"
    counts = {k: summary.data[k] for k in ("considered", "matched", "fired", "effects", "failed")}
    assert counts == {
        "considered": 50,
        "matched": len(want),
        "fired": len(want),
        "effects": len(want),
        "failed": 0,
    }
    assert "50 client(s) considered" in summary.message
    # A line for each client that fired and each effect; none for those that did not match.
    about = Counter(e.event_id.rsplit(":", 1)[-1] for e in log if e.kind != "occurrence")
    assert set(about) == want
    assert all(n == 2 for n in about.values())  # fired + the task
    assert timer is not None and timer.note == summary.message


def test_explain_says_why_one_client_got_no_task(tmp_path: Path) -> None:
    clients = [
        Client(id="c17", name="ООО Ромашка", fields={"segment": "B", "employees": 80}),
        Client(id="c18", name="ООО Лютик", fields={"segment": "A", "employees": 80}),
    ]
    engine, clock = seeded(MemoryStore(), regulation(tmp_path, "exact"), clients)
    clock.set(DUE)
    engine.run_due()
    monday = date(2026, 6, 2)
    no = engine.explain_occurrence("call-segment", "c17", monday)
    assert not no.matched
    assert no.reason == "client.segment eq A: actual B → false"
    assert "audit: nothing recorded" in no.describe()
    yes = engine.explain_occurrence("call-segment", "c18", DUE + timedelta(hours=3))
    assert yes.matched and yes.moment == DUE
    assert any(line.startswith("effect: task call") for line in yes.audit)
    assert "client c18 matched rule call-segment" in yes.describe()
    with pytest.raises(occurrences.OccurrenceError, match="no occurrence on 2026-06-09"):
        engine.explain_occurrence("call-segment", "c17", date(2026, 6, 9))


def test_a_broken_client_is_recorded_and_the_rest_of_its_chunk_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "regulation.yaml"
    path.write_text(
        REGULATION.replace("CONDITION", "{field: client.segment, eq: A}").replace(
            "Позвонить {{ client.name }}", "Позвонить {{ client.name }}: {{ client.employees * 2 }}"
        ),
        encoding="utf-8",
    )
    clients = [
        Client(id=f"c{n}", name=f"Клиент {n}", fields={"segment": "A", "employees": n})
        for n in range(1, 8)
    ]
    clients[3] = clients[3].model_copy(update={"fields": {"segment": "A"}})  # no employees
    engine, clock = seeded(MemoryStore(), path, clients)
    clock.set(DUE)
    key = occurrence_key(engine)
    (chunk,) = occurrences.plan_chunks(engine, key, 100)
    report = occurrences.fire_chunk(engine, chunk)
    assert report.status == "fired" and report.settled
    assert [client for client, _ in report.failed] == ["c4"]
    assert report.matched == 7 and report.fired == 6 and report.effects == 6
    assert sorted(tasks_by_client(engine)) == ["c1", "c2", "c3", "c5", "c6", "c7"]
    (failure,) = engine.failures()
    assert failure.event["client"] == "c4"
    with engine.store.transaction() as tx:
        timer = tx.get_timer(key)
    assert timer is not None and "1 client(s) failed" in (timer.note or "")


def test_a_removed_rule_settles_its_open_occurrence(tmp_path: Path) -> None:
    clients = make_clients(5, 10)
    engine, clock = seeded(MemoryStore(), regulation(tmp_path, "exact"), clients)
    clock.set(DUE)
    key = occurrence_key(engine)
    chunks = occurrences.plan_chunks(engine, key, 3)
    occurrences.fire_chunk(engine, chunks[0])
    engine.rules_by_id.pop("call-segment")
    assert occurrences.fire_chunk(engine, chunks[1]).status == "gone"
    with engine.store.transaction() as tx:
        timer = tx.get_timer(key)
    assert timer is not None and timer.status is TimerStatus.CANCELLED
    assert occurrences.fire_chunk(engine, chunks[2]).status == "gone"
    with pytest.raises(occurrences.OccurrenceError, match="no schedule occurrence"):
        occurrences.plan_chunks(engine, "rule:nothing")


def test_engine_start_does_not_walk_the_base_again(tmp_path: Path) -> None:
    """A second start with the same regulation plans nothing per client; a changed one does."""
    path = tmp_path / "regulation.yaml"
    text = REGULATION.replace("CONDITION", CONDITIONS["exact"])
    path.write_text(text, encoding="utf-8")
    store = MemoryStore()
    seeded(store, path, make_clients(1, 5))
    with store.transaction() as tx:
        tx.put_client(Client(id="behind-the-engine", name="Импорт"))
    plan = """\
territories:
  - id: all
    when: {field: client.name, is_empty: false}
    contact_plan: [{every: 30 days, then: [{create_task: {title: "Визит"}}]}]
"""
    Engine.from_path(path, store=store, clock=SimulatedClock(START)).sync_timers()
    with store.transaction() as tx:
        assert tx.find_timers(kind="plan") == []
        tx.set_memberships("behind-the-engine", [])
        tx.put_client(Client(id="behind-the-engine", name="Импорт", territories=frozenset({"all"})))
    path.write_text(text.replace("rules:\n", plan + "rules:\n"), encoding="utf-8")
    changed = Engine.from_path(path, store=store, clock=SimulatedClock(START))
    changed.sync_timers()
    with store.transaction() as tx:
        assert [t.client for t in tx.find_timers(kind="plan")] == ["behind-the-engine"]
        assert len(tx.find_timers(status=TimerStatus.PENDING, limit=1)) == 1


def test_a_killed_worker_mid_occurrence_leaves_each_client_one_task(
    tmp_path: Path, database: Database
) -> None:
    path = tmp_path / "regulation.yaml"
    path.write_text(HALTING, encoding="utf-8")
    marker = tmp_path / "halted"
    clients = [
        Client(id=f"c{n:04}", name=f"Клиент {n}", fields={"score": (n * 37) % 100})
        for n in range(200)
    ]
    setup = halting_engine(str(path), database.search_path_url, str(marker))
    setup.clock = SimulatedClock(START)
    setup.sync_timers()
    for client in clients:
        setup.create_client(client)
    setup.store.close()
    want = {c.id for c in clients if int(str(c.fields["score"])) >= 50}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])}
    first = DUE + timedelta(minutes=1)
    worker = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "occurrence_workers.py"),
            str(path),
            database.search_path_url,
            first.isoformat(),
            str(marker),
        ],
        env=env,
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the worker never reached client c0132"
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)

    check = halting_engine(str(path), database.search_path_url, str(marker))
    before = tasks_by_client(check)
    assert 0 < len(before) < len(want)  # chunks before c0132 committed, its own did not
    assert "c0132" not in before and all(n == 1 for n in before.values())
    # Another worker, after the killed one's lease ran out, fires what is left.
    check.clock = SimulatedClock(first + timedelta(minutes=10))
    report = check.run_due()
    assert report.fired == 1
    assert tasks_by_client(check) == Counter(want)
    with check.store.transaction() as tx:
        log = tx.audit_log()
    fired = Counter(e.event_id for e in log if e.kind == "fired")
    assert len(fired) == len(want) and set(fired.values()) == {1}
    (summary,) = [e for e in log if e.kind == "occurrence"]
    assert summary.data["considered"] == 200 and summary.data["matched"] == len(want)
    check.store.close()


def test_a_task_already_there_is_not_made_again(tmp_path: Path) -> None:
    """The chunk's tasks go in by multi-row INSERTs; one already stored sends it the slow way."""
    clients = make_clients(11, 30)
    with SQLAlchemyStore(f"sqlite:///{tmp_path / 'crm.sqlite3'}") as store:
        engine, clock = seeded(store, regulation(tmp_path, "exact"), clients)
        clock.set(DUE)
        key = occurrence_key(engine)
        want = sorted(expected(engine, clients, DUE))
        assert len(want) >= 2
        first = want[0]
        made_before = Task(
            id="by-hand",
            kind="call",
            title="made before",
            client=first,
            idempotency_key=f"timer:{key}:{first}:call-segment:0",
        )
        with store.transaction() as tx:
            assert tx.add_task(made_before)
        (chunk,) = occurrences.plan_chunks(engine, key, 100)
        report = occurrences.fire_chunk(engine, chunk)
        assert report.matched == len(want) and report.effects == len(want) - 1
        assert tasks_by_client(engine) == Counter(want)
        assert [t.title for t in engine.tasks() if t.client == first] == ["made before"]
