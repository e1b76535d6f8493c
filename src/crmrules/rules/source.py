"""Reading YAML and JSON into plain values that remember where they came from.

Admins' files are untrusted, so this module refuses, rather than interprets,
anything beyond plain data: YAML tags, anchors and aliases, several documents
in one file. Sizes, nesting depth, node counts, list lengths and string lengths
are capped while parsing, so a hostile file costs little before it is refused.

Scalars follow the YAML 1.2 core schema (``yes``/``no``/``on`` stay strings;
``country: NO`` is Norway, not false). Numbers with a fraction become
``Decimal`` so money keeps its cents. Dates stay strings: they are coerced to
the field's type later, the same way for YAML and JSON.

Every value and every mapping key is recorded in a :class:`SourceMap` under
its path (``("rules", 3, "if", "all", 0)``), the same tuple pydantic puts in
an error's ``loc``, so any later error can name the file, line and column.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from json import JSONDecodeError
from json.decoder import scanstring  # type: ignore[attr-defined]  # the stdlib's C decoder
from pathlib import Path
from typing import Any

import yaml

from crmrules.errors import Location, Problem, RegulationError

PathKey = tuple[str | int, ...]

#: Top-level sections whose lists are concatenated when a folder is merged.
LIST_SECTIONS = ("pipelines", "managers", "territories", "rules")
#: Top-level sections whose mappings are merged key by key.
MAPPING_SECTIONS = ("fields", "templates")


@dataclass(frozen=True)
class Limits:
    """Hard caps on admin input; the defaults leave room for large real regulations."""

    max_file_bytes: int = 8 * 1024 * 1024
    max_total_bytes: int = 32 * 1024 * 1024
    max_files: int = 2_000
    max_depth: int = 48
    max_nodes: int = 2_000_000
    max_list_length: int = 50_000
    max_string_length: int = 100_000
    max_number_digits: int = 40


@dataclass
class SourceMap:
    """Where each value (and each mapping key) of a document was written."""

    values: dict[PathKey, Location] = field(default_factory=dict)
    keys: dict[PathKey, Location] = field(default_factory=dict)
    #: Text written as a YAML block (``|`` or ``>``): its first line is the line after the value.
    blocks: set[PathKey] = field(default_factory=set)

    def locate(self, path: Iterable[str | int], *, key: bool = False) -> Location | None:
        """The location of ``path``, or of its nearest recorded ancestor."""
        current: PathKey = tuple(path)
        if key and current in self.keys:
            return self.keys[current]
        while True:
            if current in self.values:
                return self.values[current]
            if not current:
                return None
            current = current[:-1]

    def line_in(self, path: PathKey, line: int) -> Location | None:
        """The location of ``line`` (from 1) of the multi-line text at ``path``."""
        start = self.locate(path)
        if start is None:
            return None
        if path in self.blocks:
            return Location(start.file, start.line + line, 1)
        return Location(start.file, start.line + line - 1, start.column if line == 1 else 1)

    def shifted(self, section: str, offset: int) -> SourceMap:
        """A copy whose list indexes under ``section`` are moved by ``offset``."""
        if offset == 0:
            return self

        def move(path: PathKey) -> PathKey:
            if len(path) >= 2 and path[0] == section and isinstance(path[1], int):
                return (section, path[1] + offset, *path[2:])
            return path

        return SourceMap(
            values={move(p): loc for p, loc in self.values.items()},
            keys={move(p): loc for p, loc in self.keys.items()},
            blocks={move(p) for p in self.blocks},
        )


@dataclass
class Document:
    """Plain data (dict, list, str, int, Decimal, bool, None) and where it came from."""

    data: Any
    source: SourceMap
    files: list[str]


class _SourceError(Exception):
    """Stops parsing one file; turned into a Problem by the caller."""

    def __init__(self, message: str, location: Location, hint: str | None = None) -> None:
        super().__init__(message)
        self.problem = Problem(message, location, hint)


# --- scalars (YAML 1.2 core schema) -------------------------------------------------------

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")


def _number(text: str, where: Location, limits: Limits) -> int | Decimal:
    if len(text) > limits.max_number_digits:
        raise _SourceError(
            f"number {text[:20]}... is too long ({len(text)} characters)",
            where,
            f"numbers may have at most {limits.max_number_digits} digits",
        )
    if _INT.fullmatch(text):
        return int(text)
    value = Decimal(text)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and abs(exponent) > limits.max_number_digits:
        raise _SourceError(f"number {text} is out of range", where)
    return value


def _plain_scalar(text: str, where: Location, limits: Limits) -> Any:
    if text in _NULLS:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if text[:1] in "+-.0123456789" and _FLOAT.fullmatch(text):
        return _number(text, where, limits)
    return text


# --- building a tree with an explicit stack (no recursion, whatever the depth) ---------------


def _too_deep(limits: Limits, where: Location) -> _SourceError:
    return _SourceError(
        f"nesting is too deep (more than {limits.max_depth} levels)",
        where,
        "flatten the structure; deeply nested conditions can be split into rules",
    )


class _Builder:
    """Assembles containers from a flat stream of start/end/scalar calls."""

    def __init__(self, file: str, limits: Limits) -> None:
        self.file = file
        self.limits = limits
        self.source = SourceMap()
        self.nodes = 0
        self.root: Any = None
        self.done = False
        # Each frame: (container, path, pending key or None, location of the pending key).
        self.stack: list[tuple[Any, PathKey, str | None, Location | None]] = []

    def _child_path(self, where: Location) -> PathKey:
        if not self.stack:
            return ()
        container, path, key, _ = self.stack[-1]
        if isinstance(container, list):
            if len(container) >= self.limits.max_list_length:
                raise _SourceError(
                    f"list is too long (more than {self.limits.max_list_length} items)",
                    where,
                    "split it across files or shorten it",
                )
            return (*path, len(container))
        assert key is not None
        return (*path, key)

    def _count(self, where: Location) -> None:
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            raise _SourceError(
                f"document is too large (more than {self.limits.max_nodes} values)",
                where,
                "split the regulation into smaller files",
            )

    def expects_key(self) -> bool:
        if not self.stack:
            return False
        container, _, key, _ = self.stack[-1]
        return isinstance(container, dict) and key is None

    def key(self, text: str, where: Location) -> None:
        container, path, _, _ = self.stack[-1]
        if len(text) > self.limits.max_string_length:
            raise _SourceError("mapping key is too long", where)
        if text in container:
            first = self.source.keys[(*path, text)]
            raise _SourceError(
                f"key {text!r} is defined twice (first at {first})",
                where,
                "remove one of them",
            )
        self.source.keys[(*path, text)] = where
        self.stack[-1] = (container, path, text, where)

    def _attach(self, value: Any, where: Location) -> PathKey:
        self._count(where)
        path = self._child_path(where)
        self.source.values[path] = where
        if not self.stack:
            self.root = value
            self.done = True
            return path
        container, parent, key, _ = self.stack[-1]
        if isinstance(container, list):
            container.append(value)
        else:
            assert key is not None
            container[key] = value
            self.stack[-1] = (container, parent, None, None)
        return path

    def scalar(self, value: Any, where: Location, *, block: bool = False) -> None:
        if isinstance(value, str) and len(value) > self.limits.max_string_length:
            raise _SourceError(
                f"text is too long ({len(value)} characters)",
                where,
                f"values may have at most {self.limits.max_string_length} characters",
            )
        path = self._attach(value, where)
        if block:
            self.source.blocks.add(path)

    def start(self, container: dict[str, Any] | list[Any], where: Location) -> None:
        if len(self.stack) >= self.limits.max_depth:
            raise _too_deep(self.limits, where)
        path = self._attach(container, where)
        self.stack.append((container, path, None, None))

    def end(self) -> None:
        self.stack.pop()
        if not self.stack:
            self.done = True


# --- YAML ------------------------------------------------------------------------------------

_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml_location(file: str, mark: Any) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


def _parse_yaml(text: str, file: str, limits: Limits) -> tuple[Any, SourceMap]:
    builder = _Builder(file, limits)
    documents = 0
    try:
        for event in yaml.parse(text, Loader=_SafeLoader):
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise _SourceError(
                        "a file may hold only one YAML document",
                        _yaml_location(file, event.start_mark),
                        "remove the '---' line or split the file in two",
                    )
                continue
            if not isinstance(event, yaml.NodeEvent):
                if isinstance(event, yaml.CollectionEndEvent):
                    builder.end()
                continue
            where = _yaml_location(file, event.start_mark)
            if isinstance(event, yaml.AliasEvent) or event.anchor is not None:
                raise _SourceError(
                    "YAML anchors and aliases (&name, *name) are not allowed",
                    where,
                    "write the value out in full",
                )
            tag = getattr(event, "tag", None)
            if tag not in (None, "!"):
                shown = str(tag).replace("tag:yaml.org,2002:", "!!")
                raise _SourceError(
                    f"YAML tag {shown!r} is not allowed",
                    where,
                    "remove the tag; values are plain text, numbers, lists and mappings",
                )
            if builder.expects_key():
                if not isinstance(event, yaml.ScalarEvent):
                    raise _SourceError("a mapping key must be plain text", where)
                builder.key(event.value, where)
            elif isinstance(event, yaml.ScalarEvent):
                plain = not event.style and event.implicit[0]
                value = _plain_scalar(event.value, where, limits) if plain else event.value
                builder.scalar(value, where, block=event.style in ("|", ">"))
            elif isinstance(event, yaml.MappingStartEvent):
                builder.start({}, where)
            elif isinstance(event, yaml.SequenceStartEvent):
                builder.start([], where)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = _yaml_location(file, mark) if mark else Location(file, 1, 1)
        message = error.problem or error.context or "invalid YAML"
        if "nesting depth" in message:  # libyaml's own cap, met before ours when it reads ahead
            raise _too_deep(limits, where) from None
        raise _SourceError(f"invalid YAML: {message}", where) from None
    except yaml.YAMLError as error:
        raise _SourceError(f"invalid YAML: {error}", Location(file, 1, 1)) from None
    return builder.root, builder.source


# --- JSON ------------------------------------------------------------------------------------

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_JSON_WORDS = {"true": True, "false": False, "null": None}


def _parse_json(text: str, file: str, limits: Limits) -> tuple[Any, SourceMap]:
    """A small JSON parser that records positions; strings use the stdlib's decoder."""
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def at(offset: int) -> Location:
        line = bisect.bisect_right(line_starts, offset)
        return Location(file, line, offset - line_starts[line - 1] + 1)

    def skip(pos: int) -> int:
        match = _WHITESPACE.match(text, pos)
        assert match is not None
        return match.end()

    def fail(pos: int, message: str) -> _SourceError:
        found = repr(text[pos]) if pos < len(text) else "the end of the file"
        return _SourceError(f"invalid JSON: {message}, found {found}", at(pos))

    builder = _Builder(file, limits)
    pos = skip(0)
    # After a value inside a container we need ',' or the closing bracket.
    after_value = False
    while True:
        if builder.done and not builder.stack:
            break
        frame = builder.stack[-1][0] if builder.stack else None
        if after_value:
            pos = skip(pos)
            closer = "}" if isinstance(frame, dict) else "]"
            if text.startswith(",", pos):
                pos = skip(pos + 1)
                after_value = False
                if text.startswith(closer, pos):
                    raise fail(pos, "trailing comma")
                continue
            if text.startswith(closer, pos):
                builder.end()
                pos += 1
                continue
            raise fail(pos, f"expected ',' or '{closer}'")
        pos = skip(pos)
        if builder.expects_key():
            if not text.startswith('"', pos):
                raise fail(pos, "expected a key in double quotes")
            where = at(pos)
            try:
                key, pos = scanstring(text, pos + 1, True)
            except JSONDecodeError as error:
                raise fail(error.pos, error.msg.lower()) from None
            builder.key(key, where)
            pos = skip(pos)
            if not text.startswith(":", pos):
                raise fail(pos, "expected ':'")
            pos = skip(pos + 1)
        where = at(pos)
        char = text[pos : pos + 1]
        if char == "{" or char == "[":
            builder.start({} if char == "{" else [], where)
            pos = skip(pos + 1)
            if text.startswith("}" if char == "{" else "]", pos):
                builder.end()
                pos += 1
                after_value = True
            continue
        if char == '"':
            try:
                value, pos = scanstring(text, pos + 1, True)
            except JSONDecodeError as error:
                raise fail(error.pos, error.msg.lower()) from None
            builder.scalar(value, where)
        elif (number := _JSON_NUMBER.match(text, pos)) is not None:
            builder.scalar(_number(number.group(), where, limits), where)
            pos = number.end()
        else:
            word = next((w for w in _JSON_WORDS if text.startswith(w, pos)), None)
            if word is None:
                raise fail(pos, "expected a value")
            builder.scalar(_JSON_WORDS[word], where)
            pos += len(word)
        after_value = True
    pos = skip(pos)
    if pos != len(text):
        raise fail(pos, "extra data after the document")
    return builder.root, builder.source


# --- files and folders -----------------------------------------------------------------------

_EXTENSIONS = (".yaml", ".yml", ".json")
#: Scenario files sit beside regulations; they are not part of them.
_SCENARIO_SUFFIXES = (".regulation.yaml", ".regulation.yml")


def regulation_files(path: Path) -> list[Path]:
    """The files a regulation path stands for: itself, or a folder's files in name order."""
    if path.is_dir():
        found = [
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.name.endswith(_EXTENSIONS)
            and not p.name.endswith(_SCENARIO_SUFFIXES)
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        ]
        return sorted(found, key=lambda p: p.relative_to(path).as_posix())
    return [path]


def parse_text(text: str, file: str, limits: Limits | None = None) -> tuple[Any, SourceMap]:
    """Parse one document; ``file`` decides the syntax by its extension."""
    limits = limits or Limits()
    try:
        if file.endswith(".json"):
            return _parse_json(text, file, limits)
        return _parse_yaml(text, file, limits)
    except _SourceError as error:
        raise RegulationError([error.problem]) from None


def _read(path: Path, name: str, limits: Limits) -> str:
    """The file's text, reading at most the limit plus one byte.

    ``stat()`` cannot be trusted for the size: ``/dev/zero`` or a pipe says 0.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(limits.max_file_bytes + 1)
    except OSError as error:
        raise _SourceError(
            f"cannot read the file: {error.strerror}", Location(name, 1, 1)
        ) from None
    if len(data) > limits.max_file_bytes:
        raise _SourceError(
            f"file is too large (more than {limits.max_file_bytes} bytes)",
            Location(name, 1, 1),
            "split the regulation into several files in one folder",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _SourceError(
            f"file is not UTF-8 text (byte {error.start})",
            Location(name, 1, 1),
            "save the file as UTF-8",
        ) from None


def read_source(path: Path, name: str, limits: Limits | None = None) -> str:
    """One admin file's text, size-capped while reading; RegulationError if unreadable."""
    try:
        return _read(path, name, limits or Limits())
    except _SourceError as error:
        raise RegulationError([error.problem]) from None


def _iter_files(paths: Iterable[str | Path], limits: Limits) -> Iterator[tuple[Path, str]]:
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise RegulationError(
                [Problem(f"{path}: no such file or folder", None, "check the path")]
            )
        files = regulation_files(path)
        if path.is_dir() and not files:
            raise RegulationError(
                [Problem(f"{path}: the folder has no .yaml, .yml or .json files", None)]
            )
        if len(files) > limits.max_files:
            raise RegulationError(
                [Problem(f"{path}: too many files ({len(files)}; limit {limits.max_files})")]
            )
        for file in files:
            yield file, str(file)


def business_rules_hint(data: Any) -> str | None:
    """A hint for a rule (or a list of rules) in the business-rules package's JSON format."""
    rules = data if isinstance(data, list) else [data]
    if rules and all(isinstance(r, dict) and {"conditions", "actions"} <= r.keys() for r in rules):
        return "this is business-rules JSON: turn it into a regulation with crmrules import-rules"
    return None


def load_document(paths: Iterable[str | Path], limits: Limits | None = None) -> Document:
    """Read and merge regulation files; every problem found is raised together."""
    limits = limits or Limits()
    problems: list[Problem] = []
    merged: dict[str, Any] = {}
    source = SourceMap()
    names: list[str] = []
    total = 0
    for path, name in _iter_files(paths, limits):
        names.append(name)
        try:
            text = _read(path, name, limits)
            total += len(text)
            if total > limits.max_total_bytes:
                raise _SourceError(
                    f"the regulation is too large (over {limits.max_total_bytes} bytes)",
                    Location(name, 1, 1),
                )
            data, positions = (
                _parse_json(text, name, limits)
                if name.endswith(".json")
                else _parse_yaml(text, name, limits)
            )
        except _SourceError as error:
            problems.append(error.problem)
            continue
        problems.extend(_merge(merged, source, data, positions, name))
    if problems:
        raise RegulationError(problems)
    return Document(merged, source, names)


def _merge(
    merged: dict[str, Any], source: SourceMap, data: Any, positions: SourceMap, name: str
) -> list[Problem]:
    """Fold one file into the merged document, naming both places of any clash."""
    if data is None:
        return []
    if not isinstance(data, dict):
        where = positions.locate(()) or Location(name, 1, 1)
        message = "a regulation file must be a mapping of sections (version, rules, ...)"
        return [Problem(message, where, business_rules_hint(data))]
    problems: list[Problem] = []
    for section, value in data.items():
        if section not in merged:
            merged[section] = value
            continue
        here = positions.keys[(section,)]
        first = source.keys[(section,)]
        existing = merged[section]
        if section in LIST_SECTIONS and isinstance(existing, list) and isinstance(value, list):
            positions = positions.shifted(section, len(existing))
            existing.extend(value)
        elif section in MAPPING_SECTIONS and isinstance(existing, dict) and isinstance(value, dict):
            for key in value:
                if key in existing:
                    problems.append(
                        Problem(
                            f"{section}.{key} is defined twice (first at "
                            f"{source.keys[(section, key)]})",
                            positions.keys[(section, key)],
                            "keep one definition",
                        )
                    )
            existing.update({k: v for k, v in value.items() if k not in existing})
        elif section == "version" and existing == value:
            continue
        else:
            problems.append(
                Problem(
                    f"section {section!r} is defined twice (first at {first})",
                    here,
                    "keep it in one file",
                )
            )
            continue
    # Keys first seen in this file keep their positions; clashes keep the first file's.
    for path, loc in positions.values.items():
        source.values.setdefault(path, loc)
    for path, loc in positions.keys.items():
        source.keys.setdefault(path, loc)
    source.blocks |= positions.blocks
    return problems


__all__ = [
    "Document",
    "Limits",
    "PathKey",
    "SourceMap",
    "business_rules_hint",
    "load_document",
    "parse_text",
    "read_source",
    "regulation_files",
]
