"""Import business-rules JSON into a crmrules regulation, keeping the package's semantics.

Each variable becomes a field (``client.<name>`` unless the mapping names
another, e.g. a built-in ``client.region``): numeric to decimal, string,
boolean, select and select_multiple to set (a select variable returns a
list in the package; its operators test membership). Each action becomes
the plugin action of the same name (see ``plugin.py``) or the crmrules
action the mapping names.

Numeric operators compare with the package's tolerance: ``greater_than 20``
means more than 20.000001, so it is imported as ``gt: 20.000001``, and
``equal_to 5`` as ``between: [4.999999, 5.000001]``. Bounds are exact
decimals (at most 32 significant digits). Values must reach crmrules as the
package sees them, which ``fields_from_variables`` does: floats as their
exact decimal, a missing text as ``""``.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from crmrules.business_rules.plugin import action_name, actions_of
from crmrules.business_rules.semantics import EPSILON, NUMERIC_OPS, TYPES
from crmrules.errors import CrmRulesError
from crmrules.rules.fields import BUILTIN_FIELDS, CUSTOM_KEY, FieldType

#: The event imported rules run on by default: the host raises it where it called run_all.
DEFAULT_EVENT = "business_rules.run"

#: business-rules variable type -> crmrules field type
FIELD_TYPES = {
    "numeric": FieldType.DECIMAL,
    "string": FieldType.STRING,
    "boolean": FieldType.BOOLEAN,
    "select": FieldType.SET,
    "select_multiple": FieldType.SET,
}
_FITS = {
    "numeric": {FieldType.DECIMAL, FieldType.INTEGER},
    "string": {FieldType.STRING},
    "boolean": {FieldType.BOOLEAN},
    "select": {FieldType.SET},
    "select_multiple": {FieldType.SET},
}
#: string operators crmrules has with the same meaning
_STRING_NATIVE = {"equal_to": "eq", "starts_with": "starts_with", "ends_with": "ends_with"}
_STRING_NATIVE["contains"] = "contains"


class ImportRulesError(CrmRulesError):
    """A business-rules rule list that cannot be imported; names the rule and the place."""


@dataclass(frozen=True)
class VariableInfo:
    """One ``@rule_variable`` method: its name, type name and options."""

    name: str
    kind: str
    options: tuple[Any, ...] = ()


def variables_of(variables: type) -> dict[str, VariableInfo]:
    """The rule variables a ``BaseVariables`` class declares, by method name."""
    found: dict[str, VariableInfo] = {}
    for name, member in inspect.getmembers(variables):
        if getattr(member, "is_rule_variable", False):
            kind = getattr(getattr(member, "field_type", None), "name", "")
            found[name] = VariableInfo(name, str(kind), tuple(getattr(member, "options", ())))
    return found


def field_path(name: str, mapping: Mapping[str, str] | None, namespace: str = "client") -> str:
    """The crmrules field a variable is read from."""
    return (mapping or {}).get(name) or f"{namespace}.{name}"


def exact(value: Any) -> Decimal:
    """A number as the package sees it: floats by their exact binary value."""
    if isinstance(value, bool | int):
        return Decimal(int(value))
    if isinstance(value, float):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value
    raise ValueError(f"{value!r} is not a number")


def number(value: Decimal) -> Decimal:
    """``value`` with at most 32 significant digits, so the rule language takes it as written."""
    with localcontext() as context:
        context.prec = max(1, min(32, value.adjusted() + 41)) if value else 1
        rounded = +value
    return rounded.normalize() if rounded else Decimal(0)


def _bounds(value: Any) -> tuple[Decimal, Decimal]:
    other = exact(value)
    with localcontext() as context:
        context.prec = 80
        return number(other - EPSILON), number(other + EPSILON)


class _Importer:
    def __init__(
        self,
        variables: type,
        actions: type,
        mapping: Mapping[str, str] | None,
        namespace: str,
    ) -> None:
        self.variables = variables_of(variables)
        self.actions = actions_of(actions)
        self.variables_class = variables.__name__
        self.actions_class = actions.__name__
        self.mapping = dict(mapping or {})
        self.namespace = namespace
        self.fields: dict[str, dict[str, Any]] = {}

    def fail(self, where: str, message: str, hint: str) -> ImportRulesError:
        return ImportRulesError(f"{where}: {message} ({hint})")

    def field(self, name: Any, where: str) -> tuple[str, str]:
        """(field path, business-rules type) of a variable; declares custom fields."""
        info = self.variables.get(name) if isinstance(name, str) else None
        if info is None:
            raise self.fail(
                where,
                f"variable {name!r} is not defined in class {self.variables_class}",
                f"its variables are {', '.join(sorted(self.variables)) or 'none'}",
            )
        if info.kind not in FIELD_TYPES:
            raise self.fail(where, f"variable {name!r} has the unknown type {info.kind!r}", "")
        path = field_path(info.name, self.mapping, self.namespace)
        builtin = BUILTIN_FIELDS.get(path)
        if builtin is not None:
            if builtin.type not in _FITS[info.kind]:
                raise self.fail(
                    where,
                    f"{info.kind} variable {name!r} cannot be read from {path}, "
                    f"which is {builtin.type.value}",
                    "map it to a field of a matching type",
                )
            return path, info.kind
        namespace, _, key = path.partition(".")
        if namespace not in ("client", "deal") or not CUSTOM_KEY.fullmatch(key):
            raise self.fail(where, f"{path!r} is not a client or deal field", "e.g. client.x")
        self.fields[path] = {"type": FIELD_TYPES[info.kind].value}
        return path, info.kind

    def condition(self, node: Any, where: str, depth: int = 0) -> dict[str, Any]:
        if not isinstance(node, Mapping):
            raise self.fail(where, "a condition must be a mapping", "write {all: [...]}")
        keys = list(node)
        if keys in (["all"], ["any"]):
            items = node[keys[0]]
            if not isinstance(items, list) or not items:
                raise self.fail(where, f"{keys[0]} needs a non-empty list", "add conditions")
            return {
                keys[0]: [
                    self.condition(item, f"{where}.{keys[0]}[{i}]", depth + 1)
                    for i, item in enumerate(items)
                ]
            }
        if "all" in keys or "any" in keys:
            raise self.fail(where, "all/any must be alone in its mapping", "nest it instead")
        missing = [k for k in ("name", "operator", "value") if k not in node]
        if missing:
            raise self.fail(where, f"a condition needs {missing[0]!r}", "name, operator, value")
        return self.leaf(node["name"], node["operator"], node["value"], where)

    def leaf(self, name: Any, op: Any, value: Any, where: str) -> dict[str, Any]:
        path, kind = self.field(name, where)
        spec = next(s for s in TYPES.values() if s.name == kind)
        if op not in spec.operators:
            raise self.fail(
                where,
                f"operator {op!r} does not exist for {kind} variables",
                f"use one of {', '.join(spec.operators)}",
            )
        try:
            return self._leaf(path, kind, op, value)
        except (ValueError, AssertionError) as error:
            raise self.fail(where, f"bad value for {op}: {error}", "fix the rule's value") from None

    def _leaf(self, path: str, kind: str, op: str, value: Any) -> dict[str, Any]:
        leaf: dict[str, Any] = {"field": path}
        if kind == "numeric":
            assert op in NUMERIC_OPS
            low, high = _bounds(value)
            written = {
                "equal_to": ("between", [low, high]),
                "greater_than": ("gt", high),
                "greater_than_or_equal_to": ("gte", low),
                "less_than": ("lt", low),
                "less_than_or_equal_to": ("lte", high),
            }[op]
            leaf[written[0]] = written[1]
            return leaf
        if kind == "boolean":
            leaf["eq"] = op == "is_true"
            return leaf
        if kind == "string":
            if op == "non_empty":
                leaf["is_empty"] = False
                return leaf
            text = value or ""
            if not isinstance(text, str):
                raise ValueError(f"{text!r} is not text")
            leaf[_STRING_NATIVE.get(op, f"br_{op}")] = text
            return leaf
        if kind == "select_multiple" and not isinstance(value, list | tuple):
            raise ValueError(f"{value!r} is not a list")
        if kind == "select" and isinstance(value, dict | list | tuple):
            raise ValueError(f"{value!r} is not one value")
        leaf[f"br_{op}"] = list(value) if isinstance(value, list | tuple) else value
        return leaf

    def action(self, raw: Any, where: str) -> dict[str, Any]:
        if not isinstance(raw, Mapping) or "name" not in raw:
            raise self.fail(where, "an action needs a name", 'write {"name": ..., "params": {}}')
        name, params = raw["name"], raw.get("params") or {}
        if not isinstance(params, Mapping):
            raise self.fail(where, "params must be a mapping", "")
        if isinstance(name, str) and name in self.mapping:
            return {self.mapping[name]: dict(params)}
        if name not in self.actions:
            raise self.fail(
                where,
                f"action {name!r} is not defined in class {self.actions_class}",
                f"its actions are {', '.join(sorted(self.actions)) or 'none'}",
            )
        return {action_name(name): {key: _plain(v) for key, v in params.items()}}


def _plain(value: Any) -> Any:
    """A parameter value the rule language reads back as it was (floats as exact-enough text)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def import_rules(
    rule_list: Sequence[Mapping[str, Any]],
    variables: type,
    actions: type,
    mapping: Mapping[str, str] | None = None,
    *,
    on: str | Sequence[str] = DEFAULT_EVENT,
    namespace: str = "client",
    stop_on_first_trigger: bool = False,
    id_prefix: str = "rule",
) -> dict[str, Any]:
    """A crmrules regulation (plain data) firing the same rules as ``run_all`` on the same data.

    ``mapping`` maps variable names to field paths and action names to
    crmrules actions. Rules keep their order (equal priority, file order);
    ``stop_on_first_trigger=True`` adds ``stop: true`` to each. Raises
    ImportRulesError naming the rule and the place of the first problem.
    """
    importer = _Importer(variables, actions, mapping, namespace)
    rules: list[dict[str, Any]] = []
    if not isinstance(rule_list, list | tuple):
        raise ImportRulesError("the rule list must be a list of rules")
    for index, rule in enumerate(rule_list):
        where = f"rule {index + 1}"
        if not isinstance(rule, Mapping) or "conditions" not in rule or "actions" not in rule:
            raise importer.fail(where, "a rule needs conditions and actions", "see the README")
        condition = importer.condition(rule["conditions"], f"{where}.conditions")
        then = [importer.action(a, f"{where}.actions[{i}]") for i, a in enumerate(rule["actions"])]
        if not then:
            raise importer.fail(where, "the rule has no actions", "a crmrules rule needs one")
        name = rule.get("name")
        entry: dict[str, Any] = {
            "id": name if isinstance(name, str) and name else f"{id_prefix}-{index + 1}",
            "on": on if isinstance(on, str) else list(on),
            "if": condition,
            "then": then,
        }
        if stop_on_first_trigger:
            entry["stop"] = True
        rules.append(entry)
    # Every variable becomes a field, used by a rule or not, so the application can store
    # all of fields_from_variables() on its records (crmrules refuses undeclared fields).
    for name in sorted(importer.variables):
        with contextlib.suppress(ImportRulesError):
            importer.field(name, "variables")
    regulation: dict[str, Any] = {"version": 1}
    if importer.fields:
        regulation["fields"] = dict(sorted(importer.fields.items()))
    regulation["rules"] = rules
    return regulation


def fields_from_variables(
    defined_variables: Any,
    mapping: Mapping[str, str] | None = None,
    namespace: str = "client",
) -> dict[str, Any]:
    """Field path -> value, each rule variable read once and given as the package sees it.

    Numbers become exact decimals (a float's binary value, as the package's
    cast), a false-y text becomes ``""``, select values become lists. Put
    the result in the client's (or deal's) ``fields`` before raising the event.
    """
    values: dict[str, Any] = {}
    for name, info in variables_of(type(defined_variables)).items():
        value = getattr(defined_variables, name)()
        if info.kind == "numeric":
            value = exact(value)
        elif info.kind == "string":
            value = value or ""
        elif info.kind in ("select", "select_multiple"):
            value = list(value)
        values[field_path(name, mapping, namespace)] = value
    return values


__all__ = [
    "DEFAULT_EVENT",
    "FIELD_TYPES",
    "ImportRulesError",
    "VariableInfo",
    "exact",
    "field_path",
    "fields_from_variables",
    "import_rules",
    "variables_of",
]
