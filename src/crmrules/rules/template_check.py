"""The load-time check of a template: a whitelist of syntax, with a line and a fix.

Templates may only read ``client``/``deal``/``event``/``manager`` fields the
regulation declares, use whitelisted filters and tests, and loop over field
values. Calls, attribute access on values, includes, imports, macros, blocks
and ``{% autoescape %}`` are refused. Anything the check misses still fails
closed in the sandbox (crmrules.rules.template_sandbox).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from datetime import datetime

from jinja2 import nodes

from crmrules.rules.fields import unknown_field_hint
from crmrules.rules.template_budget import TemplateError
from crmrules.rules.template_sandbox import FILTERS, MAX_DATE_FORMAT, SandboxEnvironment

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

#: Deepest nesting of template syntax; keeps Jinja2's compiler far from recursion limits.
MAX_DEPTH = 40

_RESERVED_NAMES = frozenset({*NAMESPACES, "loop", "self", "caller", "varargs", "kwargs"})


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


class Checker:
    """Walks a parsed template and refuses everything outside the template language."""

    def __init__(
        self,
        env: SandboxEnvironment,
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
        spec = FILTERS.get(node.name)
        if spec is None:
            raise self.fail(
                f"filter {node.name!r} is not allowed in templates; allowed: "
                + ", ".join(sorted(FILTERS)),
                node,
                _did_you_mean(node.name, FILTERS),
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


__all__ = ["LOOP_ATTRIBUTES", "MAX_DEPTH", "NAMESPACES", "Checker"]
