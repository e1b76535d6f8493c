"""What one template render may spend, and the plain values it spends it on.

Every value a template builds is measured by its *nested size*: characters of
text, plus one per list item, counted through every level of nesting, so
``[[1]*3000]*3000`` weighs nine million even though it holds 3,000 references
to one list. Sizes are memoised per render by object identity (template values
cannot be changed in place), so weighing a list built from shared parts costs
its length, not its nested size.

The budget refuses, before the work is done:

- a value larger than ``max_value`` (building, printing, comparing or
  filtering it would cost as much as its size);
- more than ``max_work`` units in total, where building, weighing, comparing
  and filtering a value each cost its size;
- more than ``max_loop_steps`` loop steps (iterations times body size);
- more than ``max_output`` characters of output;
- integers over ``max_int_bits`` bits from ``*`` and ``**``.

The defaults keep one render within about a second of CPU and 64 MB of
memory (``benchmarks/bench_template_bounds.py`` measures both).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from jinja2.runtime import Context, Undefined

from crmrules.errors import CrmRulesError

#: Key of the per-render budget in the Jinja2 context; not an identifier, so unreachable.
BUDGET_KEY = "crm budget"


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


class BudgetExceeded(TemplateRenderError):
    """A render stopped by its budget: the template itself, not the data, is usually at fault."""


@dataclass(frozen=True)
class TemplateLimits:
    """Bounds on one render. The defaults: about 1 s of CPU and 64 MB at most.

    A host may pass its own to ``load_regulation(template_limits=...)``.
    """

    #: Characters one render may produce.
    max_output: int = 100_000
    #: Nested size of one value (characters plus items, through every level).
    max_value: int = 100_000
    #: Units of work in one render: building, weighing, comparing, filtering.
    max_work: int = 1_000_000
    #: Loop iterations times the size of the loop body.
    max_loop_steps: int = 100_000
    #: Largest integer, in bits, that ``*`` and ``**`` may produce.
    max_int_bits: int = 4096

    @classmethod
    def for_output(cls, max_output: int) -> TemplateLimits:
        """Limits scaled to an output cap (values as large as the output, ten times the work)."""
        return cls(max_output=max_output, max_value=max_output, max_work=10 * max_output)


DEFAULT_LIMITS = TemplateLimits()


def decimal_text(value: Decimal) -> str:
    """Money without an exponent; absurd exponents keep str() so the text stays short."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -40 and value.adjusted() < 40:
        return format(value, "f")
    return str(value)


def finalize(value: object) -> str:
    """The text a value prints as; unknown objects print as nothing rather than a repr.

    Lists are joined here, so callers weigh a value (``Budget.weigh``) first.
    """
    if isinstance(value, str):
        return value  # keeps Markup, so escaped text is not escaped twice
    if value is None or isinstance(value, Undefined):
        return ""
    if isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(finalize(item) for item in value)
    return ""


def _scalar_size(value: object) -> int:
    """About as many characters as the value prints as (at least 1), cheaply."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() // 3 + 2  # decimal digits and a sign, rounded up
    if isinstance(value, float | Decimal | date):
        return len(finalize(value))
    return 1


class Budget:
    """What one render may still spend; shared by filters, operators, output and loops."""

    __slots__ = ("_sizes", "limits", "output", "steps", "work")

    def __init__(self, limits: TemplateLimits) -> None:
        self.limits = limits
        self.output = 0
        self.work = 0
        self.steps = 0
        # id -> (the list, its nested size); holding the list keeps its id unique.
        self._sizes: dict[int, tuple[object, int]] = {}

    def check_size(self, size: int) -> None:
        """Refuse a value of ``size`` before it is built."""
        if size > self.limits.max_value:
            raise BudgetExceeded(
                f"the template builds a value larger than {self.limits.max_value} "
                "(characters and items, nested)"
            )

    def spend(self, units: int) -> None:
        self.work += units
        if self.work > self.limits.max_work:
            raise BudgetExceeded("the template does too much work to render")

    def weigh(self, value: object) -> int:
        """The nested size of ``value``, refused past ``max_value``; new lists cost their length."""
        if not isinstance(value, list | tuple):
            return _scalar_size(value)
        known = self._sizes.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        # Post-order without recursion: a list may be nested as deep as the loops ran.
        stack: list[tuple[list[object] | tuple[object, ...], bool]] = [(value, False)]
        while stack:
            node, ready = stack.pop()
            if self._known(node):
                continue
            if not ready:
                self.spend(len(node))  # before looking at the items: that is the cost
                stack.append((node, True))
                stack.extend((item, False) for item in node if isinstance(item, list | tuple))
                continue
            size = len(node)
            for item in node:
                if isinstance(item, list | tuple):
                    size += self._sizes[id(item)][1]
                else:
                    size += _scalar_size(item)
            self._sizes[id(node)] = (node, size)
            self.check_size(size)
        return self._sizes[id(value)][1]

    def _known(self, node: object) -> bool:
        known = self._sizes.get(id(node))
        return known is not None and known[0] is node

    def charge_value(self, value: object) -> None:
        """A value just built: its nested size is checked and spent."""
        self.spend(self.weigh(value))

    def charge_use(self, value: object) -> object:
        """A value about to be compared, tested or filtered: that costs its size."""
        self.spend(self.weigh(value))
        return value

    def charge_output(self, size: int) -> None:
        self.output += size
        if self.output > self.limits.max_output:
            raise BudgetExceeded(
                f"the template produces more than {self.limits.max_output} characters"
            )

    def charge_steps(self, steps: int) -> None:
        self.steps += steps
        if self.steps > self.limits.max_loop_steps:
            raise BudgetExceeded("the template's loops run too long")


def budget_of(context: Context) -> Budget:
    """The render's budget; without one nothing runs (fail closed)."""
    budget = context.get(BUDGET_KEY)
    if not isinstance(budget, Budget):
        raise TemplateRenderError("template rendered outside CompiledTemplate.render")
    return budget


__all__ = [
    "BUDGET_KEY",
    "DEFAULT_LIMITS",
    "Budget",
    "BudgetExceeded",
    "TemplateError",
    "TemplateLimits",
    "TemplateRenderError",
    "budget_of",
    "decimal_text",
    "finalize",
]
