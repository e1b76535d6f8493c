"""Templates that would fail on every render are refused at load, by the declared field types.

The oracle is the real renderer: for expressions built from fields of every
type, literals, operators and filters, the load-time check refuses exactly
those that fail to render with values of the declared types.
"""

from __future__ import annotations

import textwrap
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from crmrules.errors import RegulationError
from crmrules.rules.fields import FieldRegistry, FieldSpec, FieldType
from crmrules.rules.regulation import load_regulation
from crmrules.rules.template_types import check_template_types
from crmrules.rules.templates import TemplateError, TemplateRenderError, compile_template

MSK = ZoneInfo("Europe/Moscow")
#: One custom field of each type, and the value a record holds for it.
VALUES: dict[FieldType, object] = {
    FieldType.STRING: "ab",
    FieldType.INTEGER: 7,
    FieldType.DECIMAL: Decimal("1.5"),
    FieldType.BOOLEAN: True,
    FieldType.DATE: date(2026, 3, 2),
    FieldType.DATETIME: datetime(2026, 3, 2, 10, 0, tzinfo=MSK),
    FieldType.SET: frozenset({"a", "b"}),
    FieldType.ENUM: "A",
}
REGISTRY = FieldRegistry(
    FieldSpec(f"deal.f_{kind.value}", kind, ("A", "B") if kind is FieldType.ENUM else ())
    for kind in VALUES
)
CONTEXT = {"deal": {f"f_{kind.value}": value for kind, value in VALUES.items()}}
TIME = {f"deal.f_{FieldType.DATE.value}", f"deal.f_{FieldType.DATETIME.value}"}


def field_type(path: str) -> FieldType | None:
    spec = REGISTRY.get(path)
    return None if spec is None else spec.type


LITERALS = ["3", "2.5", "'x'", "['x']", "('x', 'y')"]
leaves = st.sampled_from([f"deal.f_{kind.value}" for kind in VALUES] + LITERALS)
OPERATORS = ["+", "-", "*", "/", "//", "%"]
COMPARISONS = ["<", ">=", "==", "in"]
#: Filters whose result kind is known (``first`` of a list is not: see the test below).
FILTERS = ["date('%Y')", "length", "abs", "round", "upper", "float", "join(',')", "list"]


@st.composite
def expressions(draw: st.DrawFn, depth: int = 2) -> str:
    kind = draw(
        st.sampled_from(["leaf", "binary", "compare", "filter", "neg"] if depth else ["leaf"])
    )
    if kind == "leaf":
        return draw(leaves)
    if kind == "neg":
        return f"-({draw(expressions(depth - 1))})"
    if kind == "filter":
        return f"({draw(expressions(depth - 1))}) | {draw(st.sampled_from(FILTERS))}"
    left, right = draw(expressions(depth - 1)), draw(expressions(depth - 1))
    if kind == "compare":
        return f"({left}) {draw(st.sampled_from(COMPARISONS))} ({right})"
    operator = draw(st.sampled_from(OPERATORS))
    if operator == "-" and left in TIME and right in TIME:
        operator = "+"  # a time span is of unknown kind: the check rightly says nothing of it
    return f"({left}) {operator} ({right})"


#: Render failures that come from values (x - x is zero), not from types.
VALUE_ERRORS = ("zero", "modulo", "divmod", "invalid arithmetic on a decimal")


def refused(source: str) -> str | None:
    try:
        check_template_types(source, field_type)
    except TemplateError as error:
        return str(error)
    return None


def render_fails(source: str) -> str | None:
    template = compile_template(source, "text", REGISTRY.__contains__)
    try:
        template.render(CONTEXT)
    except TemplateRenderError as error:
        return str(error)
    return None


@settings(max_examples=600, deadline=None)
@given(expressions())
def test_refused_at_load_exactly_when_every_render_fails(expression: str) -> None:
    source = "{{ " + expression + " }}"
    try:
        compile_template(source, "text", REGISTRY.__contains__)
    except TemplateError:
        return  # the syntax checker refuses it already (e.g. % on literal text)
    at_load, at_render = refused(source), render_fails(source)
    note(f"load: {at_load}\nrender: {at_render}")
    if at_render is not None and any(word in at_render for word in VALUE_ERRORS):
        return  # division by zero: a matter of values, not of types
    assert (at_load is None) == (at_render is None), (source, at_load, at_render)


# --- what an admin sees ------------------------------------------------------------------------


def problems(tmp_path: Path, template: str) -> list[str]:
    path = tmp_path / "r.yaml"
    text = f"""\
        version: 1
        fields:
          event.note: {{type: string}}
        rules:
          - id: r
            on: deal.created
            then:
              - create_task:
                  title: "{template}"
        """
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(RegulationError) as caught:
        load_regulation(path)
    return [str(p) for p in caught.value.problems]


def test_the_issue_example_is_refused_with_its_line(tmp_path: Path) -> None:
    [message] = problems(tmp_path, "{{ event.occurred_at + 3 }}")
    assert ":9:" in message  # the line of the title in the file
    assert "'+' does not work on event.occurred_at (a date and time) and 3 (a whole number)" in (
        message
    )
    assert "date('%d.%m.%Y')" in message  # the hint: print dates, do not compute with them


@pytest.mark.parametrize(
    ("template", "part"),
    [
        ("{{ deal.amount * 1.2 }}", "deal.amount (a decimal number) and 1.2"),
        ("{{- deal.amount*1.2 -}}", "deal.amount (a decimal number) and 1.2"),
        ("{{ client.tags + ['vip'] }}", "make the set a list first"),
        ("{{ 'Сделка ' + deal.amount }}", "join text with ~"),
        ("{{ event.note | date('%d.%m') }}", "filter 'date' formats a date, not event.note"),
        ("{{ deal.amount | length }}", "filter 'length' needs a list or a text"),
        ("{% if event.occurred_at > 3 %}x{% endif %}", "cannot be compared with >"),
    ],
)
def test_operations_that_cannot_work_are_refused(tmp_path: Path, template: str, part: str) -> None:
    [message] = problems(tmp_path, template)
    assert part in message


def test_an_unknown_kind_is_never_refused() -> None:
    """Only what is certain to fail is refused: a loop variable or ``first`` may be anything."""
    for source in (
        "{{ (deal.f_set | first) - 1 }}",
        "{% for tag in deal.f_set %}{{ tag * 2 }}{% endfor %}",
        "{% set n = deal.f_string %}{{ n - 1 }}",
        "{{ (deal.f_string | default(3)) - 1 }}",
    ):
        assert refused(source) is None, source


def test_what_works_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    text = """\
        version: 1
        fields:
          deal.count: {type: integer}
        rules:
          - id: r
            on: deal.created
            then:
              - create_task:
                  title: "{{ deal.amount * 2 }} {{ deal.amount | float * 1.2 }} {{ deal.count }}"
                  description: "{{ event.occurred_at | date('%d.%m.%Y') }} {{ deal.stage ~ '!' }}"
        """
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    load_regulation(path)
