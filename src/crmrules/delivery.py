"""Delivery: notifiers send what the engine put in the outbox.

The engine writes an ``OutboxMessage`` in the same transaction as the rest
of an event's effects, so a rolled-back event sends nothing. ``deliver_due``
sends the due messages afterwards through the notifier named by each
message's ``channel``, and records the outcome: sent, retried later with
exponential backoff, or failed for good. A notifier that is down only
delays its messages; they stay in the outbox.

Several delivery processes share the outbox: each claims the messages it
sends with a lease (``claim_messages``, SKIP LOCKED on PostgreSQL), renewed
by a heartbeat while it sends (crmrules.leases), so in the normal case each
message is sent by one process once. A sender that dies leaves its leases to
expire, and another process sends those messages then.

Delivery is at least once, not exactly once. The notifier runs outside any
transaction (a slow SMTP server must not hold a database transaction open),
so a crash between a successful send and the status write sends the message
again on the next run. Notifiers make that duplicate harmless downstream
with the message's idempotency key: the SMTP notifier derives the
Message-ID from it and the webhook notifier sends it as ``Idempotency-Key``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from crmrules.errors import CrmRulesError
from crmrules.leases import DEFAULT_LEASE, Heartbeat, check_lease, worker_name
from crmrules.model import MailingStatus
from crmrules.store import MessageStatus, OutboxMessage, Store

log = logging.getLogger("crmrules.delivery")


class DeliveryError(CrmRulesError):
    """A notifier could not deliver a message.

    ``permanent`` means retrying cannot help (a refused recipient, a
    malformed address, an HTTP 4xx): the message is marked failed at once.
    """

    def __init__(
        self, message: str, permanent: bool = False, retry_after: timedelta | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        #: how long the receiver asked us to wait (HTTP Retry-After on 429 and 503)
        self.retry_after = retry_after


class Notifier(Protocol):
    """Sends one outbox message; named by the ``channel`` of the messages it sends."""

    name: str

    def send(self, message: OutboxMessage) -> None:
        """Deliver the message or raise (``DeliveryError`` says whether to retry)."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry: exponential backoff with a cap.

    There is no jitter on purpose: delays are a pure function of the attempt
    count, so tests and simulated clocks can say exactly when a message is
    due again. A host that runs many workers against one busy endpoint can
    add jitter in its own scheduler.
    """

    max_attempts: int = 8
    first_delay: timedelta = timedelta(seconds=30)
    factor: float = 2.0
    max_delay: timedelta = timedelta(hours=6)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.first_delay < timedelta(0):
            raise ValueError("first_delay must not be negative")
        if self.factor < 1:
            raise ValueError("factor must be at least 1")
        if self.max_delay < self.first_delay:
            raise ValueError("max_delay must not be shorter than first_delay")

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1 → first_delay)."""
        cap = self.max_delay.total_seconds()
        try:
            seconds = self.first_delay.total_seconds() * self.factor ** max(attempts - 1, 0)
        except OverflowError:
            return self.max_delay
        return self.max_delay if seconds >= cap else timedelta(seconds=seconds)


DEFAULT_POLICY = RetryPolicy()


#: How long one notifier call may take before delivery gives up on it (it is retried later).
DEFAULT_CALL_TIMEOUT = 60.0


@dataclass
class DeliveryReport:
    """What one ``deliver_due`` run did.

    ``errors`` has one ``(key, error)`` per message not sent in this run,
    whether it will be retried or has failed for good. ``deferred`` counts
    the messages not tried because their channel hung on an earlier one;
    they stay due for the next run.
    """

    sent: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"delivery: {self.sent} sent, {self.retried} to retry, {self.failed} failed"
        return text + (f", {self.deferred} deferred" if self.deferred else "")


def deliver_due(
    store: Store,
    notifiers: Mapping[str, Notifier],
    now: datetime,
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    limit: int = 100,
    call_timeout: float = DEFAULT_CALL_TIMEOUT,
    worker: str | None = None,
    lease: timedelta = DEFAULT_LEASE,
) -> DeliveryReport:
    """Send up to ``limit`` due outbox messages and record each outcome.

    Claims the due messages for ``worker`` (default ``host:pid``) with a
    ``lease`` in one short transaction (renewed while it sends), sends each
    outside any transaction, and records each outcome in a transaction of its own, so a
    crash loses at most the status of the message being sent (which is then
    sent again: see the module docstring). Never raises because a notifier
    failed; store errors do propagate.

    Channels are independent: each channel's messages go out in order in a
    thread of its own, so a hanging webhook does not hold the e-mail. A
    notifier call that takes longer than ``call_timeout`` seconds is given
    up (the message is retried later, like any failure) and the rest of that
    channel waits for the next run.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if call_timeout <= 0:
        raise ValueError("call_timeout must be positive")
    check_lease(lease)
    worker = worker or worker_name()
    with store.transaction() as tx:
        due = tx.claim_messages(now, limit, worker, now + lease)
    by_channel: dict[str, list[OutboxMessage]] = {}
    for message in due:
        by_channel.setdefault(message.channel, []).append(message)

    report = DeliveryReport()
    started = _clock()
    lock = threading.Lock()
    raised: list[BaseException] = []

    def run(channel: str, messages: list[OutboxMessage]) -> None:
        try:
            sender = _Channel(store, notifiers.get(channel), now, policy, call_timeout)
            sender.deliver(messages, report, lock)
        except BaseException as error:  # a store error: re-raised below, in the caller
            raised.append(error)

    threads = [
        threading.Thread(target=run, args=item, name=f"crmrules-deliver-{item[0]}", daemon=True)
        for item in by_channel.items()
    ]
    with Heartbeat(store, worker, lease, lambda: now + (_clock() - started)):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if raised:
        raise raised[0]
    if due:
        log.info("%s", report)
    return report


def _clock() -> datetime:
    return datetime.now(UTC)


class _Timeout(Exception):
    """The notifier did not return within the call timeout."""


@dataclass
class _Channel:
    """Delivers one channel's messages in order; stops at a call that hangs."""

    store: Store
    notifier: Notifier | None
    now: datetime
    policy: RetryPolicy
    call_timeout: float

    def deliver(
        self, messages: list[OutboxMessage], report: DeliveryReport, lock: threading.Lock
    ) -> None:
        for position, message in enumerate(messages):
            hung = self.one(message, report, lock)
            if hung:
                waiting = len(messages) - position - 1
                with lock:
                    report.deferred += waiting
                if waiting:
                    log.warning(
                        "channel %s hung; %d more message(s) wait for the next run",
                        message.channel,
                        waiting,
                    )
                return

    def one(self, message: OutboxMessage, report: DeliveryReport, lock: threading.Lock) -> bool:
        """Send one message and record the outcome; True if the call hung."""
        if self.notifier is None:
            error = f"no notifier for channel {message.channel!r}"
            _record(self.store, message, _unroutable(message, error, self.now, self.policy))
            log.warning("message %s not sent: %s; will retry", message.key, error)
            with lock:
                report.retried += 1
                report.errors.append((message.key, error))
            return False
        problem = _call(self.notifier, message, self.call_timeout)
        if problem is None:
            sent = message.model_copy(
                update={
                    "status": MessageStatus.SENT,
                    "attempts": message.attempts + 1,
                    "sent_at": self.now,
                    "last_error": None,
                }
            )
            _record(self.store, message, sent)
            with lock:
                report.sent += 1
            log.info("message %s sent via %s", message.key, message.channel)
            return False
        if isinstance(problem, _Timeout):
            error = f"the {message.channel} notifier did not answer within {self.call_timeout:g} s"
        else:
            error = _describe(problem)
        permanent = isinstance(problem, DeliveryError) and problem.permanent
        wait = problem.retry_after if isinstance(problem, DeliveryError) else None
        outcome = _failed(message, error, permanent, self.now, self.policy, wait)
        _record(self.store, message, outcome)
        with lock:
            report.errors.append((message.key, error))
            if outcome.status is MessageStatus.FAILED:
                report.failed += 1
            else:
                report.retried += 1
        if outcome.status is MessageStatus.FAILED:
            log.error(
                "message %s via %s failed after %d attempt(s): %s",
                message.key,
                message.channel,
                outcome.attempts,
                error,
            )
        else:
            log.warning(
                "message %s via %s not sent (attempt %d): %s; retry at %s",
                message.key,
                message.channel,
                outcome.attempts,
                error,
                outcome.next_attempt_at.isoformat(),
            )
        return isinstance(problem, _Timeout)


def _call(notifier: Notifier, message: OutboxMessage, timeout: float) -> Exception | None:
    """``notifier.send(message)`` with a deadline: its exception, a _Timeout, or None.

    The call runs in a daemon thread; one that hangs past the deadline is
    left behind (a thread cannot be killed) and its late outcome ignored: the
    message is retried, and the idempotency key makes a late success harmless.
    """
    outcome: list[Exception | None] = []

    def send() -> None:
        try:
            notifier.send(message)
        except Exception as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=send, name=f"crmrules-send-{message.key}", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return _Timeout()
    return outcome[0]


def _describe(exc: Exception) -> str:
    """One line for ``last_error``: our own errors as they are, others with their type."""
    text = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:1000]


def _failed(
    message: OutboxMessage,
    error: str,
    permanent: bool,
    now: datetime,
    policy: RetryPolicy,
    retry_after: timedelta | None = None,
) -> OutboxMessage:
    """The message after a failed attempt; a receiver's Retry-After is honoured.

    The next attempt waits the backoff delay or the Retry-After the receiver
    asked for, whichever is longer, but never more than the policy's
    ``max_delay`` (so a wrong header cannot park a message for ever).
    """
    attempts = message.attempts + 1
    give_up = permanent or attempts >= policy.max_attempts
    delay = policy.delay(attempts)
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.max_delay))
    return message.model_copy(
        update={
            "status": MessageStatus.FAILED if give_up else MessageStatus.PENDING,
            "attempts": attempts,
            "last_error": error,
            "next_attempt_at": message.next_attempt_at if give_up else now + delay,
        }
    )


def _unroutable(
    message: OutboxMessage, error: str, now: datetime, policy: RetryPolicy
) -> OutboxMessage:
    """No notifier for the channel: nothing was tried, so no attempt is counted.

    The message waits (first_delay at a time) until the host registers a
    notifier for its channel; it never fails for this reason alone.
    """
    return message.model_copy(
        update={"last_error": error, "next_attempt_at": now + policy.first_delay}
    )


def _record(store: Store, read: OutboxMessage, outcome: OutboxMessage) -> None:
    """Write the outcome unless someone else settled the message meanwhile.

    Two workers may send the same message (the first one's lease ended
    while it sent); the one that finishes second must not turn the other's
    SENT back into PENDING. The lease ends with the outcome.
    """
    with store.transaction() as tx:
        current = tx.get_message(read.key)
        if current is None or current.status is not MessageStatus.PENDING:
            log.info("message %s was settled by another worker; outcome not recorded", read.key)
            return
        tx.put_message(outcome.model_copy(update={"lease_owner": None, "lease_until": None}))
        mailing = tx.get_mailing(outcome.mailing) if outcome.mailing else None
        if mailing is not None and outcome.status is not MessageStatus.PENDING:
            status = MailingStatus(outcome.status.value)
            tx.put_mailing(mailing.model_copy(update={"status": status}))


__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_POLICY",
    "DeliveryError",
    "DeliveryReport",
    "Notifier",
    "RetryPolicy",
    "deliver_due",
]
