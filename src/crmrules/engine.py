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

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from crmrules import dedup, failures, firing, importing, merging, selection, timers
from crmrules import realign as realigning
from crmrules.actions import BUILTIN_HANDLERS, ActionContext
from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.notifiers import LogNotifier
from crmrules.adapters.sqlalchemy import SQLAlchemyStore, default_store
from crmrules.clock import Clock, SystemClock
from crmrules.delivery import DEFAULT_CALL_TIMEOUT, DeliveryReport, Notifier, deliver_due
from crmrules.errors import CrmRulesError, RefusedError
from crmrules.firing import DueReport, plan_rule
from crmrules.host_input import (
    apply_changes,
    check_changes,
    check_event_data,
    check_references,
    host_id,
)
from crmrules.import_mapping import ImportMapping, load_mapping, parse_mapping
from crmrules.model import (
    Client,
    Deal,
    Event,
    Interaction,
    Manager,
    MembershipSource,
    TaskStatus,
)
from crmrules.plugins import ActionPlugin, PluginManager
from crmrules.reading import Reading
from crmrules.result import Result
from crmrules.rules import segments as segmenting
from crmrules.rules.regulation import Regulation, Rule, load_regulation
from crmrules.rules.templates import TemplateLimits
from crmrules.rules.territories import clear_override, override
from crmrules.run import Run
from crmrules.store import (
    ConflictError,
    FailureStatus,
    RuleFailure,
    Store,
)

#: How often a call is tried when another process changed the same rows meanwhile.
CONFLICT_RETRIES = 5


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
        self._actions: dict[str, ActionPlugin] = self.plugins.actions()
        self._index()

    def _index(self) -> None:
        """Rules by event type (in priority order) and by id; contact plans as rules."""
        regulation = self.regulation
        self._by_event: dict[str, list[Rule]] = {}
        for rule in sorted(regulation.rules, key=lambda r: (-r.priority, r.order)):
            if rule.trigger.kind == "event":
                for event_type in rule.trigger.events:
                    self._by_event.setdefault(event_type, []).append(rule)
        self.rules_by_id = {rule.id: rule for rule in regulation.rules}
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
        return self._by_event.get(event_type, [])

    def action_handler(self, name: str) -> Callable[[Any, ActionContext], None]:
        builtin = BUILTIN_HANDLERS.get(name)
        if builtin is not None:
            return builtin
        return self._actions[name].handler

    def typed_client(self, client: Client) -> Client:
        fields = self.regulation.fields.coerce_record(
            "client", client.id, client.fields, self.regulation.calendar
        )
        return client.model_copy(update={"fields": fields})

    def typed_deal(self, deal: Deal) -> Deal:
        fields = self.regulation.fields.coerce_record(
            "deal", deal.id, deal.fields, self.regulation.calendar
        )
        return deal.model_copy(update={"fields": fields})

    # -- the public operations

    def handle(self, event: Event) -> Result:
        """Handle an event the host reports; the same event id twice acts once."""
        return self.plugins.handle_event(event, self._handle_reported)

    def _handle_reported(self, event: Event) -> Result:
        check_event_data(self.regulation, event)
        data = self.regulation.fields.coerce_record(
            "event", event.id, event.data, self.regulation.calendar
        )
        typed = event.model_copy(update={"data": data})

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
        """One transaction: lock the subject, act once per event id, keep result and audit.

        A ConflictError (another process touched the same rows) rolls back
        and retries the whole call; the retry usually finds the other
        process's result under the same event id.
        """
        for attempt in range(1, CONFLICT_RETRIES + 1):
            try:
                with self.store.transaction() as tx:
                    tx.lock_subject(*subject)
                    earlier = tx.event_result(event_id)
                    if earlier is not None:
                        return Result.from_dict(earlier, duplicate=True)
                    run = Run(self, tx, self.clock.now(), Result(event_id))
                    body(run)
                    failures.save(tx, run.failures)
                    for entry in run.audit:
                        tx.add_audit(entry)
                    tx.save_event_result(event_id, run.result.to_dict())
                    return run.result
            except ConflictError:
                if attempt == CONFLICT_RETRIES:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

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
        """Store or replace a manager (no rules run)."""
        with self.store.transaction() as tx:
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
    ) -> DeliveryReport:
        """Deliver the mailings and notifications due at ``now`` (default: the clock's now).

        Channels: ``log`` (built in), the plugins' notifiers, and ``notifiers``
        given here (e.g. an SmtpNotifier named ``email``), later ones winning.
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
        )

    # -- time: timers are planned by changes and fired here (see crmrules.firing)

    def run_due(
        self,
        now: datetime | None = None,
        *,
        limit: int | None = None,
        worker: str | None = None,
        lease: timedelta = timedelta(minutes=5),
    ) -> DueReport:
        """Fire every timer due at ``now`` (at most ``limit``), earliest first, each once."""
        return firing.run_due(self, now, limit=limit, worker=worker, lease=lease)

    def sync_timers(self, now: datetime | None = None) -> None:
        """Bring every timer in step with the regulation; after loading or reloading it."""
        firing.sync_timers(self, now)

    def reload(self, regulation: Regulation) -> None:
        """Switch to a new version of the regulation and bring the timers in step."""
        self.regulation = regulation
        self._index()
        self.sync_timers()

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
        self, *, dry_run: bool = False, progress: Callable[[int], None] | None = None
    ) -> realigning.RealignReport:
        """Recompute every client's territories and segments (see crmrules.realign).

        A chunk of clients per transaction; changes raise territory.entered /
        territory.left once each, even when a killed run is started again. A dry
        run writes nothing and reports what would change.
        """
        return realigning.realign(self, dry_run=dry_run, progress=progress)

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
