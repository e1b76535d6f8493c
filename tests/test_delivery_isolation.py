"""A hanging webhook never stalls delivery, and Retry-After is honoured.

Real servers on 127.0.0.1: an http.server whose ``/hang`` holds the request
until the test lets it go, and aiosmtpd for e-mail (tests/localservers.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.notifiers import SmtpNotifier, WebhookNotifier
from crmrules.delivery import DEFAULT_POLICY, deliver_due
from crmrules.store import MessageStatus, OutboxMessage
from localservers import MailHandler

NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class Server:
    """``/hang`` waits for ``release``; ``/busy`` answers 429, ``/down`` 503, with Retry-After."""

    release: threading.Event = field(default_factory=threading.Event)
    retry_after: str = "120"
    hung: list[str] = field(default_factory=list)


@contextmanager
def http_server(state: Server) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path == "/hang":
                state.hung.append(self.headers["Idempotency-Key"])
                state.release.wait(60)
            status = {"/busy": 429, "/down": 503}.get(self.path, 200)
            self.send_response(status)
            if status != 200:
                self.send_header("Retry-After", state.retry_after)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def message(key: str, channel: str, to: str, minutes_ago: int) -> OutboxMessage:
    at = NOW - timedelta(minutes=minutes_ago)
    return OutboxMessage(
        key=key,
        channel=channel,
        to=to,
        subject="Счёт",
        text="Здравствуйте",
        next_attempt_at=at,
        created_at=at,
    )


def enqueue(store: MemoryStore, *messages: OutboxMessage) -> None:
    with store.transaction() as tx:
        for item in messages:
            assert tx.enqueue(item)


def stored(store: MemoryStore, key: str) -> OutboxMessage:
    with store.transaction() as tx:
        found = tx.get_message(key)
    assert found is not None
    return found


def test_a_hanging_webhook_does_not_hold_the_email(mail: tuple[MailHandler, int]) -> None:
    handler, port = mail
    state = Server()
    store = MemoryStore()
    # its own timeout is far longer than the call's; the local server needs the allow-list
    webhook = WebhookNotifier(timeout=60.0, allow=["127.0.0.1"])
    email = SmtpNotifier("127.0.0.1", port, sender="crm@example.com", timeout=10.0)
    try:
        with http_server(state) as base:
            # The webhook messages are due first: a sequential loop would wait on them.
            enqueue(
                store,
                message("w-1", "webhook", f"{base}/hang", 30),
                message("w-2", "webhook", f"{base}/hang", 29),
                message("m-1", "email", "ivan@example.com", 20),
                message("m-2", "email", "olga@example.com", 19),
            )
            report = deliver_due(store, {"webhook": webhook, "email": email}, NOW, call_timeout=0.5)
            # Delivery came back while the webhook still holds the first request.
            assert not state.release.is_set() and state.hung == ["w-1"]
            assert sorted(r.rcpt_tos[0] for r in handler.received) == [
                "ivan@example.com",
                "olga@example.com",
            ]
            state.release.set()
    finally:
        webhook.close()
    assert (report.sent, report.retried, report.failed, report.deferred) == (2, 1, 0, 1)
    hung = stored(store, "w-1")
    assert hung.status is MessageStatus.PENDING and hung.attempts == 1
    assert hung.last_error == "the webhook notifier did not answer within 0.5 s"
    assert hung.next_attempt_at == NOW + DEFAULT_POLICY.delay(1)
    waiting = stored(store, "w-2")
    assert waiting.attempts == 0 and waiting.last_error is None  # not tried: next run
    assert stored(store, "m-1").status is MessageStatus.SENT


@pytest.mark.parametrize("path", ["/busy", "/down"])
@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("120", timedelta(seconds=120)),  # longer than the first backoff (30 s): honoured
        ("5", DEFAULT_POLICY.delay(1)),  # shorter: the backoff stands
        ("99999999", DEFAULT_POLICY.max_delay),  # absurd: capped at max_delay
    ],
)
def test_retry_after_on_429_and_503_sets_the_next_attempt(
    path: str, header: str, wait: timedelta
) -> None:
    state = Server(retry_after=header)
    store = MemoryStore()
    webhook = WebhookNotifier(timeout=5.0, allow=["127.0.0.1"])  # a local test server
    try:
        with http_server(state) as base:
            enqueue(store, message("w-1", "webhook", f"{base}{path}", 1))
            report = deliver_due(store, {"webhook": webhook}, NOW)
    finally:
        webhook.close()
    assert report.retried == 1
    assert stored(store, "w-1").next_attempt_at == NOW + wait


def test_retry_after_as_an_http_date() -> None:
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    state = Server(retry_after=format_datetime(later, usegmt=True))
    store = MemoryStore()
    webhook = WebhookNotifier(timeout=5.0, allow=["127.0.0.1"])  # a local test server
    try:
        with http_server(state) as base:
            enqueue(store, message("w-1", "webhook", f"{base}/down", 1))
            deliver_due(store, {"webhook": webhook}, NOW)
    finally:
        webhook.close()
    wait = stored(store, "w-1").next_attempt_at - NOW
    assert timedelta(hours=1, minutes=59) <= wait <= timedelta(hours=2, minutes=1)
