"""The template sandbox at run time: plain values, whitelisted filters, charged operators.

A template only ever sees plain values (copied from the host's records), and
everything that can cost more than a constant goes through the render's
budget (crmrules.rules.template_budget) before it runs: printed values, ``~``,
``+``, ``*``, ``**``, ``%``, comparisons and tests, every filter and every
loop. ``Instrument`` rewrites a checked template so those go through the
hooks defined here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from jinja2 import nodes
from jinja2.filters import (
    do_capitalize,
    do_float,
    do_int,
    do_last,
    do_max,
    do_min,
    do_round,
    do_sort,
    do_striptags,
    do_title,
    do_trim,
    do_truncate,
    sync_do_first,
    sync_do_unique,
)
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import pass_context
from jinja2.visitor import NodeTransformer
from markupsafe import Markup, escape

from crmrules.rules.template_budget import (
    Budget,
    BudgetExceeded,
    TemplateRenderError,
    budget_of,
    finalize,
)

#: Longest strftime format the ``date`` filter accepts.
MAX_DATE_FORMAT = 64

# Names of the instrumentation filters; a space makes them impossible to write in a template.
_OUT = "crm out"
_TEXT = "crm text"
_CONCAT = "crm concat"
_LOOP = "crm loop"
_USE = "crm use"


# --------------------------------------------------------------------------- values


def _plain_scalar(value: object, path: str, limit: int) -> object:
    """A copy of one host value as an exact built-in type, or TemplateRenderError."""
    if value is None or type(value) in (bool, int, float, Decimal, date, datetime):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        if len(value) > limit:
            raise TemplateRenderError(f"field {path} is longer than {limit} characters")
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Decimal):
        return Decimal(value)
    if isinstance(value, datetime):
        return datetime(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            value.tzinfo,
            fold=value.fold,
        )
    if isinstance(value, date):
        return date(value.year, value.month, value.day)
    raise TemplateRenderError(f"field {path} holds a {type(value).__name__}, not a plain value")


def plain(value: object, path: str, limit: int) -> object:
    """A host value as templates may see it; sets become sorted tuples so loops are stable."""
    if isinstance(value, list | tuple | set | frozenset):
        if len(value) > limit:
            raise TemplateRenderError(f"field {path} has more than {limit} items")
        items = [_plain_scalar(item, path, limit) for item in value]
        if isinstance(value, set | frozenset):
            items.sort(key=finalize)
        return tuple(items)
    return _plain_scalar(value, path, limit)


class Fields:
    """One namespace as templates see it: item lookup only, no public attributes.

    A plain dict would expose ``client.items`` or ``client.values`` as methods.
    """

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, object]) -> None:
        self._values = values

    def __getitem__(self, key: str) -> object:
        return self._values[key]


# --------------------------------------------------------------------------- filters


def _items(value: object) -> Sequence[Any]:
    """A sequence to iterate; a missing or empty value is an empty sequence."""
    if value is None or isinstance(value, Undefined):
        return ()
    if isinstance(value, str | list | tuple):
        return value
    raise TemplateRenderError(f"expected a list, got {type(value).__name__}")


def _numeric(value: object) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _f_upper(context: Context, value: object) -> str:
    return finalize(value).upper()


def _f_lower(context: Context, value: object) -> str:
    return finalize(value).lower()


def _f_title(context: Context, value: object) -> str:
    return do_title(finalize(value))


def _f_capitalize(context: Context, value: object) -> str:
    return do_capitalize(finalize(value))


def _f_trim(context: Context, value: object, chars: str | None = None) -> str:
    return do_trim(finalize(value), chars)


def _f_striptags(context: Context, value: object) -> str:
    return do_striptags(finalize(value))


def _f_string(context: Context, value: object) -> str:
    return finalize(value)


def _f_escape(context: Context, value: object) -> Markup:
    return escape(finalize(value))


def _f_default(
    context: Context, value: object, default_value: object = "", boolean: bool = False
) -> object:
    """Like Jinja2's default, but None counts as missing: admins think of it as empty."""
    if value is None or isinstance(value, Undefined) or (boolean and not value):
        return default_value
    return value


def _f_length(context: Context, value: object) -> int:
    return len(_items(value))


def _f_round(context: Context, value: object, precision: int = 0, method: str = "common") -> object:
    if value is None or isinstance(value, Undefined):
        return None
    if not isinstance(precision, int) or abs(precision) > 20:
        raise TemplateRenderError("round: precision must be a whole number from -20 to 20")
    if not _numeric(value):
        raise TemplateRenderError(f"round: expected a number, got {type(value).__name__}")
    return do_round(value, precision, method)  # type: ignore[arg-type]


def _f_abs(context: Context, value: object) -> object:
    if value is None or isinstance(value, Undefined):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TemplateRenderError(f"abs: expected a number, got {type(value).__name__}")
    return abs(value)


def _f_int(context: Context, value: object, default: int = 0, base: int = 10) -> int:
    return do_int(value, default, base)


def _f_float(context: Context, value: object, default: float = 0.0) -> float:
    return do_float(value, default)


def _f_join(context: Context, value: object, d: object = "") -> str:
    """Join items as they would print; sizes are checked before the string is built."""
    budget = budget_of(context)
    items = _items(value)
    separator = finalize(d)
    budget.check_size(budget.weigh(items) + len(separator) * max(len(items) - 1, 0))
    parts = [finalize(item) for item in items]
    if context.eval_ctx.autoescape:
        return escape(separator).join(escape(part) for part in parts)
    return separator.join(parts)


def _f_replace(
    context: Context, value: object, old: object, new: object, count: int | None = None
) -> str:
    """str.replace with the result's size checked first: '' as old multiplies the text."""
    text, old_text, new_text = finalize(value), finalize(old), finalize(new)
    if count is not None and not isinstance(count, int):
        raise TemplateRenderError("replace: count must be a whole number")
    found = len(text) + 1 if old_text == "" else text.count(old_text)
    if count is not None and count >= 0:
        found = min(found, count)
    budget_of(context).check_size(len(text) + found * max(len(new_text) - len(old_text), 0))
    return text.replace(old_text, new_text, -1 if count is None else count)


def _f_truncate(
    context: Context,
    value: object,
    length: int = 255,
    killwords: bool = False,
    end: str = "...",
    leeway: int | None = None,
) -> str:
    return do_truncate(context.environment, finalize(value), length, killwords, end, leeway)


def _f_first(context: Context, value: object) -> object:
    return sync_do_first(context.environment, _items(value))


def _f_last(context: Context, value: object) -> object:
    return do_last(context.environment, list(_items(value)))


def _f_min(context: Context, value: object, case_sensitive: bool = False) -> object:
    return do_min(context.environment, _items(value), case_sensitive)


def _f_max(context: Context, value: object, case_sensitive: bool = False) -> object:
    return do_max(context.environment, _items(value), case_sensitive)


def _f_sort(
    context: Context, value: object, reverse: bool = False, case_sensitive: bool = False
) -> list[Any]:
    return do_sort(context.environment, _items(value), reverse, case_sensitive)


def _f_unique(context: Context, value: object, case_sensitive: bool = False) -> list[Any]:
    return list(sync_do_unique(context.environment, _items(value), case_sensitive))


def _f_list(context: Context, value: object) -> list[Any]:
    return list(_items(value))


def _f_reverse(context: Context, value: object) -> object:
    if isinstance(value, str):
        return value[::-1]
    return list(_items(value))[::-1]


def _f_date(context: Context, value: object, fmt: str) -> str:
    """strftime with a literal format (checked at load time); None prints as nothing."""
    if value is None or isinstance(value, Undefined):
        return ""
    if not isinstance(value, date):
        raise TemplateRenderError(f"date: expected a date, got {type(value).__name__}")
    if not isinstance(fmt, str) or len(fmt) > MAX_DATE_FORMAT:
        raise TemplateRenderError("date: the format must be a short literal string")
    return value.strftime(fmt)


@dataclass(frozen=True)
class FilterSpec:
    """A whitelisted filter: run(context, value, *args) and the arguments it accepts."""

    run: Callable[..., object]
    params: tuple[str, ...] = ()
    required: int = 0


FILTERS: dict[str, FilterSpec] = {
    "upper": FilterSpec(_f_upper),
    "lower": FilterSpec(_f_lower),
    "title": FilterSpec(_f_title),
    "capitalize": FilterSpec(_f_capitalize),
    "trim": FilterSpec(_f_trim, ("chars",)),
    "striptags": FilterSpec(_f_striptags),
    "default": FilterSpec(_f_default, ("default_value", "boolean")),
    "d": FilterSpec(_f_default, ("default_value", "boolean")),
    "length": FilterSpec(_f_length),
    "count": FilterSpec(_f_length),
    "round": FilterSpec(_f_round, ("precision", "method")),
    "int": FilterSpec(_f_int, ("default", "base")),
    "float": FilterSpec(_f_float, ("default",)),
    "string": FilterSpec(_f_string),
    "join": FilterSpec(_f_join, ("d",)),
    "first": FilterSpec(_f_first),
    "last": FilterSpec(_f_last),
    "replace": FilterSpec(_f_replace, ("old", "new", "count"), required=2),
    "truncate": FilterSpec(_f_truncate, ("length", "killwords", "end", "leeway")),
    "abs": FilterSpec(_f_abs),
    "min": FilterSpec(_f_min, ("case_sensitive",)),
    "max": FilterSpec(_f_max, ("case_sensitive",)),
    "sort": FilterSpec(_f_sort, ("reverse", "case_sensitive")),
    "unique": FilterSpec(_f_unique, ("case_sensitive",)),
    "list": FilterSpec(_f_list),
    "reverse": FilterSpec(_f_reverse),
    "e": FilterSpec(_f_escape),
    "escape": FilterSpec(_f_escape),
    "date": FilterSpec(_f_date, ("format",), required=1),
}

#: Filters admins may use.
ALLOWED_FILTERS: frozenset[str] = frozenset(FILTERS)


def _runtime_filter(name: str, spec: FilterSpec) -> Callable[..., object]:
    """Wrap a whitelisted filter: arguments rechecked, input and arguments weighed and
    charged before it runs (a filter reads all of them), its result charged after."""

    @pass_context
    def run(context: Context, value: object, *args: object, **kwargs: object) -> object:
        free = spec.params[len(args) :]
        if len(args) > len(spec.params) or not set(kwargs) <= set(free):
            raise TemplateRenderError(f"filter {name!r} got unexpected arguments")
        budget = budget_of(context)
        for given in (value, *args, *kwargs.values()):
            budget.charge_use(given)
        result = spec.run(context, value, *args, **kwargs)
        budget.charge_value(result)
        return result

    return run


def print_value(budget: Budget, value: object, autoescape: bool) -> str:
    """A printed value: weighed first (a nested list must not be joined before its size is
    known), then finalized, escaped for HTML and charged to the output budget."""
    size = budget.weigh(value)
    if size > budget.limits.max_output:
        raise BudgetExceeded(
            f"the template produces more than {budget.limits.max_output} characters"
        )
    text = finalize(value)
    if autoescape:
        text = escape(text)
    budget.charge_output(len(text))
    return text


def print_text(budget: Budget, value: str, autoescape: bool) -> str:
    """Literal template text, charged like output (it may sit inside a loop)."""
    budget.charge_output(len(value))
    return Markup(value) if autoescape else value


@pass_context
def _out(context: Context, value: object) -> str:
    """Every printed expression (see ``print_value``)."""
    return print_value(budget_of(context), value, context.eval_ctx.autoescape)


@pass_context
def _text(context: Context, value: str) -> str:
    """Literal template text (see ``print_text``)."""
    return print_text(budget_of(context), value, context.eval_ctx.autoescape)


@pass_context
def _concat(context: Context, values: list[object]) -> str:
    """The ``~`` operator, size-checked; None prints as nothing, as it does in output."""
    budget = budget_of(context)
    budget.check_size(sum(budget.weigh(value) for value in values))
    parts = [finalize(value) for value in values]
    if context.eval_ctx.autoescape and any(isinstance(part, Markup) for part in parts):
        result: str = Markup("").join(escape(part) for part in parts)
    else:
        result = "".join(parts)
    budget.charge_value(result)
    return result


@pass_context
def _use(context: Context, value: object) -> object:
    """An operand of a comparison or test: comparing nested lists costs their size."""
    return budget_of(context).charge_use(value)


@pass_context
def _loop(context: Context, value: object, cost: int) -> list[Any]:
    """A loop's iterable, charged as iterations times body size (loops never break early)."""
    items: list[Any] = list(value)  # type: ignore[call-overload]
    budget_of(context).charge_steps(len(items) * cost)
    return items


# --------------------------------------------------------------------------- environment


class SandboxEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with the operators that can allocate without bound intercepted."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Check sizes before running an operator, so nothing huge is ever allocated."""
        budget = budget_of(context)
        if operator == "%" and isinstance(left, str):
            raise TemplateRenderError("templates cannot format strings with %; use ~")
        if operator == "+" and isinstance(left, str | list | tuple):
            if isinstance(right, str | list | tuple):
                budget.check_size(budget.weigh(left) + budget.weigh(right))
        elif operator == "*":
            _check_multiply(budget, left, right)
        elif operator == "**":
            _check_power(budget, left, right)
        result = self.binop_table[operator](left, right)
        budget.charge_value(result)
        return result


def _check_multiply(budget: Budget, left: object, right: object) -> None:
    """``[x] * n`` holds n references, but printing or comparing it costs n times x."""
    for sequence, times in ((left, right), (right, left)):
        if isinstance(sequence, str | list | tuple) and isinstance(times, int):
            budget.check_size(budget.weigh(sequence) * max(times, 0))
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and left.bit_length() + right.bit_length() > budget.limits.max_int_bits
    ):
        raise TemplateRenderError("the template multiplies numbers that are too large")


def _check_power(budget: Budget, left: object, right: object) -> None:
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and right > 0
        and left.bit_length() * right > budget.limits.max_int_bits
    ):
        raise TemplateRenderError("the template raises a number to too large a power")


def _make_environment(autoescape: bool) -> SandboxEnvironment:
    env = SandboxEnvironment(
        autoescape=autoescape,
        undefined=Undefined,
        finalize=finalize,
        keep_trailing_newline=True,
        cache_size=0,
        auto_reload=False,
    )
    env.globals.clear()  # range, dict, lipsum, cycler, joiner, namespace
    env.filters.clear()
    env.filters.update({name: _runtime_filter(name, spec) for name, spec in FILTERS.items()})
    env.filters.update({_OUT: _out, _TEXT: _text, _CONCAT: _concat, _LOOP: _loop, _USE: _use})
    return env


# Configuration only: nothing about a template or a render is stored on them.
ENVIRONMENTS: dict[bool, SandboxEnvironment] = {
    False: _make_environment(False),
    True: _make_environment(True),
}

# --------------------------------------------------------------------------- instrumentation


def _filter_node(node: nodes.Node, name: str, *args: nodes.Node) -> nodes.Filter:
    return nodes.Filter(node, name, list(args), [], None, None, lineno=node.lineno)


class Instrument(NodeTransformer):
    """Rewrites a checked template so output, ``~``, comparisons, tests and loops go through
    the budget."""

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        wrapped: list[nodes.Expr] = []
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                wrapped.append(_filter_node(nodes.Const(child.data, lineno=child.lineno), _TEXT))
            else:
                wrapped.append(_filter_node(child, _OUT))
        node.nodes = wrapped
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filter_node(nodes.List(node.nodes, lineno=node.lineno), _CONCAT)

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        node.expr = _filter_node(node.expr, _USE)
        for operand in node.ops:
            operand.expr = _filter_node(operand.expr, _USE)
        return node

    def visit_Test(self, node: nodes.Test) -> nodes.Node:
        self.generic_visit(node)
        node.node = _filter_node(node.node, _USE)
        node.args = [_filter_node(arg, _USE) for arg in node.args]
        return node

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        body = [*node.body, *node.else_, *([node.test] if node.test is not None else [])]
        cost = 1 + sum(1 + sum(1 for _ in part.find_all(nodes.Node)) for part in body)
        node.iter = _filter_node(node.iter, _LOOP, nodes.Const(cost, lineno=node.lineno))
        return node


__all__ = [
    "ALLOWED_FILTERS",
    "ENVIRONMENTS",
    "FILTERS",
    "MAX_DATE_FORMAT",
    "Fields",
    "FilterSpec",
    "Instrument",
    "SandboxEnvironment",
    "plain",
    "print_text",
    "print_value",
]
