"""``crmrules import-rules``: business-rules JSON in, a checked crmrules regulation out."""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import BaseModel

from crmrules.business_rules.importer import DEFAULT_EVENT, ImportRulesError, import_rules
from crmrules.business_rules.plugin import plugin
from crmrules.errors import CrmRulesError, RegulationError
from crmrules.plugins import OperatorPlugin, PluginManager
from crmrules.rules.regulation import Regulation, compile_regulation
from crmrules.rules.source import Document, SourceMap, parse_text

_NOT_TEXT = re.compile(
    r"[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.?inf|\.nan"
)


class _Dumper(yaml.SafeDumper):
    """Writes decimals as plain numbers and quotes text the rule language would read otherwise."""


def _decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.Node:
    if value == value.to_integral_value() and abs(value) < 10**30:
        return dumper.represent_int(int(value))
    text = str(value)
    return dumper.represent_scalar("tag:yaml.org,2002:float", text)


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    lowered = value.lower()
    if _NOT_TEXT.fullmatch(lowered) or lowered in ("", "~", "null", "true", "false"):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_str(value)


_Dumper.add_representer(Decimal, _decimal)
_Dumper.add_representer(str, _text)


def to_yaml(regulation: dict[str, Any]) -> str:
    """The regulation as YAML text that the rule language reads back to the same values."""
    text: str = yaml.dump(
        regulation, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100
    )
    return text


def load_class(spec: str) -> type:
    """``module:Class`` imported (the current folder first on the path, like other tools)."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise CrmRulesError(f"{spec!r}: write module:Class, e.g. shop.rules:ProductVariables")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise CrmRulesError(f"{spec}: cannot import {module_name}: {error}") from None
    found = getattr(module, name, None)
    if not isinstance(found, type):
        raise CrmRulesError(f"{spec}: {module_name} has no class {name}")
    return found


@functools.lru_cache(maxsize=16)
def _tables(actions: type) -> tuple[dict[str, type[BaseModel]], dict[str, OperatorPlugin]]:
    plugins = PluginManager([plugin(actions)], entry_points=False)
    return plugins.action_models(), plugins.operators()


def check(regulation: dict[str, Any], actions: type, name: str) -> Regulation:
    """Compile the imported regulation, written as YAML and read back, with its plugin."""
    data, source = parse_text(to_yaml(regulation), name)
    models, operators = _tables(actions)
    return compile_regulation(Document(data, source or SourceMap(), [name]), models, operators)


def import_rules_command(
    file: str,
    variables: str,
    actions: str,
    output: str | None,
    on: str | None,
    out: TextIO,
    err: TextIO,
) -> int:
    try:
        text = Path(file).read_text(encoding="utf-8-sig")
    except OSError as error:
        print(f"{file}: cannot read: {error.strerror or error}", file=err)
        return 1
    try:
        rules = json.loads(text)
    except json.JSONDecodeError as error:
        print(f"{file}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}", file=err)
        return 1
    if isinstance(rules, dict) and isinstance(rules.get("rules"), list):
        rules = rules["rules"]
    variables_class, actions_class = load_class(variables), load_class(actions)
    try:
        regulation = import_rules(rules, variables_class, actions_class, on=on or DEFAULT_EVENT)
        check(regulation, actions_class, output or "<import>.yaml")
    except ImportRulesError as error:
        print(f"{file}: {error}", file=err)
        return 1
    except RegulationError as error:
        for problem in error.problems:
            print(f"{file}: the imported regulation is invalid: {problem}", file=err)
        return 1
    text = to_yaml(regulation)
    if output is None:
        out.write(text)
        return 0
    target = Path(output)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=target.parent or ".", delete=False, suffix=".tmp"
    ) as handle:
        handle.write(text)
    os.replace(handle.name, target)
    count = len(regulation["rules"])
    print(f"{output}: {count} rule{'s' if count != 1 else ''} imported from {file}", file=out)
    return 0


__all__ = ["check", "import_rules_command", "load_class", "to_yaml"]
