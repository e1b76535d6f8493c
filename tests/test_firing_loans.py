"""The firing's loans on the memory store, against the copies they replace.

A timer fired on a store that locks nothing is the stored one lent
(``firing._locked_timer``), and a task's templates read the flat records
lent with its subjects (``ActionContext._flat``). The oracle is the same
simulation with both turned off: the same timeline (each firing's
explanation), the same tasks, timers and audit lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmrules import actions
from crmrules.adapters.memory import MemoryStore, MemoryTransaction
from crmrules.model import Client, Deal
from crmrules.testing import Simulation
from test_memory_copies import FIELDS

REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow, country: RU, working_hours: "09:00-18:00"}
fields:
  client.segment: {type: enum, values: [A, B]}
  client.since: {type: date}
pipelines:
  - id: sales
    stages: [{id: new, deadline: 2 business days}, {id: won, final: true}]
territories:
  - id: key
    when: {field: client.segment, eq: A}
    contact_plan:
      - every: 2 days
        then: [{create_task: {kind: call, title: "Звонок {{ client.name }} {{ client.segment }}"}}]
rules:
  - id: anniversary
    on: {after: 3 days, since: client.since}
    then: [{create_task: {title: "{{ client.name }}", due: 1 business days}}]
  - id: stuck
    on: deal.stage_overdue
    then: [{create_task: {title: "{{ deal.id }} {{ deal.amount }} {{ client.name }}"}}]
  - id: late-task
    on: task.overdue
    then: [{create_task: {title: "overdue {{ client.name }}"}}]
  - id: daily
    on: {every: 1 day, at: "09:00"}
    if: {field: client.segment, eq: B}
    then: [{create_task: {title: "daily {{ client.name }}"}}]
"""


def simulate(folder: Path, clients: int, days: int) -> tuple[Any, ...]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "regulation.yaml").write_text(REGULATION, encoding="utf-8")
    sim = Simulation.from_path(folder, now="2026-03-02T10:00:00+03:00", entry_points=False)
    sim.given(
        clients=[
            {
                "id": f"c{i}",
                "name": f"Клиент {i}",
                "segment": "AB"[i % 2],
                "since": f"2026-03-0{1 + i % 5}",
            }
            for i in range(clients)
        ],
        deals=[
            {"id": f"d{i}", "client": f"c{i}", "amount": i, "pipeline": "sales", "stage": "new"}
            for i in range(0, clients, 2)
        ],
    )
    sim.advance(f"{days} days")
    with sim.engine.store.transaction() as tx:
        timers = [t.model_dump() for t in tx.find_timers()]
        tasks = [t.model_dump() for t in tx.find_tasks()]
        audit = [e.model_dump() for e in tx.audit_log()]
    return sim.timeline_text(), timers, tasks, audit


@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(clients=st.integers(2, 5), days=st.integers(3, 9))
def test_a_simulation_with_loans_is_the_one_with_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clients: int, days: int
) -> None:
    lent = simulate(tmp_path / f"lent-{clients}-{days}", clients, days)
    with monkeypatch.context() as patched:
        patched.setattr(MemoryTransaction, "locks_nothing", False)
        patched.setattr(actions.ActionContext, "_flat", lambda self, ns, record: record.record())
        copied = simulate(tmp_path / f"copied-{clients}-{days}", clients, days)
    assert lent == copied
    assert lent[2]  # tasks were made


@given(FIELDS)
def test_a_lent_flat_record_is_the_records_own(fields: dict[str, Any]) -> None:
    """What ``_flat`` gives a template instead of ``record()``: equal to it."""
    store = MemoryStore()
    with store.transaction() as tx:
        tx.put_client(Client(id="c1", name="Ромашка", fields=fields))
        tx.put_deal(Deal(id="d1", client="c1", pipeline="p", stage="s", fields=fields))
        assert isinstance(tx, MemoryTransaction)
        client = tx.lend_client("c1")
        deal = tx.lend_deal("d1")
        assert client is not None and deal is not None
        assert client[1] == client[0].record() and deal[1] == deal[0].record()
