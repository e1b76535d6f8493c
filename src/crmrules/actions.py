"""The built-in actions, and the context every action (built-in or plugin) runs in.

An action reads the event's client and deal, renders its templates, and
changes the store only through its ActionContext, which records each change
as an Effect and raises the events the change implies (a moved stage raises
``deal.stage_changed``). Ids and idempotency keys derive from the event id,
the rule and the action's position, so a replay makes the same keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from crmrules import people, timers
from crmrules.calendar import BusinessCalendar, Duration
from crmrules.errors import RecordError
from crmrules.model import (
    Client,
    Deal,
    Mailing,
    MailingStatus,
    Manager,
    MembershipSource,
    Task,
    TaskStatus,
    trusted,
)
from crmrules.result import Effect
from crmrules.rules import schema
from crmrules.rules import segments as segmenting
from crmrules.rules.assignment import Assignment, assign
from crmrules.rules.fields import coerce
from crmrules.rules.regulation import Action, Regulation, Rule
from crmrules.rules.templates import NAMESPACES
from crmrules.rules.territories import clear_override, override
from crmrules.store import MessageStatus, OutboxMessage, Transaction

if TYPE_CHECKING:
    from crmrules.model import Event
    from crmrules.run import Lending, Run


class ActionRefused(Exception):
    """The action cannot apply (no deal to move, a move the pipeline forbids...).

    Not an error: the refusal is recorded with its reason and the rule's
    other actions still run.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ActionContext:
    """What an action may read and change; one per action run."""

    def __init__(
        self, run: Run, event: Event, depth: int, rule: Rule, index: int, action: Action
    ) -> None:
        self._run = run
        self.event = event
        self.depth = depth
        self.rule = rule
        self.index = index
        self.action = action
        #: the flat records of the subjects ``read_subjects`` was lent, by namespace
        self._lent: dict[str, tuple[object, Mapping[str, Any]]] = {}

    # -- reading

    @property
    def tx(self) -> Transaction:
        return self._run.tx

    @property
    def now(self) -> datetime:
        return self._run.now

    @property
    def regulation(self) -> Regulation:
        return self._run.regulation

    @property
    def key(self) -> str:
        """The idempotency key of this action for this event."""
        return f"{self.event.id}:{self.rule.id}:{self.index}"

    def record_id(self, prefix: str) -> str:
        return f"{prefix}-{hashlib.sha256(self.key.encode()).hexdigest()[:20]}"

    def find_manager(self, manager_id: str) -> Manager | None:
        """A manager from the store, or from the regulation's ``managers``."""
        return self._run.find_manager(manager_id)

    def subjects(self) -> tuple[Client | None, Deal | None]:
        """The event's client and deal as they are now (earlier actions may have changed them)."""
        return self._run.subjects(self.event)

    def read_subjects(self) -> tuple[Client | None, Deal | None]:
        """``subjects``, to read and not to change or keep: a store that lends its records
        (the memory store's ``lend_client``) hands out the ones it stores now, no copy."""
        if getattr(self.tx, "lend_client", None) is None:
            return self.subjects()
        tx, event = cast("Lending", self.tx), self.event
        lent_deal = tx.lend_deal(event.deal) if event.deal else None
        deal = lent_deal[0] if lent_deal is not None else None
        client_id = event.client or (deal.client if deal else None)
        lent = tx.lend_client(client_id) if client_id else None
        self._lent = {}
        if lent_deal is not None:
            self._lent["deal"] = lent_deal
        if lent is not None:
            self._lent["client"] = lent
        return (lent[0] if lent is not None else None), deal

    def _flat(self, namespace: str, record: Client | Deal) -> Mapping[str, object]:
        """``record.record()``; the flat record lent with it if ``read_subjects`` lent it (the
        same object: made when it was stored, shared with nothing that changes)."""
        lent = self._lent.get(namespace)
        if lent is not None and lent[0] is record:
            return lent[1]
        return record.record()

    def template_context(
        self,
        subjects: tuple[Client | None, Deal | None] | None = None,
        namespaces: Collection[str] = NAMESPACES,
    ) -> dict[str, Mapping[str, object]]:
        """What templates read; ``subjects``: the client and deal the action has just read
        (and not changed since), so they are not read again; ``namespaces``: those wanted
        (a template reads only the fields it names: see ``render``)."""
        client, deal = subjects if subjects is not None else self.subjects()
        context: dict[str, Mapping[str, object]] = {}
        if "event" in namespaces:
            context["event"] = self.event.record()
        if client is not None and "client" in namespaces:
            context["client"] = self._flat("client", client)
        if deal is not None and "deal" in namespaces:
            context["deal"] = self._flat("deal", deal)
        if client and client.responsible and "manager" in namespaces:
            manager = self.find_manager(client.responsible)
            if manager is not None:
                context["manager"] = manager.record()
        return context

    def render(
        self, name: str, text: str, subjects: tuple[Client | None, Deal | None] | None = None
    ) -> str:
        """The action's parameter ``name``: its compiled template rendered, or the text as is
        (``subjects`` as for ``template_context``). Only the namespaces of the fields the
        template names are built: a template sees nothing else (``CompiledTemplate._values``)."""
        template = self.action.templates.get(name)
        if template is None:
            return text
        wanted = {path.split(".", 1)[0] for path in template.fields}
        return template.render(self.template_context(subjects, wanted))

    # -- changing

    def effect(self, kind: str, summary: str, /, **data: Any) -> None:
        effect = Effect(kind, self.event.id, self.rule.id, summary, _json(data))
        self._run.add_effect(effect, self.event)

    def raise_event(
        self,
        event_type: str,
        *,
        client: str | None,
        deal: str | None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        self._run.raise_event(
            self.event,
            self.depth + 1,
            event_type,
            client=client,
            deal=deal,
            data=data,
            suffix=self._origin,
        )

    @property
    def _origin(self) -> str:
        return f":{self.rule.id}:{self.index}"

    def store_client(self, client: Client, old: Client) -> Client:
        return self._run.store_client(client, old, self.event, self.depth + 1, self._origin)

    def store_deal(self, deal: Deal, old: Deal) -> None:
        self._run.store_deal(deal, old, self.event, self.depth + 1, self._origin)

    def enqueue(self, message: OutboxMessage) -> bool:
        return self.tx.enqueue(message)

    def assign(self, spec: schema.AssignSpec, client: Client) -> Assignment:
        return assign(
            self.tx,
            self.regulation,
            strategy=spec.strategy,
            among=spec.among,
            skills=spec.skills,
            fallback=spec.fallback,
            client=client,
            rotation_key=f"rule:{self.rule.id}:{self.index}",
            now=self.now,
        )


# --- the built-in actions ---------------------------------------------------------------------


def _due(
    params: schema.CreateTask, ctx: ActionContext, calendar: BusinessCalendar
) -> tuple[datetime | None, str]:
    """The due moment, business days counted in ``calendar`` (the assignee's hours)."""
    if params.due is None:
        return None, ""
    if isinstance(params.due, str):
        return calendar.add(ctx.now, Duration.parse(params.due)), ""
    spec = ctx.regulation.fields.get(params.due.field)
    assert spec is not None  # checked when the regulation loaded
    client, deal = ctx.subjects()
    record = client if spec.namespace == "client" else deal
    anchor = record.record().get(spec.key) if record is not None else None
    if anchor is None:
        return None, f" (no due date: {spec.path} is empty)"
    try:
        moment = anchor if isinstance(anchor, datetime) else calendar.start_of_day(anchor)
        if params.due.before is not None:
            return calendar.subtract(moment, Duration.parse(params.due.before)), ""
        return calendar.add(moment, Duration.parse(params.due.after or "0 days")), ""
    except ValueError:  # a date at the calendar's edge (9999-12-31 + 2 days)
        after = params.due.after or "0 days"
        offset = f"- {params.due.before}" if params.due.before else f"+ {after}"
        return None, f" (no due date: {spec.path} {anchor} {offset} is out of range)"


def _assignee(
    assignee: str | schema.AssignSpec | None, ctx: ActionContext, client: Client | None
) -> tuple[str | None, str]:
    """The manager id to assign, and a note when none could be found."""
    if assignee is None or assignee == "responsible":
        if client is None or client.responsible is None:
            return None, " (no responsible manager: left unassigned)"
        assignee = client.responsible
    if isinstance(assignee, str) and assignee != "territory":
        manager = ctx.find_manager(assignee)
        if manager is None or not manager.active:
            state = "unknown" if manager is None else "inactive"
            return None, f" ({state} manager {assignee}: left unassigned)"
        return assignee, ""
    if client is None:
        return None, " (no client to assign by: left unassigned)"
    spec = (
        assignee
        if isinstance(assignee, schema.AssignSpec)
        else schema.AssignSpec(strategy="territory")
    )
    picked = ctx.assign(spec, client)
    if picked.manager is None:
        return None, f" ({picked.reason}: left unassigned)"
    return picked.manager.id, f" ({picked.reason})" if picked.fallback else ""


def create_task(params: schema.CreateTask, ctx: ActionContext) -> None:
    subjects = ctx.read_subjects()  # read only: ids, the responsible manager, the templates
    client, deal = subjects
    title = ctx.render("title", params.title, subjects)
    description = (
        None
        if params.description is None
        else ctx.render("description", params.description, subjects)
    )
    assignee, who_note = _assignee(params.assignee, ctx, client)
    manager = ctx.find_manager(assignee) if assignee else None
    due, due_note = _due(params, ctx, people.hours_of(manager, ctx.regulation.calendar))
    note = None
    if manager is not None:
        deputy, note = people.stand_in(
            ctx.find_manager, manager, due or ctx.now, ctx.regulation.calendar
        )
        assignee = deputy.id
        who_note += f" ({note})" if note else ""
    task = trusted(  # every value is the engine's own, of its type (rendered text is str)
        Task,
        {
            "id": ctx.record_id("task"),
            "kind": params.kind,
            "title": title,
            "description": description,
            "due": due,
            "assignee": assignee,
            "priority": params.priority,
            "status": TaskStatus.OPEN,
            "client": client.id if client else None,
            "deal": deal.id if deal else None,
            "rule": ctx.rule.id,
            "idempotency_key": ctx.key,
            "created_at": ctx.now,
            "closed_at": None,
            "regulation": ctx.regulation.release.id,
            "note": note or None,
        },
    )
    if ctx.tx.add_task(task):
        timers.plan_task(ctx.tx, task, ctx.now)
        when = f" due {due.isoformat()}" if due else ""
        ctx.effect(
            "task_created",
            f"task {task.kind} {title!r} for {assignee or 'nobody'}{when}{due_note}{who_note}",
            task=task.id,
            kind=task.kind,
            title=title,
            assignee=assignee,
            due=due,
        )


def _recipient(to: str, ctx: ActionContext, client: Client | None) -> str:
    if to == "client":
        if client is None or not client.email:
            raise ActionRefused(f"client {client.id if client else '?'} has no e-mail address")
        return client.email
    if to == "responsible":
        manager = ctx.find_manager(client.responsible) if client and client.responsible else None
        if manager is None or not manager.email:
            raise ActionRefused("the client's responsible manager has no e-mail address")
        return manager.email
    if to.startswith("contact:"):
        role = to.split(":", 1)[1]
        if client is not None:
            for contact in ctx.tx.contacts_of(client.id):
                if contact.role_in(client.id) == role and contact.email:
                    return contact.email
        raise ActionRefused(f"no contact with role {role!r} and an e-mail address")
    return to


def send_mailing(params: schema.SendMailing, ctx: ActionContext) -> None:
    client, deal = ctx.read_subjects()  # read only, as in create_task
    template = ctx.regulation.templates[params.template]
    address = _recipient(params.to, ctx, client)
    context = ctx.template_context((client, deal))
    subject = template.subject.render(context) if template.subject else ""
    text = template.text.render(context) if template.text else None
    html = template.html.render(context) if template.html else None
    mailing = trusted(  # the engine's own values, as for a task
        Mailing,
        {
            "id": ctx.record_id("mailing"),
            "template": params.template,
            "to": address,
            "channel": params.channel,
            "subject": subject,
            "text": text,
            "html": html,
            "status": MailingStatus.PENDING,
            "client": client.id if client else None,
            "deal": deal.id if deal else None,
            "rule": ctx.rule.id,
            "idempotency_key": ctx.key,
            "created_at": ctx.now,
            "regulation": ctx.regulation.release.id,
        },
    )
    if not ctx.tx.add_mailing(mailing):
        return
    ctx.enqueue(
        trusted(
            OutboxMessage,
            {
                "key": ctx.key,
                "channel": params.channel,
                "to": address,
                "subject": subject,
                "text": text,
                "html": html,
                "data": {},
                "mailing": mailing.id,
                "status": MessageStatus.PENDING,
                "attempts": 0,
                "next_attempt_at": ctx.now,
                "created_at": ctx.now,
                "sent_at": None,
                "last_error": None,
                "lease_owner": None,
                "lease_until": None,
            },
        )
    )
    ctx.effect(
        "mailing_queued",
        f"mailing {params.template} to {address}: {subject!r}",
        mailing=mailing.id,
        template=params.template,
        to=address,
    )


def move_stage(params: schema.MoveStage, ctx: ActionContext) -> None:
    _, deal = ctx.subjects()
    if deal is None:
        raise ActionRefused("the event has no deal to move")
    pipeline = ctx.regulation.pipelines[deal.pipeline]
    target = pipeline.next_stage(deal.stage) if params.to == "next" else params.to
    if target is None:
        raise ActionRefused(f"stage {deal.stage} is the last stage of {pipeline.id}")
    if target == deal.stage:
        return
    refusal = pipeline.refuse_move(deal.id, deal.stage, target)
    if refusal is not None:
        raise ActionRefused(refusal)
    ctx.store_deal(deal.model_copy(update={"stage": target}), deal)
    ctx.effect(
        "stage_moved",
        f"deal {deal.id}: {deal.stage} → {target}",
        deal=deal.id,
        before=deal.stage,
        after=target,
    )


def assign_manager(params: schema.AssignSpec, ctx: ActionContext) -> None:
    client, _ = ctx.subjects()
    if client is None:
        raise ActionRefused("the event has no client to assign")
    picked = ctx.assign(params, client)
    if picked.manager is None:
        raise ActionRefused(picked.reason)
    if picked.manager.id == client.responsible:
        return
    ctx.store_client(client.model_copy(update={"responsible": picked.manager.id}), client)
    ctx.effect(
        "manager_assigned",
        f"client {client.id}: responsible {picked.manager.id} ({picked.reason})",
        client=client.id,
        manager=picked.manager.id,
    )


def set_field(params: schema.SetField, ctx: ActionContext) -> None:
    spec = ctx.regulation.fields.get(params.field)
    assert spec is not None  # checked when the regulation loaded
    client, deal = ctx.subjects()
    value = params.value
    if isinstance(value, str) and "value" in ctx.action.templates:
        value = ctx.render("value", value)
    if value is not None:
        try:
            value = coerce(spec, value, ctx.regulation.calendar)
        except ValueError as error:
            raise ActionRefused(f"{spec.path}: {error}") from None
    if spec.path == "client.responsible" and value is not None:
        manager = ctx.find_manager(str(value))
        if manager is None or not manager.active:
            state = "unknown" if manager is None else "inactive"
            raise ActionRefused(f"{state} manager {value!r} cannot be responsible")
    record: Client | Deal | None = client if spec.namespace == "client" else deal
    if record is None:
        raise ActionRefused(f"the event has no {spec.namespace} to set {spec.path} on")
    if spec.builtin:
        new = record.model_copy(update={spec.key: value})
    else:
        new = record.model_copy(update={"fields": {**record.fields, spec.key: value}})
    if isinstance(new, Client) and isinstance(record, Client):
        ctx.store_client(new, record)
    elif isinstance(new, Deal) and isinstance(record, Deal):
        ctx.store_deal(new, record)
    ctx.effect("field_set", f"{spec.path} = {value}", field=spec.path, value=value)


def _territory_override(
    params: schema.TerritoryRef, ctx: ActionContext, source: MembershipSource
) -> None:
    client, _ = ctx.subjects()
    if client is None:
        raise ActionRefused("the event has no client")
    current = ctx.tx.memberships(client.id)
    ctx.tx.set_memberships(
        client.id, override(current, client.id, params.territory, source, ctx.now)
    )
    ctx.store_client(client, client)
    verb = "added to" if source.value == "manual_add" else "removed from"
    ctx.effect(
        "territory_override",
        f"client {client.id} {verb} {params.territory} (manual, until cleared)",
        client=client.id,
        territory=params.territory,
        source=source.value,
    )


def add_to_territory(params: schema.TerritoryRef, ctx: ActionContext) -> None:
    _territory_override(params, ctx, MembershipSource.MANUAL_ADD)


def remove_from_territory(params: schema.TerritoryRef, ctx: ActionContext) -> None:
    _territory_override(params, ctx, MembershipSource.MANUAL_REMOVE)


def clear_territory_override(params: schema.TerritoryRef, ctx: ActionContext) -> None:
    """The client's manual add or remove for the territory is dropped; its rule decides again."""
    client, _ = ctx.subjects()
    if client is None:
        raise ActionRefused("the event has no client")
    current = ctx.tx.memberships(client.id)
    cleared = clear_override(current, params.territory)
    if cleared == current:
        ctx.effect(
            "territory_override",
            f"client {client.id} has no manual override for {params.territory}; nothing to clear",
            client=client.id,
            territory=params.territory,
            source="none",
        )
        return
    ctx.tx.set_memberships(client.id, cleared)
    ctx.store_client(client, client)
    ctx.effect(
        "territory_override",
        f"client {client.id}: manual override for {params.territory} cleared "
        "(the territory's rule decides again)",
        client=client.id,
        territory=params.territory,
        source="cleared",
    )


def _segment_override(
    params: schema.SegmentRef, ctx: ActionContext, source: MembershipSource | None
) -> None:
    client, _ = ctx.subjects()
    if client is None:
        raise ActionRefused("the event has no client")
    current = ctx.tx.memberships(client.id)
    name = segmenting.key(params.segment)
    if source is None:
        updated = clear_override(current, name)
        summary = f"client {client.id}: manual override for segment {params.segment} cleared"
    else:
        updated = override(current, client.id, name, source, ctx.now)
        verb = "added to" if source is MembershipSource.MANUAL_ADD else "removed from"
        summary = f"client {client.id} {verb} segment {params.segment} (manual, until cleared)"
    ctx.tx.set_memberships(client.id, updated)
    ctx.store_client(client, client)
    ctx.effect(
        "segment_override",
        summary,
        client=client.id,
        segment=params.segment,
        source="cleared" if source is None else source.value,
    )


def add_to_segment(params: schema.SegmentRef, ctx: ActionContext) -> None:
    _segment_override(params, ctx, MembershipSource.MANUAL_ADD)


def remove_from_segment(params: schema.SegmentRef, ctx: ActionContext) -> None:
    _segment_override(params, ctx, MembershipSource.MANUAL_REMOVE)


def clear_segment_override(params: schema.SegmentRef, ctx: ActionContext) -> None:
    _segment_override(params, ctx, None)


def cancel_tasks(params: schema.CancelTasks, ctx: ActionContext) -> None:
    client, deal = ctx.subjects()
    if deal is not None:
        tasks = ctx.tx.find_tasks(deal=deal.id, status=TaskStatus.OPEN)
    elif client is not None:
        tasks = ctx.tx.find_tasks(client=client.id, status=TaskStatus.OPEN)
    else:
        raise ActionRefused("the event has no client or deal")
    needle = params.title_contains.casefold() if params.title_contains else None
    for task in tasks:
        if params.kind is not None and task.kind != params.kind:
            continue
        if params.rule is not None and task.rule != params.rule:
            continue
        if needle is not None and needle not in task.title.casefold():
            continue
        ctx.tx.put_task(
            task.model_copy(update={"status": TaskStatus.CANCELLED, "closed_at": ctx.now})
        )
        timers.cancel_task(ctx.tx, task, f"cancelled by rule {ctx.rule.id}")
        ctx.effect("task_cancelled", f"task {task.title!r} cancelled", task=task.id)


def notify(params: schema.Notify, ctx: ActionContext) -> None:
    client, deal = ctx.subjects()
    message = ctx.render("message", params.message)
    if params.to.startswith(("https://", "http://")):
        to, channel = params.to, params.channel or "webhook"
    else:
        manager_id = params.to
        if params.to == "responsible":
            if client is None or client.responsible is None:
                raise ActionRefused("the client has no responsible manager to notify")
            manager_id = client.responsible
        manager = ctx.find_manager(manager_id)
        if manager is None:
            raise ActionRefused(f"unknown manager {manager_id!r}")
        to, channel = manager.email or manager.id, params.channel or "log"
    ctx.enqueue(
        OutboxMessage(
            key=ctx.key,
            channel=channel,
            to=to,
            subject=f"{ctx.rule.id}: {ctx.event.type}",
            text=message,
            data={
                "rule": ctx.rule.id,
                "event": ctx.event.id,
                "client": client.id if client else None,
                "deal": deal.id if deal else None,
            },
            next_attempt_at=ctx.now,
            created_at=ctx.now,
        )
    )
    ctx.effect("notification_queued", f"notify {to} via {channel}: {message!r}", to=to)


def emit(params: schema.Emit, ctx: ActionContext) -> None:
    client, deal = ctx.subjects()
    rendered = {
        key: ctx.render(key, value) if isinstance(value, str) else value
        for key, value in params.data.items()
    }
    try:
        data = ctx.regulation.fields.coerce_record(
            "event", params.type, rendered, ctx.regulation.calendar
        )
    except RecordError as error:
        raise ActionRefused(f"emit {params.type}: {error.field}: {error.message}") from None
    ctx.raise_event(
        params.type,
        client=client.id if client else None,
        deal=deal.id if deal else None,
        data=data,
    )
    ctx.effect("event_emitted", f"event {params.type} raised", type=params.type)


def _json(data: Mapping[str, Any]) -> dict[str, Any]:
    """Effect data as plain JSON values, so results can be stored anywhere."""
    plain: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, datetime):
            plain[key] = value.isoformat()
        elif value is None or isinstance(value, str | int | float | bool):
            plain[key] = value
        else:
            plain[key] = str(value)
    return plain


BUILTIN_HANDLERS: dict[str, Callable[[Any, ActionContext], None]] = {
    "create_task": create_task,
    "send_mailing": send_mailing,
    "move_stage": move_stage,
    "assign_manager": assign_manager,
    "set_field": set_field,
    "add_to_territory": add_to_territory,
    "remove_from_territory": remove_from_territory,
    "clear_territory_override": clear_territory_override,
    "add_to_segment": add_to_segment,
    "remove_from_segment": remove_from_segment,
    "clear_segment_override": clear_segment_override,
    "cancel_tasks": cancel_tasks,
    "notify": notify,
    "emit": emit,
}

__all__ = ["BUILTIN_HANDLERS", "ActionContext", "ActionRefused"]
