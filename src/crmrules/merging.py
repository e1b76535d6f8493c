"""Merging two clients into one, and undoing it from the merge's record.

``merge_clients(keep, other, policy)`` is one transaction: the kept client's
fields are completed from the other's by the field policy, the other's
contacts (their roles), deals, tasks, interactions, mailings, manual
territory and segment overrides and timers move to the kept client, the
other client is deleted, and ``client.merged`` is raised (with
``client.updated`` if the kept client's fields changed) for the rules.

Everything the merge changed is written to the merge's record first (the
records as they were), so ``unmerge(merge_id)`` puts the two clients and
every moved record back as they were, until the record is purged
(``purge_merges``). Effects of rules that ran on the merge's events are
left, as any rule's effects are.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, get_args

from crmrules.adapters import import_tables as tables
from crmrules.adapters.sqlalchemy import SQLAlchemyTransaction, _dump, _load
from crmrules.errors import RefusedError
from crmrules.model import (
    Client,
    Contact,
    ContactRole,
    Deal,
    Interaction,
    Mailing,
    MembershipSource,
    Task,
    TerritoryMembership,
)
from crmrules.result import Result
from crmrules.store import AuditEntry, Timer, Transaction

if TYPE_CHECKING:
    from crmrules.engine import Engine
    from crmrules.run import Run

FieldPolicy = Literal["keep", "fill", "newer"]
POLICIES: tuple[str, ...] = get_args(FieldPolicy)
#: Client fields a merge decides by policy; tags are joined, ids and memberships are the kept's.
MERGED_FIELDS = (
    "kind", "name", "email", "phone", "region", "city", "country", "industry", "source",
    "responsible", "last_contact_at",
)  # fmt: skip


@dataclass(frozen=True)
class MergePolicy:
    """How each field of the kept client is decided.

    ``keep``: the kept client's value; ``fill``: the kept client's value,
    or the other's where the kept one is empty; ``newer``: the value of the
    client created later, or the other's where that one is empty. ``fields``
    names a policy per field (custom fields by their key); the rest follow
    ``default``.
    """

    default: FieldPolicy = "fill"
    fields: Mapping[str, FieldPolicy] = field(default_factory=dict)

    @classmethod
    def of(cls, policy: MergePolicy | str | Mapping[str, str] | None) -> MergePolicy:
        if policy is None:
            return cls()
        if isinstance(policy, MergePolicy):
            return policy
        if isinstance(policy, str):
            _check(policy, "the merge policy")
            return cls(policy)  # type: ignore[arg-type]
        fields = dict(policy)
        default = fields.pop("*", "fill")
        _check(default, "the merge policy's default ('*')")
        for name, value in fields.items():
            _check(value, f"the merge policy of field {name!r}")
        return cls(default, fields)  # type: ignore[arg-type]

    def of_field(self, name: str) -> FieldPolicy:
        return self.fields.get(name, self.default)


def _check(value: object, what: str) -> None:
    if value not in POLICIES:
        raise RefusedError(f"{what} must be one of {', '.join(POLICIES)}, not {value!r}")


@dataclass(frozen=True)
class MergeResult:
    """A merge done: its id (for ``unmerge``), the kept client as stored, the run's result."""

    merge_id: str
    client: Client
    result: Result
    moved: Mapping[str, int]


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == frozenset()


def merged_values(keep: Client, other: Client, policy: MergePolicy) -> Client:
    """The kept client with its fields decided by ``policy`` (tags joined)."""
    newer_is_other = (
        keep.created_at is not None
        and other.created_at is not None
        and other.created_at > keep.created_at
    )

    def decide(name: str, mine: Any, theirs: Any) -> Any:
        rule = policy.of_field(name)
        if rule == "keep":
            return mine
        if rule == "newer" and newer_is_other:
            return mine if _empty(theirs) else theirs
        return theirs if _empty(mine) else mine

    update: dict[str, Any] = {
        n: decide(n, getattr(keep, n), getattr(other, n)) for n in MERGED_FIELDS
    }
    update["tags"] = keep.tags | other.tags
    custom = dict(keep.fields)
    for key in sorted(set(keep.fields) | set(other.fields)):
        custom[key] = decide(key, keep.fields.get(key), other.fields.get(key))
    update["fields"] = custom
    return keep.model_copy(update=update)


def _moved_roles(contact: Contact, keep: str, other: str) -> Contact:
    """The contact's role in ``other`` becomes one in ``keep`` (unless it has one there)."""
    has_keep = any(r.client == keep for r in contact.roles)
    roles: list[ContactRole] = []
    for role in contact.roles:
        if role.client != other:
            roles.append(role)
        elif not has_keep:
            roles.append(role.model_copy(update={"client": keep}))
    return contact.model_copy(update={"roles": roles})


def _snapshot(tx: Transaction, keep: Client, other: Client) -> dict[str, Any]:
    """Everything of both clients a merge may change, as stored now (JSON)."""
    contacts = {c.id: c for c in (*tx.contacts_of(other.id), *tx.contacts_of(keep.id))}
    timers = {t.key: t for t in (*tx.find_timers(client=other.id), *tx.find_timers(client=keep.id))}
    return {
        "keep": _dump(keep),
        "other": _dump(other),
        "memberships": {
            cid: [_dump(m) for m in tx.memberships(cid)] for cid in (keep.id, other.id)
        },
        "keys": {cid: [list(k) for k in tables.keys_of(tx, cid)] for cid in (keep.id, other.id)},
        "contacts": [_dump(c) for _, c in sorted(contacts.items())],
        "deals": [d.id for d in tx.deals_of(other.id)],
        "tasks": [t.id for t in tx.find_tasks(client=other.id)],
        "interactions": [i.id for i in tx.interactions_of(other.id)],
        "mailings": [m.id for m in tx.find_mailings(client=other.id)],
        "timers": [_dump(t) for _, t in sorted(timers.items())],
    }


def _refuse_host_records(tx: Transaction) -> None:
    tables.require(tx)
    if isinstance(tx, SQLAlchemyTransaction) and not tx.indexes_clients:
        raise RefusedError(
            "clients are kept in the host's own tables: merge them there, then tell crmrules "
            "with client_saved"
        )


def merge_clients(
    engine: Engine,
    keep_id: str,
    other_id: str,
    policy: MergePolicy | str | Mapping[str, str] | None = None,
    *,
    event_id: str | None = None,
) -> MergeResult:
    """Merge ``other_id`` into ``keep_id``; see the module docstring."""
    chosen = MergePolicy.of(policy)
    if keep_id == other_id:
        raise RefusedError(f"cannot merge client {keep_id} into itself")
    merge_id = "merge-" + uuid.uuid4().hex[:12]
    state: dict[str, Any] = {}

    def body(run: Run) -> None:
        tx = run.tx
        _refuse_host_records(tx)
        tx.lock_subject(other_id, None)
        keep, other = tx.get_client(keep_id), tx.get_client(other_id)
        for cid, found in ((keep_id, keep), (other_id, other)):
            if found is None:
                raise RefusedError(f"merge: no client {cid!r}")
        assert keep is not None and other is not None
        before = _snapshot(tx, keep, other)
        moved = _move(tx, keep, other)
        tables.delete_client(tx, other.id)
        merged = run.store_client(merged_values(keep, other, chosen), keep, None, 0)
        run.raise_event(
            None, 0, "client.merged", client=keep.id, deal=None,
            data={"merge": merge_id, "merged": other.id},
        )  # fmt: skip
        run.cascade(run.queue.pop(0).event)
        after_timers = {t.key for t in tx.find_timers(client=keep.id)}
        record = {
            "id": merge_id,
            "keep": keep.id,
            "other": other.id,
            "at": run.now.isoformat(),
            "status": "merged",
            "policy": {"default": chosen.default, "fields": dict(chosen.fields)},
            "moved": moved,
            "before": before,
            "after": _dump(tx.get_client(keep.id) or merged),
            "new_timers": sorted(after_timers - {t["key"] for t in before["timers"]}),
        }
        tables.put_record(tx, tables.MERGES, merge_id, record)
        run.audit.append(
            AuditEntry(
                at=run.now, event_id=run.result.event_id, event_type="client.merged",
                kind="effect", message=f"merged client {other.id} into {keep.id} ({merge_id})",
                data={"effect": "merge", "merge": merge_id, **moved},
            )
        )  # fmt: skip
        state.update(moved=moved, client=tx.get_client(keep.id))

    result = engine.transact(event_id or merge_id, (keep_id, None), body)
    if result.duplicate:
        raise RefusedError(f"event {event_id} was handled before; that merge is done already")
    return MergeResult(merge_id, state["client"], result, state["moved"])


def _move(tx: Transaction, keep: Client, other: Client) -> dict[str, int]:
    """Every record of ``other`` now belongs to ``keep``; how many of each moved."""
    moved = dict.fromkeys(
        ("contacts", "deals", "tasks", "interactions", "mailings", "overrides", "timers"), 0
    )
    for contact in tx.contacts_of(other.id):
        tx.put_contact(_moved_roles(contact, keep.id, other.id))
        moved["contacts"] += 1
    for deal in tx.deals_of(other.id):
        tx.put_deal(deal.model_copy(update={"client": keep.id}))
        moved["deals"] += 1
    for task in tx.find_tasks(client=other.id):
        tx.put_task(task.model_copy(update={"client": keep.id}))
        moved["tasks"] += 1
    for interaction in tx.interactions_of(other.id):
        tx.add_interaction(interaction.model_copy(update={"client": keep.id}))
        moved["interactions"] += 1
    for mailing in tx.find_mailings(client=other.id):
        tx.put_mailing(mailing.model_copy(update={"client": keep.id}))
        moved["mailings"] += 1
    for timer in tx.find_timers(client=other.id):
        tx.put_timer(timer.model_copy(update={"client": keep.id}))
        moved["timers"] += 1
    mine = tx.memberships(keep.id)
    taken = {m.territory for m in mine if m.source is not MembershipSource.RULE}
    overrides = [
        m.model_copy(update={"client": keep.id})
        for m in tx.memberships(other.id)
        if m.source is not MembershipSource.RULE and m.territory not in taken
    ]
    if overrides:
        tx.set_memberships(keep.id, [*mine, *overrides])
        moved["overrides"] = len(overrides)
    return moved


def unmerge(engine: Engine, merge_id: str) -> Result:
    """Put both clients and every record the merge moved back as they were before it."""

    def body(run: Run) -> None:
        tx = run.tx
        _refuse_host_records(tx)
        record = tables.get_record(tx, tables.MERGES, merge_id)
        if record is None:
            raise RefusedError(f"no merge {merge_id!r} in the store")
        if record["status"] != "merged":
            raise RefusedError(f"merge {merge_id} is {record['status']}: it cannot be undone")
        keep_id, other_id = record["keep"], record["other"]
        tx.lock_subject(keep_id, None)
        if tx.get_client(other_id) is not None:
            raise RefusedError(
                f"merge {merge_id}: a client {other_id} exists again; unmerging would overwrite it"
            )
        current = tx.get_client(keep_id)
        if current is None or _dump(current) != record["after"]:
            raise RefusedError(
                f"merge {merge_id}: client {keep_id} changed (or went) after the merge; "
                "unmerging would undo those changes too, so it is refused"
            )
        _restore(tx, record)
        record["status"] = "unmerged"
        record["unmerged_at"] = run.now.isoformat()
        tables.put_record(tx, tables.MERGES, merge_id, record)
        run.audit.append(
            AuditEntry(
                at=run.now, event_id=run.result.event_id, event_type="client.unmerged",
                kind="effect", message=f"unmerged client {other_id} from {keep_id} ({merge_id})",
                data={"effect": "unmerge", "merge": merge_id},
            )
        )  # fmt: skip

    return engine.transact(f"unmerge:{merge_id}", (None, None), body)


def _restore(tx: Transaction, record: dict[str, Any]) -> None:
    before = record["before"]
    keep_id, other_id = record["keep"], record["other"]
    for key in ("keep", "other"):
        tx.put_client(_load(Client, before[key]))
    for cid, items in before["memberships"].items():
        tx.set_memberships(cid, [_load(TerritoryMembership, m) for m in items])
    for cid, keys in before["keys"].items():
        tables.put_keys(tx, cid, [tuple(k) for k in keys])
    for data in before["contacts"]:
        tx.put_contact(_load(Contact, data))
    back: dict[str, Any] = {"client": other_id}
    for deal_id in before["deals"]:
        deal: Deal | None = tx.get_deal(deal_id)
        if deal is not None:
            tx.put_deal(deal.model_copy(update=back))
    for task_id in before["tasks"]:
        task: Task | None = tx.get_task(task_id)
        if task is not None:
            tx.put_task(task.model_copy(update=back))
    for interaction_id in before["interactions"]:
        interaction: Interaction | None = tx.get_interaction(interaction_id)
        if interaction is not None:
            tx.add_interaction(interaction.model_copy(update=back))
    for mailing_id in before["mailings"]:
        mailing: Mailing | None = tx.get_mailing(mailing_id)
        if mailing is not None:
            tx.put_mailing(mailing.model_copy(update=back))
    for key in record["new_timers"]:
        tables.delete_timer(tx, key)
    for data in before["timers"]:
        tx.put_timer(_load(Timer, data))
    assert keep_id != other_id


def purge_merges(engine: Engine, before: datetime | None = None) -> int:
    """Drop what unmerging needs from merges done before ``before`` (all if None); how many."""
    with engine.store.transaction() as tx:
        ids = tables.merge_ids(tx)
        count = 0
        for merge_id in ids:
            record = tables.get_record(tx, tables.MERGES, merge_id)
            if record is None or record["status"] != "merged":
                continue
            if before is not None and datetime.fromisoformat(record["at"]) >= before:
                continue
            kept = {k: record[k] for k in ("id", "keep", "other", "at", "moved")}
            tables.put_record(tx, tables.MERGES, merge_id, {**kept, "status": "purged"})
            count += 1
        return count


def merges_of(engine: Engine, client_id: str) -> list[dict[str, Any]]:
    """The merges into a client, oldest first: id, the client merged in, when, status."""
    with engine.store.transaction() as tx:
        found = [tables.get_record(tx, tables.MERGES, m) for m in tables.merge_ids(tx)]
    rows = [r for r in found if r is not None and r["keep"] == client_id]
    return [
        {k: r.get(k) for k in ("id", "other", "at", "status", "moved")}
        for r in sorted(rows, key=lambda r: (r["at"], r["id"]))
    ]


__all__ = [
    "POLICIES",
    "FieldPolicy",
    "MergePolicy",
    "MergeResult",
    "merge_clients",
    "merged_values",
    "merges_of",
    "purge_merges",
    "unmerge",
]
