"""A stored record's floats, made once per stored version, so rule sets compare floats first.

A compiled rule set (``crmrules.rules.ruleset``) compares a ``decimal``
field's value with a number of the rule. ``Decimal`` comparisons cost about
twice a float's, and a rule set makes dozens an evaluation; converting a
``Decimal`` to a float costs as much as ten comparisons. So a store that
lends its records (the memory store) lends each as a ``LentRecord``: the
flat record, read-only, with the float of each of its ``Decimal`` values,
made once per stored version. A rule set given one compares the floats
first and the ``Decimal`` values only when the floats are equal.

Why that is exact: ``float(Decimal)`` rounds to the nearest float, and
rounding never reverses an order: ``x <= y`` gives ``float(x) <=
float(y)``. So ``float(x) < float(y)`` proves ``x < y``, ``float(x) >
float(y)`` proves ``x > y``, and only equal floats (values that round to
the same float, ``-0`` and ``0``) leave the answer to the ``Decimal``
comparison. ``tests/test_rule_set_floats.py`` checks it against
``Decimal`` comparison on random and edge values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, NoReturn


def float_of(value: Any) -> float | None:
    """The float ``value`` rounds to, for a finite number (not a flag); None for anything else.

    Infinite and NaN values get none: a NaN's ``Decimal`` comparison
    raises, and the rule set must do as the ``Decimal`` comparison does.
    """
    kind = value.__class__
    if kind is Decimal:
        return float(value) if value.is_finite() else None
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            return None
    if kind is float:
        return value if math.isfinite(value) else None
    return None


def _refuse(*args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError("a lent record is read-only: a store changes a record by storing a new one")


class LentRecord(dict[str, Any]):
    """A flat record as a store lends it: read-only, with its ``Decimal`` values' floats.

    ``floats`` maps each key (of ``keys``) whose value is a finite
    ``Decimal`` to its float. Read-only, so the floats stay those of the values; a copy
    (``dict(record)``, ``copy``, ``pickle``) is a plain dict.
    """

    __slots__ = ("floats",)

    def __init__(self, values: Mapping[str, Any], keys: Iterable[str] | None = None) -> None:
        """``keys``: those that may hold a ``Decimal`` (all of them when None); a store names
        its records' custom fields and decimal fields, fewer than all (made at every store)."""
        dict.update(self, values)  # dict's own: ``update`` refuses
        floats: dict[str, float] = {}
        for key in values if keys is None else keys:
            value = values.get(key)
            if value.__class__ is Decimal and value.is_finite():
                floats[key] = float(value)
        self.floats = floats

    def __reduce__(self) -> tuple[type[dict[str, Any]], tuple[dict[str, Any]]]:
        return dict, (dict(self),)

    def copy(self) -> dict[str, Any]:
        return dict(self)

    __setitem__ = __delitem__ = __ior__ = _refuse
    update = pop = popitem = setdefault = clear = _refuse


__all__ = ["LentRecord", "float_of"]
