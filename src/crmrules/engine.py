"""The Engine: a host reports what happened; the regulation decides what follows.

One call (``handle`` or a host operation) is one store transaction:

1. if the event id was handled before, return that result (exactly once);
2. store the host's change, if any, recomputing the client's territories;
3. run the cascade (``crmrules.run.Run``): for each event (the reported
   one first, then those the changes raise), consider the rules listening
   to its type in priority order; check ``enabled``, the condition, the
   cascade guard, ``once`` and ``cooldown``; run the actions of each rule
   that fires, in order;
4. save the result and the audit log, and commit.

An exception anywhere rolls the whole transaction back, so the store is
exactly as it was before the call.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from crmrules import absences as people_store
from crmrules import (
    batch,
    campaigns,
    dedup,
    explaining,
    failures,
    firing,
    importing,
    merging,
    occurrences,
    selection,
    timers,
)
from crmrules import history as histories
from crmrules import impact as impacting
from crmrules import realign as realigning
from crmrules.actions import ActionContext
from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.notifiers import LogNotifier
from crmrules.adapters.sqlalchemy import SQLAlchemyStore, default_store
from crmrules.batch import Handled
from crmrules.campaigns import Campaign, Request
from crmrules.clock import Clock, SimulatedClock, SystemClock
from crmrules.delivery import DEFAULT_CALL_TIMEOUT, DeliveryReport, Notifier, deliver_due
from crmrules.errors import CrmRulesError, RefusedError
from crmrules.explaining import Explanation
from crmrules.firing import DueReport, plan_rule
from crmrules.history import HistoryEntry
from crmrules.host_input import (
    apply_changes,
    check_changes,
    check_event_data,
    check_references,
    host_id,
)
from crmrules.impact import Impact, ledger
from crmrules.impact.ledger import TimerChanges
from crmrules.import_mapping import ImportMapping, load_mapping, parse_mapping
from crmrules.leases import DEFAULT_LEASE, Heartbeat, worker_name
from crmrules.model import (
    Absence,
    Client,
    Deal,
    Event,
    Interaction,
    Manager,
    MembershipSource,
    Task,
    TaskStatus,
)
from crmrules.plugins import PluginManager
from crmrules.reading import Reading
from crmrules.result import Result
from crmrules.rules import segments as segmenting
from crmrules.rules.regulation import Regulation, Rule, load_regulation
from crmrules.rules.templates import TemplateLimits
from crmrules.rules.territories import clear_override, override
from crmrules.run import Run, Setting, transact
from crmrules.scoped import ScopedView
from crmrules.store import (
    FailureStatus,
    RuleFailure,
    Store,
)
from crmrules.summary import ClientSummary, client_summary

log = logging.getLogger("crmrules.engine")


class ActionError(RefusedError):
    """A rule with ``on_error: refuse`` failed at run time, so the whole call was refused.

    Nothing was changed. ``reason`` says which rule and action failed, and
    why, in words an admin reads; the exception itself is ``__cause__``.
    """

    def __init__(self, rule: str, action: str, event_id: str, reason: str) -> None:
        super().__init__(
            f"rule {rule} failed on event {event_id} ({reason}); it has on_error: refuse, "
            "so the whole call was refused and nothing was changed"
        )
        self.rule = rule
        self.action = action
        self.event_id = event_id
        #: why the rule failed, without the words about refusing
        self.detail = reason


def _new_id() -> str:
    return uuid.uuid4().hex


class Engine(Reading):
    """Runs one regulation against one store.

    ``plugins`` are objects with ``@hookimpl`` functions (see crmrules.plugins);
    plugins installed through the ``crmrules`` entry point group are loaded too
    unless ``entry_points=False``.
    """

    def __init__(
        self,
        regulation: Regulation,
        store: Store | str | None = None,
        clock: Clock | None = None,
        plugins: Iterable[object] = (),
        *,
        entry_points: bool = True,
        plugin_manager: PluginManager | None = None,
    ) -> None:
        self.regulation = regulation
        self.clock: Clock = clock or SystemClock()
        self.plugins = plugin_manager or PluginManager(plugins, entry_points=entry_points)
        self.store: Store = _open_store(store, self.plugins)
        self._index()

    def _index(self) -> None:
        """The run setting (rules by event type and id, compiled rule sets); plans as rules."""
        regulation = self.regulation
        self.setting = Setting(regulation, self.plugins)
        self.rules_by_id = self.setting.rules_by_id
        self.plan_rules: dict[tuple[str, int], Rule] = {
            (territory.id, index): plan_rule(territory, index, plan, regulation.calendar)
            for territory in regulation.territories.values()
            for index, plan in enumerate(territory.contact_plan)
        }

    @classmethod
    def from_path(
        cls,
        *paths: str | Path,
        store: Store | str | None = None,
        clock: Clock | None = None,
        plugins: Iterable[object] = (),
        entry_points: bool = True,
        allow_destinations: Iterable[str] = (),
        template_limits: TemplateLimits | None = None,
    ) -> Engine:
        """Load the regulation at ``paths`` (with the plugins' actions and operators).

        ``allow_destinations``: internal webhook addresses the regulation may
        write literally (the notifier must allow them too; see crmrules.destinations).
        ``template_limits``: bounds on each template render (crmrules.TemplateLimits).
        """
        manager = PluginManager(plugins, entry_points=entry_points)
        regulation = load_regulation(
            *paths,
            actions=manager.action_models(),
            operators=manager.operators(),
            allow_destinations=allow_destinations,
            template_limits=template_limits,
        )
        return cls(regulation, store, clock, plugin_manager=manager)

    # -- lookups used by a run

    def rules_for(self, event_type: str) -> list[Rule]:
        return self.setting.rules_for(event_type)

    def action_handler(self, name: str) -> Callable[[Any, ActionContext], None]:
        return self.setting.action_handler(name)

    def typed_client(self, client: Client) -> Client:
        return self.setting.typed_client(client)

    def typed_deal(self, deal: Deal) -> Deal:
        return self.setting.typed_deal(deal)

    # -- the public operations

    def handle(self, event: Event) -> Result:
        """Handle an event the host reports; the same event id twice acts once."""
        return self.plugins.handle_event(event, self._handle_reported)

    def handle_many(self, events: Iterable[Event], *, chunk: int = batch.CHUNK) -> list[Handled]:
        """Handle many reported events, one transaction per ``chunk``: imports and replays.

        Each event acts once, as with ``handle``; one that is refused is rolled
        back alone and its error stands in its place (see crmrules.batch).
        """
        return batch.handle_many(
            self.store, self.setting, self.clock, self._typed_event, events, chunk=chunk
        )

    def _typed_event(self, event: Event) -> Event:
        check_event_data(self.regulation, event)
        data = self.regulation.fields.coerce_record(
            "event", event.id, event.data, self.regulation.calendar
        )
        return event.model_copy(update={"data": data})

    def _handle_reported(self, event: Event) -> Result:
        typed = self._typed_event(event)

        def body(run: Run) -> None:
            check_references(run.tx, f"event {typed.id}", typed.client, typed.deal)
            run.cascade(typed)

        return self.transact(typed.id, (typed.client, typed.deal), body)

    def transact(
        self,
        event_id: str,
        subject: tuple[str | None, str | None],
        body: Callable[[Run], None],
    ) -> Result:
        """One transaction: lock the subject, act once per event id, keep result and audit."""
        return transact(self.store, self.setting, self.clock, event_id, subject, body)

    def _host_change(
        self,
        event_id: str | None,
        subject: tuple[str | None, str | None],
        change: Callable[[Run], None],
    ) -> Result:
        """Apply a host's change and run the events it raises, as one transaction."""

        def body(run: Run) -> None:
            change(run)
            if run.queue:
                run.cascade(run.queue.pop(0).event)

        return self.transact(event_id or _new_id(), subject, body)

    def create_client(self, client: Client, *, event_id: str | None = None) -> Result:
        def change(run: Run) -> None:
            if run.tx.get_client(client.id) is not None:
                raise RefusedError(f"client {client.id} already exists")
            self._check_responsible(run, client.responsible)
            self.regulation.fields.check_declared("client", client.id, client.fields)
            stamped = (
                client if client.created_at else client.model_copy(update={"created_at": run.now})
            )
            run.store_client(stamped, None, None, 0)

        return self._host_change(event_id, (client.id, None), change)

    def update_client(
        self, client_id: str, changes: Mapping[str, Any], *, event_id: str | None = None
    ) -> Result:
        """Change fields of a client (built-in or custom) and raise client.updated."""
        client_id = host_id("client", client_id)
        check_changes("client", client_id, changes)

        def change(run: Run) -> None:
            old = run.tx.get_client(client_id)
            if old is None:
                raise RefusedError(f"no client {client_id!r}")
            new = apply_changes(old, changes, "client", self.regulation)
            if "responsible" in changes:
                self._check_responsible(run, new.responsible)
            run.store_client(new, old, None, 0)

        return self._host_change(event_id, (client_id, None), change)

    def clear_territory_override(
        self, client_id: str, territory: str, *, event_id: str | None = None
    ) -> Result:
        """Drop the client's manual add to or removal from ``territory``; its rule decides again.

        Raises territory.entered / territory.left if that changes the client's
        territories. A territory no longer in the regulation may be named: its
        override outlives the rule and is cleared all the same.
        """
        client_id = host_id("client", client_id)

        def change(run: Run) -> None:
            client = run.tx.get_client(client_id)
            if client is None:
                raise RefusedError(f"no client {client_id!r}")
            current = run.tx.memberships(client_id)
            run.tx.set_memberships(client_id, clear_override(current, territory))
            run.store_client(client, client, None, 0)

        return self._host_change(event_id, (client_id, None), change)

    def add_to_segment(
        self, client_id: str, segment: str, *, event_id: str | None = None
    ) -> Result:
        """Put the client in ``segment`` by hand, whatever its condition says, until cleared."""
        return self._segment_override(client_id, segment, MembershipSource.MANUAL_ADD, event_id)

    def remove_from_segment(
        self, client_id: str, segment: str, *, event_id: str | None = None
    ) -> Result:
        """Keep the client out of ``segment`` by hand, whatever its condition says, till cleared."""
        return self._segment_override(client_id, segment, MembershipSource.MANUAL_REMOVE, event_id)

    def clear_segment_override(
        self, client_id: str, segment: str, *, event_id: str | None = None
    ) -> Result:
        """Drop a manual add to or removal from ``segment``; its condition decides again."""
        return self._segment_override(client_id, segment, None, event_id)

    def _segment_override(
        self,
        client_id: str,
        segment: str,
        source: MembershipSource | None,
        event_id: str | None,
    ) -> Result:
        client_id = host_id("client", client_id)
        if source is not None and segment not in self.regulation.segments:
            known = ", ".join(sorted(self.regulation.segments)) or "none"
            raise RefusedError(f"no segment {segment!r} in the regulation (segments: {known})")

        def change(run: Run) -> None:
            client = run.tx.get_client(client_id)
            if client is None:
                raise RefusedError(f"no client {client_id!r}")
            current = run.tx.memberships(client_id)
            name = segmenting.key(segment)
            if source is None:
                updated = clear_override(current, name)
            else:
                updated = override(current, client_id, name, source, run.now)
            run.tx.set_memberships(client_id, updated)
            run.store_client(client, client, None, 0)

        return self._host_change(event_id, (client_id, None), change)

    def create_deal(self, deal: Deal, *, event_id: str | None = None) -> Result:
        def change(run: Run) -> None:
            if run.tx.get_deal(deal.id) is not None:
                raise RefusedError(f"deal {deal.id} already exists")
            if run.tx.get_client(deal.client) is None:
                raise RefusedError(f"deal {deal.id}: no client {deal.client!r}")
            self.regulation.fields.check_declared("deal", deal.id, deal.fields)
            run.store_deal(deal, None, None, 0)

        return self._host_change(event_id, (deal.client, None), change)

    def update_deal(
        self, deal_id: str, changes: Mapping[str, Any], *, event_id: str | None = None
    ) -> Result:
        """Change fields of a deal; a changed ``stage`` must follow the transitions."""
        deal_id = host_id("deal", deal_id)
        check_changes("deal", deal_id, changes)

        def change(run: Run) -> None:
            old = run.tx.get_deal(deal_id)
            if old is None:
                raise RefusedError(f"no deal {deal_id!r}")
            new = apply_changes(old, changes, "deal", self.regulation)
            if new.client != old.client and run.tx.get_client(new.client) is None:
                raise RefusedError(f"deal {deal_id}: no client {new.client!r}")
            run.store_deal(new, old, None, 0)

        return self._host_change(event_id, (None, deal_id), change)

    def move_stage(self, deal_id: str, stage: str, *, event_id: str | None = None) -> Result:
        return self.update_deal(deal_id, {"stage": stage}, event_id=event_id)

    def complete_task(self, task_id: str, *, event_id: str | None = None) -> Result:
        task_id = host_id("task", task_id)

        def change(run: Run) -> None:
            task = run.tx.get_task(task_id)
            if task is None:
                raise RefusedError(f"no task {task_id!r}")
            # Lock the task's client and deal, then read it again: another
            # process may have completed it while we waited for the lock.
            run.tx.lock_subject(task.client, task.deal)
            task = run.tx.get_task(task_id)
            assert task is not None
            if task.status is not TaskStatus.OPEN:
                raise RefusedError(f"task {task_id} is already {task.status.value}")
            run.tx.put_task(
                task.model_copy(update={"status": TaskStatus.DONE, "closed_at": run.now})
            )
            timers.cancel_task(run.tx, task, "completed")
            run.raise_event(
                None,
                0,
                "task.completed",
                client=task.client,
                deal=task.deal,
                data={"task": task.id, "kind": task.kind, "rule": task.rule},
            )

        return self._host_change(event_id, (None, None), change)

    def log_interaction(self, interaction: Interaction, *, event_id: str | None = None) -> Result:
        """Record a call, meeting or e-mail; it moves the client's last_contact_at forward."""

        def change(run: Run) -> None:
            client = run.tx.get_client(interaction.client)
            if client is None:
                raise RefusedError(
                    f"interaction {interaction.id}: no client {interaction.client!r}"
                )
            check_references(
                run.tx, f"interaction {interaction.id}", interaction.client, interaction.deal
            )
            earlier = run.tx.get_interaction(interaction.id)
            if earlier == interaction:
                return  # the host logged it again (a retry): nothing new happened
            if earlier is not None:
                raise RefusedError(
                    f"interaction {interaction.id} already exists with other content; "
                    "log a new interaction under a new id"
                )
            run.tx.add_interaction(interaction)
            run.raise_event(
                None,
                0,
                "interaction.logged",
                client=interaction.client,
                deal=interaction.deal,
                data={
                    "interaction": interaction.id,
                    "kind": interaction.kind,
                    "direction": interaction.direction,
                    "outcome": interaction.outcome,
                },
            )
            last = client.last_contact_at
            if last is None or interaction.occurred_at > last:
                # A real update: it raises client.updated and re-plans timers on the field.
                moved = client.model_copy(update={"last_contact_at": interaction.occurred_at})
                run.store_client(moved, client, None, 0)

        return self._host_change(event_id, (interaction.client, interaction.deal), change)

    def client_saved(
        self,
        client_id: str,
        *,
        created: bool = False,
        before: Mapping[str, Any] | None = None,
        event_id: str | None = None,
    ) -> Result:
        """The host stored a client itself (in its own tables): run the regulation on it.

        crmrules reads the client from the store, recomputes its territories
        and raises ``client.created`` (``created=True``) or ``client.updated``
        with ``before`` as the values the changed fields had.
        """
        client_id = host_id("client", client_id)
        if before is not None:
            check_changes("client", client_id, before)

        def change(run: Run) -> None:
            client = run.tx.get_client(client_id)
            if client is None:
                raise RefusedError(f"no client {client_id!r} in the store")
            old = (
                None if created else apply_changes(client, before or {}, "client", self.regulation)
            )
            run.store_client(client, old, None, 0)

        return self._host_change(event_id, (client_id, None), change)

    def deal_saved(
        self,
        deal_id: str,
        *,
        created: bool = False,
        before: Mapping[str, Any] | None = None,
        event_id: str | None = None,
    ) -> Result:
        """The host stored a deal itself: run the regulation on it, as ``client_saved`` does.

        A changed stage (``before={"stage": ...}``) must follow the pipeline.
        """

        def change(run: Run) -> None:
            deal = run.tx.get_deal(deal_id)
            if deal is None:
                raise RefusedError(f"no deal {deal_id!r} in the store")
            old = None if created else apply_changes(deal, before or {}, "deal", self.regulation)
            run.store_deal(deal, old, None, 0)

        return self._host_change(event_id, (None, deal_id), change)

    def put_manager(self, manager: Manager) -> None:
        """Store or replace a manager (no rules run); directions and deputies must exist."""
        with self.store.transaction() as tx:
            people_store.check_manager(tx, self.regulation, manager)
            tx.put_manager(manager)

    def _check_responsible(self, run: Run, manager_id: str | None) -> None:
        if manager_id is not None and run.find_manager(manager_id) is None:
            raise RefusedError(f"unknown manager {manager_id!r}")

    def deliver(
        self,
        notifiers: Mapping[str, Notifier] | None = None,
        *,
        limit: int = 100,
        now: datetime | None = None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        worker: str | None = None,
        lease: timedelta = DEFAULT_LEASE,
    ) -> DeliveryReport:
        """Deliver the mailings and notifications due at ``now`` (default: the clock's now).

        Channels: ``log`` (built in), the plugins' notifiers, and ``notifiers``
        given here (e.g. an SmtpNotifier named ``email``), later ones winning.
        Each message is claimed by ``worker`` for ``lease`` (see crmrules.leases).
        """
        available: dict[str, Notifier] = {"log": LogNotifier()}
        available.update(self.plugins.notifiers())
        available.update(notifiers or {})
        return deliver_due(
            self.store,
            available,
            now or self.clock.now(),
            limit=limit,
            call_timeout=call_timeout,
            worker=worker,
            lease=lease,
        )

    # -- time: timers are planned by changes and fired here (see crmrules.firing)

    def run_due(
        self,
        now: datetime | None = None,
        *,
        limit: int | None = None,
        worker: str | None = None,
        lease: timedelta = DEFAULT_LEASE,
    ) -> DueReport:
        """Fire every timer due at ``now`` (at most ``limit``), earliest first, each once.

        The timers are leased to ``worker`` (default ``host:pid``) for
        ``lease``, renewed by a heartbeat while they fire (crmrules.leases).
        """
        worker = worker or worker_name()
        beating = not isinstance(self.clock, SimulatedClock)  # simulated time stands still
        with Heartbeat(self.store, worker, lease, self.clock.now, thread=beating):
            return firing.run_due(self, now, limit=limit, worker=worker, lease=lease)

    def sync_timers(self, now: datetime | None = None, *, full: bool = False) -> TimerChanges:
        """Bring every timer in step with the regulation; after loading or reloading it.

        Cheap when the regulation's timing is as at the last sync (crmrules.sync);
        ``full`` walks every client even then (records imported behind the engine).
        Returns how many timers it planned, re-planned and cancelled (also logged).
        """
        changes = ledger.sync(self, now, full=full)
        if changes.planned or changes.replanned or changes.cancelled:
            log.info("regulation %s: %s", self.regulation.release.id, changes.summary())
        return changes

    def explain_occurrence(
        self, rule_id: str, client_id: str, when: datetime | date
    ) -> occurrences.OccurrenceExplanation:
        """Why the client did or did not match schedule ``rule_id`` at an occurrence.

        ``when``: the day the occurrence was due (in the calendar's zone), or a
        moment (the last occurrence due by then). Decided again on the client as
        stored now, at the occurrence's moment (see crmrules.occurrences).
        """
        timer = occurrences.find_occurrence(self, rule_id, when)
        return occurrences.explain(self, timer.key, host_id("client", client_id))

    def reload(self, regulation: Regulation) -> TimerChanges:
        """Switch to a new version of the regulation and bring the timers in step."""
        self.regulation = regulation
        self._index()
        return self.sync_timers()

    # -- changing a regulation safely (crmrules.explaining, crmrules.impact, crmrules.history)

    def explain(
        self,
        client_id: str,
        *,
        deal_id: str | None = None,
        event_type: str | None = None,
        at: datetime | None = None,
    ) -> Explanation:
        """Why each rule would or would not act on the client now (or ``at``); writes nothing."""
        return explaining.explain(self, client_id, deal_id=deal_id, event_type=event_type, at=at)

    def impact(self, new_regulation: Regulation, *, now: datetime | None = None) -> Impact:
        """What switching to ``new_regulation`` would change in the base; writes nothing."""
        return impacting.impact(self, new_regulation, now=now)

    def rule_history(self, client_id: str) -> list[HistoryEntry]:
        """What the rules did to the client, oldest first, with the regulation version of each."""
        return histories.history(self.store, client_id)

    # -- failed rule runs (see crmrules.failures)

    def failures(self, *, status: FailureStatus | None = None) -> list[RuleFailure]:
        """Rule runs that failed and were rolled back alone, oldest first."""
        with self.store.transaction() as tx:
            return tx.find_failures(status=status)

    def retry_failed(self, keys: list[str] | None = None) -> list[Result]:
        """Run each failed rule again on its event (after a fix); each runs at most once.

        A run that succeeds marks its failure resolved in the same transaction
        as its effects; one that fails again stays listed with one more attempt.
        """
        return failures.retry_failed(self, keys)

    def plan_rule_by_id(self, rule_id: str) -> Rule | None:
        """A territory's contact plan run as a rule, by its id."""
        return next((r for r in self.plan_rules.values() if r.id == rule_id), None)

    # -- reading

    def select(
        self,
        *,
        territory: str | None = None,
        rule: str | None = None,
        condition: Mapping[str, Any] | None = None,
        segment: str | None = None,
        now: datetime | None = None,
    ) -> Iterator[str]:
        """The ids of the clients a segment, a territory, a rule or a condition takes, streamed.

        By SQL on the SQL store (Python decides only what SQL cannot), by a
        loop elsewhere; ids in code-point order. See crmrules.selection.
        """
        chosen = selection.for_engine(
            self, territory=territory, rule=rule, condition=condition, segment=segment, now=now
        )
        return selection.select_ids(self.store, chosen)

    def realign(
        self,
        *,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
        fan_out: realigning.FanOut | None = None,
    ) -> realigning.RealignReport:
        """Recompute every client's territories and segments (see crmrules.realign).

        A chunk of clients per transaction; changes raise territory.entered /
        territory.left once each, even when a killed run is started again. A dry
        run writes nothing and reports what would change. ``fan_out`` runs the
        chunks on other workers (e.g. Celery tasks: crmrules.adapters.celery).
        """
        return realigning.realign(self, dry_run=dry_run, progress=progress, fan_out=fan_out)

    # -- campaigns and requests (crmrules.campaigns)

    def create_campaign(self, campaign: Campaign) -> None:
        """Store a campaign (or replace it: a new budget or dates); no event is raised."""
        campaigns.create_campaign(self, campaign)

    def create_request(self, request: Request, *, event_id: str | None = None) -> Result:
        """Record an inbound request and run the rules on ``request.created``."""
        return campaigns.create_request(self, request, event_id=event_id)

    def convert_request(
        self, request_id: str, deal_id: str, *, event_id: str | None = None
    ) -> Result:
        """The request became the deal; ``request.converted`` runs the rules."""
        return campaigns.convert_request(
            self, host_id("request", request_id), host_id("deal", deal_id), event_id=event_id
        )

    def refuse_request(
        self, request_id: str, reason: str, *, event_id: str | None = None
    ) -> Result:
        """Close a request without a deal, keeping the reason."""
        return campaigns.refuse_request(
            self, host_id("request", request_id), reason, event_id=event_id
        )

    def get_request(self, request_id: str) -> Request | None:
        with self.store.transaction() as tx:
            return tx.get_request(host_id("request", request_id))

    # -- import, duplicates, merge (see crmrules.importing, crmrules.dedup, crmrules.merging)

    def import_clients(
        self,
        rows: Iterable[Mapping[str, Any]] | Iterable[tuple[int, Mapping[str, Any]]],
        mapping: ImportMapping | str | Path | Mapping[str, Any],
        *,
        import_id: str | None = None,
        source: str | None = None,
        dry_run: bool = False,
        chunk: int = importing.CHUNK,
        progress: Callable[[int], None] | None = None,
    ) -> importing.ImportReport:
        """Import rows ({column: value}) by a mapping (an ImportMapping, its file or its dict).

        Each row is new (created, raising ``client.created`` with the import's
        id and source), a duplicate, ambiguous, or refused with its row and
        column; a chunk per transaction, resumable under the same ``import_id``.
        """
        return importing.import_clients(
            self,
            rows,
            self.import_mapping(mapping),
            import_id=import_id,
            source=source,
            dry_run=dry_run,
            chunk=chunk,
            progress=progress,
        )

    def import_file(
        self,
        path: str | Path,
        mapping: ImportMapping | str | Path | Mapping[str, Any],
        *,
        import_id: str | None = None,
        dry_run: bool = False,
        chunk: int = importing.CHUNK,
        progress: Callable[[int], None] | None = None,
    ) -> importing.ImportReport:
        """Import a CSV or XLSX file, streamed (see ``import_clients``); source: the file name."""
        return importing.import_file(
            self,
            path,
            self.import_mapping(mapping),
            import_id=import_id,
            dry_run=dry_run,
            chunk=chunk,
            progress=progress,
        )

    def import_listed(self, import_id: str) -> Iterator[dict[str, Any]]:
        """The rows an import listed (duplicates, ambiguous, refused), in row order."""
        return importing.listed_rows(self, import_id)

    def import_mapping(
        self, mapping: ImportMapping | str | Path | Mapping[str, Any]
    ) -> ImportMapping:
        """A mapping checked against the regulation: given, read from its file, or from a dict."""
        if isinstance(mapping, ImportMapping):
            return mapping
        if isinstance(mapping, str | Path):
            return load_mapping(mapping, self.regulation)
        from crmrules.rules.source import SourceMap

        return parse_mapping(dict(mapping), SourceMap(), self.regulation, "<mapping>")

    def find_duplicates(
        self, *, progress: Callable[[int], None] | None = None
    ) -> Iterator[dedup.DuplicatePair]:
        """Pairs of stored clients the ``duplicates:`` rules match, found by SQL blocking."""
        return dedup.find_duplicates(self, progress=progress)

    def merge_clients(
        self,
        keep: str,
        other: str,
        policy: merging.MergePolicy | str | Mapping[str, str] | None = None,
        *,
        event_id: str | None = None,
    ) -> merging.MergeResult:
        """Merge client ``other`` into ``keep`` (fields by ``policy``; see crmrules.merging)."""
        return merging.merge_clients(
            self, host_id("client", keep), host_id("client", other), policy, event_id=event_id
        )

    def unmerge(self, merge_id: str) -> Result:
        """Undo a merge from its record: both clients and every moved record as before."""
        return merging.unmerge(self, merge_id)

    def purge_merges(self, before: datetime | None = None) -> int:
        """Forget how to undo the merges done before ``before`` (all if None)."""
        return merging.purge_merges(self, before)

    def get_client(self, client_id: str) -> Client | None:
        with self.store.transaction() as tx:
            return tx.get_client(host_id("client", client_id))

    def client_summary(self, client_id: str) -> ClientSummary:
        """Everything about one client in one read: fields, contacts, deals, tasks, history."""
        with self.store.transaction() as tx:
            return client_summary(tx, self.regulation, host_id("client", client_id))

    def scoped(self, manager_id: str) -> ScopedView:
        """The engine as ``manager_id`` may use it: only the clients of their directions."""
        return ScopedView(self, manager_id)

    def mark_absent(self, manager_id: str, absence: Absence) -> list[Task]:
        """Add an absence to a manager; their open tasks due in it go to the deputy.

        Returns the tasks handed over (each with a note saying why). The
        manager may be one the regulation declares: the store then keeps a
        copy with the absence. See crmrules.people.
        """
        return people_store.mark_absent(self, manager_id, absence)

    def get_deal(self, deal_id: str) -> Deal | None:
        with self.store.transaction() as tx:
            return tx.get_deal(host_id("deal", deal_id))


#: URL schemes the SQL store opens (with any ``+driver``).
SQL_SCHEMES = ("sqlite", "postgresql")


def _open_store(store: Store | str | None, plugins: PluginManager) -> Store:
    """A store as given, or opened from a URL; None is the embedded default.

    The default is the SQLite file in ``$CRMRULES_DATABASE_URL``, else
    ``crmrules.sqlite3`` in the current directory (created on first use).
    """
    if store is None:
        return default_store()
    if not isinstance(store, str):
        return store
    scheme = store.split(":", 1)[0]
    if scheme == "memory":
        return MemoryStore()
    if scheme.split("+", 1)[0] in SQL_SCHEMES:
        return SQLAlchemyStore(store)
    factories = plugins.stores()
    if scheme in factories:
        return factories[scheme](store)
    known = ", ".join(["memory", *SQL_SCHEMES, *sorted(factories)])
    raise CrmRulesError(f"no store for {scheme}:// URLs (known: {known})")


__all__ = ["ActionError", "DueReport", "Engine", "RefusedError"]
