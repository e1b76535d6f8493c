"""pydantic's validation errors in an admin's words: each at its key, with a hint.

The regulation's blocks are checked by pydantic models (``crmrules.rules.schema``);
this turns a ``ValidationError`` into problems that name the key as written in the
file (union tags dropped), suggest the key or value meant, and lets the compiler go
on checking the rest of a block that had a bad key.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from functools import cache
from typing import Any, Protocol, TypeVar, cast

from pydantic import BaseModel, Field, ValidationError, create_model

from crmrules.rules.source import PathKey

M = TypeVar("M", bound=BaseModel)
#: The keys of a block whose values had problems (already reported).
Bad = frozenset[str]


class ErrorSink(Protocol):
    """Where a problem goes: the compiler's ``error``."""

    def __call__(
        self, path: PathKey, message: str, hint: str | None = None, *, key: bool = False
    ) -> None: ...


def validate(model: type[M], data: Any, path: PathKey, error: ErrorSink) -> M | None:
    """``model`` from ``data``, or None after turning pydantic's errors into problems."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        report(model, data, path, exc, error)
        return _without_unknown_keys(model, data, exc)


def validate_all(
    model: type[M], data: Any, path: PathKey, error: ErrorSink
) -> tuple[M, Bad] | None:
    """Like :func:`validate`, but a key with a bad value does not hide the other keys.

    Every problem is reported; the keys that had one come back as a set,
    and the model is built from the others (defaults stand in for bad
    optional keys, None for bad or missing required ones), so that the
    caller can go on checking the rest of a rule or an action.
    """
    try:
        return model.model_validate(data), frozenset()
    except ValidationError as exc:
        report(model, data, path, exc, error)
        if not isinstance(data, dict):
            return None
        bad = frozenset(str(err["loc"][0]) for err in exc.errors() if err["loc"])
        good = {k: v for k, v in data.items() if k not in bad}
        try:
            return _lenient(model).model_validate(good), bad
        except ValidationError:
            return None


def report(
    model: type[BaseModel], data: Any, path: PathKey, exc: ValidationError, error: ErrorSink
) -> None:
    """Each of pydantic's errors as a problem in the admin's words, at its place in the file."""
    grouped: dict[PathKey, list[dict[str, Any]]] = {}
    for err in exc.errors(include_url=False):
        where, _ = _strip_loc(data, tuple(err["loc"]))
        grouped.setdefault(where, []).append(dict(err))
    for where, errors in grouped.items():
        full = (*path, *where)
        first = errors[0]
        kind = first["type"]
        if kind == "extra_forbidden":
            name = str(where[-1])
            owner = _owner_model(model, data, where[:-1])
            options = _field_names(owner) if owner else []
            close = difflib.get_close_matches(name, options, n=1)
            hint = (
                f"did you mean {close[0]}?"
                if close
                else (f"allowed: {', '.join(options)}" if options else None)
            )
            error(full, f"unknown key {name!r}", hint, key=True)
        elif kind == "missing":
            error(full[:-1], f"missing required key {where[-1]!r}")
        elif kind == "string_pattern_mismatch":
            error(
                full,
                f"invalid id {first['input']!r}",
                "ids use letters, digits, '_', '.' and '-', up to 100 characters",
            )
        elif kind == "bool_type":
            error(
                full,
                f"expected true or false, got {first['input']!r}",
                "yes/no, on/off, 0/1 and quoted text are not flags",
            )
        elif kind == "literal_error":
            expected = first.get("ctx", {}).get("expected", "")
            options = re.findall(r"'([^']*)'", expected)
            close = difflib.get_close_matches(str(first["input"]), options, n=1)
            error(
                full,
                f"{first['input']!r} is not one of {', '.join(options)}",
                f"did you mean {close[0]}?" if close else None,
            )
        else:
            messages = list(dict.fromkeys(_message(e) for e in errors))
            error(full, "; or ".join(messages))


def _field_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _strip_loc(data: Any, loc: tuple[int | str, ...]) -> tuple[PathKey, Any]:
    """Keep the parts of a pydantic ``loc`` that exist in the data (drops union tags)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:  # noqa: SIM114 (separate for mypy narrowing)
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not _is_union_tag(part):
            path.append(part)  # a key that is missing
            break
    return tuple(path), node


def _is_union_tag(part: str) -> bool:
    """pydantic names union members in ``loc`` (``str``, ``list[str]``, ``DueSpec``)."""
    return "[" in part or part in ("str", "int", "bool", "list", "dict") or part[:1].isupper()


def _without_unknown_keys(model: type[M], data: Any, exc: ValidationError) -> M | None:
    """An unknown key is reported; go on without it so the rest is checked too."""
    unknown = {
        err["loc"][0]
        for err in exc.errors()
        if err["type"] == "extra_forbidden" and len(err["loc"]) == 1
    }
    if unknown and isinstance(data, dict):
        try:
            return model.model_validate({k: v for k, v in data.items() if k not in unknown})
        except ValidationError:
            return None
    return None


@cache
def _lenient(model: type[M]) -> type[M]:
    """``model`` with its required fields optional (None), for checking a block with problems.

    Only used after the problems are reported, so the compiled result is never run.
    """
    optional: dict[str, Any] = {
        name: (cast(Any, info.annotation) | None, Field(None, alias=info.alias))
        for name, info in model.model_fields.items()
        if info.is_required()
    }
    return cast(type[M], create_model(f"Lenient{model.__name__}", __base__=model, **optional))


def _owner_model(model: type[BaseModel], data: Any, path: PathKey) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``path`` inside ``model``'s data."""
    current: type[BaseModel] | None = model
    for part in path:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        info = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
        if info is None:
            return None
        current = _model_in(info.annotation)
    return current


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _message(error: Mapping[str, Any]) -> str:
    text = str(error.get("msg", "invalid value"))
    return text[0].lower() + text[1:] if text else text


__all__ = ["Bad", "ErrorSink", "report", "validate", "validate_all"]
