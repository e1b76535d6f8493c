"""What an import reads: the mapping file (admin input) and the rows of a CSV or XLSX file.

A mapping says which column fills which client field:

```yaml
source: exhibition-2026      # the import's source in client.created (default: the file name)
id: Код                      # the column with client ids (default: <import id>-<row>)
columns:
  Название: name
  Телефон: phone
  E-mail: email
  ИНН: inn                   # a custom field, declared in the regulation as client.inn
set: {kind: company, tags: [exhibition]}   # the same value for every row
on_duplicate: skip           # or create
events: true                 # false: the import raises no events
```

It is untrusted: every problem names the mapping file's line and column
(the same reader as regulations, crmrules.rules.source). Rows are streamed
from the file, never read whole: CSV with the standard library, XLSX with
openpyxl in read-only mode (the ``crmrules[xlsx]`` extra).
"""

from __future__ import annotations

import csv
import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from crmrules.errors import CrmRulesError, Location, Problem, RegulationError, require
from crmrules.model import Client
from crmrules.rules.regulation import Regulation
from crmrules.rules.source import PathKey, SourceMap, parse_text, read_source

#: Client fields an import may fill (the rest are crmrules' own: territories, segments, ...).
CLIENT_FIELDS = (
    "name", "kind", "email", "phone", "region", "city", "country", "industry", "source",
    "tags", "responsible",
)  # fmt: skip
MAPPING_KEYS = ("source", "id", "columns", "set", "on_duplicate", "events", "sheet", "delimiter")
#: The row number of the first data row of a file (row 1 holds the column names).
FIRST_ROW = 2


class MappingError(RegulationError):
    """A mapping file that cannot be used; every problem with its file, line and column."""

    def __str__(self) -> str:
        return super().__str__().replace("in the regulation", "in the import mapping", 1)


@dataclass(frozen=True)
class ImportMapping:
    """A checked mapping: column -> client field, constants, and how the import behaves."""

    columns: Mapping[str, str]
    id_column: str | None = None
    constants: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None
    on_duplicate: Literal["skip", "create"] = "skip"
    events: bool = True
    sheet: str | None = None
    delimiter: str | None = None
    #: where each key was written (for problems found later, e.g. a missing column)
    where: SourceMap = field(default_factory=SourceMap)

    def check_header(self, header: list[str], file: str) -> None:
        """Every mapped column must be in the file's first row."""
        problems = []
        for column in (*self.columns, *([self.id_column] if self.id_column else [])):
            if column not in header:
                close = difflib.get_close_matches(column, header, n=1)
                hint = f"did you mean {close[0]!r}?" if close else None
                problems.append(
                    Problem(
                        f"{file} has no column {column!r} (its columns: {', '.join(header)})",
                        self.where.locate(("columns", column), key=True)
                        or self.where.locate(("id",)),
                        hint,
                    )
                )
        if problems:
            raise MappingError(problems)


def _field_target(regulation: Regulation, name: str) -> str | None:
    """Why ``name`` cannot be filled by an import, or None if it can."""
    if name in CLIENT_FIELDS:
        return None
    spec = regulation.fields.get(f"client.{name}")
    if spec is not None and not spec.builtin:
        return None
    custom = [s.key for s in regulation.fields.of("client") if not s.builtin]
    close = difflib.get_close_matches(name, [*CLIENT_FIELDS, *custom], n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return (
        f"an import cannot fill client field {name!r}{hint} (it fills {', '.join(CLIENT_FIELDS)}"
        " and the custom fields declared under fields:)"
    )


def parse_mapping(data: Any, where: SourceMap, regulation: Regulation, file: str) -> ImportMapping:
    """A mapping from parsed YAML/JSON; MappingError lists every problem."""
    problems: list[Problem] = []

    def error(path: PathKey, message: str, hint: str | None = None, key: bool = False) -> None:
        problems.append(Problem(message, where.locate(path, key=key) or Location(file, 1, 1), hint))

    if not isinstance(data, dict):
        raise MappingError([Problem("a mapping must be a mapping of keys (columns, ...)",
                                    Location(file, 1, 1))])  # fmt: skip
    for key in data:
        if key not in MAPPING_KEYS:
            close = difflib.get_close_matches(str(key), MAPPING_KEYS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"keys: {', '.join(MAPPING_KEYS)}"
            error((key,), f"unknown key {key!r}", hint, key=True)
    columns = data.get("columns")
    if not isinstance(columns, dict) or not columns:
        error(("columns",) if "columns" in data else (), "columns: must map column names to "
              "client fields, e.g. {Телефон: phone}")  # fmt: skip
        columns = {}
    targets: dict[str, str] = {}
    for column, target in columns.items():
        if not isinstance(target, str):
            error(("columns", column), f"column {column!r} must name one client field")
            continue
        problem = _field_target(regulation, target)
        if problem:
            error(("columns", column), problem)
        elif target in targets.values():
            error(("columns", column), f"client field {target!r} is filled by two columns")
        else:
            targets[str(column)] = target
    constants = data.get("set") or {}
    if not isinstance(constants, dict):
        error(("set",), "set: must map client fields to values")
        constants = {}
    for name in constants:
        problem = _field_target(regulation, str(name))
        if problem:
            error(("set", name), problem, key=True)
    for name, choices in (("on_duplicate", ("skip", "create")),):
        if name in data and data[name] not in choices:
            error((name,), f"{name} must be one of {', '.join(choices)}, not {data[name]!r}")
    if "events" in data and not isinstance(data["events"], bool):
        error(("events",), f"events must be true or false, not {data['events']!r}")
    for name in ("source", "id", "sheet"):
        if name in data and not isinstance(data[name], str):
            error((name,), f"{name} must be text, not {data[name]!r}")
    delimiter = data.get("delimiter")
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
        error(("delimiter",), f"delimiter must be one character, not {delimiter!r}")
    if problems:
        raise MappingError(problems)
    return ImportMapping(
        columns=targets,
        id_column=data.get("id"),
        constants=dict(constants),
        source=data.get("source"),
        on_duplicate=data.get("on_duplicate", "skip"),
        events=data.get("events", True),
        sheet=data.get("sheet"),
        delimiter=delimiter,
        where=where,
    )


def load_mapping(path: str | Path, regulation: Regulation) -> ImportMapping:
    """The mapping file at ``path``, checked against the regulation's fields."""
    name = str(path)
    text = read_source(Path(path), name)
    data, where = parse_text(text, name)
    try:
        return parse_mapping(data, where, regulation, name)
    except MappingError:
        raise
    except RegulationError as error:  # pragma: no cover - parse_text raised it already
        raise MappingError(error.problems) from None


# -- reading rows


def cell_text(value: Any) -> str | None:
    """A cell as the text it shows; a whole number kept as digits (a phone, an INN)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    text = str(value).strip()
    return text or None


def read_rows(path: str | Path, mapping: ImportMapping) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, {column: text}) for each data row of a CSV or XLSX file, streamed."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        yield from _xlsx_rows(file, mapping)
    elif suffix in (".csv", ".txt", ".tsv"):
        yield from _csv_rows(file, mapping)
    else:
        raise CrmRulesError(
            f"{file}: crmrules imports .csv and .xlsx files, not {suffix or 'this'}"
        )


def _with_header(
    file: Path, rows: Iterator[list[Any]], mapping: ImportMapping
) -> Iterator[tuple[int, dict[str, Any]]]:
    header_row = next(rows, None)
    if header_row is None:
        raise CrmRulesError(f"{file} is empty: its first row must hold the column names")
    header = [cell_text(h) or "" for h in header_row]
    mapping.check_header(header, str(file))
    for number, values in enumerate(rows, FIRST_ROW):
        cells = {h: cell_text(v) for h, v in zip(header, values, strict=False) if h}
        if any(v is not None for v in cells.values()):
            yield number, cells


def _csv_rows(file: Path, mapping: ImportMapping) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        handle = file.open(encoding="utf-8-sig", newline="")
    except OSError as error:
        raise CrmRulesError(f"cannot read {file}: {error.strerror}") from None
    with handle:
        delimiter = mapping.delimiter
        if delimiter is None:
            sample = handle.read(64 * 1024)
            handle.seek(0)
            try:
                delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
            except csv.Error:
                delimiter = ","
        try:
            yield from _with_header(file, csv.reader(handle, delimiter=delimiter), mapping)
        except UnicodeDecodeError as error:
            raise CrmRulesError(
                f"{file} is not UTF-8 text (byte {error.start}); save it as CSV UTF-8"
            ) from None
        except csv.Error as error:
            raise CrmRulesError(f"{file}: not a readable CSV file ({error})") from None


def _xlsx_rows(file: Path, mapping: ImportMapping) -> Iterator[tuple[int, dict[str, Any]]]:
    openpyxl = require("openpyxl", "xlsx", "reading .xlsx files")
    try:
        book = openpyxl.load_workbook(file, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many kinds for a damaged file
        raise CrmRulesError(f"{file} is not a readable .xlsx workbook ({error})") from None
    try:
        if mapping.sheet is not None and mapping.sheet not in book.sheetnames:
            raise CrmRulesError(
                f"{file} has no sheet {mapping.sheet!r} (sheets: {', '.join(book.sheetnames)})"
            )
        sheet = book[mapping.sheet] if mapping.sheet else book.worksheets[0]
        yield from _with_header(file, (list(r) for r in sheet.iter_rows(values_only=True)), mapping)
    finally:
        book.close()


def constant_fields(mapping: ImportMapping) -> dict[str, Any]:
    """The ``set:`` values split into built-in client fields and custom ones."""
    return {k: v for k, v in mapping.constants.items() if k in Client.model_fields}


__all__ = [
    "CLIENT_FIELDS",
    "FIRST_ROW",
    "ImportMapping",
    "MappingError",
    "cell_text",
    "load_mapping",
    "parse_mapping",
    "read_rows",
]
