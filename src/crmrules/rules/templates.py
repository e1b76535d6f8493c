"""Mail templates and task titles: Jinja2 in a sandbox that admins cannot escape.

Admins write templates in the regulation, so a template is untrusted input. The
sandbox here is layered so that one missed check does not open a hole:

1. At load time the parsed template is checked against a whitelist of syntax:
   templates may only read ``client``/``deal``/``event``/``manager`` fields
   that the regulation declares, use whitelisted filters and tests, and loop
   over field values. Calls, attribute access on values, includes, imports,
   macros, blocks and ``{% autoescape %}`` are refused with a line number.
2. The Jinja2 environment itself is an ``ImmutableSandboxedEnvironment`` with
   no globals and only the whitelisted filters, so anything the check missed
   still fails closed.
3. At render time every value a template builds, every loop iteration and
   every character of output is charged to a per-render budget; string
   repetition, big powers and ``%`` formatting are checked before they run.
   A template can therefore neither allocate nor loop without bound.

Templates see plain values only (str, int, float, Decimal, bool, date,
datetime, None and lists or sets of those): whatever the host passes is copied
into plain values first, and anything else is refused.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, DecimalException
from typing import Any, Literal, cast

from jinja2 import Template, nodes
from jinja2.exceptions import TemplateSyntaxError, UndefinedError
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

from crmrules.errors import CrmRulesError
from crmrules.rules.fields import unknown_field_hint

__all__ = [
    "ALLOWED_FILTERS",
    "NAMESPACES",
    "CompiledTemplate",
    "Kind",
    "TemplateError",
    "TemplateRenderError",
    "compile_template",
]

Kind = Literal["text", "html", "subject"]

#: The only top-level names a template may read.
NAMESPACES: tuple[str, ...] = ("client", "deal", "event", "manager")

#: Loop bookkeeping a template may read as ``loop.<name>`` inside ``{% for %}``.
LOOP_ATTRIBUTES = frozenset(
    {
        "index",
        "index0",
        "revindex",
        "revindex0",
        "first",
        "last",
        "length",
        "depth",
        "depth0",
        "previtem",
        "nextitem",
    }
)

#: Loop work allowed per render: iterations times the size of the loop body.
MAX_LOOP_STEPS = 100_000
#: Characters a render may build in intermediate values, as a multiple of max_output.
WORK_FACTOR = 10
#: Largest integer (in bits) that ``*`` and ``**`` may produce.
MAX_INT_BITS = 4096
#: Deepest nesting of template syntax; keeps Jinja2's compiler far from recursion limits.
MAX_DEPTH = 40
#: Longest strftime format the ``date`` filter accepts.
MAX_DATE_FORMAT = 64

_JINJA_MARKERS = ("{{", "{%", "{#")
_RESERVED_NAMES = frozenset({*NAMESPACES, "loop", "self", "caller", "varargs", "kwargs"})
# Names of the instrumentation filters; a space makes them impossible to write in a template.
_OUT = "crm out"
_TEXT = "crm text"
_CONCAT = "crm concat"
_LOOP = "crm loop"
# Key of the per-render budget in the Jinja2 context; not an identifier, so unreachable.
_BUDGET_KEY = "crm budget"
# Line breaks (as str.splitlines sees them) and other control characters.
_SUBJECT_BREAKS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]+")


class TemplateError(CrmRulesError):
    """A template refused at load time; line counts from 1 inside the template source."""

    def __init__(self, message: str, line: int | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.hint = hint

    def __reduce__(self) -> tuple[type[TemplateError], tuple[str, int | None, str | None]]:
        return (type(self), (self.message, self.line, self.hint))

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{self.message}{hint}"


class TemplateRenderError(TemplateError):
    """A template that failed while rendering (output too long, runaway work, bad data)."""


# --------------------------------------------------------------------------- values


def _decimal_text(value: Decimal) -> str:
    """Money without an exponent; absurd exponents keep str() so the text stays short."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -40 and value.adjusted() < 40:
        return format(value, "f")
    return str(value)


def _finalize(value: object) -> str:
    """The text a value prints as; unknown objects print as nothing rather than a repr."""
    if isinstance(value, str):
        return value  # keeps Markup, so escaped text is not escaped twice
    if value is None or isinstance(value, Undefined):
        return ""
    if isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(_finalize(item) for item in value)
    return ""


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


def _plain(value: object, path: str, limit: int) -> object:
    """A host value as templates may see it; sets become sorted tuples so loops are stable."""
    if isinstance(value, list | tuple | set | frozenset):
        if len(value) > limit:
            raise TemplateRenderError(f"field {path} has more than {limit} items")
        items = [_plain_scalar(item, path, limit) for item in value]
        if isinstance(value, set | frozenset):
            items.sort(key=_finalize)
        return tuple(items)
    return _plain_scalar(value, path, limit)


class _Fields:
    """One namespace as templates see it: item lookup only, no public attributes.

    A plain dict would expose ``client.items`` or ``client.values`` as methods.
    """

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, object]) -> None:
        self._values = values

    def __getitem__(self, key: str) -> object:
        return self._values[key]


# --------------------------------------------------------------------------- budget


class _Budget:
    """What one render may still spend; shared by filters, operators and loops."""

    __slots__ = ("max_output", "output", "steps", "work")

    def __init__(self, max_output: int) -> None:
        self.max_output = max_output
        self.output = 0
        self.work = 0
        self.steps = 0

    def check_size(self, size: int) -> None:
        if size > self.max_output:
            raise TemplateRenderError(
                f"the template builds a value longer than {self.max_output} characters"
            )

    def charge_value(self, value: object) -> None:
        size = len(value) if isinstance(value, str | list | tuple) else 1
        self.check_size(size)
        self.work += size
        if self.work > WORK_FACTOR * self.max_output:
            raise TemplateRenderError("the template does too much work to render")

    def charge_output(self, size: int) -> None:
        self.output += size
        if self.output > self.max_output:
            raise TemplateRenderError(
                f"the template produces more than {self.max_output} characters"
            )

    def charge_steps(self, steps: int) -> None:
        self.steps += steps
        if self.steps > MAX_LOOP_STEPS:
            raise TemplateRenderError("the template's loops run too long")


def _budget_of(context: Context) -> _Budget:
    """The render's budget; without one nothing runs (fail closed)."""
    budget = context.get(_BUDGET_KEY)
    if not isinstance(budget, _Budget):
        raise TemplateRenderError("template rendered outside CompiledTemplate.render")
    return budget


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
    return _finalize(value).upper()


def _f_lower(context: Context, value: object) -> str:
    return _finalize(value).lower()


def _f_title(context: Context, value: object) -> str:
    return do_title(_finalize(value))


def _f_capitalize(context: Context, value: object) -> str:
    return do_capitalize(_finalize(value))


def _f_trim(context: Context, value: object, chars: str | None = None) -> str:
    return do_trim(_finalize(value), chars)


def _f_striptags(context: Context, value: object) -> str:
    return do_striptags(_finalize(value))


def _f_string(context: Context, value: object) -> str:
    return _finalize(value)


def _f_escape(context: Context, value: object) -> Markup:
    return escape(_finalize(value))


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
    parts = [_finalize(item) for item in _items(value)]
    separator = _finalize(d)
    budget = _budget_of(context)
    budget.check_size(sum(map(len, parts)) + len(separator) * max(len(parts) - 1, 0))
    if context.eval_ctx.autoescape:
        return escape(separator).join(escape(part) for part in parts)
    return separator.join(parts)


def _f_replace(
    context: Context, value: object, old: object, new: object, count: int | None = None
) -> str:
    """str.replace with the result's size checked first: '' as old multiplies the text."""
    text, old_text, new_text = _finalize(value), _finalize(old), _finalize(new)
    if count is not None and not isinstance(count, int):
        raise TemplateRenderError("replace: count must be a whole number")
    found = len(text) + 1 if old_text == "" else text.count(old_text)
    if count is not None and count >= 0:
        found = min(found, count)
    _budget_of(context).check_size(len(text) + found * max(len(new_text) - len(old_text), 0))
    return text.replace(old_text, new_text, -1 if count is None else count)


def _f_truncate(
    context: Context,
    value: object,
    length: int = 255,
    killwords: bool = False,
    end: str = "...",
    leeway: int | None = None,
) -> str:
    return do_truncate(context.environment, _finalize(value), length, killwords, end, leeway)


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
class _FilterSpec:
    """A whitelisted filter: run(context, value, *args) and the arguments it accepts."""

    run: Callable[..., object]
    params: tuple[str, ...] = ()
    required: int = 0


_FILTERS: dict[str, _FilterSpec] = {
    "upper": _FilterSpec(_f_upper),
    "lower": _FilterSpec(_f_lower),
    "title": _FilterSpec(_f_title),
    "capitalize": _FilterSpec(_f_capitalize),
    "trim": _FilterSpec(_f_trim, ("chars",)),
    "striptags": _FilterSpec(_f_striptags),
    "default": _FilterSpec(_f_default, ("default_value", "boolean")),
    "d": _FilterSpec(_f_default, ("default_value", "boolean")),
    "length": _FilterSpec(_f_length),
    "count": _FilterSpec(_f_length),
    "round": _FilterSpec(_f_round, ("precision", "method")),
    "int": _FilterSpec(_f_int, ("default", "base")),
    "float": _FilterSpec(_f_float, ("default",)),
    "string": _FilterSpec(_f_string),
    "join": _FilterSpec(_f_join, ("d",)),
    "first": _FilterSpec(_f_first),
    "last": _FilterSpec(_f_last),
    "replace": _FilterSpec(_f_replace, ("old", "new", "count"), required=2),
    "truncate": _FilterSpec(_f_truncate, ("length", "killwords", "end", "leeway")),
    "abs": _FilterSpec(_f_abs),
    "min": _FilterSpec(_f_min, ("case_sensitive",)),
    "max": _FilterSpec(_f_max, ("case_sensitive",)),
    "sort": _FilterSpec(_f_sort, ("reverse", "case_sensitive")),
    "unique": _FilterSpec(_f_unique, ("case_sensitive",)),
    "list": _FilterSpec(_f_list),
    "reverse": _FilterSpec(_f_reverse),
    "e": _FilterSpec(_f_escape),
    "escape": _FilterSpec(_f_escape),
    "date": _FilterSpec(_f_date, ("format",), required=1),
}

#: Filters admins may use.
ALLOWED_FILTERS: frozenset[str] = frozenset(_FILTERS)


def _runtime_filter(name: str, spec: _FilterSpec) -> Callable[..., object]:
    """Wrap a whitelisted filter so its arguments are rechecked and its result charged."""

    @pass_context
    def run(context: Context, value: object, *args: object, **kwargs: object) -> object:
        free = spec.params[len(args) :]
        if len(args) > len(spec.params) or not set(kwargs) <= set(free):
            raise TemplateRenderError(f"filter {name!r} got unexpected arguments")
        budget = _budget_of(context)
        result = spec.run(context, value, *args, **kwargs)
        budget.charge_value(result)
        return result

    return run


@pass_context
def _out(context: Context, value: object) -> str:
    """Every printed expression: finalized, escaped for HTML, charged to the output budget."""
    text = _finalize(value)
    if context.eval_ctx.autoescape:
        text = escape(text)
    _budget_of(context).charge_output(len(text))
    return text


@pass_context
def _text(context: Context, value: str) -> str:
    """Literal template text, charged like output (it may sit inside a loop)."""
    _budget_of(context).charge_output(len(value))
    return Markup(value) if context.eval_ctx.autoescape else value


@pass_context
def _concat(context: Context, values: list[object]) -> str:
    """The ``~`` operator, size-checked; None prints as nothing, as it does in output."""
    budget = _budget_of(context)
    parts = [_finalize(value) for value in values]
    budget.check_size(sum(map(len, parts)))
    if context.eval_ctx.autoescape and any(isinstance(part, Markup) for part in parts):
        result: str = Markup("").join(escape(part) for part in parts)
    else:
        result = "".join(parts)
    budget.charge_value(result)
    return result


@pass_context
def _loop(context: Context, value: object, cost: int) -> list[Any]:
    """A loop's iterable, charged as iterations times body size (loops never break early)."""
    items: list[Any] = list(value)  # type: ignore[call-overload]
    _budget_of(context).charge_steps(len(items) * cost)
    return items


# --------------------------------------------------------------------------- environment


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, with the operators that can allocate without bound intercepted."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Check sizes before running an operator, so nothing huge is ever allocated."""
        budget = _budget_of(context)
        if operator == "%" and isinstance(left, str):
            raise TemplateRenderError("templates cannot format strings with %; use ~")
        if operator == "+" and isinstance(left, str | list | tuple):
            if isinstance(right, str | list | tuple):
                budget.check_size(len(left) + len(right))
        elif operator == "*":
            _check_multiply(budget, left, right)
        elif operator == "**":
            _check_power(left, right)
        result = self.binop_table[operator](left, right)
        budget.charge_value(result)
        return result


def _check_multiply(budget: _Budget, left: object, right: object) -> None:
    for sequence, times in ((left, right), (right, left)):
        if isinstance(sequence, str | list | tuple) and isinstance(times, int):
            budget.check_size(len(sequence) * max(times, 0))
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and left.bit_length() + right.bit_length() > MAX_INT_BITS
    ):
        raise TemplateRenderError("the template multiplies numbers that are too large")


def _check_power(left: object, right: object) -> None:
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and right > 0
        and left.bit_length() * right > MAX_INT_BITS
    ):
        raise TemplateRenderError("the template raises a number to too large a power")


def _make_environment(autoescape: bool) -> _Environment:
    env = _Environment(
        autoescape=autoescape,
        undefined=Undefined,
        finalize=_finalize,
        keep_trailing_newline=True,
        cache_size=0,
        auto_reload=False,
    )
    env.globals.clear()  # range, dict, lipsum, cycler, joiner, namespace
    env.filters.clear()
    env.filters.update({name: _runtime_filter(name, spec) for name, spec in _FILTERS.items()})
    env.filters.update({_OUT: _out, _TEXT: _text, _CONCAT: _concat, _LOOP: _loop})
    return env


# Configuration only: nothing about a template or a render is stored on them.
_ENVIRONMENTS: dict[bool, _Environment] = {
    False: _make_environment(False),
    True: _make_environment(True),
}


# --------------------------------------------------------------------------- load-time check


def _did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(word, list(candidates), n=1)
    return f"did you mean {match[0]}?" if match else None


_REFUSED: dict[type[nodes.Node], str] = {
    nodes.Call: "templates cannot call functions or methods",
    nodes.Include: "templates cannot include other templates",
    nodes.Import: "templates cannot import other templates",
    nodes.FromImport: "templates cannot import other templates",
    nodes.Extends: "templates cannot extend other templates",
    nodes.Macro: "templates cannot define macros",
    nodes.CallBlock: "templates cannot call macros",
    nodes.Block: "templates cannot define blocks",
    nodes.EvalContextModifier: "templates cannot switch autoescaping",
    nodes.Dict: "templates cannot build dictionaries",
    nodes.NSRef: "templates cannot assign to attributes",
    nodes.Slice: "templates cannot slice values",
}

_BINARY = (
    nodes.Add,
    nodes.Sub,
    nodes.Mul,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Mod,
    nodes.Pow,
    nodes.And,
    nodes.Or,
)


class _Checker:
    """Walks a parsed template and refuses everything outside the template language."""

    def __init__(
        self,
        env: _Environment,
        is_known_field: Callable[[str], bool],
        known_fields: Iterable[str],
    ) -> None:
        self.env = env
        self.is_known_field = is_known_field
        self.known_fields = known_fields
        self.bound: set[str] = set()
        self.fields: set[str] = set()
        self.loop_depth = 0  # how many {% for %} bodies enclose the node being checked

    def fail(self, message: str, node: nodes.Node | None, hint: str | None = None) -> TemplateError:
        return TemplateError(message, node.lineno if node is not None else None, hint)

    def check(self, tree: nodes.Template) -> None:
        self.collect(tree)
        self.visit(tree)

    def collect(self, tree: nodes.Template) -> None:
        """Refuse deep nesting and collect the names bound by for/set/with, in one pass."""
        stack: list[tuple[nodes.Node, int]] = [(tree, 0)]
        while stack:
            node, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise self.fail("the template is nested too deeply", node)
            targets: list[nodes.Node] = []
            if isinstance(node, nodes.For | nodes.Assign | nodes.AssignBlock):
                targets = [node.target]
            elif isinstance(node, nodes.With):
                targets = list(node.targets)
            for target in targets:
                self.bind(target, isinstance(node, nodes.Assign))
            stack.extend((child, depth + 1) for child in node.iter_child_nodes())

    def bind(self, target: nodes.Node, allow_tuple: bool) -> None:
        if allow_tuple and isinstance(target, nodes.Tuple):
            for item in target.items:
                self.bind(item, False)
            return
        if not isinstance(target, nodes.Name):
            raise self.fail("templates can only assign to plain names", target)
        if target.name in _RESERVED_NAMES or target.name.startswith("_"):
            raise self.fail(f"the name {target.name!r} cannot be assigned", target)
        self.bound.add(target.name)

    def visit_all(self, items: Iterable[nodes.Node | None]) -> None:
        for item in items:
            if item is not None:
                self.visit(item)

    def visit(self, node: nodes.Node) -> None:
        for refused, message in _REFUSED.items():
            if isinstance(node, refused):
                raise self.fail(message, node, self.hint_for(node))
        if isinstance(node, nodes.Template | nodes.Output):
            self.visit_all(node.body if isinstance(node, nodes.Template) else node.nodes)
        elif isinstance(node, nodes.TemplateData | nodes.Const):
            pass
        elif isinstance(node, nodes.If):
            self.visit_all([node.test, *node.body, *node.elif_, *node.else_])
        elif isinstance(node, nodes.For):
            self.visit_for(node)
        elif isinstance(node, nodes.Assign):
            self.visit(node.node)
        elif isinstance(node, nodes.AssignBlock | nodes.FilterBlock):
            self.visit_all([node.filter, *node.body])
        elif isinstance(node, nodes.With):
            self.visit_all([*node.values, *node.body])
        elif isinstance(node, nodes.Name):
            self.visit_name(node)
        elif isinstance(node, nodes.Getattr | nodes.Getitem):
            self.visit_access(node)
        elif isinstance(node, nodes.List | nodes.Tuple):
            self.visit_all(node.items)
        elif isinstance(node, nodes.CondExpr):
            self.visit_all([node.test, node.expr1, node.expr2])
        elif isinstance(node, _BINARY):
            self.visit_binary(node)
        elif isinstance(node, nodes.Not | nodes.Neg | nodes.Pos):
            self.visit(node.node)
        elif isinstance(node, nodes.Compare):
            self.visit_all([node.expr, *(operand.expr for operand in node.ops)])
        elif isinstance(node, nodes.Concat):
            self.visit_all(node.nodes)
        elif isinstance(node, nodes.Filter):
            self.visit_filter(node)
        elif isinstance(node, nodes.Test):
            self.visit_test(node)
        else:
            raise self.fail(f"{type(node).__name__} is not allowed in templates", node)

    def hint_for(self, node: nodes.Node) -> str | None:
        if not isinstance(node, nodes.Call):
            return None
        if isinstance(node.node, nodes.Getattr) and node.node.attr in ("format", "format_map"):
            return "join text with ~, e.g. {{ 'Dear ' ~ client.name }}"
        if isinstance(node.node, nodes.Name) and node.node.name == "range":
            return "loop over a field, e.g. {% for tag in client.tags %}"
        return None

    def visit_for(self, node: nodes.For) -> None:
        if node.recursive:
            raise self.fail("recursive loops are not allowed", node)
        source = node.iter
        while isinstance(source, nodes.Filter) and source.node is not None:
            source = source.node
        if not self.is_field_read(source):
            raise self.fail(
                "templates can only loop over a field",
                node.iter,
                "e.g. {% for tag in client.tags %}",
            )
        self.visit_all([node.iter, node.test, *node.else_])
        self.loop_depth += 1
        self.visit_all(node.body)
        self.loop_depth -= 1

    def is_field_read(self, node: nodes.Node) -> bool:
        return (
            isinstance(node, nodes.Getattr | nodes.Getitem)
            and isinstance(node.node, nodes.Name)
            and node.node.name in NAMESPACES
        )

    def visit_name(self, node: nodes.Name) -> None:
        if node.name in NAMESPACES:
            raise self.fail(
                f"{node.name!r} is a group of fields; print one of its fields",
                node,
                f"e.g. {{{{ {node.name}.name }}}}",
            )
        if node.name == "loop":
            raise self.fail("'loop' can only be read as loop.index, loop.first, ...", node)
        if node.name not in self.bound:
            raise self.fail(
                f"unknown variable {node.name!r}",
                node,
                _did_you_mean(node.name, [*NAMESPACES, *self.bound])
                or "templates read client, deal, event and manager fields",
            )

    def visit_access(self, node: nodes.Getattr | nodes.Getitem) -> None:
        base = node.node
        key: object = None
        if isinstance(node, nodes.Getattr):
            key = node.attr
        elif isinstance(node.arg, nodes.Const):
            key = node.arg.value
        if isinstance(key, str) and key.startswith("_"):
            raise self.fail(f"names starting with '_' are not allowed: {key!r}", node)
        if not isinstance(base, nodes.Name) or base.name not in (*NAMESPACES, "loop"):
            if isinstance(base, nodes.Name) and base.name not in self.bound:
                self.visit_name(base)  # reports the unknown variable, with a suggestion
            raise self.fail("templates read fields; they cannot reach attributes of values", node)
        if not isinstance(key, str):
            raise self.fail("field names must be written literally, e.g. client.name", node)
        if base.name == "loop":
            if self.loop_depth == 0:
                raise self.fail(f"'loop.{key}' can only be used inside {{% for %}}", node)
            if isinstance(node, nodes.Getattr) and key in LOOP_ATTRIBUTES:
                return
            raise self.fail(
                f"'loop.{key}' is not available",
                node,
                "use one of: " + ", ".join(sorted(LOOP_ATTRIBUTES)),
            )
        path = f"{base.name}.{key}"
        if not self.is_known_field(path):
            close = difflib.get_close_matches(path, list(self.known_fields), n=1)
            hint = unknown_field_hint(path, close[0] if close else None)
            raise self.fail(f"unknown field {path!r}", node, hint)
        self.fields.add(path)

    def visit_binary(self, node: nodes.BinExpr) -> None:
        left = node.left
        if (
            isinstance(node, nodes.Mod)
            and isinstance(left, nodes.Const)
            and isinstance(left.value, str)
        ):
            raise self.fail("templates cannot format strings with %", node, "use ~")
        self.visit_all([node.left, node.right])

    def visit_filter(self, node: nodes.Filter) -> None:
        spec = _FILTERS.get(node.name)
        if spec is None:
            raise self.fail(
                f"filter {node.name!r} is not allowed in templates; allowed: "
                + ", ".join(sorted(_FILTERS)),
                node,
                _did_you_mean(node.name, _FILTERS),
            )
        self.check_arguments(node, f"filter {node.name!r}", spec.params, spec.required)
        if node.name == "date":
            self.check_date_format(node)
        self.visit_all([node.node, *node.args, *(kw.value for kw in node.kwargs)])

    def visit_test(self, node: nodes.Test) -> None:
        if node.name not in self.env.tests:
            raise self.fail(
                f"unknown test {node.name!r}", node, _did_you_mean(node.name, self.env.tests)
            )
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            raise self.fail(f"test {node.name!r}: arguments must be written out", node)
        self.visit_all([node.node, *node.args, *(kw.value for kw in node.kwargs)])

    def check_arguments(
        self, node: nodes.Filter, what: str, params: tuple[str, ...], required: int
    ) -> None:
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            raise self.fail(f"{what}: arguments must be written out", node)
        names = [kw.key for kw in node.kwargs]
        given = set(params[: len(node.args)]) | set(names)
        if (
            len(node.args) > len(params)
            or not set(names) <= set(params[len(node.args) :])
            or len(set(names)) != len(names)
            or not set(params[:required]) <= given
        ):
            usage = ", ".join(params) if params else "no arguments"
            raise self.fail(f"{what} got wrong arguments", node, f"it takes: {usage}")

    def check_date_format(self, node: nodes.Filter) -> None:
        arg = node.args[0] if node.args else node.kwargs[0].value
        if not isinstance(arg, nodes.Const) or not isinstance(arg.value, str):
            raise self.fail("filter 'date': the format must be a literal string", node)
        if len(arg.value) > MAX_DATE_FORMAT:
            raise self.fail(
                f"filter 'date': the format is longer than {MAX_DATE_FORMAT} characters", node
            )
        try:
            datetime(2000, 1, 2, 3, 4, 5).strftime(arg.value)
        except (ValueError, UnicodeError) as exc:
            raise self.fail(f"filter 'date': bad format: {exc}", node) from exc


# --------------------------------------------------------------------------- instrumentation


def _filter_node(node: nodes.Node, name: str, *args: nodes.Node) -> nodes.Filter:
    return nodes.Filter(node, name, list(args), [], None, None, lineno=node.lineno)


class _Instrument(NodeTransformer):
    """Rewrites a checked template so output, ``~`` and loops go through the budget."""

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

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        body = [*node.body, *node.else_, *([node.test] if node.test is not None else [])]
        cost = 1 + sum(1 + sum(1 for _ in part.find_all(nodes.Node)) for part in body)
        node.iter = _filter_node(node.iter, _LOOP, nodes.Const(cost, lineno=node.lineno))
        return node


# --------------------------------------------------------------------------- public API


def _one_line(text: str) -> str:
    """A subject on one line: header injection needs a line break, so none survive."""
    return _SUBJECT_BREAKS.sub(" ", text).strip()


class CompiledTemplate:
    """A checked template; compiled to Python on first render, then reused.

    Build it with :func:`compile_template`, which does every load-time check.
    """

    __slots__ = ("_plain", "_template", "fields", "kind", "max_output", "source")

    def __init__(
        self, source: str, kind: Kind, fields: frozenset[str], max_output: int, plain: bool
    ) -> None:
        self.source = source
        self.kind: Kind = kind
        self.fields = fields
        self.max_output = max_output
        self._plain: str | None = None
        if plain:
            self._plain = _one_line(source) if kind == "subject" else source
        self._template: Template | None = None

    def __repr__(self) -> str:
        return f"CompiledTemplate({self.source!r}, kind={self.kind!r})"

    def render(self, context: Mapping[str, Mapping[str, object]]) -> str:
        """Render with plain field values; raises TemplateRenderError, nothing else."""
        if self._plain is not None:
            return self._plain
        template = self._compiled()
        variables: dict[str, object] = self._variables(context)
        variables[_BUDGET_KEY] = _Budget(self.max_output)
        parts: list[str] = []
        size = 0
        # Jinja2's generate() is a generator; close it so an abandoned render frees at once.
        stream = cast(Generator[str, None, None], template.generate(variables))
        try:
            for chunk in stream:
                size += len(chunk)
                if size > self.max_output:
                    raise TemplateRenderError(
                        f"the template produces more than {self.max_output} characters"
                    )
                parts.append(chunk)
        except TemplateError:
            raise
        except Exception as exc:  # anything else a template can trigger (1/0, "a" + 1, ...)
            raise TemplateRenderError(f"the template failed: {_describe(exc)}") from exc
        finally:
            stream.close()
        text = "".join(parts)
        return _one_line(text) if self.kind == "subject" else text

    def _compiled(self) -> Template:
        """Parse again, instrument and compile; the source was already checked at load."""
        if self._template is None:
            env = _ENVIRONMENTS[self.kind == "html"]
            try:
                tree = env.parse(self.source)
                tree = _Instrument().visit(tree)
                tree.set_environment(env)
                self._template = env.from_string(tree)
            except Exception as exc:
                raise TemplateRenderError(
                    f"the template could not be compiled: {_describe(exc)}"
                ) from exc
        return self._template

    def _variables(self, context: Mapping[str, Mapping[str, object]]) -> dict[str, object]:
        """Copy only the fields this template reads, as plain values (fail closed)."""
        wanted: dict[str, dict[str, object]] = {name: {} for name in NAMESPACES}
        for path in self.fields:
            namespace, key = path.split(".", 1)
            record = context.get(namespace)
            if record is None:
                continue
            if not isinstance(record, Mapping):
                raise TemplateRenderError(f"{namespace} must be a mapping of field values")
            if key in record:
                wanted[namespace][key] = _plain(record[key], path, self.max_output)
        return {name: _Fields(values) for name, values in wanted.items()}


#: Jinja2's words for a field that is not there: "'... object' has no attribute 'x'".
_NO_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'")


def _describe(exc: BaseException) -> str:
    """An exception as one line for an admin; no traceback, no class paths."""
    if isinstance(exc, DecimalException):
        return "invalid arithmetic on a decimal number"
    missing = _NO_ATTRIBUTE.search(str(exc)) if isinstance(exc, UndefinedError) else None
    if missing is not None or (isinstance(exc, TypeError) and "NoneType" in str(exc)):
        which = f" ({missing.group(1)})" if missing else ""
        return (
            f"a value it uses{which} is empty: a field with no value; give it a default, "
            "e.g. {{ deal.amount | default(0) }}, or require the field in the rule's if:"
        )
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text or type(exc).__name__


def compile_template(
    source: str,
    kind: Kind,
    is_known_field: Callable[[str], bool],
    *,
    max_output: int = 100_000,
    known_fields: Iterable[str] = (),
    cache: dict[tuple[str, str], CompiledTemplate] | None = None,
) -> CompiledTemplate:
    """Check a template at load time; TemplateError names the line and, often, a fix.

    ``known_fields`` only feeds "did you mean" hints. ``cache`` lets one
    regulation load reuse templates that repeat (it must not outlive the load:
    the check depends on ``is_known_field``).
    """
    if kind not in ("text", "html", "subject"):
        raise ValueError(f"unknown template kind {kind!r}")
    if cache is not None:
        cached = cache.get((source, kind))
        if cached is not None and cached.max_output == max_output:
            return cached
    if not any(marker in source for marker in _JINJA_MARKERS):
        if len(source) > max_output:
            raise TemplateError(f"the text is longer than {max_output} characters")
        compiled = CompiledTemplate(source, kind, frozenset(), max_output, plain=True)
    else:
        env = _ENVIRONMENTS[kind == "html"]
        try:
            tree = env.parse(source)
        except TemplateSyntaxError as exc:
            message = exc.message or "the template cannot be read"
            raise TemplateError(f"syntax error: {message}", exc.lineno) from exc
        except RecursionError as exc:
            raise TemplateError("the template is nested too deeply") from exc
        except (ValueError, OverflowError) as exc:  # a number literal of 5000 digits
            raise TemplateError("the template has a number that is too long") from exc
        checker = _Checker(env, is_known_field, known_fields)
        checker.check(tree)
        compiled = CompiledTemplate(
            source, kind, frozenset(checker.fields), max_output, plain=False
        )
    if cache is not None:
        cache[(source, kind)] = compiled
    return compiled
