"""The store protocol: everything the engine keeps goes through it.

A store hands out transactions; all effects of one event are written in
one transaction, which commits as a whole or not at all. The in-memory
store (``crmrules.adapters.memory``) and the SQL store implement the same
protocol and pass the same contract tests.

Records are the domain models of ``crmrules.model``; the engine never keeps
its own copies between transactions, so several engines (or processes, on a
SQL store) can share one store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from crmrules.campaigns import Campaign, Request, StageMove
from crmrules.errors import CrmRulesError
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


class MessageStatus(StrEnum):
    """Where an outbox message is on its way to a notifier."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # gave up after the last attempt


class OutboxMessage(BaseModel):
    """Something to deliver (a mailing or a notification), written with the event's effects.

    Notifiers deliver from the outbox after the transaction commits, so a
    rolled-back event sends nothing and a notifier that is down loses nothing.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    key: str = Field(description="idempotency key; also the SMTP Message-ID and Idempotency-Key")
    channel: str = Field(description="notifier name: email, webhook, log, or a plugin's")
    to: str
    subject: str = ""
    text: str | None = None
    html: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    mailing: str | None = Field(None, description="the Mailing this message delivers")
    status: MessageStatus = MessageStatus.PENDING
    attempts: int = 0
    next_attempt_at: AwareDatetime
    created_at: AwareDatetime
    sent_at: AwareDatetime | None = None
    last_error: str | None = None
    #: the delivery process sending it now, and until when (see ``claim_messages``)
    lease_owner: str | None = None
    lease_until: AwareDatetime | None = None


class TimerStatus(StrEnum):
    """Where a timer is: waiting, done, or not needed any more (and why is in its note)."""

    PENDING = "pending"
    FIRED = "fired"
    CANCELLED = "cancelled"  # its reason went away: the anchor changed, the deal left the stage...
    DROPPED = "dropped"  # fell due more than the rule's max_lateness ago
    FAILED = "failed"  # a rule it ran failed, or it could not fire after its last retry


class Timer(BaseModel):
    """Something to do at a time: a time trigger, a stage deadline, a contact plan, a schedule.

    ``key`` says what the timer is for (rule, subject and anchor value), so
    planning the same thing twice is one timer, and a changed anchor is a
    different key: the old timer is cancelled, the new one planned.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    key: str
    kind: str = Field(description="rule, stage, task, plan or schedule")
    rule: str | None = Field(None, description="the rule (or territory, for a plan) it serves")
    client: str | None = None
    deal: str | None = None
    due_at: AwareDatetime
    data: dict[str, Any] = Field(default_factory=dict)
    status: TimerStatus = TimerStatus.PENDING
    lease_owner: str | None = None
    lease_until: AwareDatetime | None = None
    created_at: AwareDatetime
    fired_at: AwareDatetime | None = None
    note: str | None = None
    #: how many times firing it failed for a cause that may pass (it is retried with backoff)
    attempts: int = 0
    #: the regulation version that planned it (crmrules.rules.versions)
    regulation: str | None = None


class FailureStatus(StrEnum):
    """Where a failed rule run is: waiting to be run again, or done with."""

    FAILED = "failed"
    RESOLVED = "resolved"  # run again successfully, or no longer applies (see its note)


class RuleFailure(BaseModel):
    """A rule run that failed at run time and was rolled back alone.

    ``event`` is the event as the rule saw it (``Event.model_dump()``), so
    ``Engine.retry_failed`` can run the rule on it again once the regulation
    or the data is fixed. The key is the event id and the rule id: a rule
    failing again on the same event updates the same record.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    key: str
    event_id: str
    event: dict[str, Any]
    rule: str
    depth: int = 0
    action: str | None = Field(None, description="the action that failed, if one did")
    action_index: int | None = Field(None, description="its position in the rule, from 0")
    reason: str
    status: FailureStatus = FailureStatus.FAILED
    attempts: int = 1
    failed_at: AwareDatetime
    resolved_at: AwareDatetime | None = None
    note: str | None = None


class AuditEntry(BaseModel):
    """One line of the audit log: what happened to an event and why."""

    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime
    event_id: str
    event_type: str
    kind: str = Field(description="fired, not_matched, held, effect, refused, error")
    rule: str | None = None
    message: str
    data: dict[str, Any] = Field(default_factory=dict)
    #: the regulation version that decided it (crmrules.rules.versions)
    regulation: str | None = None
    #: the client of the event, if it has one
    client: str | None = None


class ConflictError(CrmRulesError):
    """Another transaction changed the same rows; the whole call may simply be retried.

    SQL stores raise it for unique-key races (the same event handled by two
    processes at once), serialization failures and deadlocks. The engine
    retries the call a few times before giving up.
    """


class Transaction(Protocol):
    """One unit of work; see Store.transaction.

    Records go in and come out as copies. Orders: ``iter_clients``,
    ``list_managers``, ``deals_of`` and ``contacts_of`` by id;
    ``find_tasks`` and ``find_mailings`` by (created_at, id); ``due_messages``
    by (next_attempt_at, key); ``audit_log`` in the order written. An event
    result is saved once per event id (a second save may raise ConflictError).

    ``lock_subject`` is called first in every engine call that concerns a
    client or deal: a SQL store takes row locks there (``SELECT ... FOR
    UPDATE``), so two processes working on the same client take turns instead
    of overwriting each other's changes.
    """

    def lock_subject(self, client_id: str | None, deal_id: str | None) -> None: ...

    # -- records the host owns (or mirrors)
    def get_client(self, client_id: str) -> Client | None: ...
    def put_client(self, client: Client) -> None: ...
    def iter_clients(self) -> Iterator[Client]: ...
    def client_ids(self) -> list[str]:
        """Every client's id, sorted: to visit clients one at a time (one bad record alone)."""
        ...

    def get_deal(self, deal_id: str) -> Deal | None: ...
    def put_deal(self, deal: Deal) -> None: ...
    def deals_of(self, client_id: str) -> list[Deal]: ...
    def get_manager(self, manager_id: str) -> Manager | None: ...
    def put_manager(self, manager: Manager) -> None: ...
    def list_managers(self) -> list[Manager]: ...
    def get_contact(self, contact_id: str) -> Contact | None: ...
    def put_contact(self, contact: Contact) -> None: ...
    def contacts_of(self, client_id: str) -> list[Contact]: ...
    def add_interaction(self, interaction: Interaction) -> None: ...
    def interactions_of(self, client_id: str) -> list[Interaction]:
        """The client's interactions, oldest first (ties by id)."""
        ...

    def get_interaction(self, interaction_id: str) -> Interaction | None: ...
    def find_interactions(
        self,
        *,
        client: str | None = None,
        deal: str | None = None,
        manager: str | None = None,
        contact: str | None = None,
    ) -> list[Interaction]:
        """Interactions matching every filter given, oldest first (ties by id)."""
        ...

    def find_contacts(self, *, client: str | None = None) -> list[Contact]:
        """Every contact (or those with a role in ``client``), by id."""
        ...

    # -- campaigns, requests and the deals' stage history (crmrules.campaigns)
    def put_campaign(self, campaign: Campaign) -> None: ...
    def get_campaign(self, campaign_id: str) -> Campaign | None: ...
    def list_campaigns(self) -> list[Campaign]:
        """Every campaign, by id."""
        ...

    def put_request(self, request: Request) -> None: ...
    def get_request(self, request_id: str) -> Request | None: ...
    def add_stage_move(self, move: StageMove) -> None:
        """Append a deal's move; the store numbers it (``seq``) after the deal's last one."""
        ...

    def stage_moves(self, deal_id: str) -> list[StageMove]:
        """The deal's moves in the order they were made."""
        ...

    # -- work the engine makes
    def add_task(self, task: Task) -> bool:
        """False (and nothing stored) if a task with the same idempotency key exists."""
        ...

    def get_task(self, task_id: str) -> Task | None: ...
    def put_task(self, task: Task) -> None: ...
    def find_tasks(
        self,
        *,
        client: str | None = None,
        deal: str | None = None,
        assignee: str | None = None,
        status: TaskStatus | None = None,
    ) -> list[Task]: ...
    def add_mailing(self, mailing: Mailing) -> bool:
        """False (and nothing stored) if a mailing with the same idempotency key exists."""
        ...

    def get_mailing(self, mailing_id: str) -> Mailing | None: ...
    def put_mailing(self, mailing: Mailing) -> None: ...
    def find_mailings(self, *, client: str | None = None) -> list[Mailing]: ...

    # -- outbox
    def enqueue(self, message: OutboxMessage) -> bool:
        """False if a message with the same key is already queued or sent."""
        ...

    def due_messages(self, now: datetime, limit: int) -> list[OutboxMessage]: ...
    def claim_messages(
        self, now: datetime, limit: int, worker: str, lease_until: datetime
    ) -> list[OutboxMessage]:
        """Lease up to ``limit`` due messages to ``worker``, in ``due_messages`` order.

        Claimable like timers (see ``claim_timers``): PENDING, due at ``now``,
        and unleased, leased until before ``now`` (its sender died) or leased
        to ``worker`` itself. On PostgreSQL two senders claiming at once get
        different messages (FOR UPDATE SKIP LOCKED), so each is sent once.
        """
        ...

    def put_message(self, message: OutboxMessage) -> None: ...
    def get_message(self, key: str) -> OutboxMessage | None: ...

    # -- engine state
    def event_result(self, event_id: str) -> dict[str, Any] | None: ...
    def save_event_result(self, event_id: str, result: dict[str, Any]) -> None: ...
    def get_rotation(self, key: str) -> int:
        """The counter under ``key`` (0 if none); a SQL store locks its row until commit."""
        ...

    def set_rotation(self, key: str, value: int) -> None: ...
    def last_fired(self, rule_id: str, scope: str) -> datetime | None: ...
    def record_fired(self, rule_id: str, scope: str, at: datetime) -> None: ...
    def memberships(self, client_id: str) -> list[TerritoryMembership]: ...
    def set_memberships(self, client_id: str, memberships: list[TerritoryMembership]) -> None: ...
    # -- timers
    def plan_timer(self, timer: Timer) -> bool:
        """Store a new timer, or plan again one cancelled before it fell due (its reason is
        back: the anchor moved back, the rule was enabled again); True if it did.

        False, and nothing changed, when a timer with that key is pending, fired,
        dropped, or was settled when it fell due (``fired_at`` set).
        """
        ...

    def get_timer(self, key: str) -> Timer | None: ...
    def put_timer(self, timer: Timer) -> None: ...
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
        """Timers matching every filter given, ordered by (due_at, key); the first ``limit``."""
        ...

    def claim_timers(
        self, now: datetime, limit: int, worker: str, lease_until: datetime
    ) -> list[Timer]:
        """Lease up to ``limit`` pending timers due at ``now``, earliest first.

        A timer is claimable when it is PENDING, ``due_at <= now``, and it has
        no lease, its lease ended before ``now`` (its worker died), or the
        lease is ``worker``'s own (it goes on after a reconnect). Claimed
        timers get ``lease_owner=worker`` and ``lease_until``. On PostgreSQL two
        workers claiming at once get different timers (FOR UPDATE SKIP LOCKED).
        """
        ...

    def renew_leases(self, worker: str, lease_until: datetime) -> int:
        """Extend every lease ``worker`` holds on a pending timer or message; how many.

        A worker's heartbeat calls it while it works, so its leases can be
        short and a dead worker's work is taken over soon. Rows another
        transaction has locked (being settled now) are left as they are.
        """
        ...

    def lock_timer(self, key: str) -> Timer | None:
        """The timer, locked until commit (SELECT ... FOR UPDATE on PostgreSQL)."""
        ...

    def add_audit(self, entry: AuditEntry) -> None: ...
    def audit_log(
        self, *, event_id: str | None = None, client: str | None = None
    ) -> list[AuditEntry]: ...

    # -- failed rule runs
    def put_failure(self, failure: RuleFailure) -> None: ...
    def lock_failure(self, key: str) -> RuleFailure | None:
        """The failure, locked until commit (SELECT ... FOR UPDATE on PostgreSQL)."""
        ...

    def find_failures(
        self, *, status: FailureStatus | None = None, rule: str | None = None
    ) -> list[RuleFailure]:
        """Failures matching the filters given, ordered by (failed_at, key)."""
        ...

    # -- isolation
    def savepoint(self) -> AbstractContextManager[None]:
        """A block whose writes are undone alone if it raises (SAVEPOINT on SQL stores).

        The outer transaction goes on; the exception propagates. A SQL
        store raises driver errors from the block as StoreError (or
        ConflictError), so the caller can tell a broken database from a
        broken rule.
        """
        ...


class Store(Protocol):
    """Where crmrules keeps everything; one per application, shared by engines."""

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A transaction that commits when the block ends and rolls back if it raises."""
        ...

    def close(self) -> None: ...


__all__ = [
    "AuditEntry",
    "ConflictError",
    "FailureStatus",
    "MessageStatus",
    "OutboxMessage",
    "RuleFailure",
    "Store",
    "Timer",
    "TimerStatus",
    "Transaction",
]
