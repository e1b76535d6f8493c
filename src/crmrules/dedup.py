"""Finding duplicate clients: by the regulation's ``duplicates:`` rules, blocked by SQL.

Every client stored gets its normalised keys written beside it
(crmrules.adapters.import_tables), so the candidates for a new record are
the clients sharing a key with it, one indexed query; only those are
compared (crmrules.rules.duplicates decides each pair). ``find_duplicates``
walks the base the same way: the database pairs the clients of each block
(a self-join on the keys), a chunk of clients at a time, never all pairs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from crmrules.adapters import import_tables as tables
from crmrules.errors import RefusedError
from crmrules.model import Client
from crmrules.rules.duplicates import Comparison, DuplicateRules
from crmrules.rules.regulation import Regulation
from crmrules.store import Transaction

if TYPE_CHECKING:
    from crmrules.engine import Engine

#: Clients (re)indexed, or paired, per transaction.
CHUNK = 500
#: The record under which the rules the stored keys were made with are remembered.
SIGNATURE = "$match-keys"

Status = Literal["new", "duplicate", "ambiguous"]


@dataclass(frozen=True)
class Candidate:
    """An existing client a record was compared with, and the verdict."""

    client: str
    comparison: Comparison

    def to_dict(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "verdict": self.comparison.verdict,
            "reasons": list(self.comparison.reasons),
        }


@dataclass(frozen=True)
class Match:
    """What a record is: new, a duplicate of ``client``, or ambiguous (a person decides)."""

    status: Status
    client: str | None = None
    candidates: tuple[Candidate, ...] = ()


@dataclass(frozen=True)
class DuplicatePair:
    """Two clients of the base that the rules call duplicates or ambiguous."""

    first: str
    second: str
    verdict: Literal["duplicate", "ambiguous"]
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "reasons": list(self.reasons)}


@dataclass
class DuplicatesReport:
    clients: int = 0
    pairs: list[DuplicatePair] = field(default_factory=list)


def rules_of(regulation: Regulation) -> DuplicateRules:
    if regulation.duplicates is None:
        raise RefusedError(
            "the regulation declares no duplicates: section; add one saying which fields "
            "identify a client (e.g. duplicates: {match: [{key: phone}, {key: name}]})"
        )
    return regulation.duplicates


def signature(rules: DuplicateRules) -> str:
    """What the stored keys depend on: the matchers, the phone region, the e-mail domains."""
    text = json.dumps(
        [
            [(m.key, m.field) for m in rules.matchers],
            rules.region,
            sorted(rules.dot_blind),
            sorted(rules.plus_tags),
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def index_client(tx: Transaction, regulation: Regulation, client: Client) -> None:
    """Write the client's keys (called wherever a client is stored).

    A store of a plugin has no keys table: there the keys are simply not kept
    (finding duplicates and importing then say so).
    """
    if regulation.duplicates is not None and tables.supported(tx):
        tables.put_keys(tx, client.id, regulation.duplicates.block_keys_of(client))


def ensure_index(engine: Engine, progress: Callable[[int], None] | None = None) -> int:
    """Index every client again if the stored keys were made by other rules; how many were."""
    rules = rules_of(engine.regulation)
    wanted = signature(rules)
    with engine.store.transaction() as tx:
        stored = tables.get_record(tx, tables.IMPORTS, SIGNATURE)
        if stored is not None and stored.get("signature") == wanted:
            return 0
        ids = tx.client_ids()
    for start in range(0, len(ids), CHUNK):
        with engine.store.transaction() as tx:
            for client_id in ids[start : start + CHUNK]:
                client = tx.get_client(client_id)
                if client is not None:
                    tables.put_keys(tx, client_id, rules.block_keys_of(engine.typed_client(client)))
        if progress is not None:
            progress(len(ids[start : start + CHUNK]))
    with engine.store.transaction() as tx:
        tables.put_record(tx, tables.IMPORTS, SIGNATURE, {"signature": wanted})
    return len(ids)


def classify(
    tx: Transaction,
    rules: DuplicateRules,
    values: Mapping[str, str],
    *,
    exclude: str | None = None,
) -> Match:
    """What a record with these normalised values is, against the clients stored."""
    found = tables.clients_by_keys(tx, rules.block_keys(values)) - {exclude}
    candidates = []
    for client_id in sorted(c for c in found if c is not None):
        client = tx.get_client(client_id)
        if client is None:
            continue
        comparison = rules.compare(values, rules.normalised(client.record()))
        if comparison.verdict != "different":
            candidates.append(Candidate(client_id, comparison))
    duplicates = [c for c in candidates if c.comparison.verdict == "duplicate"]
    if len(duplicates) == 1:
        return Match("duplicate", duplicates[0].client, tuple(candidates))
    if candidates:
        return Match("ambiguous", None, tuple(candidates))
    return Match("new")


def find_duplicates(
    engine: Engine, *, chunk: int = CHUNK, progress: Callable[[int], None] | None = None
) -> Iterator[DuplicatePair]:
    """The pairs of clients the rules call duplicates or ambiguous, by blocks, streamed.

    The stored keys are brought up to date first (``ensure_index``).
    """
    rules = rules_of(engine.regulation)
    ensure_index(engine)
    after: str | None = None
    while True:
        with engine.store.transaction() as tx:
            pairs = tables.candidate_pairs(tx, after, chunk)
            found = []
            cache: dict[str, dict[str, str]] = {}
            for first, second in pairs:
                values = [_values(tx, rules, cid, cache) for cid in (first, second)]
                if values[0] is None or values[1] is None:
                    continue
                comparison = rules.compare(values[0], values[1])
                if comparison.verdict != "different":
                    found.append(
                        DuplicatePair(first, second, comparison.verdict, comparison.reasons)
                    )
        yield from found
        firsts = sorted({p[0] for p in pairs})
        if progress is not None:
            progress(len(firsts))
        if len(firsts) < chunk:
            return
        after = firsts[-1]


def _values(
    tx: Transaction, rules: DuplicateRules, client_id: str, cache: dict[str, dict[str, str]]
) -> dict[str, str] | None:
    if client_id not in cache:
        client = tx.get_client(client_id)
        if client is None:
            return None
        cache[client_id] = rules.normalised(client.record())
    return cache[client_id]


__all__ = [
    "Candidate",
    "DuplicatePair",
    "Match",
    "classify",
    "ensure_index",
    "find_duplicates",
    "index_client",
    "rules_of",
]
