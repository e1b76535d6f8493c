"""Tests for the sandboxed mail and task-title templates."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmrules.rules.templates import (
    ALLOWED_FILTERS,
    CompiledTemplate,
    Kind,
    TemplateError,
    TemplateRenderError,
    compile_template,
)

KNOWN = frozenset(
    {
        "client.name",
        "client.email",
        "client.tags",
        "client.notes",
        "client.items",
        "deal.amount",
        "deal.delivered_at",
        "deal.closed_at",
        "deal.title",
        "event.invoice_number",
        "manager.name",
    }
)

CONTEXT: dict[str, dict[str, object]] = {
    "client": {
        "name": "ООО Ромашка",
        "email": "info@romashka.example",
        "tags": frozenset({"vip", "b2b", "opt"}),
        "notes": None,
        "items": "not a dict method",
    },
    "deal": {
        "amount": Decimal("1E+3"),
        "delivered_at": date(2024, 5, 1),
        "closed_at": datetime(2024, 5, 2, 13, 45, tzinfo=UTC),
        "title": "Поставка",
    },
    "event": {"invoice_number": "INV-7"},
    "manager": {"name": "Анна"},
}


def known(path: str) -> bool:
    return path in KNOWN


def compile_(source: str, kind: Kind = "text", **kwargs: object) -> CompiledTemplate:
    return compile_template(source, kind, known, known_fields=KNOWN, **kwargs)  # type: ignore[arg-type]


def render(
    source: str,
    kind: Kind = "text",
    context: Mapping[str, Mapping[str, object]] = CONTEXT,
    **kwargs: object,
) -> str:
    return compile_(source, kind, **kwargs).render(context)


# --------------------------------------------------------------------------- rendering


def test_cyrillic_text() -> None:
    assert render("Здравствуйте, {{ client.name }}!") == "Здравствуйте, ООО Ромашка!"


def test_fields_lists_what_the_template_reads() -> None:
    template = compile_(
        "{{ client.name }} {% if deal['amount'] %}{{ event.invoice_number }}{% endif %}"
    )
    assert template.fields == {"client.name", "deal.amount", "event.invoice_number"}
    assert template.kind == "text"


def test_subject_drops_line_breaks_from_data() -> None:
    context = {"client": {"name": "Ромашка\r\nBcc: x@y.example"}}
    result = render("Счёт для {{ client.name }}", "subject", context)
    assert result == "Счёт для Ромашка Bcc: x@y.example"
    assert "\r" not in result and "\n" not in result


@pytest.mark.parametrize("separator", ["\r", "\n", "\r\n", "\u2028", "\u2029", "\x85", "\x0b"])
def test_subject_drops_every_line_separator(separator: str) -> None:
    context = {"client": {"name": f"a{separator}b"}}
    assert render("  {{ client.name }}\n", "subject", context) == "a b"


def test_html_escapes_data_but_not_the_template() -> None:
    context = {"client": {"name": "<script>alert(1)</script>"}}
    result = render("<p>{{ client.name }}</p>", "html", context)
    assert result == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"


def test_html_escapes_concatenation_and_join() -> None:
    context = {"client": {"name": "<b>", "tags": ["<i>", "x"]}}
    assert render("{{ 'Hi ' ~ client.name }}", "html", context) == "Hi &lt;b&gt;"
    assert render("{{ client.tags|join('<br>') }}", "html", context) == "&lt;i&gt;&lt;br&gt;x"


def test_text_is_not_escaped() -> None:
    context = {"client": {"name": "<b>Tom & Jerry</b>"}}
    assert render("{{ client.name }}", "text", context) == "<b>Tom & Jerry</b>"


def test_escape_filter_does_not_double_escape_in_html() -> None:
    context = {"client": {"name": "<b>"}}
    assert render("{{ client.name|e }}", "html", context) == "&lt;b&gt;"


def test_missing_values_render_empty() -> None:
    assert render("[{{ client.notes }}]") == "[]"
    assert render("[{{ client.email }}]", context={"client": {}}) == "[]"
    assert render("[{{ deal.title }}]", context={"client": {"name": "x"}}) == "[]"
    assert render("[{{ manager.name|upper }}]", context={"manager": {"name": None}}) == "[]"


def test_default_treats_none_as_missing() -> None:
    assert render("{{ client.notes|default('—') }}") == "—"
    assert render("{{ client.email|d('—') }}", context={}) == "—"
    assert render("{{ client.name|default('—') }}") == "ООО Ромашка"


def test_decimal_date_and_datetime() -> None:
    assert render("{{ deal.amount }}") == "1000"
    assert render("{{ deal.amount }}", context={"deal": {"amount": Decimal("12.50")}}) == "12.50"
    assert render("{{ deal.delivered_at }}") == "2024-05-01"
    assert render("{{ deal.closed_at }}") == "2024-05-02T13:45:00+00:00"
    assert render("{{ 'Сумма: ' ~ deal.amount }}") == "Сумма: 1000"


def test_date_filter() -> None:
    assert render("{{ deal.delivered_at|date('%d.%m.%Y') }}") == "01.05.2024"
    assert render("{{ deal.closed_at|date('%H:%M') }}") == "13:45"
    assert render("[{{ deal.delivered_at|date('%d') }}]", context={"deal": {}}) == "[]"
    empty = {"deal": {"delivered_at": None}}
    assert render("[{{ deal.delivered_at|date('%d') }}]", context=empty) == "[]"
    with pytest.raises(TemplateRenderError, match="expected a date"):
        render("{{ deal.title|date('%d') }}")


@pytest.mark.parametrize(
    "source",
    [
        "{{ deal.delivered_at|date }}",
        "{{ deal.delivered_at|date(client.name) }}",
        "{{ deal.delivered_at|date('" + "%d" * 40 + "') }}",
        "{{ deal.delivered_at|date('%d', '%m') }}",
    ],
)
def test_date_filter_needs_one_short_literal_format(source: str) -> None:
    with pytest.raises(TemplateError):
        compile_(source)


def test_set_renders_sorted_and_loops_in_order() -> None:
    assert render("{{ client.tags }}") == "b2b, opt, vip"
    source = (
        "{% for tag in client.tags %}{{ loop.index }}.{{ tag|upper }}"
        "{% if not loop.last %} {% endif %}{% endfor %}"
    )
    assert render(source) == "1.B2B 2.OPT 3.VIP"


def test_loop_over_filtered_field_and_else() -> None:
    assert (
        render("{% for t in client.tags|sort(reverse=true) %}{{ t }};{% endfor %}")
        == "vip;opt;b2b;"
    )
    assert (
        render("{% for t in client.tags %}{{ t }}{% else %}none{% endfor %}", context={}) == "none"
    )


def test_set_and_filters() -> None:
    source = (
        "{% set who = client.name|replace('ООО ', '') %}"
        "{{ who|upper }} {{ client.tags|length }} {{ client.tags|first }} "
        "{{ deal.title|truncate(5, true, '…', 0) }} {{ (deal.amount * 2)|round(1) }}"
    )
    assert render(source) == "РОМАШКА 3 b2b Пост… 2000.0"


def test_filter_block() -> None:
    source = "{% filter upper %}{% for t in client.tags %}{{ t }} {% endfor %}{% endfilter %}"
    assert render(source) == "B2B OPT VIP "


def test_field_named_like_a_dict_method() -> None:
    assert render("{{ client.items }}") == "not a dict method"


def test_keeps_trailing_newline() -> None:
    assert render("Hi {{ client.name }}\n") == "Hi ООО Ромашка\n"


def test_non_plain_values_are_refused() -> None:
    class Secret:
        pass

    with pytest.raises(TemplateRenderError, match=r"client\.name holds a Secret"):
        render("{{ client.name }}", context={"client": {"name": Secret()}})


def test_unread_fields_are_not_converted() -> None:
    context = {"client": {"name": "A", "other": object()}}
    assert render("{{ client.name }}", context=context) == "A"


# --------------------------------------------------------------------------- fast path


@pytest.mark.parametrize("kind", ["text", "html", "subject"])
def test_plain_strings_skip_jinja(kind: Kind) -> None:
    template = compile_("Позвонить клиенту <b>{x}</b> } {", kind)
    assert template.fields == frozenset()
    assert template.render({}) == "Позвонить клиенту <b>{x}</b> } {"


def test_plain_subject_is_normalised() -> None:
    assert compile_(" Счёт\r\nBcc: x ", "subject").render({}) == "Счёт Bcc: x"


def test_cache_reuses_within_one_load() -> None:
    cache: dict[tuple[str, str], CompiledTemplate] = {}
    first = compile_("{{ client.name }}", cache=cache)
    assert compile_("{{ client.name }}", cache=cache) is first
    assert compile_("{{ client.name }}", "html", cache=cache) is not first


# --------------------------------------------------------------------------- load-time errors


def test_unknown_variable_with_line() -> None:
    with pytest.raises(TemplateError) as info:
        compile_("Hello\n{{ client.name }}\n\n{{ foo }}")
    assert info.value.message == "unknown variable 'foo'"
    assert info.value.line == 4


def test_unknown_variable_suggests_a_namespace() -> None:
    with pytest.raises(TemplateError) as info:
        compile_("line 1\n{{ clinet.name }}")
    assert info.value.message == "unknown variable 'clinet'"
    assert info.value.line == 2
    assert info.value.hint == "did you mean client?"


def test_unknown_field_with_line_and_hint() -> None:
    source = (
        "Dear {{ client.name }},\n\nyour invoice {{ event.invoice_number }}\nfor {{ client.nmae }}"
    )
    with pytest.raises(TemplateError) as info:
        compile_(source)
    assert info.value.message == "unknown field 'client.nmae'"
    assert info.value.line == 4
    hint = "did you mean client.name? Or declare it under fields:, e.g. fields: {client.nmae: "
    assert info.value.hint == hint + "{type: string}}"
    assert str(info.value) == f"line 4: unknown field 'client.nmae' ({hint}{{type: string}}}})"


def test_unknown_field_by_item_syntax() -> None:
    with pytest.raises(TemplateError, match=r"unknown field 'deal\.nope'"):
        compile_("{{ deal['nope'] }}")


def test_syntax_error_line() -> None:
    with pytest.raises(TemplateError) as info:
        compile_("one\ntwo\n{{ client.name }\nthree")
    assert info.value.message.startswith("syntax error")
    assert info.value.line == 3
    with pytest.raises(TemplateError, match="syntax error"):
        compile_("one\ntwo\n{% if client.name %}\nthree")
    with pytest.raises(TemplateError) as info:
        compile_("one\n{{ client.name + }}")
    assert info.value.line == 2


def test_bare_namespace_is_refused() -> None:
    with pytest.raises(TemplateError, match="group of fields"):
        compile_("{{ client }}")


def test_attribute_of_a_value_is_refused() -> None:
    for source in (
        "{{ client.name.upper }}",
        "{% for t in client.tags %}{{ t.upper }}{% endfor %}",
        "{% set n = client.name %}{{ n['x'] }}",
        "{{ client.name[0] }}",
    ):
        with pytest.raises(TemplateError, match="cannot reach attributes"):
            compile_(source)


def test_loop_must_run_over_a_field() -> None:
    for source in (
        "{% for x in [1, 2, 3] %}{% endfor %}",
        "{% for x in 'abc' %}{% endfor %}",
        "{% set t = client.tags %}{% for x in t %}{% endfor %}",
    ):
        with pytest.raises(TemplateError, match="only loop over a field"):
            compile_(source)


def test_loop_attributes_are_limited() -> None:
    with pytest.raises(TemplateError, match="not available"):
        compile_("{% for t in client.tags %}{{ loop.cycle }}{% endfor %}")
    with pytest.raises(TemplateError, match="only be used inside"):
        compile_("{% for t in client.tags %}{% endfor %}{{ loop.index }}")


def test_reserved_names_cannot_be_assigned() -> None:
    for source in ("{% set client = 1 %}", "{% set loop = 1 %}", "{% set _x = 1 %}"):
        with pytest.raises(TemplateError, match="cannot be assigned"):
            compile_(source)


def test_filter_not_in_whitelist() -> None:
    with pytest.raises(TemplateError) as info:
        compile_("{{ client.name|center(80) }}")
    assert info.value.message.startswith("filter 'center' is not allowed in templates; allowed: ")
    assert "upper" in info.value.message


def test_filter_arguments_are_checked() -> None:
    for source in (
        "{{ client.tags|sort(attribute='upper') }}",
        "{{ client.tags|join(', ', 'upper') }}",
        "{{ client.tags|unique(false, 'x') }}",
        "{{ client.name|replace('a') }}",
        "{{ client.name|upper(1) }}",
        "{{ client.name|truncate(*client.tags) }}",
    ):
        with pytest.raises(TemplateError, match=r"wrong arguments|written out"):
            compile_(source)


def test_whitelist() -> None:
    assert {"upper", "date", "default", "join", "escape"} <= ALLOWED_FILTERS
    assert not {"attr", "format", "safe", "map", "tojson", "indent"} & ALLOWED_FILTERS


def test_source_over_the_cap_is_refused() -> None:
    with pytest.raises(TemplateError, match="longer than 10"):
        compile_("x" * 11, max_output=10)
    assert compile_("{# a long comment #}x", max_output=10).render({}) == "x"


# --------------------------------------------------------------------------- sandbox escapes

FORBIDDEN = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ client.name.__class__.__mro__ }}",
    "{{ client.__class__ }}",
    "{{ client['__class__'] }}",
    "{{ client.name|attr('__class__') }}",
    "{{ client.name|attr('format') }}",
    "{{ (client.name|attr('format'))('{0.__class__}') }}",
    "{{ '{0.__class__}'.format(client) }}",
    "{{ '{0.__class__}'.format(client.name) }}",
    "{{ client.name.format_map(client) }}",
    "{{ client.name.format('{0}') }}",
    "{% set f = client.name.format %}{{ f('{0.__class__}') }}",
    "{{ client.name|format('x') }}",
    "{{ '%s' % client.name }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ cycler }}",
    "{{ joiner }}",
    "{{ namespace() }}",
    "{{ lipsum.__globals__ }}",
    "{{ lipsum() }}",
    "{{ self }}",
    "{{ self._TemplateReference__context }}",
    "{{ config }}",
    "{{ request }}",
    "{{ range(10) }}",
    "{{ range(10**9)|list }}",
    "{% for x in range(999999999) %}{{ x }}{% endfor %}",
    "{{ dict(a=1) }}",
    "{% include 'secrets.txt' %}",
    "{% import 'macros.html' as m %}",
    "{% from 'macros.html' import m %}",
    "{% extends 'base.html' %}",
    "{% macro m() %}x{% endmacro %}",
    "{% call client.name() %}x{% endcall %}",
    "{% block b %}x{% endblock %}",
    "{% autoescape false %}{{ client.name }}{% endautoescape %}",
    "{% filter attr('x') %}y{% endfilter %}",
    "{% set ns = namespace(a=1) %}{% set ns.a = 2 %}",
    "{{ client.name|safe }}",
    "{{ client.tags|map('upper')|list }}",
    "{{ client.tags|selectattr('x') }}",
    "{{ client.name|indent(10**9) }}",
    "{{ client.name|wordwrap(5) }}",
    "{{ client.tags|sum }}",
    "{{ client.name|tojson }}",
    "{{ client.name|pprint }}",
    "{{ client.name|xmlattr }}",
    "{{ client.name|urlize }}",
    "{{ client.tags|random }}",
    "{{ {'a': 1} }}",
    "{% for x in client.tags recursive %}{{ loop(x) }}{% endfor %}",
    "{{ caller() }}",
    "{{ varargs }}",
    "{{ loop }}",
    "{% with f = client.name.upper %}{{ f() }}{% endwith %}",
]


@pytest.mark.parametrize("source", FORBIDDEN)
def test_forbidden_constructs_are_refused_at_load(source: str) -> None:
    with pytest.raises(TemplateError):
        compile_(source)


@pytest.mark.parametrize("source", FORBIDDEN)
def test_forbidden_constructs_are_refused_in_html_too(source: str) -> None:
    with pytest.raises(TemplateError):
        compile_(source, "html")


# --------------------------------------------------------------------------- runaway work


def assert_refused_quickly(
    source: str, context: Mapping[str, Mapping[str, object]] = CONTEXT
) -> None:
    started = time.perf_counter()
    with pytest.raises(TemplateError):
        compile_(source).render(context)
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 10**9 }}",
        "{{ 10**9 * 'x' }}",
        "{{ client.tags|list * 10**9 }}",
        "{{ 2 ** (10**9) }}",
        "{{ 9 ** (9 ** 9) }}",
        "{% set a = 'xxxxxxxxxx' %}" + "{% set a = a ~ a %}" * 40,
        "{% set a = 'xxxxxxxxxx' %}" + "{% set a = a + a %}" * 40,
        "{% set a = 10 ** 100 %}" + "{% set a = a * a %}" * 40,
        "{{ client.name|replace('', client.name ~ client.name ~ client.name) * 1000 }}",
        "{{ deal.amount|round(1000000000, 'floor') }}",
        "{% set f = '%999999999s' %}{{ f % 1 }}",
        "{{ 1 / 0 }}",
        "{{ client.name + 1 }}",
    ],
)
def test_runaway_operations_fail_fast(source: str) -> None:
    assert_refused_quickly(source)


def test_jinja_power_is_left_associative_so_9_9_9_stays_small() -> None:
    started = time.perf_counter()
    assert render("{{ 9**9**9 }}") == str((9**9) ** 9)
    assert time.perf_counter() - started < 1


def test_nested_loops_are_bounded() -> None:
    context = {"client": {"tags": [str(i) for i in range(200)]}}
    loop = "{% for a in client.tags %}"
    assert_refused_quickly(loop * 3 + "{% endfor %}" * 3, context)


def test_buffered_output_is_bounded() -> None:
    context = {"client": {"tags": [str(i) for i in range(300)]}}
    body = "y" * 5000
    source = (
        "{% filter upper %}{% for a in client.tags %}{% for b in client.tags %}"
        + body
        + "{% endfor %}{% endfor %}{% endfilter %}"
    )
    assert_refused_quickly(source, context)


def test_output_cap() -> None:
    template = compile_("{% for t in client.tags %}{{ client.name }}{% endfor %}", max_output=20)
    with pytest.raises(TemplateRenderError, match="more than 20 characters"):
        template.render({"client": {"name": "0123456789", "tags": ["a", "b", "c"]}})
    ok = template.render({"client": {"name": "0123456789", "tags": ["a", "b"]}})
    assert ok == "0123456789" * 2


def test_output_cap_on_the_stream() -> None:
    # Literal text inside a loop is charged as well as printed values.
    template = compile_("{% for t in client.tags %}0123456789{% endfor %}", max_output=25)
    with pytest.raises(TemplateRenderError, match="more than 25 characters"):
        template.render({"client": {"tags": ["a", "b", "c"]}})


def test_long_field_value_is_refused() -> None:
    with pytest.raises(TemplateRenderError):
        render("{{ client.name }}", context={"client": {"name": "x" * 101}}, max_output=100)


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(TemplateError, match="nested too deeply"):
        compile_("{{ " + "(" * 2000 + "1" + ")" * 2000 + " }}")
    with pytest.raises(TemplateError, match="nested too deeply"):
        compile_("{{ " + " + ".join(["1"] * 100) + " }}")


def test_huge_number_literal_is_refused() -> None:
    with pytest.raises(TemplateError):
        compile_("{{ 1" + "0" * 5000 + " }}")


# --------------------------------------------------------------------------- properties

FRAGMENTS = [
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    " ",
    "\n",
    "client.name",
    "client.tags",
    "deal.amount",
    "deal.delivered_at",
    "client",
    "x",
    "t",
    "loop.index",
    "for t in",
    "endfor",
    "if",
    "else",
    "endif",
    "set x =",
    "filter",
    "endfilter",
    "=",
    "==",
    "~",
    "+",
    "*",
    "**",
    "%",
    "/",
    "-",
    "|",
    "upper",
    "join(', ')",
    "replace('a', 'bb')",
    "default('-')",
    "date('%d.%m')",
    "sort",
    "length",
    "(",
    ")",
    "[",
    "]",
    "'a'",
    "'%s'",
    "1",
    "10",
    "999",
    "0",
    "is defined",
    "not",
    "and",
    "__class__",
    ".",
    "<b>",
    "\r\n",
]

SOURCES = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=80),
    st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join),
)

PROPERTY_CONTEXT: dict[str, dict[str, object]] = {
    "client": {"name": "<b>Ромашка</b>\r\n", "tags": ["a", "b", "c"]},
    "deal": {"amount": Decimal("12.5"), "delivered_at": date(2024, 1, 2)},
}


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(source=SOURCES, kind=st.sampled_from(["text", "html", "subject"]))
def test_any_source_compiles_or_fails_with_template_error(source: str, kind: Kind) -> None:
    try:
        template = compile_template(source, kind, known, max_output=2_000)
    except TemplateError:
        return
    try:
        result = template.render(PROPERTY_CONTEXT)
    except TemplateError:
        return
    assert isinstance(result, str)
    assert len(result) <= 2_000
    if kind == "subject":
        assert "\n" not in result and "\r" not in result
