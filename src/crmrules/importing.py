"""Importing clients: rows in, each new, a duplicate, ambiguous or refused, resumable.

Rows are taken a chunk at a time, one transaction per chunk. Each row is
all or nothing: it is checked (every problem named with its row and
column), compared with the clients stored (crmrules.dedup: new, a
duplicate of one client, or ambiguous), and a new one is stored in a
savepoint of its own as any created client is: territories, segments,
duplicate keys, ``client.created`` with ``event.import`` and
``event.source``, and the rules that follow (unless the mapping says
``events: false``). A bad row never stops the rest: it is rolled back
alone and listed, with the duplicates and the ambiguous rows, in the
store (``import_rows``), the chunk's good rows are imported.

Resumable: the import's progress (the next row, the counts) is written in
the chunk's own transaction, so after a crash the same import id starts
again at the first row not committed, and no row is imported twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from crmrules import dedup
from crmrules.adapters import import_tables as tables
from crmrules.errors import CrmRulesError, RecordError, RefusedError
from crmrules.import_mapping import FIRST_ROW, ImportMapping, read_rows
from crmrules.model import Client, clean_id
from crmrules.result import Result
from crmrules.rules.duplicates import DuplicateRules

if TYPE_CHECKING:
    from crmrules.engine import Engine
    from crmrules.run import Run

#: Rows per transaction.
CHUNK = 500
#: How many listed rows a report keeps in memory (all of them are in the store).
EXAMPLES = 100
OUTCOMES = ("created", "duplicate", "ambiguous", "invalid")


@dataclass(frozen=True)
class RowProblem:
    """Why one row was not imported: its row, the column (if one is to blame), and what."""

    row: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", column {self.column!r}" if self.column else "")
        return f"{where}: {self.message}"


@dataclass
class ImportReport:
    """What an import did (or, in a dry run, would do); listed rows are in the store too."""

    import_id: str
    source: str
    dry_run: bool = False
    rows: int = 0
    resumed_after: int | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    #: the first rows not simply created: {row, outcome, client, problems, candidates}
    listed: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        verb = "would import" if self.dry_run else "imported"
        c = self.counts
        text = (
            f"import {self.import_id}: {self.rows} rows, {verb} {c['created']}, "
            f"{c['duplicate']} duplicates, {c['ambiguous']} ambiguous, {c['invalid']} refused"
        )
        if self.resumed_after is not None:
            text += f" (resumed after row {self.resumed_after})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id,
            "source": self.source,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "resumed_after": self.resumed_after,
            "counts": dict(self.counts),
            "listed": list(self.listed),
        }


class _DryRun(Exception):
    """Raised at the end of a dry-run chunk so its transaction rolls back."""


def import_id_for(path: str | Path, mapping_text: str) -> str:
    """An import id from the file's bytes and the mapping: the same import runs on, not again."""
    digest = hashlib.sha256(mapping_text.encode())
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "imp-" + digest.hexdigest()[:12]


def import_file(
    engine: Engine,
    path: str | Path,
    mapping: ImportMapping,
    *,
    import_id: str | None = None,
    dry_run: bool = False,
    chunk: int = CHUNK,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a CSV or XLSX file (see ``import_clients``); the source defaults to its name."""
    return import_clients(
        engine,
        read_rows(path, mapping),
        mapping,
        import_id=import_id,
        source=mapping.source or Path(path).name,
        dry_run=dry_run,
        chunk=chunk,
        progress=progress,
    )


def import_clients(
    engine: Engine,
    rows: Iterable[Mapping[str, Any]] | Iterable[tuple[int, Mapping[str, Any]]],
    mapping: ImportMapping,
    *,
    import_id: str | None = None,
    source: str | None = None,
    dry_run: bool = False,
    chunk: int = CHUNK,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import ``rows`` ({column: value} mappings, or (row number, mapping) pairs).

    Rows without numbers are numbered from 2, as in a file whose first row
    holds the column names. Run again with the same ``import_id``, an import
    continues after the last row committed. ``progress`` gets the number of
    rows done after each chunk.
    """
    if chunk < 1:
        raise RefusedError(f"chunk must be at least 1, not {chunk}")
    rules = engine.regulation.duplicates
    import_id = clean_id(import_id) if import_id is not None else "imp-" + uuid.uuid4().hex[:12]
    if import_id.startswith("$"):
        raise RefusedError(f"import id {import_id!r} cannot start with '$'")
    source = source or mapping.source or "api"
    report = ImportReport(import_id, source, dry_run=dry_run)
    if rules is not None:
        dedup.ensure_index(engine)
    with engine.store.transaction() as tx:
        state = tables.get_record(tx, tables.IMPORTS, import_id)
    done_until = 0
    if state is not None:
        if state.get("source") != source:
            raise RefusedError(
                f"import {import_id} was started with source {state.get('source')!r}, not "
                f"{source!r}; give another import id for another import"
            )
        done_until = int(state["next_row"]) - 1
        report.resumed_after = done_until if done_until >= FIRST_ROW else None
        report.counts.update(state["counts"])
    for batch in _batches(rows, chunk):
        report.rows += len(batch)
        todo = [(n, r) for n, r in batch if n > done_until]
        if todo:
            _chunk(engine, rules, mapping, report, todo, dry_run)
        if progress is not None:
            progress(len(batch))
    return report


def _batches(
    rows: Iterable[Mapping[str, Any]] | Iterable[tuple[int, Mapping[str, Any]]], size: int
) -> Iterator[list[tuple[int, Mapping[str, Any]]]]:
    batch: list[tuple[int, Mapping[str, Any]]] = []
    for index, item in enumerate(rows, FIRST_ROW):
        pair = item if isinstance(item, tuple) else (index, item)
        batch.append(pair)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _chunk(
    engine: Engine,
    rules: DuplicateRules | None,
    mapping: ImportMapping,
    report: ImportReport,
    rows: list[tuple[int, Mapping[str, Any]]],
    dry_run: bool,
) -> None:
    """One transaction: every row of the chunk, the listed ones recorded, progress saved."""
    outcomes: list[dict[str, Any]] = []

    def body(run: Run) -> None:
        outcomes.clear()
        for number, row in rows:
            outcomes.append(_row(engine, run, rules, mapping, report, number, row))
        counts = dict(report.counts)
        for outcome in outcomes:
            counts[outcome["outcome"]] += 1
            if outcome["outcome"] != "created":
                tables.put_import_row(
                    run.tx, report.import_id, outcome["row"], outcome["outcome"], outcome
                )
        state = {"source": report.source, "next_row": rows[-1][0] + 1, "counts": counts}
        tables.put_record(run.tx, tables.IMPORTS, report.import_id, state)
        if run.queue:
            run.cascade(run.queue.pop(0).event)
        if dry_run:
            raise _DryRun

    event_id = f"import:{report.import_id}:{rows[0][0]}"
    if dry_run:
        with contextlib.suppress(_DryRun):
            engine.transact(event_id, (None, None), body)
    else:
        result: Result = engine.transact(event_id, (None, None), body)
        if result.duplicate:
            return  # another process committed this chunk meanwhile
    for outcome in outcomes:
        report.counts[outcome["outcome"]] += 1
        if outcome["outcome"] != "created" and len(report.listed) < EXAMPLES:
            report.listed.append(outcome)


def _row(
    engine: Engine,
    run: Run,
    rules: DuplicateRules | None,
    mapping: ImportMapping,
    report: ImportReport,
    number: int,
    row: Mapping[str, Any],
) -> dict[str, Any]:
    """One row, all or nothing: its outcome as stored in the import's list."""
    client, problems = build_client(engine, rules, mapping, report.import_id, number, row)
    if client is None:
        return _refused(number, problems)
    match = dedup.Match("new")
    if rules is not None:
        match = dedup.classify(
            run.tx, rules, rules.normalised(engine.typed_client(client).record())
        )
    if match.status == "ambiguous" or (
        match.status == "duplicate" and mapping.on_duplicate == "skip"
    ):
        return {
            "row": number,
            "outcome": match.status,
            "client": match.client,
            "problems": [],
            "candidates": [c.to_dict() for c in match.candidates],
        }
    if run.tx.get_client(client.id) is not None:
        column = mapping.id_column
        return _refused(number, [RowProblem(number, column, f"client {client.id} already exists")])
    queued = len(run.queue)
    try:
        with run.tx.savepoint():
            if client.responsible and run.find_manager(client.responsible) is None:
                column = _column_of(mapping, "responsible")
                raise _RowRefused(
                    RowProblem(number, column, f"unknown manager {client.responsible!r}")
                )
            run.store_client(
                client.model_copy(update={"created_at": client.created_at or run.now}),
                None,
                None,
                0,
                f":{number}",
                {"import": report.import_id, "source": report.source},
            )
    except _RowRefused as refused:
        del run.queue[queued:]
        return _refused(number, [refused.problem])
    except CrmRulesError as error:
        del run.queue[queued:]
        field_name = error.field if isinstance(error, RecordError) else None
        return _refused(number, [RowProblem(number, _column_of(mapping, field_name), str(error))])
    if not mapping.events:
        del run.queue[queued:]
    return {"row": number, "outcome": "created", "client": client.id}


class _RowRefused(Exception):
    def __init__(self, problem: RowProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _refused(number: int, problems: list[RowProblem]) -> dict[str, Any]:
    return {
        "row": number,
        "outcome": "invalid",
        "client": None,
        "problems": [{"column": p.column, "message": p.message, "text": str(p)} for p in problems],
        "candidates": [],
    }


def _column_of(mapping: ImportMapping, field_name: str | None) -> str | None:
    return next((c for c, f in mapping.columns.items() if f == field_name), None)


def build_client(
    engine: Engine,
    rules: DuplicateRules | None,
    mapping: ImportMapping,
    import_id: str,
    number: int,
    row: Mapping[str, Any],
) -> tuple[Client | None, list[RowProblem]]:
    """The client a row describes, or None and every problem of the row (with its column)."""
    problems: list[RowProblem] = []
    regulation = engine.regulation
    raw_id = row.get(mapping.id_column) if mapping.id_column else f"{import_id}-{number}"
    if raw_id is None or str(raw_id).strip() == "":
        problems.append(RowProblem(number, mapping.id_column, "no client id in this row"))
        raw_id = f"{import_id}-{number}"
    values: dict[str, Any] = {"id": str(raw_id).strip(), **mapping.constants}
    custom: dict[str, Any] = {}
    tax = {m.field: m.key for m in rules.matchers} if rules is not None else {}
    for column, target in mapping.columns.items():
        cell = row.get(column)
        if cell is None or str(cell).strip() == "":
            continue
        text = str(cell).strip()
        if target in tax and rules is not None:
            problem = rules.problem(tax[target], text)
            if problem:
                problems.append(RowProblem(number, column, problem))
                continue
        if target in Client.model_fields:
            values[target] = (
                frozenset(t.strip() for t in text.split(",")) if target == "tags" else text
            )
            continue
        try:
            custom.update(
                regulation.fields.coerce_record(
                    "client", values["id"], {target: text}, regulation.calendar
                )
                if regulation.fields.get(f"client.{target}") is not None
                else {target: text}
            )
        except RecordError as error:
            problems.append(RowProblem(number, column, error.message))
    constants_custom = {k: v for k, v in mapping.constants.items() if k not in Client.model_fields}
    for key in constants_custom:
        values.pop(key, None)
    values["fields"] = {**constants_custom, **custom}
    try:
        client = Client.model_validate(values)
    except ValidationError as error:
        for item in error.errors(include_url=False):
            name = str(item["loc"][0]) if item["loc"] else None
            where = mapping.id_column if name == "id" else _column_of(mapping, name)
            text = str(item["msg"]).removeprefix("Value error, ")
            message = text if name is None else f"{name}: {text}"
            problems.append(RowProblem(number, where, message))
        return None, problems
    return (None, problems) if problems else (client, [])


def listed_rows(engine: Engine, import_id: str) -> Iterator[dict[str, Any]]:
    """Every row an import listed (duplicates, ambiguous, refused), in row order."""
    with engine.store.transaction() as tx:
        if tables.get_record(tx, tables.IMPORTS, import_id) is None:
            raise RefusedError(f"no import {import_id!r} in the store")
        rows = list(tables.import_rows(tx, import_id))
    for _, data in rows:
        yield data


__all__ = [
    "CHUNK",
    "ImportReport",
    "RowProblem",
    "build_client",
    "import_clients",
    "import_file",
    "import_id_for",
    "listed_rows",
]
