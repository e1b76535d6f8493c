"""Rule runs that fail: isolated, recorded, listed and run again.

A rule is the unit of failure. Its actions run inside a savepoint of the
call's transaction; if one raises (a template meets data it cannot handle, a
value does not fit its field, a plugin action has a bug), ``isolate`` undoes
that rule's writes and what it queued, records a ``failed`` outcome with a
reason an admin can read, and the host's change and the other rules go on.
A rule with ``on_error: refuse`` refuses the whole call instead.

Errors of the database itself (``StoreError``) and races (``ConflictError``)
are not rule failures: they go up and roll the whole call back.

Failed runs are kept (``Transaction.put_failure``), listed by
``Engine.failures`` and ``crmrules failures``, and ``retry_failed`` runs
each again on its event, once: the retry marks the failure resolved in the
same transaction as the rule's effects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crmrules.errors import CrmRulesError, StoreError
from crmrules.model import Event
from crmrules.result import EventRecord, Result
from crmrules.store import ConflictError, FailureStatus, RuleFailure, TimerStatus, Transaction

if TYPE_CHECKING:
    from crmrules.engine import Engine
    from crmrules.rules.regulation import Rule
    from crmrules.run import Run

log = logging.getLogger("crmrules.engine")

#: Errors that are the database's, not a rule's: they roll the whole call back.
INFRASTRUCTURE: tuple[type[BaseException], ...] = (StoreError, ConflictError)
#: Events of timers are named "timer:<timer key>".
TIMER_EVENT = "timer:"
#: A reason is cut to this many characters (an error can quote a whole value).
REASON_LIMIT = 500


@dataclass
class Step:
    """Where in a rule the work is: the action running now (None before the first)."""

    action: str | None = None
    index: int | None = None


def describe(error: BaseException, origin: str = "the action's code") -> str:
    """An error as one line an admin can read: crmrules' own as they are, no class names.

    Errors from other code (a plugin action's bug, a record that cannot be
    read) keep their first line and point at the host's log, where the
    traceback is.
    """
    if isinstance(error, CrmRulesError):
        text = " ".join(str(error).split())
    else:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        message = "; ".join(lines[:2])
        text = (
            f"{origin} failed: {message} (the host's log has the details)"
            if message
            else f"{origin} failed without a message (the host's log has the details)"
        )
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"


def mark(run: Run) -> tuple[int, ...]:
    """Where the run is: what ``restore`` goes back to when a rule's work is undone."""
    result = run.result
    return (
        len(result.events),
        len(result.outcomes),
        len(result.effects),
        len(result.errors),
        len(run.audit),
        len(run.queue),
        len(run.failures),
    )


def restore(run: Run, where: tuple[int, ...], event: Event, depth: int) -> None:
    """Forget what the run recorded and queued after ``where`` (the store undid its writes)."""
    events, outcomes, effects, errors, audit, queue, failed = where
    result = run.result
    del result.events[events:], result.outcomes[outcomes:], result.effects[effects:]
    del result.errors[errors:], run.audit[audit:], run.queue[queue:], run.failures[failed:]
    if not any(record.id == event.id for record in result.events):
        result.events.append(EventRecord(event.id, event.type, depth, event.client, event.deal))


def _where(step: Step) -> str:
    if step.action is None or step.index is None:
        return "before its actions"
    return f"action {step.index + 1} ({step.action})"


def failure_key(event_id: str, rule_id: str) -> str:
    return f"{event_id}|{rule_id}"


def isolate(
    run: Run,
    event: Event,
    depth: int,
    rule: Rule,
    work: Callable[[Step], None],
    *,
    refuse: bool = True,
) -> bool:
    """Run ``work`` (one rule on one event) in a savepoint; False if it failed and was undone.

    Only the rule's own writes and what it queued are undone; the failure is
    recorded in the run. ``on_error: refuse`` raises ActionError instead,
    unless ``refuse`` is False (a schedule refuses one client, not all).
    """
    step = Step()
    if run.optimistic:  # the caller undoes the batch if anything fails, and isolates then
        work(step)
        return True
    from crmrules.engine import ActionError

    before = mark(run)
    try:
        with run.tx.savepoint():
            work(step)
    except INFRASTRUCTURE:
        raise
    except Exception as error:
        restore(run, before, event, depth)
        if isinstance(error, ActionError):  # a refusing rule inside (a schedule's client)
            reason = f"{error.detail}; the rule has on_error: refuse, so this run was refused"
        else:
            reason = f"{_where(step)}: {describe(error)}"
        log.warning("rule %s failed on event %s: %s", rule.id, event.id, reason, exc_info=error)
        if not isinstance(error, ActionError):  # the hook heard of an ActionError already
            run.setting.plugins.action_failed(step.action or "", rule.id, event, error, reason)
        if refuse and rule.on_error == "refuse":
            raise ActionError(rule.id, step.action or "", event.id, reason) from error
        run.outcome(event, rule, "failed", reason)
        run.result.errors.append(f"rule {rule.id} failed on event {event.id}: {reason}")
        run.failures.append(
            RuleFailure(
                key=failure_key(event.id, rule.id),
                event_id=event.id,
                event=event.model_dump(),
                rule=rule.id,
                depth=depth,
                action=step.action,
                action_index=step.index,
                reason=reason,
                failed_at=run.now,
            )
        )
        return False
    return True


def save(tx: Transaction, failures: list[RuleFailure]) -> None:
    """Keep the run's failures; a rule failing again on the same event counts one more attempt."""
    for failure in failures:
        earlier = tx.lock_failure(failure.key)
        attempts = 1 if earlier is None else earlier.attempts + 1
        tx.put_failure(failure.model_copy(update={"attempts": attempts}))


def retry_failed(engine: Engine, keys: list[str] | None = None) -> list[Result]:
    """Run every failed rule run (or those in ``keys``) again; one Result per run retried."""
    with engine.store.transaction() as tx:
        failed = tx.find_failures(status=FailureStatus.FAILED)
    results = []
    for failure in failed:
        if keys is not None and failure.key not in keys:
            continue
        result = _retry(engine, failure)
        if result is not None:
            results.append(result)
    return results


class _Settled(Exception):
    """Another process retried the failure meanwhile."""


def _settle_timer(run: Run, failure: RuleFailure) -> None:
    """A timer FAILED because this rule run failed has fired now that the run succeeded."""
    if not failure.event_id.startswith(TIMER_EVENT):
        return
    timer = run.tx.lock_timer(failure.event_id[len(TIMER_EVENT) :])
    if timer is not None and timer.status is TimerStatus.FAILED:
        note = f"fired when its failed rule was run again at {run.now.isoformat()}"
        fired = {"status": TimerStatus.FIRED, "fired_at": run.now, "note": note}
        run.tx.put_timer(timer.model_copy(update=fired))


def _retry(engine: Engine, failure: RuleFailure) -> Result | None:
    event = Event.model_validate(failure.event)

    def body(run: Run) -> None:
        current = run.tx.lock_failure(failure.key)
        if current is None or current.status is not FailureStatus.FAILED:
            raise _Settled()
        rule = engine.rules_by_id.get(failure.rule) or engine.plan_rule_by_id(failure.rule)
        if rule is None:
            note = f"rule {failure.rule} is no longer in the regulation"
        else:
            run.result.events.append(
                EventRecord(event.id, event.type, failure.depth, event.client, event.deal)
            )
            run.consider(event, failure.depth, rule)
            while run.queue:  # what the rule's changes raised, as in a cascade
                pending = run.queue.pop(0)
                run.process(pending.event, pending.depth)
            if any(f.key == failure.key for f in run.failures):
                return  # failed again: save() counts the attempt
            outcome = next((o for o in run.result.outcomes if o.rule == rule.id), None)
            note = "run again: " + (outcome.describe() if outcome else "nothing to do")
        run.tx.put_failure(
            current.model_copy(
                update={"status": FailureStatus.RESOLVED, "resolved_at": run.now, "note": note}
            )
        )
        _settle_timer(run, failure)

    try:
        return engine.transact(
            f"retry:{failure.key}:{failure.attempts}", (event.client, event.deal), body
        )
    except _Settled:
        return None


__all__ = ["INFRASTRUCTURE", "Step", "describe", "failure_key", "isolate", "retry_failed", "save"]
