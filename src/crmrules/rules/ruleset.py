"""Compiled rule sets: the conditions of the rules listening to one trigger, as one function.

``Condition`` compiles each rule to closures of closures: every leaf reads
its field through two dictionary lookups and a call, and a rule set of 50
rules reads the same field dozens of times. ``RuleSet`` writes the
conditions of all its rules out as the body of one generated Python
function, compiled once:

- each field is read from the facts once per evaluation, into a local;
- a sub-condition that several rules share (the same leaf, or the same
  ``all``/``any`` of leaves) is evaluated once, at its first use, and
  remembered in a local for the others;
- the common operators are inlined, and so are plugin operators that say
  how (``OperatorPlugin.inline``: an expression, with a view of the value
  such as its lower-cased set computed once per evaluation); the rest
  (changes, field references, whole-day dates, ``ignore_case``, time
  windows, other plugin operators) call the leaf's own compiled test, so
  their meaning cannot drift;
- plain text, numbers and flags are written as literals (a constant load,
  not a global lookup); a shared leaf that is only a comparison or a set
  membership is tested again rather than remembered (the memo costs more);
- the tests are written twice: once for facts where every value read (and
  every view of one) is present, without the ``is not None`` tests, and
  once, careful, for any facts; one test at the top chooses;
- when a ``decimal`` field is compared with numbers, a third time, for
  records lent with their floats (``crmrules.rules.floats.LentRecord``, what
  the memory store lends): each comparison compares the floats first and
  the ``Decimal`` values only when the floats are equal, which gives the
  ``Decimal`` comparison's answer (rounding to a float keeps the order).

Short-circuit order is the conditions' own, so the answers are the
closures' answers. The conditions of one rule set share one calendar (those
of one regulation do). ``matched`` returns the positions of the conditions
that hold, which is what the engine asks for (``crmrules.run.Run.matches``).
Explanations are not computed while evaluating: ``Evaluation.trace(index)``
rebuilds a rule's trace, on demand, from the facts the evaluation saw, with
``Condition.trace``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from crmrules.rules.conditions import (
    CHANGE_OPS,
    All,
    AnyOf,
    Condition,
    Const,
    DayRange,
    Facts,
    FieldRef,
    Leaf,
    Node,
    Not,
    Trace,
    _as_set,
    _is_empty,
)
from crmrules.rules.fields import TEXT_TYPES, FieldSpec, FieldType
from crmrules.rules.floats import LentRecord, float_of
from crmrules.rules.why import reads_of

#: operators written inline as ``value <op> bound`` (what ``_ordered`` does for plain bounds)
_ORDER = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def _key(node: Node) -> Hashable:
    """A key equal for sub-conditions with the same meaning, wherever they are written."""
    if isinstance(node, Leaf):
        key = (
            "leaf",
            node.field,
            node.op,
            type(node.value),
            node.value,
            node.negated,
            node.ignore_case,
            node.territory,
            id(node.plugin) if node.plugin is not None else None,
        )
        try:
            hash(key)
        except TypeError:  # pragma: no cover - leaves are frozen; never share an odd one
            return ("leaf", id(node))
        return key
    if isinstance(node, Const):
        return ("const", node.value)
    if isinstance(node, Not):
        return ("not", _key(node.item))
    return (type(node).__name__, tuple(_key(item) for item in node.items))


class _Writer:
    """Writes the body of one evaluation function for several condition trees."""

    def __init__(self, trees: Sequence[Node]) -> None:
        self.names: dict[str, Any] = {"_is_empty": _is_empty, "_as_set": _as_set}
        self.reads: dict[tuple[str, str], str] = {}
        self.memo: dict[Hashable, str] = {}
        #: (value local, view function) -> the local holding the view, and its assignments
        self.views: dict[tuple[str, int], str] = {}
        self.view_lines: list[str] = []
        self.counts: Counter[Hashable] = Counter()
        #: whether the expressions written now may take every value read as present (not None)
        self.present = False
        #: value local -> the class the present branch's tests take it to have exactly (a flag
        #: tested as itself, text's emptiness as its truth); the branch's guard checks it
        self.typed: dict[str, type] = {}
        #: whether the expressions written now compare a decimal's float first (the floats
        #: branch: every value read present and each compared decimal's float lent with it)
        self.floats = False
        #: value local -> the local holding its float (see ``crmrules.rules.floats``)
        self.float_reads: dict[str, str] = {}
        for tree in trees:
            self._count(tree)

    def _count(self, node: Node) -> None:
        self.counts[_key(node)] += 1
        if isinstance(node, All | AnyOf):
            for item in node.items:
                self._count(item)
        elif isinstance(node, Not):
            self._count(node.item)

    def constant(self, value: Any) -> str:
        """A name bound to ``value``, or the literal itself for plain text, numbers and flags."""
        kind = value.__class__
        if kind is str or kind is int or kind is bool or (kind is float and math.isfinite(value)):
            return repr(value)  # a literal is a constant load, a name a global lookup
        name = f"k{len(self.names)}"
        self.names[name] = value
        return name

    def read(self, namespace: str, key: str) -> str:
        """The local holding a field's value, read once at the top of the function."""
        found = self.reads.get((namespace, key))
        if found is None:
            found = self.reads[(namespace, key)] = f"v{len(self.reads)}"
        return found

    def expression(self, node: Node, condition: Condition) -> str:
        key = _key(node)
        body = self._expression(node, condition)
        # A shared sub-condition is remembered in a local at its first use, unless testing
        # it again costs less than remembering it (an inline comparison of a local).
        if self.counts[key] > 1 and not isinstance(node, Const) and not self._cheap(node):
            memo = self.memo.get(key)
            if memo is None:
                memo = self.memo[key] = f"s{len(self.memo)}"
            return f"({memo} if {memo} is not None else ({memo} := {body}))"
        return body

    def _cheap(self, node: Node) -> bool:
        """Whether a leaf costs no more than a remembered answer: written inline, or a plugin's
        inline form without a call (a set membership), not a search or a closure."""
        if not isinstance(node, Leaf):
            return False
        if node.plugin is None:
            return self._inline(node) is not None
        make = node.plugin.inline
        inline = make(node.value) if make is not None else None
        return inline is not None and "(" not in inline.expression

    def _expression(self, node: Node, condition: Condition) -> str:
        if isinstance(node, Leaf):
            return self.leaf(node, condition)
        if isinstance(node, Const):
            return "True" if node.value else "False"
        if isinstance(node, Not):
            return f"(not {self.expression(node.item, condition)})"
        joiner = " and " if isinstance(node, All) else " or "
        return "(" + joiner.join(self.expression(i, condition) for i in node.items) + ")"

    def leaf(self, leaf: Leaf, condition: Condition) -> str:
        inline = self._inline(leaf)
        if inline is None:
            # the leaf's own compiled test (negation included), so its meaning cannot drift
            test = self.constant(condition._leaves[id(leaf)])
            return f"bool({test}(facts))"
        return f"(not {inline})" if leaf.negated else inline

    def _plugin(self, leaf: Leaf, value: str) -> str:
        """A plugin operator's test: its own inline form if it has one, else a call."""
        make = leaf.plugin.inline
        inline = make(leaf.value) if make is not None else None
        if inline is None:
            test = self.constant(leaf.plugin.test)
            call = f"bool({test}({value}, {self.constant(leaf.value)}))"
            return call if self.present else f"({value} is not None and {call})"
        if inline.view is not None:
            key = (value, id(inline.view))
            view = self.views.get(key)
            if view is None:
                view = self.views[key] = f"w{len(self.views)}"
                self.view_lines.append(
                    f"    {view} = {self.constant(inline.view)}({value}) "
                    f"if {value} is not None else None"
                )
            value = view
        expression = inline.expression.format(value=value, operand=self.constant(inline.operand))
        return f"({expression})" if self.present else f"({value} is not None and {expression})"

    def _inline(self, leaf: Leaf) -> str | None:
        """The positive test of a leaf as an expression, or None when the leaf's closure runs."""
        op, bound, spec = leaf.op, leaf.value, leaf.field
        if op in CHANGE_OPS or leaf.ignore_case or isinstance(bound, FieldRef | DayRange):
            return None
        value = self.read(spec.namespace, spec.key)
        if op == "is_empty":
            if self.present and spec.type in TEXT_TYPES:  # exactly str: empty is false
                self.typed[value] = str
                return f"(not {value})"
            if spec.type in TEXT_TYPES:  # text's empty value is "" (a call only for odd values)
                text = f"({value} == '' if {value}.__class__ is str else _is_empty({value}))"
                return text if self.present else f"({value} is None or {text})"
            return f"_is_empty({value})"
        present = "" if self.present else f"{value} is not None and "
        if leaf.plugin is not None:
            return self._plugin(leaf, value)
        if op in _ORDER:
            first = self._float_first(value, spec, bound)
            if first is not None:
                number, float_bound = first
                strict = "<" if op in ("lt", "lte") else ">"
                exact = f"{number} == {float_bound} and {value} {_ORDER[op]} {self.constant(bound)}"
                return f"({number} {strict} {float_bound} or ({exact}))"
            return f"({present}{value} {_ORDER[op]} {self.constant(bound)})"
        if op == "eq":
            if self.present and spec.type is FieldType.BOOLEAN and bound.__class__ is bool:
                self.typed[value] = bool  # exactly True or False: the flag is its own test
                return value if bound else f"(not {value})"
            if isinstance(bound, frozenset):
                return f"({present}_as_set({value}) == {self.constant(bound)})"
            first = self._float_first(value, spec, bound)
            if first is not None:  # unequal floats: unequal values
                number, float_bound = first
                return f"({number} == {float_bound} and {value} == {self.constant(bound)})"
            return f"({present}{value} == {self.constant(bound)})"
        if op == "between":
            low, high = bound
            if isinstance(low, DayRange) or isinstance(high, DayRange):
                return None
            above, below = self._float_first(value, spec, low), self._float_first(value, spec, high)
            if above is not None and below is not None:
                number, float_low = above
                float_high = below[1]
                low_test = f"{self.constant(low)} <= {value}"
                high_test = f"{value} <= {self.constant(high)}"
                return (
                    f"(({float_low} < {number} or ({float_low} == {number} and {low_test})) and "
                    f"({number} < {float_high} or ({number} == {float_high} and {high_test})))"
                )
            return f"({present}{self.constant(low)} <= {value} <= {self.constant(high)})"
        if op == "in":
            return f"({present}{value} in {self.constant(bound)})"
        if op == "contains":
            if spec.type is FieldType.SET:
                return f"({present}{self.constant(bound)} in _as_set({value}))"
            return f"({present}{self.constant(bound)} in {value})"
        if op == "starts_with":
            return f"({present}{value}.startswith({self.constant(bound)}))"
        if op == "ends_with":
            return f"({present}{value}.endswith({self.constant(bound)}))"
        if op in ("contains_any", "territory"):
            return f"({present}not {self.constant(bound)}.isdisjoint(_as_set({value})))"
        if op == "contains_all":
            return f"({present}{self.constant(bound)}.issubset(_as_set({value})))"
        return None

    def _float_first(self, value: str, spec: FieldSpec, bound: Any) -> tuple[str, str] | None:
        """The local of the value's float and the bound as a float, when the floats branch
        compares them before the ``Decimal`` values (``crmrules.rules.floats``); else None."""
        if not self.floats or spec.type is not FieldType.DECIMAL or bound.__class__ is bool:
            return None
        float_bound = float_of(bound)
        if float_bound is None:
            return None
        number = self.float_reads.get(value)
        if number is None:
            number = self.float_reads[value] = f"f{len(self.float_reads)}"
        return number, self.constant(float_bound)


def _present(local: str, kind: type | None) -> str:
    """The test that a value local is what the present branch takes it to be."""
    if kind is bool:
        return f"({local} is True or {local} is False)"
    if kind is not None:
        return f"{local}.__class__ is {kind.__name__}"
    return f"{local} is not None"


def _prologue(writer: _Writer) -> tuple[list[str], str | None]:
    """The lines that read the values (and floats, views, memos) into locals, and the test that
    the floats branch may run (None when no test compares a decimal's float first)."""
    prologue = ["    records = facts.records"]
    namespaces = sorted({namespace for namespace, _ in writer.reads})
    prologue += [f"    r{n} = records.get({namespace!r})" for n, namespace in enumerate(namespaces)]
    where = [(local, namespaces.index(ns), key) for (ns, key), local in writer.reads.items()]
    got = [f"        {local} = r{n}.get({key!r})" for local, n, key in where]
    if where:
        # Plain dicts (the engine's records, lent ones too) are read by subscript, a third of
        # the cost of a call of ``get``; a record without one of the keys is read again with
        # ``get``, and so is any other mapping (a ``defaultdict``'s subscript would add the key).
        plain = " and ".join(
            f"(r{n}.__class__ is dict or r{n}.__class__ is _Lent)" for n in range(len(namespaces))
        )
        prologue += [f"    if {plain}:", "        try:"]
        prologue += [f"            {local} = r{n}[{key!r}]" for local, n, key in where]
        prologue += ["        except KeyError:", *[f"    {line}" for line in got], "    else:"]
        for n in range(len(namespaces)):
            prologue += [f"        if r{n} is None:", f"            r{n} = _EMPTY"]
        prologue += got
    floats_test = None
    if writer.float_reads:
        owner = {local: n for local, n, _ in where}
        keys = {local: key for local, _, key in where}
        for n in sorted({owner[local] for local in writer.float_reads}):
            numbers = [(local, f) for local, f in writer.float_reads.items() if owner[local] == n]
            # a plain dict's values have no floats: not even a ``get`` for them
            prologue += [f"    if r{n}.__class__ is _Lent:", f"        n{n} = r{n}.floats"]
            prologue += [f"        {f} = n{n}.get({keys[local]!r})" for local, f in numbers]
            prologue += ["    else:", f"        {' = '.join(f for _, f in numbers)} = None"]
        floats_test = " and ".join(f"{n} is not None" for n in writer.float_reads.values())
    prologue.extend(writer.view_lines)
    prologue.extend(f"    {memo} = None" for memo in writer.memo.values())
    return prologue, floats_test


def _branch(tests: Sequence[str], indent: int, kind: str) -> list[str]:
    """One branch's tests, answering each condition's answer (``results``) or the positions
    of those that hold. Each test is an ``if`` (a jump's context, where CPython's comparisons
    specialise); most conditions fail, so most answers are left as they were made."""
    pad = " " * indent
    if kind == "results":
        lines = [f"{pad}found = [False] * {len(tests)}"]
        for index, test in enumerate(tests):
            lines += [f"{pad}if {test}:", f"{pad}    found[{index}] = True"]
        return [*lines, f"{pad}return tuple(found)"]
    lines = [f"{pad}found = []"]
    for index, test in enumerate(tests):
        lines += [f"{pad}if {test}:", f"{pad}    found.append({index})"]
    return [*lines, f"{pad}return found"]


@dataclass(frozen=True)
class Evaluation:
    """The answers of one rule set on one set of facts; traces are built when asked for."""

    rule_set: RuleSet
    facts: Facts
    results: tuple[bool, ...]

    def matched(self) -> list[int]:
        """The positions of the conditions that hold, in order."""
        return [index for index, result in enumerate(self.results) if result]

    def trace(self, index: int) -> Trace:
        """The explanation of condition ``index``, rebuilt from the facts this evaluation saw."""
        return self.rule_set.conditions[index].trace(self.facts)


class RuleSet:
    """Several compiled conditions evaluated together by one generated function."""

    def __init__(self, conditions: Sequence[Condition]) -> None:
        self.conditions = tuple(conditions)
        #: every record field the conditions read: what a ``Seen`` of an evaluation keeps
        self.reads = reads_of(self.conditions)
        writer = _Writer([c.tree for c in self.conditions])
        careful = [writer.expression(c.tree, c) for c in self.conditions]
        # the same tests for facts where every value read is present: no None tests
        writer.present = True
        present = [writer.expression(c.tree, c) for c in self.conditions]
        # and again comparing decimals' floats first, for a record lent with its floats
        writer.floats = True
        floated = [writer.expression(c.tree, c) for c in self.conditions]
        prologue, floats_test = _prologue(writer)
        locals_read = [*writer.reads.values(), *writer.views.values()]
        test = " and ".join(_present(local, writer.typed.get(local)) for local in locals_read)
        test = test or "True"
        lines = []
        for name, kind in (("evaluate", "results"), ("matched", "positions")):
            lines += [f"def {name}(facts):", *prologue, f"    if {test}:"]
            if floats_test is not None:
                lines += [f"        if {floats_test}:", *_branch(floated, 12, kind)]
            lines += [*_branch(present, 8, kind), *_branch(careful, 4, kind), "", ""]
        self.source = "\n".join(lines)
        names = {**writer.names, "_EMPTY": {}, "_Lent": LentRecord}
        exec(compile(self.source, "<crmrules rule set>", "exec"), names)
        # the generated functions themselves, not methods calling them (a call less an event)
        #: ``results(facts)``: each condition's answer, in order; the fast path, nothing recorded
        self.results: Callable[[Facts], tuple[bool, ...]] = names["evaluate"]
        #: ``matched(facts)``: the positions of the conditions that hold, in order
        self.matched: Callable[[Facts], list[int]] = names["matched"]

    def __len__(self) -> int:
        return len(self.conditions)

    def evaluate(self, facts: Facts) -> Evaluation:
        """The answers with what is needed to explain any of them later."""
        return Evaluation(self, facts, self.results(facts))


def explain(condition: Condition, facts: Facts) -> Trace:
    """The condition's trace as a short-circuit evaluation sees it (``Condition.trace``)."""
    return condition.trace(facts, short_circuit=True)


__all__ = ["Evaluation", "RuleSet", "explain"]
