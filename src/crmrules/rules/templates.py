"""Mail templates and task titles: Jinja2 in a sandbox that admins cannot escape.

Admins write templates in the regulation, so a template is untrusted input. The
sandbox is layered so that one missed check does not open a hole:

1. At load time the parsed template is checked against a whitelist of syntax
   (crmrules.rules.template_check), with a line number and, often, a fix.
   Constant expressions are tried under the render budget, so
   ``{{ [[1]*3000]*3000 }}`` is refused at load, not at the first render.
2. The Jinja2 environment itself is an ``ImmutableSandboxedEnvironment`` with
   no globals and only the whitelisted filters (crmrules.rules.template_sandbox),
   so anything the check missed still fails closed.
3. At render time every value a template builds is weighed by its nested size
   and charged to a per-render budget (crmrules.rules.template_budget), as are
   comparisons, filters, loop iterations and every character of output; string
   and list repetition, big powers and ``%`` formatting are checked before
   they run. The default bounds keep a render within about 1 s of CPU and
   64 MB; a host may set its own (``TemplateLimits``).

Templates see plain values only (str, int, float, Decimal, bool, date,
datetime, None and lists or sets of those): whatever the host passes is copied
into plain values first, and anything else is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from decimal import DecimalException
from typing import Literal, cast

from jinja2 import Template, nodes
from jinja2.exceptions import TemplateSyntaxError, UndefinedError

from crmrules.rules.template_budget import (
    BUDGET_KEY,
    DEFAULT_LIMITS,
    Budget,
    BudgetExceeded,
    TemplateError,
    TemplateLimits,
    TemplateRenderError,
)
from crmrules.rules.template_check import NAMESPACES, Checker
from crmrules.rules.template_sandbox import (
    ALLOWED_FILTERS,
    ENVIRONMENTS,
    Fields,
    Instrument,
    plain,
    print_text,
    print_value,
)

__all__ = [
    "ALLOWED_FILTERS",
    "DEFAULT_LIMITS",
    "NAMESPACES",
    "CompiledTemplate",
    "Kind",
    "RenderUsage",
    "TemplateError",
    "TemplateLimits",
    "TemplateRenderError",
    "compile_template",
]

Kind = Literal["text", "html", "subject"]

_JINJA_MARKERS = ("{{", "{%", "{#")
# Line breaks (as str.splitlines sees them) and other control characters.
_SUBJECT_BREAKS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]+")
# Nodes whose value can cost more than its syntax: a constant expression holding one is
# tried at load time.
_COSTLY = (nodes.Mul, nodes.Pow, nodes.Add, nodes.Concat, nodes.Filter, nodes.Compare)

#: A template that is only text and printed fields, in order: a text, or (namespace, field).
Parts = tuple[str | tuple[str, str], ...]


def _one_line(text: str) -> str:
    """A subject on one line: header injection needs a line break, so none survive."""
    return _SUBJECT_BREAKS.sub(" ", text).strip()


@dataclass(frozen=True)
class RenderUsage:
    """What one render spent, by the budget's own accounting."""

    output: int
    work: int
    loop_steps: int


class CompiledTemplate:
    """A checked template; compiled to Python on first render, then reused.

    Build it with :func:`compile_template`, which does every load-time check.
    A template that is only text and printed fields (``Звонок {{ client.name }}``,
    most task titles and subjects) is rendered from its ``parts`` without
    Jinja2: the same field copies, the same budget charges and the same text
    as the instrumented template gives (``tests/test_template_parts.py``).
    """

    __slots__ = ("_parts", "_plain", "_reads", "_template", "fields", "kind", "limits", "source")

    def __init__(
        self,
        source: str,
        kind: Kind,
        fields: frozenset[str],
        limits: TemplateLimits,
        plain: bool,
        template: Template | None = None,
        parts: Parts | None = None,
    ) -> None:
        self.source = source
        self.kind: Kind = kind
        self.fields = fields
        self.limits = limits
        self._plain: str | None = None
        if plain:
            self._plain = _one_line(source) if kind == "subject" else source
        self._template = template
        self._parts = parts
        # (path, namespace, key) of each field read, split once
        self._reads = tuple((path, *path.split(".", 1)) for path in fields)

    @property
    def max_output(self) -> int:
        return self.limits.max_output

    def __repr__(self) -> str:
        return f"CompiledTemplate({self.source!r}, kind={self.kind!r})"

    def render(self, context: Mapping[str, Mapping[str, object]]) -> str:
        """Render with plain field values; raises TemplateRenderError, nothing else."""
        if self._plain is not None:
            return self._plain
        return self._render(context, Budget(self.limits))

    def render_measured(
        self, context: Mapping[str, Mapping[str, object]]
    ) -> tuple[str, RenderUsage]:
        """Render, and say what the render spent (for tests and benchmarks of the bounds)."""
        if self._plain is not None:
            return self._plain, RenderUsage(len(self._plain), 0, 0)
        budget = Budget(self.limits)
        text = self._render(context, budget)
        return text, RenderUsage(budget.output, budget.work, budget.steps)

    def _render(self, context: Mapping[str, Mapping[str, object]], budget: Budget) -> str:
        if self._parts is not None:
            text = self._print_parts(self._parts, self._values(context), budget)
        else:
            text = _run(self._compiled(), self._variables(context), budget)
        return _one_line(text) if self.kind == "subject" else text

    def _print_parts(
        self, parts: Parts, values: dict[str, dict[str, object]], budget: Budget
    ) -> str:
        """Text and fields printed as the instrumented template prints them (a field that is
        not there prints as Jinja2's undefined does: nothing, weighing 1)."""
        autoescape = self.kind == "html"
        pieces: list[str] = []
        for part in parts:
            if isinstance(part, str):
                pieces.append(print_text(budget, part, autoescape))
            else:
                pieces.append(print_value(budget, values[part[0]].get(part[1]), autoescape))
        return "".join(pieces)

    def _compiled(self) -> Template:
        """Parse again, instrument and compile; the source was already checked at load."""
        if self._template is None:
            env = ENVIRONMENTS[self.kind == "html"]
            try:
                self._template = _instrumented(env.parse(self.source), env)
            except Exception as exc:
                raise TemplateRenderError(
                    f"the template could not be compiled: {_describe(exc)}"
                ) from exc
        return self._template

    def _variables(self, context: Mapping[str, Mapping[str, object]]) -> dict[str, object]:
        """The namespaces as the template sees them (see ``_values``)."""
        return {name: Fields(values) for name, values in self._values(context).items()}

    def _values(self, context: Mapping[str, Mapping[str, object]]) -> dict[str, dict[str, object]]:
        """Copy only the fields this template reads, as plain values (fail closed)."""
        wanted: dict[str, dict[str, object]] = {name: {} for name in NAMESPACES}
        for path, namespace, key in self._reads:
            record = context.get(namespace)
            if record is None:
                continue
            if type(record) is not dict and not isinstance(record, Mapping):
                raise TemplateRenderError(f"{namespace} must be a mapping of field values")
            if key in record:
                wanted[namespace][key] = plain(record[key], path, self.limits.max_output)
        return wanted


def _instrumented(tree: nodes.Template, env: object) -> Template:
    tree = Instrument().visit(tree)
    tree.set_environment(env)  # type: ignore[arg-type]
    return env.from_string(tree)  # type: ignore[attr-defined,no-any-return]


def _run(template: Template, variables: dict[str, object], budget: Budget) -> str:
    """One render under ``budget``; every failure is a TemplateRenderError."""
    variables[BUDGET_KEY] = budget
    parts: list[str] = []
    size = 0
    # Jinja2's generate() is a generator; close it so an abandoned render frees at once.
    stream = cast(Generator[str, None, None], template.generate(variables))
    try:
        for chunk in stream:
            size += len(chunk)
            if size > budget.limits.max_output:
                raise BudgetExceeded(
                    f"the template produces more than {budget.limits.max_output} characters"
                )
            parts.append(chunk)
    except TemplateError:
        raise
    except MemoryError as exc:  # a last resort: the budget should stop long before
        raise BudgetExceeded("the template needs too much memory to render") from exc
    except Exception as exc:  # anything else a template can trigger (1/0, "a" + 1, ...)
        raise TemplateRenderError(f"the template failed: {_describe(exc)}") from exc
    finally:
        stream.close()
    return "".join(parts)


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


def _parts(tree: nodes.Template) -> Parts | None:
    """The template as text and printed fields, if that is all it is (else None)."""
    parts: list[str | tuple[str, str]] = []
    for statement in tree.body:
        if not isinstance(statement, nodes.Output):
            return None
        for child in statement.nodes:
            if isinstance(child, nodes.TemplateData):
                parts.append(child.data)
                continue
            key: object = None
            if isinstance(child, nodes.Getattr):
                key = child.attr
            elif isinstance(child, nodes.Getitem) and isinstance(child.arg, nodes.Const):
                key = child.arg.value
            base = getattr(child, "node", None)
            if not (isinstance(key, str) and isinstance(base, nodes.Name)):
                return None
            if base.name not in NAMESPACES or key.startswith("_"):
                return None
            parts.append((base.name, key))
    return tuple(parts)


def _reads_nothing(node: nodes.Node) -> bool:
    """No field, variable or loop read anywhere below: the value is the same on every render."""
    return not any(True for _ in node.find_all((nodes.Name, nodes.Getattr, nodes.Getitem)))


def _constant_parts(tree: nodes.Template) -> list[nodes.Expr]:
    """The largest constant expressions that may cost more than their syntax."""
    found: list[nodes.Expr] = []
    stack: list[nodes.Node] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.Expr) and _reads_nothing(node):
            if isinstance(node, _COSTLY) or any(True for _ in node.find_all(_COSTLY)):
                found.append(node)
            continue
        stack.extend(node.iter_child_nodes())
    return found


def _check_constants(tree: nodes.Template, kind: Kind, limits: TemplateLimits) -> None:
    """Evaluate each costly constant expression under the budget; refuse one that breaks it."""
    env = ENVIRONMENTS[kind == "html"]
    for expr in _constant_parts(tree):
        probe = nodes.Template([nodes.Output([expr], lineno=expr.lineno)], lineno=expr.lineno)
        try:
            _run(_instrumented(probe, env), {}, Budget(limits))
        except BudgetExceeded as exc:
            raise TemplateError(
                exc.message,
                expr.lineno,
                "the expression is the same on every render, so it can never fit",
            ) from None
        except Exception:  # a data error (1/0...) is the render's to report, as before
            continue


def compile_template(
    source: str,
    kind: Kind,
    is_known_field: Callable[[str], bool],
    *,
    max_output: int | None = None,
    limits: TemplateLimits | None = None,
    known_fields: Iterable[str] = (),
    cache: dict[tuple[str, str], CompiledTemplate] | None = None,
) -> CompiledTemplate:
    """Check a template at load time; TemplateError names the line and, often, a fix.

    ``limits`` bound each render (default ``DEFAULT_LIMITS``); ``max_output``
    alone scales them to that output cap. ``known_fields`` only feeds "did you
    mean" hints. ``cache`` lets one regulation load reuse templates that repeat
    (it must not outlive the load: the check depends on ``is_known_field``).
    """
    if kind not in ("text", "html", "subject"):
        raise ValueError(f"unknown template kind {kind!r}")
    if limits is None:
        limits = DEFAULT_LIMITS if max_output is None else TemplateLimits.for_output(max_output)
    if cache is not None:
        cached = cache.get((source, kind))
        if cached is not None and cached.limits == limits:
            return cached
    if not any(marker in source for marker in _JINJA_MARKERS):
        if len(source) > limits.max_output:
            raise TemplateError(f"the text is longer than {limits.max_output} characters")
        compiled = CompiledTemplate(source, kind, frozenset(), limits, plain=True)
    else:
        env = ENVIRONMENTS[kind == "html"]
        try:
            tree = env.parse(source)
        except TemplateSyntaxError as exc:
            message = exc.message or "the template cannot be read"
            raise TemplateError(f"syntax error: {message}", exc.lineno) from exc
        except RecursionError as exc:
            raise TemplateError("the template is nested too deeply") from exc
        except (ValueError, OverflowError) as exc:  # a number literal of 5000 digits
            raise TemplateError("the template has a number that is too long") from exc
        checker = Checker(env, is_known_field, known_fields)
        checker.check(tree)
        _check_constants(tree, kind, limits)
        compiled = CompiledTemplate(
            source, kind, frozenset(checker.fields), limits, plain=False, parts=_parts(tree)
        )
    if cache is not None:
        cache[(source, kind)] = compiled
    return compiled
