"""The in-memory store: for tests, scenarios, and hosts that keep nothing.

Transactions are serialised by one lock and undone from an undo log on
failure, so an exception in the middle of an event leaves the store exactly
as it was. Records are copied in and out, so a host that changes an object
it got from the store changes nothing inside it; only the engine's own
evaluation of an event borrows the stored records to read them
(``MemoryTransaction.lend_client``).
"""

from __future__ import annotations

import copy
import enum
import functools
import heapq
import pickle
import threading
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar, cast

from pydantic import AwareDatetime, BaseModel

from crmrules.campaigns import Campaign, Request, StageMove
from crmrules.model import (
    Client,
    Contact,
    Deal,
    Interaction,
    Mailing,
    Manager,
    Task,
    TaskStatus,
    TerritoryMembership,
)
from crmrules.result import NotMatched, Result
from crmrules.rules.floats import LentRecord
from crmrules.rules.why import Miss
from crmrules.store import (
    AuditEntry,
    FailureStatus,
    MessageStatus,
    OutboxMessage,
    RuleFailure,
    Timer,
    TimerStatus,
)

M = TypeVar("M", bound=BaseModel)
L = TypeVar("L", Client, Deal, Manager)
R = TypeVar("R")
_MISSING = object()


def _copy(model: M, *, kept: bool = False) -> M:
    """A copy the caller may change freely (``kept``: the store's own, which nobody changes).

    Record attributes are immutable values (text, numbers, frozensets,
    datetimes) except dicts of custom fields and lists of nested models;
    copying just those is many times faster than a deep copy. The copy is
    made as pydantic's own ``__copy__`` makes one, without its generic
    ``model_copy`` machinery (a third of an event's time on this store).
    A kept copy with every field set shares one set of field names with the
    other kept records of its class: a set of a record's 17 names takes more
    memory than the rest of the record (3 of the 8 KB a simulated year keeps a
    firing), and the store never changes a kept record in place.
    """
    cls = model.__class__
    data = model.__dict__.copy()
    for name in _containers(cls):
        value = data[name]
        kind = value.__class__
        if kind is dict:
            data[name] = {
                k: v if v.__class__ in _IMMUTABLE else _copy_value(v) for k, v in value.items()
            }
        elif kind is list:
            data[name] = [_copy_value(v) for v in value]
        elif kind is tuple:  # of nested models (a manager's absences)
            data[name] = tuple(_copy_value(v) for v in value)
        elif kind not in _IMMUTABLE and isinstance(value, dict | list):
            data[name] = _copy_value(value)
    new = cls.__new__(cls)
    _set(new, "__dict__", data)
    extra = model.__pydantic_extra__
    _set(new, "__pydantic_extra__", None if extra is None else copy.deepcopy(extra))
    names = model.__pydantic_fields_set__
    full = _all_fields(cls) if kept else None
    _set(new, "__pydantic_fields_set__", full if names == full else names.copy())
    private = getattr(model, "__pydantic_private__", None)
    _set(new, "__pydantic_private__", None if private is None else copy.deepcopy(private))
    return new


_set = object.__setattr__


def _replaced(model: M, update: dict[str, Any]) -> M:
    """A record to keep, made from one nobody else holds (kept, or a copy of one), with
    ``update``'s values: as ``model_copy(update=...)`` makes it (no validation, the names
    updated counted as set), without pydantic's generic machinery. Its other values are
    shared with ``model``, as a kept record's may be: neither is changed in place."""
    cls = model.__class__
    new = cls.__new__(cls)
    _set(new, "__dict__", {**model.__dict__, **update})
    names = model.__pydantic_fields_set__
    if not update.keys() <= names:
        names = names | update.keys()
    full = _all_fields(cls)
    _set(new, "__pydantic_fields_set__", full if names == full else names.copy())
    _set(new, "__pydantic_extra__", model.__pydantic_extra__)
    _set(new, "__pydantic_private__", getattr(model, "__pydantic_private__", None))
    return new


@functools.cache
def _all_fields(cls: type[BaseModel]) -> set[str]:
    """The names of every field of ``cls``: the field set its kept records share (``_copy``)."""
    return set(cls.model_fields)


@functools.cache
def _containers(cls: type[BaseModel]) -> tuple[str, ...]:
    """The fields of ``cls`` that may hold a value someone can change in place.

    Pydantic checks every field against its annotation, so a field declared
    as text, a number, a moment, an enum or a frozenset holds one of those;
    only the others (dicts, lists, nested models, ``Any``) are looked at.
    """
    return tuple(name for name, info in cls.model_fields.items() if not _immutable(info.annotation))


@functools.cache
def _decimals(cls: type[BaseModel]) -> tuple[str, ...]:
    """The fields of ``cls`` that may hold a ``Decimal`` (a deal's amount): a loan's floats."""
    return tuple(
        name
        for name, info in cls.model_fields.items()
        if Decimal in (info.annotation, *typing.get_args(info.annotation))
    )


def _immutable(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _immutable(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return True
    if origin in (typing.Union, types.UnionType):
        return all(_immutable(arg) for arg in typing.get_args(annotation))
    if origin is frozenset:
        return True
    if origin is tuple:
        return all(arg is Ellipsis or _immutable(arg) for arg in typing.get_args(annotation))
    if origin is not None:
        return False
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return True
    return annotation in _IMMUTABLE


#: the classes of values nobody can change in place: shared, not copied
_IMMUTABLE = frozenset(
    {str, int, float, bool, Decimal, date, datetime, frozenset, tuple, type(None), AwareDatetime}
)


def _copy_value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _copy(value)
    if isinstance(value, dict | list | set):
        return copy.deepcopy(value)
    return value


def _lend(
    table: dict[str, L], lent: dict[str, tuple[L, Mapping[str, Any]]], key: str
) -> tuple[L, Mapping[str, Any]] | None:
    """A new loan of the stored ``table[key]``: its flat record, mutable values copied, kept.

    Only the values that may change in place are looked at (as ``_copy`` does):
    the custom fields' and those of the fields ``_containers`` names.
    """
    stored = table.get(key)
    if stored is None:
        return None
    record = stored.record()
    data: dict[str, Any] = stored.__dict__
    for name in _containers(stored.__class__):
        if name == "fields" and _IMMUTABLE.issuperset(map(type, data[name].values())):
            continue  # every custom value immutable (the usual record): nothing to copy
        values = data[name].items() if name == "fields" else ((name, data[name]),)
        for field, value in values:
            if value.__class__ not in _IMMUTABLE and record.get(field) is value:
                record[field] = _copy_value(value)
    numbers: tuple[str, ...] = _decimals(stored.__class__)
    if "fields" in data:
        numbers = (*data["fields"], *numbers)
    loan = lent[key] = (stored, LentRecord(record, numbers))  # read-only, its decimals' floats
    return loan


class _State:
    """The tables; plain dicts and sets, changed only through a transaction."""

    def __init__(self) -> None:
        self.clients: dict[str, Client] = {}
        self.deals: dict[str, Deal] = {}
        self.deals_by_client: dict[str, set[str]] = {}
        self.managers: dict[str, Manager] = {}
        self.contacts: dict[str, Contact] = {}
        self.interactions: dict[str, Interaction] = {}
        self.tasks: dict[str, Task] = {}
        self.task_keys: dict[str, str] = {}
        self.tasks_by: dict[tuple[str, str], set[str]] = {}
        self.mailings: dict[str, Mailing] = {}
        self.mailing_keys: dict[str, str] = {}
        self.outbox: dict[str, OutboxMessage] = {}
        #: event id -> its result, pickled: a copy no caller can change, made several
        #: times faster than copy.deepcopy (an event's result is read back only on a retry)
        self.results: dict[str, tuple[bytes, list[tuple[int, NotMatched]]]] = {}
        self.rotations: dict[str, int] = {}
        self.fired: dict[tuple[str, str], datetime] = {}
        self.memberships: dict[str, list[TerritoryMembership]] = {}
        self.audit: list[AuditEntry | Miss] = []
        self.timers: dict[str, Timer] = {}
        #: keys of the PENDING timers: firing looks only at these, not at every timer ever planned
        self.pending: set[str] = set()
        self.failures: dict[str, RuleFailure] = {}
        self.campaigns: dict[str, Campaign] = {}
        self.requests: dict[str, Request] = {}
        self.stage_moves: dict[tuple[str, int], StageMove] = {}
        self.move_count: dict[str, int] = {}
        #: tables of features in their own modules (crmrules.adapters.import_tables): name -> rows
        self.side: dict[str, dict[Any, Any]] = {}
        #: id -> a stored record and its flat record, made once per stored version (see
        #: ``MemoryTransaction.lend_client``); a record put or rolled back is a new object
        self.lent_clients: dict[str, tuple[Client, Mapping[str, Any]]] = {}
        self.lent_deals: dict[str, tuple[Deal, Mapping[str, Any]]] = {}
        self.lent_managers: dict[str, tuple[Manager, Mapping[str, Any]]] = {}


class MemoryTransaction:
    """One unit of work on a MemoryStore; undone as a whole if it fails."""

    def __init__(self, state: _State) -> None:
        self._s = state
        self._undo: list[Callable[[], object]] = []

    # -- undo-logged primitives

    def _put(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        old = table.get(key, _MISSING)
        if old is _MISSING:
            self._undo.append(lambda: table.pop(key, None))
        else:
            self._undo.append(lambda: table.__setitem__(key, old))
        table[key] = value

    def _index(self, table: dict[Any, set[str]], key: Any, member: str) -> None:
        members = table.get(key)
        if members is None:
            members = table[key] = set()
            self._undo.append(lambda: table.pop(key, None))
        if member not in members:
            members.add(member)
            self._undo.append(lambda: members.discard(member))

    def _unindex(self, table: dict[Any, set[str]], key: Any, member: str) -> None:
        members = table.get(key)
        if members is not None and member in members:
            members.discard(member)
            self._undo.append(lambda: members.add(member))

    def rollback(self, mark: int = 0) -> None:
        """Undo every change after the first ``mark`` ones (all of them by default)."""
        while len(self._undo) > mark:
            self._undo.pop()()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Undo the block's changes alone if it raises: the undo log back to where it began."""
        mark = len(self._undo)
        try:
            yield
        except BaseException:
            self.rollback(mark)
            raise

    # -- side tables and deletions (crmrules.adapters.import_tables)

    def side(self, name: str) -> dict[Any, Any]:
        """The rows of a side table; read them here, change them with side_put / side_pop."""
        return self._s.side.setdefault(name, {})

    def side_put(self, name: str, key: Any, value: Any) -> None:
        self._put(self.side(name), key, copy.deepcopy(value))

    def side_pop(self, name: str, key: Any) -> None:
        self._pop(self.side(name), key)

    def _pop(self, table: dict[Any, Any], key: Any) -> None:
        if key in table:
            old = table.pop(key)
            self._undo.append(lambda: table.__setitem__(key, old))

    def delete_client(self, client_id: str) -> None:
        """The client and its memberships gone (a merge took it); its other records stay."""
        self._pop(self._s.clients, client_id)
        self._pop(self._s.memberships, client_id)

    def delete_timer(self, key: str) -> None:
        self._pop(self._s.timers, key)
        if key in self._s.pending:
            pending = self._s.pending
            pending.discard(key)
            self._undo.append(lambda: pending.add(key))

    # -- records

    def lock_subject(self, client_id: str | None, deal_id: str | None) -> None:
        """Nothing to do: the store's lock already serialises transactions."""

    def get_client(self, client_id: str) -> Client | None:
        client = self._s.clients.get(client_id)
        return None if client is None else _copy(client)

    def put_client(self, client: Client) -> None:
        self._put(self._s.clients, client.id, _copy(client, kept=True))
        # its loan made with the stored version, not at its first read (``lend_client``)
        _lend(self._s.clients, self._s.lent_clients, client.id)

    def lend_client(self, client_id: str) -> tuple[Client, Mapping[str, Any]] | None:
        """The stored client itself and its flat record (``Client.record``), to read, not change.

        What the engine's evaluation of an event reads (``crmrules.run.Run.view``):
        no copy, and the record made once per stored version of the client. The
        store never changes a stored record in place (a put stores a new one),
        so a lent one stays as it was lent.
        """
        lent = self._s.lent_clients.get(client_id)
        if lent is not None and lent[0] is self._s.clients.get(client_id):
            return lent
        return _lend(self._s.clients, self._s.lent_clients, client_id)

    def lend_deal(self, deal_id: str) -> tuple[Deal, Mapping[str, Any]] | None:
        """The stored deal itself and its flat record, to read, not change (``lend_client``)."""
        lent = self._s.lent_deals.get(deal_id)
        if lent is not None and lent[0] is self._s.deals.get(deal_id):
            return lent
        return _lend(self._s.deals, self._s.lent_deals, deal_id)

    def lend_manager(self, manager_id: str) -> tuple[Manager, Mapping[str, Any]] | None:
        """The stored manager itself and its flat record, to read, not change (``lend_client``)."""
        lent = self._s.lent_managers.get(manager_id)
        if lent is not None and lent[0] is self._s.managers.get(manager_id):
            return lent
        return _lend(self._s.managers, self._s.lent_managers, manager_id)

    def iter_clients(self) -> Iterator[Client]:
        for client_id in sorted(self._s.clients):
            yield _copy(self._s.clients[client_id])

    def client_ids(self) -> list[str]:
        return sorted(self._s.clients)

    def get_deal(self, deal_id: str) -> Deal | None:
        deal = self._s.deals.get(deal_id)
        return None if deal is None else _copy(deal)

    def put_deal(self, deal: Deal) -> None:
        old = self._s.deals.get(deal.id)
        if old is not None and old.client != deal.client:
            self._unindex(self._s.deals_by_client, old.client, deal.id)
        self._put(self._s.deals, deal.id, _copy(deal, kept=True))
        _lend(self._s.deals, self._s.lent_deals, deal.id)  # as ``put_client``
        self._index(self._s.deals_by_client, deal.client, deal.id)

    def deals_of(self, client_id: str) -> list[Deal]:
        ids = sorted(self._s.deals_by_client.get(client_id, ()))
        return [_copy(self._s.deals[i]) for i in ids]

    def get_manager(self, manager_id: str) -> Manager | None:
        manager = self._s.managers.get(manager_id)
        return None if manager is None else _copy(manager)

    def put_manager(self, manager: Manager) -> None:
        self._put(self._s.managers, manager.id, _copy(manager, kept=True))
        _lend(self._s.managers, self._s.lent_managers, manager.id)  # as ``put_client``

    def list_managers(self) -> list[Manager]:
        return [_copy(self._s.managers[i]) for i in sorted(self._s.managers)]

    def get_contact(self, contact_id: str) -> Contact | None:
        contact = self._s.contacts.get(contact_id)
        return None if contact is None else _copy(contact)

    def put_contact(self, contact: Contact) -> None:
        self._put(self._s.contacts, contact.id, _copy(contact, kept=True))

    def contacts_of(self, client_id: str) -> list[Contact]:
        return [
            _copy(c)
            for _, c in sorted(self._s.contacts.items())
            if any(role.client == client_id for role in c.roles)
        ]

    def add_interaction(self, interaction: Interaction) -> None:
        self._put(self._s.interactions, interaction.id, _copy(interaction, kept=True))

    def interactions_of(self, client_id: str) -> list[Interaction]:
        found = [i for i in self._s.interactions.values() if i.client == client_id]
        return [_copy(i) for i in sorted(found, key=lambda i: (i.occurred_at, i.id))]

    def find_interactions(
        self,
        *,
        client: str | None = None,
        deal: str | None = None,
        manager: str | None = None,
        contact: str | None = None,
    ) -> list[Interaction]:
        wanted = {"client": client, "deal": deal, "manager": manager, "contact": contact}
        found = [
            i
            for i in self._s.interactions.values()
            if all(v is None or getattr(i, k) == v for k, v in wanted.items())
        ]
        return [_copy(i) for i in sorted(found, key=lambda i: (i.occurred_at, i.id))]

    def find_contacts(self, *, client: str | None = None) -> list[Contact]:
        if client is not None:
            return self.contacts_of(client)
        return [_copy(c) for _, c in sorted(self._s.contacts.items())]

    def get_interaction(self, interaction_id: str) -> Interaction | None:
        found = self._s.interactions.get(interaction_id)
        return None if found is None else _copy(found)

    # -- campaigns, requests, stage history

    def put_campaign(self, campaign: Campaign) -> None:
        self._put(self._s.campaigns, campaign.id, _copy(campaign, kept=True))

    def get_campaign(self, campaign_id: str) -> Campaign | None:
        found = self._s.campaigns.get(campaign_id)
        return None if found is None else _copy(found)

    def list_campaigns(self) -> list[Campaign]:
        return [_copy(self._s.campaigns[i]) for i in sorted(self._s.campaigns)]

    def put_request(self, request: Request) -> None:
        self._put(self._s.requests, request.id, _copy(request, kept=True))

    def get_request(self, request_id: str) -> Request | None:
        found = self._s.requests.get(request_id)
        return None if found is None else _copy(found)

    def add_stage_move(self, move: StageMove) -> None:
        seq = self._s.move_count.get(move.deal, 0)
        self._put(self._s.move_count, move.deal, seq + 1)
        self._put(self._s.stage_moves, (move.deal, seq), move.model_copy(update={"seq": seq}))

    def stage_moves(self, deal_id: str) -> list[StageMove]:
        count = self._s.move_count.get(deal_id, 0)
        return [_copy(self._s.stage_moves[deal_id, seq]) for seq in range(count)]

    # -- tasks and mailings

    def add_task(self, task: Task) -> bool:
        if task.idempotency_key is not None:
            if task.idempotency_key in self._s.task_keys:
                return False
            self._put(self._s.task_keys, task.idempotency_key, task.id)
        self.put_task(task)
        return True

    def task_ids(self) -> list[str]:
        """The ids of every task, no copy of any (``Simulation.mark_tasks``)."""
        return list(self._s.tasks)

    def get_task(self, task_id: str) -> Task | None:
        task = self._s.tasks.get(task_id)
        return None if task is None else _copy(task)

    def put_task(self, task: Task) -> None:
        old = self._s.tasks.get(task.id)
        if old is not None:
            for index in _task_index(old):
                self._unindex(self._s.tasks_by, index, task.id)
        self._put(self._s.tasks, task.id, _copy(task, kept=True))
        for index in _task_index(task):
            self._index(self._s.tasks_by, index, task.id)

    def find_tasks(
        self,
        *,
        client: str | None = None,
        deal: str | None = None,
        assignee: str | None = None,
        status: TaskStatus | None = None,
    ) -> list[Task]:
        filters = [
            (name, value)
            for name, value in (("client", client), ("deal", deal), ("assignee", assignee))
            if value is not None
        ]
        if status is TaskStatus.OPEN:
            filters.append(("open", "1"))
        if filters:
            sets = [self._s.tasks_by.get(f, set()) for f in filters]
            ids: set[str] | list[str] = set.intersection(*sets)
        else:
            ids = list(self._s.tasks)
        tasks = [self._s.tasks[i] for i in ids]
        return [
            _copy(t)
            for t in sorted(tasks, key=lambda t: (t.created_at is None, t.created_at, t.id))
            if status is None or t.status == status
        ]

    def add_mailing(self, mailing: Mailing) -> bool:
        if mailing.idempotency_key is not None:
            if mailing.idempotency_key in self._s.mailing_keys:
                return False
            self._put(self._s.mailing_keys, mailing.idempotency_key, mailing.id)
        self._put(self._s.mailings, mailing.id, _copy(mailing, kept=True))
        return True

    def get_mailing(self, mailing_id: str) -> Mailing | None:
        mailing = self._s.mailings.get(mailing_id)
        return None if mailing is None else _copy(mailing)

    def put_mailing(self, mailing: Mailing) -> None:
        self._put(self._s.mailings, mailing.id, _copy(mailing, kept=True))

    def find_mailings(self, *, client: str | None = None) -> list[Mailing]:
        found = [m for m in self._s.mailings.values() if client is None or m.client == client]
        return [
            _copy(m)
            for m in sorted(found, key=lambda m: (m.created_at is None, m.created_at, m.id))
        ]

    # -- outbox

    def enqueue(self, message: OutboxMessage) -> bool:
        if message.key in self._s.outbox:
            return False
        self._put(self._s.outbox, message.key, _copy(message, kept=True))
        return True

    def due_messages(self, now: datetime, limit: int) -> list[OutboxMessage]:
        due = [
            m
            for m in self._s.outbox.values()
            if m.status is MessageStatus.PENDING and m.next_attempt_at <= now
        ]
        due.sort(key=lambda m: (m.next_attempt_at, m.key))
        return [_copy(m) for m in due[:limit]]

    def claim_messages(
        self, now: datetime, limit: int, worker: str, lease_until: datetime
    ) -> list[OutboxMessage]:
        now = now.astimezone(UTC)
        claimed: list[OutboxMessage] = []
        for message in self.due_messages(now, len(self._s.outbox)):
            held = message.lease_until is not None and message.lease_until >= now
            if held and message.lease_owner != worker:
                continue
            if len(claimed) == limit:
                break
            leased = _replaced(message, {"lease_owner": worker, "lease_until": lease_until})
            self._put(self._s.outbox, message.key, leased)
            claimed.append(_copy(leased))
        return claimed

    def put_message(self, message: OutboxMessage) -> None:
        self._put(self._s.outbox, message.key, _copy(message, kept=True))

    def failed_messages(self) -> int:
        """How many messages failed for good (for crmrules.status)."""
        return sum(m.status is MessageStatus.FAILED for m in self._s.outbox.values())

    def get_message(self, key: str) -> OutboxMessage | None:
        message = self._s.outbox.get(key)
        return None if message is None else _copy(message)

    # -- engine state

    def event_result(self, event_id: str) -> dict[str, Any] | None:
        kept = self._s.results.get(event_id)
        if kept is None:
            return None
        pickled, lazy = kept
        result = cast(dict[str, Any], pickle.loads(pickled))
        if lazy:
            outcomes = result["outcomes"]
            for index, outcome in lazy:
                outcomes[index] = outcome
            result = Result.explain_stored(result)
        return result

    def save_event_result(self, event_id: str, result: dict[str, Any]) -> None:
        """Keep ``result`` pickled; a not_matched outcome not yet explained is kept as it is.

        Such an outcome (``crmrules.result.NotMatched``, from
        ``Result.to_dict(explained=False)``) holds what its evaluation saw and
        nothing a caller can change; it is explained when the result is read
        back (a duplicate delivery), not while the event is handled.
        """
        outcomes = result.get("outcomes", [])
        lazy = [(i, o) for i, o in enumerate(outcomes) if isinstance(o, NotMatched)]
        if lazy:
            result = {
                **result,
                "outcomes": [None if isinstance(o, NotMatched) else o for o in outcomes],
            }
        self._put(self._s.results, event_id, (pickle.dumps(result, pickle.HIGHEST_PROTOCOL), lazy))

    def get_rotation(self, key: str) -> int:
        return self._s.rotations.get(key, 0)

    def set_rotation(self, key: str, value: int) -> None:
        self._put(self._s.rotations, key, value)

    def last_fired(self, rule_id: str, scope: str) -> datetime | None:
        return self._s.fired.get((rule_id, scope))

    def record_fired(self, rule_id: str, scope: str, at: datetime) -> None:
        self._put(self._s.fired, (rule_id, scope), at)

    def memberships(self, client_id: str) -> list[TerritoryMembership]:
        return [_copy(m) for m in self._s.memberships.get(client_id, [])]

    def set_memberships(self, client_id: str, memberships: list[TerritoryMembership]) -> None:
        self._put(self._s.memberships, client_id, [_copy(m, kept=True) for m in memberships])

    # -- timers

    def plan_timer(self, timer: Timer) -> bool:
        known = self._s.timers.get(timer.key)
        if known is not None and not (
            known.status is TimerStatus.CANCELLED and known.fired_at is None
        ):
            return False
        self.put_timer(timer)
        return True

    def get_timer(self, key: str) -> Timer | None:
        timer = self._s.timers.get(key)
        return None if timer is None else _copy(timer)

    def lend_timer(self, key: str) -> Timer | None:
        """The stored timer itself, to read and not to change or keep (a timeline's text)."""
        return self._s.timers.get(key)

    def put_timer(self, timer: Timer) -> None:
        self._put(self._s.timers, timer.key, _copy(timer, kept=True))
        pending, key = self._s.pending, timer.key
        if timer.status is TimerStatus.PENDING and key not in pending:
            pending.add(key)
            self._undo.append(lambda: pending.discard(key))
        elif timer.status is not TimerStatus.PENDING and key in pending:
            pending.discard(key)
            self._undo.append(lambda: pending.add(key))

    def find_timers(
        self,
        *,
        client: str | None = None,
        deal: str | None = None,
        rule: str | None = None,
        kind: str | None = None,
        status: TimerStatus | None = None,
        limit: int | None = None,
    ) -> list[Timer]:
        wanted = {"client": client, "deal": deal, "rule": rule, "kind": kind, "status": status}
        found = [
            t
            for t in self._candidates(status)
            if all(v is None or getattr(t, k) == v for k, v in wanted.items())
        ]
        return [_copy(t) for t in _first(found, limit, lambda t: (t.due_at, t.key))]

    def _candidates(self, status: TimerStatus | None) -> Iterator[Timer]:
        if status is TimerStatus.PENDING:
            return (self._s.timers[key] for key in self._s.pending)
        return iter(self._s.timers.values())

    def claim_timers(
        self, now: datetime, limit: int, worker: str, lease_until: datetime
    ) -> list[Timer]:
        now = now.astimezone(UTC)  # one zone's datetimes would compare by wall clock
        due = _first(
            (
                t
                for t in self._candidates(TimerStatus.PENDING)
                if t.due_at <= now
                and (t.lease_until is None or t.lease_until < now or t.lease_owner == worker)
            ),
            limit,
            _due_order,
        )
        claimed = []
        for timer in due:
            leased = _replaced(timer, {"lease_owner": worker, "lease_until": lease_until})
            self._put(self._s.timers, timer.key, leased)
            claimed.append(_copy(leased))
        return claimed

    def renew_leases(self, worker: str, lease_until: datetime) -> int:
        timers = [t for t in self._candidates(TimerStatus.PENDING) if t.lease_owner == worker]
        for timer in timers:
            self._put(self._s.timers, timer.key, _replaced(timer, {"lease_until": lease_until}))
        messages = [
            m
            for m in self._s.outbox.values()
            if m.lease_owner == worker and m.status is MessageStatus.PENDING
        ]
        for message in messages:
            kept = _replaced(message, {"lease_until": lease_until})
            self._put(self._s.outbox, message.key, kept)
        return len(timers) + len(messages)

    def lock_timer(self, key: str) -> Timer | None:
        return self.get_timer(key)

    #: ``lock_timer`` locks nothing here (one writer at a time): a firing may take the
    #: timer from ``lend_timer`` instead (crmrules.firing)
    locks_nothing = True

    #: not_matched audit lines and outcomes are kept unexplained, explained when read
    #: (crmrules.rules.why): this store lives in the process that has their rules
    keeps_explanations = True

    def add_audit(self, entry: AuditEntry | Miss) -> None:
        """Keep an audit line; a ``Miss`` (nothing in it changes) as it is, explained when read."""
        log = self._s.audit
        log.append(entry if isinstance(entry, Miss) else _copy(entry, kept=True))
        self._undo.append(log.pop)

    def audit_log(
        self, *, event_id: str | None = None, client: str | None = None
    ) -> list[AuditEntry]:
        return [
            e.entry() if isinstance(e, Miss) else _copy(e)
            for e in self._s.audit
            if (event_id is None or e.event_id == event_id)
            and (client is None or e.client == client)
        ]

    # -- failed rule runs

    def put_failure(self, failure: RuleFailure) -> None:
        self._put(self._s.failures, failure.key, _copy(failure, kept=True))

    def lock_failure(self, key: str) -> RuleFailure | None:
        failure = self._s.failures.get(key)
        return None if failure is None else _copy(failure)

    def find_failures(
        self, *, status: FailureStatus | None = None, rule: str | None = None
    ) -> list[RuleFailure]:
        found = [
            f
            for f in self._s.failures.values()
            if (status is None or f.status is status) and (rule is None or f.rule == rule)
        ]
        return [_copy(f) for f in sorted(found, key=lambda f: (f.failed_at, f.key))]


def _first(items: Iterable[R], limit: int | None, key: Callable[[R], Any]) -> list[R]:
    """``sorted(items, key=key)[:limit]``, without sorting them all for a few (the earliest
    pending timer, a claim's batch: a simulated day looks at every pending timer)."""
    if limit is None or limit < 0:
        return sorted(items, key=key)[:limit]
    return heapq.nsmallest(limit, items, key=key)


def _due_order(timer: Timer) -> tuple[datetime, str]:
    """A timer's place in the claiming order: its due moment in UTC (as stored, as a rule),
    then its key."""
    due = timer.due_at
    return (due if due.tzinfo is UTC else due.astimezone(UTC)), timer.key


def _task_index(task: Task) -> list[tuple[str, str]]:
    keys = [("client", task.client), ("deal", task.deal), ("assignee", task.assignee)]
    found = [(name, value) for name, value in keys if value is not None]
    if task.status is TaskStatus.OPEN:
        found.append(("open", "1"))
    return found


class MemoryStore:
    """A store in this process's memory; transactions are serialised by a lock."""

    def __init__(self) -> None:
        self._state = _State()
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[MemoryTransaction]:
        with self._lock:
            tx = MemoryTransaction(self._state)
            try:
                yield tx
            except BaseException:
                tx.rollback()
                raise

    def close(self) -> None:
        """Nothing to release; here so MemoryStore satisfies the Store protocol."""


__all__ = ["MemoryStore", "MemoryTransaction"]
