"""Templates of text and printed fields render without Jinja2, exactly as Jinja2 renders them.

The oracle is the instrumented Jinja2 template of the same source: for random
texts and fields, random values (every plain type, missing fields and
namespaces, a record that is not a mapping, values too long) and random
bounds, the text, the budget spent and the error (type and words) agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmrules.rules.templates import (
    CompiledTemplate,
    Kind,
    TemplateError,
    TemplateLimits,
    compile_template,
)

FIELDS = ("client.name", "client.tags", "deal.amount", "event.number", "manager.name")

texts = st.text(
    alphabet=st.sampled_from(list("ab <>&\"'\n\r\t\u2028Звонок ")), min_size=1, max_size=12
)
fields = st.sampled_from(FIELDS).map(
    lambda path: "{{ " + path + " }}" if path != "deal.amount" else "{{ deal['amount'] }}"
)
sources = st.tuples(st.lists(st.one_of(texts, fields), max_size=5), fields, st.integers(0, 5)).map(
    lambda drawn: "".join([*drawn[0][: drawn[2]], drawn[1], *drawn[0][drawn[2] :]])
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.dates(),
    st.datetimes(timezones=st.just(UTC)),
    texts,
)
values = st.one_of(
    scalars,
    st.lists(texts, max_size=4),
    st.frozensets(texts, max_size=4),
)
records = st.dictionaries(st.sampled_from(["name", "tags", "amount", "number"]), values)
contexts = st.dictionaries(
    st.sampled_from(["client", "deal", "event", "manager"]),
    st.one_of(records, records, st.just("not a mapping")),  # type: ignore[arg-type]
)
limits = st.builds(
    TemplateLimits,
    max_output=st.integers(min_value=1, max_value=60),
    max_value=st.integers(min_value=1, max_value=60),
    max_work=st.integers(min_value=1, max_value=60),
)


def outcome(template: CompiledTemplate, context: Mapping[str, object]) -> tuple[object, ...]:
    try:
        text, usage = template.render_measured(context)  # type: ignore[arg-type]
    except Exception as error:  # the error is what is compared
        return ("error", type(error), str(error))
    return ("text", text, type(text), usage)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=sources,
    kind=st.sampled_from(["text", "html", "subject"]),
    context=contexts,
    bounds=st.one_of(st.none(), limits),
)
def test_text_and_fields_render_as_jinja2_renders_them(
    source: str, kind: Kind, context: dict[str, object], bounds: TemplateLimits | None
) -> None:
    try:
        fast = compile_template(source, kind, lambda path: True, limits=bounds)
    except TemplateError:
        return  # refused at load: never rendered
    jinja = compile_template(source, kind, lambda path: True, limits=bounds)
    assert fast._parts is not None  # the path under test
    jinja._parts = None
    assert outcome(fast, context) == outcome(jinja, context)


def test_anything_else_is_rendered_by_jinja2() -> None:
    for source in (
        "{{ client.name | upper }}",
        "{% if client.name %}x{% endif %}",
        "{{ client.name ~ 'a' }}",
        "{% for tag in client.tags %}{{ tag }}{% endfor %}",
        "{{ 'a' }}",
    ):
        assert compile_template(source, "text", lambda path: True)._parts is None, source
    stamp = {"client": {"name": datetime(2026, 3, 2, tzinfo=UTC), "tags": date(2026, 3, 2)}}
    template = compile_template("{{ client.name }}, {{ client.tags }}", "text", lambda p: True)
    assert template.render(stamp) == "2026-03-02T00:00:00+00:00, 2026-03-02"
    assert template.render({"client": {"name": Decimal("1E+3")}}) == "1000, "
