"""Bounded templates: nested values are weighed, one render stays within its budget.

CPU is asserted through the budget's own accounting (work units, loop steps),
never by timing a render: on a shared two-core machine a timing says more
about the neighbours than about the template. The cost of one unit on real
hardware is measured in benchmarks/bench_template_bounds.py. Memory is
measured here, with tracemalloc, which counts allocations and not time.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmrules.rules.template_budget import BudgetExceeded
from crmrules.rules.templates import (
    DEFAULT_LIMITS,
    CompiledTemplate,
    TemplateError,
    TemplateLimits,
    TemplateRenderError,
    compile_template,
)

KNOWN = frozenset({"client.name", "client.tags", "deal.amount"})
CONTEXT: dict[str, dict[str, object]] = {
    "client": {"name": "Ромашка", "tags": [f"тег{i}" for i in range(40)]},
    "deal": {"amount": 12},
}
MEMORY_BOUND = 64 * 1024 * 1024


def compile_(source: str, **kwargs: object) -> CompiledTemplate:
    return compile_template(source, "text", KNOWN.__contains__, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "source",
    [
        "{{ [[1]*3000]*3000 }}",
        "{{ ['a'*99999]*20000 }}",
        "{{ [[1]*3000]*3000 == [[1]*3000]*3000 }}",
        "{{ ([[1]*300]*300) | join(', ') }}",
        "{{ ([[1]*300]*300) ~ '' }}",
    ],
)
def test_constant_expressions_past_the_bounds_are_refused_at_load(source: str) -> None:
    with pytest.raises(TemplateError) as caught:
        compile_(source)
    assert not isinstance(caught.value, TemplateRenderError)
    assert caught.value.line == 1
    assert "larger than 100000" in caught.value.message or "more than" in caught.value.message


@pytest.mark.parametrize(
    "source",
    [
        "{{ [[client.name]*3000]*3000 }}",
        "{{ [client.name * 14000]*20000 }}",
        "{{ [[client.name]*3000]*3000 == [[client.name]*3000]*3000 }}",
        "{{ [[client.name]*300]*300 == [[client.name]*300]*300 }}",
        "{% set a = [client.name] %}" + "{% set a = [a, a] %}" * 40 + "{{ a }}",
        "{% set a = [client.name] %}{% set b = [client.name] %}"
        + "{% set a = [a, a] %}{% set b = [b, b] %}" * 40
        + "{{ a == b }}",
        "{% set a = [client.name] %}" + "{% set a = [a, a] %}" * 40 + "{{ a | length }}",
        "{% set a = [client.name] %}" + "{% set a = [a, a] %}" * 40 + "{{ a ~ '' }}",
        "{% set a = [client.name] %}" + "{% set a = [a, a] %}" * 40 + "{{ a | sort }}",
        "{% set a = [client.name] %}" + "{% set a = [a, a] %}" * 40 + "{{ a is sameas a }}",
        "{% set a = [client.name] %}" + "{% set a = [a, a] %}" * 40 + "{{ client.name in a }}",
    ],
)
def test_nested_values_are_weighed_before_they_are_used(source: str) -> None:
    template = compile_(source)
    tracemalloc.start()
    try:
        with pytest.raises(BudgetExceeded):
            template.render(CONTEXT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND


def test_a_comparison_of_nested_lists_costs_their_size() -> None:
    # 100 x 100 names is within one value's size, but each use of it is charged in full.
    source = "{{ [[client.name]*100]*100 == [[client.name]*100]*100 }}"
    text, usage = compile_(source, max_output=200_000).render_measured(CONTEXT)
    assert text == "True"
    nested = 100 + 100 * (100 + 100 * len("Ромашка"))
    assert usage.work >= 2 * nested
    with pytest.raises(BudgetExceeded, match="larger than 1000"):
        compile_(source, max_output=1000).render(CONTEXT)


def test_nested_size_counts_every_level_even_when_the_result_prints_short() -> None:
    # 30 x 30 references print as "True", but comparing them touches 930 items.
    source = "{{ [[client.name]*30]*30 == [[client.name]*30]*30 }}"
    with pytest.raises(BudgetExceeded, match="larger than 100"):
        compile_(source, max_output=100).render({"client": {"name": "x"}})


def test_small_nested_lists_still_print() -> None:
    assert compile_("{{ [[1, 2], [3]] }}").render({}) == "1, 2, 3"
    assert compile_("{{ [client.name] * 2 }}").render(CONTEXT) == "Ромашка, Ромашка"


def test_the_host_sets_the_limits() -> None:
    small = TemplateLimits(max_output=50, max_value=20, max_work=100, max_loop_steps=10)
    with pytest.raises(BudgetExceeded, match="larger than 20"):
        compile_("{{ client.name * 3 }}", limits=small).render(CONTEXT)
    with pytest.raises(BudgetExceeded, match="loops run too long"):
        compile_("{% for t in client.tags %}{{ t }}{% endfor %}", limits=small).render(CONTEXT)
    with pytest.raises(TemplateError, match="larger than 20"):
        compile_("{{ 'x' * 21 }}", limits=small)  # a constant: refused at load
    assert TemplateLimits() == DEFAULT_LIMITS


# --------------------------------------------------------------------------- property

ATOMS = [
    "1",
    "7",
    "3000",
    "99999",
    "'a'",
    "'абв'",
    "client.name",
    "client.tags",
    "deal.amount",
    "[1, 2]",
    "a",
    "b",
]
FILTERS = [
    "list",
    "join(', ')",
    "sort",
    "unique",
    "upper",
    "length",
    "replace('а', 'бб')",
    "first",
    "reverse",
    "string",
    "default(a)",
]


def expressions(depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return st.sampled_from(ATOMS)
    sub = expressions(depth - 1)
    return st.one_of(
        sub,
        st.tuples(sub, st.sampled_from(["*", "+", "~", "==", "in", "**", "!=", "<"]), sub).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(sub, sub).map(lambda t: f"[{t[0]}, {t[1]}]"),
        sub.map(lambda e: f"[{e}]"),
        st.tuples(sub, st.sampled_from(FILTERS)).map(lambda t: f"({t[0]} | {t[1]})"),
        st.tuples(sub, st.sampled_from(["defined", "none", "sameas a", "in b"])).map(
            lambda t: f"({t[0]} is {t[1]})"
        ),
    )


STATEMENT = st.one_of(
    st.tuples(st.sampled_from("ab"), expressions(2)).map(lambda t: f"{{% set {t[0]} = {t[1]} %}}"),
    expressions(3).map(lambda e: f"{{{{ {e} }}}}"),
    st.tuples(expressions(2), expressions(2)).map(
        lambda t: (
            f"{{% for t in client.tags %}}{{% set a = {t[0]} %}}{{{{ {t[1]} }}}}{{% endfor %}}"
        )
    ),
)
PROGRAMS = st.lists(STATEMENT, min_size=1, max_size=8).map(
    lambda parts: "{% set a = client.name %}{% set b = client.tags %}" + "".join(parts)
)


def render_bounded(source: str, context: Mapping[str, Mapping[str, object]]) -> None:
    try:
        template = compile_(source)
    except TemplateError:
        return
    limits = template.limits
    tracemalloc.start()
    try:
        try:
            text, usage = template.render_measured(context)
        except TemplateRenderError:
            usage = None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"{peak} bytes for {source}"
    if usage is not None:
        assert len(text) <= limits.max_output
        assert usage.work <= limits.max_work
        assert usage.loop_steps <= limits.max_loop_steps
        assert usage.output <= limits.max_output


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=PROGRAMS)
def test_random_templates_never_exceed_the_bounds(source: str) -> None:
    render_bounded(source, CONTEXT)
