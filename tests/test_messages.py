"""Messages that tell an admin or a host developer what to do, not something misleading."""

from __future__ import annotations

import re
import textwrap
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from crmrules import Engine
from crmrules.adapters import migrate
from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.clock import SimulatedClock
from crmrules.errors import RegulationError, SchemaError
from crmrules.model import Client
from crmrules.rules.regulation import load_regulation

DOCS = Path(__file__).parent.parent / "docs"
START = datetime(2026, 3, 2, 10, 0, tzinfo=ZoneInfo("Europe/Moscow"))


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(RegulationError) as caught:
        load_regulation(path)
    return [str(p).split(": ", 1)[1] for p in caught.value.problems]


# --- an undeclared field: declare it, rather than a look-alike ---------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        "{id: r, on: x.happened, if: {field: event.titel, eq: x}, then: [{emit: {type: y}}]}",
        "{id: r, on: x.happened, then: [{create_task: {title: '{{ event.titel }}'}}]}",
    ],
)
def test_an_undeclared_event_field_says_to_declare_it(tmp_path: Path, rule: str) -> None:
    [message] = problems(tmp_path, f"version: 1\nrules:\n  - {rule}\n")
    assert message.startswith("unknown field 'event.titel' (declare it under fields:"), message
    assert "fields: {event.titel: {type: string}}" in message
    assert "did you mean event.title?" in message  # still offered, after the way to declare


def test_a_typo_of_a_built_in_field_still_leads_with_the_suggestion(tmp_path: Path) -> None:
    text = "version: 1\nrules:\n  - {id: r, on: client.created, if: {field: client.regoin, "
    text += "eq: x}, then: [{emit: {type: y}}]}\n"
    [message] = problems(tmp_path, text)
    assert message.startswith("unknown field 'client.regoin' (did you mean client.region?"), message
    assert "declare it under fields:" in message


def test_a_trigger_on_an_undeclared_date_field_says_to_declare_it(tmp_path: Path) -> None:
    text = "version: 1\nrules:\n  - {id: r, on: {after: 3 days, since: client.signed_on}, "
    text += "then: [{emit: {type: y}}]}\n"
    [message] = problems(tmp_path, text)
    assert "unknown field 'client.signed_on'" in message
    assert "declare it under fields:" in message


# --- SchemaError says what docs/storage.md says ------------------------------------------------


def _doc_quotes() -> list[str]:
    """The SchemaError texts quoted in docs/storage.md (blockquotes), unescaped, on one line."""
    text = (DOCS / "storage.md").read_text(encoding="utf-8")
    quotes: list[str] = []
    current: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith(">"):
            current.append(line.lstrip("> ").strip())
        elif current:
            quotes.append(" ".join(current).replace("\\*", "*"))
            current = []
    return quotes


def test_the_schema_errors_quoted_in_the_docs_are_the_real_ones() -> None:
    shown = "postgresql+psycopg://crm:***@db:5432/crm"
    older = sorted(migrate._known())[0]
    real = [migrate.problem(None, shown), migrate.problem(older, shown)]
    quotes = _doc_quotes()
    for message in real:
        assert message is not None
        assert message in quotes, f"docs/storage.md does not quote:\n{message}"


def test_a_sqlite_engine_without_tables_is_told_the_truth(tmp_path: Path) -> None:
    """A SQLite URL gets its tables made; a SQLite Engine handed in does not, and hears why."""
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    engine = sa.create_engine(url)
    try:
        with pytest.raises(SchemaError) as raised:
            SQLAlchemyStore(engine)
    finally:
        engine.dispose()
    text = str(raised.value)
    assert "opens from a URL" in text and "Engine, Connection or Session" in text, text
    assert re.search(r"Run: crmrules db upgrade sqlite:///\S+app\.sqlite3", text)
    SQLAlchemyStore(url).close()  # and by URL the same file just works, as the docs say


# --- by_skill falling back says why no one matched ---------------------------------------------

TEAM = """\
version: 1
managers:
  - {id: ivanov, skills: [b2b]}
  - {id: petrova, skills: [retail, logistics]}
  - {id: sidorov, skills: [b2b, logistics], active: false}
rules:
  - id: assign
    on: client.created
    then:
      - create_task:
          title: Позвонить
          assignee: {strategy: by_skill, skills: [b2b, logistics], fallback: ivanov}
      - assign_manager: {strategy: by_skill, skills: [b2b, logistics], fallback: ivanov}
"""


def test_a_by_skill_fallback_explains_why_no_one_matched(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(TEAM, encoding="utf-8")
    engine = Engine.from_path(
        path, store=MemoryStore(), clock=SimulatedClock(START), entry_points=False
    )
    result = engine.create_client(Client(id="c1", name="ООО Ромашка"))
    why = "(ivanov lacks logistics; petrova lacks b2b; sidorov is inactive)"
    summaries = [e.summary for e in result.effects]
    task = next(s for s in summaries if s.startswith("task "))
    assigned = next(s for s in summaries if s.startswith("client c1: responsible"))
    for summary in (task, assigned):
        assert why in summary, summary
        assert "fallback ivanov" in summary, summary
    assert why in result.explain()


@pytest.mark.parametrize(
    ("path", "suggestion", "hint"),
    [
        ("manager.phone2", None, "manager fields are built in"),
        ("manager.emal", "manager.email", "did you mean manager.email?"),
        ("lead.source", None, "a field is client.<name>, deal.<name>, event.<name>"),
        ("deal.amout", "deal.amount", "did you mean deal.amount? Or declare it under fields:"),
    ],
)
def test_unknown_field_hints(path: str, suggestion: str | None, hint: str) -> None:
    from crmrules.rules.fields import unknown_field_hint

    assert unknown_field_hint(path, suggestion).startswith(hint)
