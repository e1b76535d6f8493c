"""``crmrules history``: what the rules did to one client, when, under which regulation version.

Read from the audit log, which keeps each entry's client and regulation
version (``AuditEntry.client`` / ``.regulation``): every rule that fired for
the client's events, why (its trigger, on which event) and what it did (its
effects), oldest first. Entries written before versions were kept show no
version.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from crmrules.store import Store


@dataclass
class HistoryEntry:
    """One rule firing for the client: when, which rule and version, why, and what it did."""

    at: str
    event_id: str
    event_type: str
    rule: str | None
    regulation: str | None
    why: str
    did: list[str] = field(default_factory=list)

    def describe(self) -> str:
        version = self.regulation or "unknown version"
        lines = [
            f"{self.at} {self.event_type} ({self.event_id}): rule {self.rule} fired "
            f"[regulation {version}]: {self.why}"
        ]
        lines.extend(f"    → {what}" for what in self.did)
        return "\n".join(lines)


def history(store: Store, client_id: str) -> list[HistoryEntry]:
    """The client's rule firings with their effects, oldest first."""
    with store.transaction() as tx:
        entries = tx.audit_log(client=client_id)
    found: list[HistoryEntry] = []
    open_: dict[tuple[str, str | None], HistoryEntry] = {}
    for entry in entries:
        if entry.kind == "fired":
            item = HistoryEntry(
                entry.at.isoformat(),
                entry.event_id,
                entry.event_type,
                entry.rule,
                entry.regulation,
                f"on {entry.message}",
            )
            found.append(item)
            open_[entry.event_id, entry.rule] = item
        elif entry.kind in ("effect", "refused"):
            owner = open_.get((entry.event_id, entry.rule))
            if owner is not None:
                owner.did.append(entry.message)
    return found


def to_dicts(entries: list[HistoryEntry]) -> list[dict[str, Any]]:
    return [asdict(e) for e in entries]


__all__ = ["HistoryEntry", "history", "to_dicts"]
