"""Records the engine builds without validating them are the records validation gives.

Tasks, mailings, outbox messages, timers and effect audit lines the firing path makes are built
with ``crmrules.model.trusted``; the timer's event too, unless an id could be
refused or rewritten. Each is checked against pydantic's own validation of
the same values.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from crmrules.firing import _timer_event
from crmrules.model import Event
from crmrules.store import Timer, TimerStatus
from crmrules.testing import Simulation

REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow}
fields:
  client.segment: {type: enum, values: [A, B]}
templates:
  hello:
    subject: "Здравствуйте, {{ client.name }}"
    text: "Текст"
    html: "<b>{{ client.name }}</b>"
territories:
  - id: key
    when: {field: client.segment, eq: A}
    contact_plan:
      - every: 1 day
        then: [{create_task: {kind: call, title: "Звонок {{ client.name }}", due: 2 days}}]
rules:
  - id: welcome
    on: {after: 1 day, since: client.created_at}
    then:
      - send_mailing: {template: hello}
      - create_task: {title: "Позвонить {{ client.name }}", description: "{{ client.email }}"}
"""


def same_as_validated(record: BaseModel) -> None:
    again = type(record).model_validate(dict(record.__dict__))
    assert again == record
    assert again.model_fields_set == record.model_fields_set | again.model_fields_set
    for name, value in record.__dict__.items():
        assert type(getattr(again, name)) is type(value), name


def test_what_a_firing_makes_is_what_validation_makes(tmp_path: Path) -> None:
    (tmp_path / "regulation.yaml").write_text(REGULATION, encoding="utf-8")
    sim = Simulation.from_path(tmp_path, now="2026-03-27T10:00:00+03:00", entry_points=False)
    sim.given(
        clients=[
            {"id": "c1", "name": "Ромашка", "email": "c1@example.ru", "segment": "A"},
            {"id": "клиент-2", "name": "Лютик", "email": "c2@example.ru", "segment": "A"},
        ]
    )
    sim.advance("4 days")  # the rule's timers, the plans' and the tasks' due timers fire
    tasks, mailings = sim.all_tasks(), sim.mailings()
    assert len(tasks) > 4 and len(mailings) == 2
    with sim.engine.store.transaction() as tx:
        timers = tx.find_timers()
        messages = tx.due_messages(sim.now + timedelta(days=1), 100)
        effects = [e for e in tx.audit_log() if e.kind == "effect"]
    assert {t.kind for t in timers} >= {"plan", "task", "rule"}
    assert {e.data["effect"] for e in effects} == {"task_created", "mailing_queued"}
    for record in [*tasks, *mailings, *timers, *messages, *effects]:
        same_as_validated(record)


ids = st.one_of(
    st.none(),
    st.text(min_size=0, max_size=210),
    st.text(alphabet="abc:-_ 09", min_size=1, max_size=210),
    st.sampled_from(["c1", "клиент", "Cafe\u0301", "a\nb", "a\u2028b", "x" * 200]),
)


@given(key=ids.filter(lambda key: key is not None), client=ids, deal=ids)
def test_the_timer_event_is_validated_whenever_validation_could_differ(
    key: str, client: str | None, deal: str | None
) -> None:
    now = datetime(2026, 3, 2, 7, tzinfo=UTC)
    values: dict[str, Any] = {
        "key": key,
        "kind": "rule",
        "client": client,
        "deal": deal,
        "due_at": now,
        "created_at": now,
        "status": TimerStatus.PENDING,
    }
    timer = Timer.model_construct(**values)
    try:
        expected = Event(
            id=f"timer:{key}",
            type="timer",
            occurred_at=now,
            client=client,
            deal=deal,
            data={"timer": key, "due_at": now.isoformat()},
        )
    except ValidationError:
        with pytest.raises(ValidationError):
            _timer_event(timer, now)
        return
    made = _timer_event(timer, now)
    assert made == expected
    same_as_validated(made)
