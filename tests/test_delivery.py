"""Delivery from the outbox, against real local SMTP and HTTP servers.

Nothing under test is mocked: the SMTP notifier talks to an aiosmtpd server
and the webhook notifier to an http.server, both on 127.0.0.1 and a free
port. Every wait is bounded (notifier timeouts of two seconds, thread joins
with timeouts), and a down server is a closed port, which fails at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import MIMEPart
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from crmrules.adapters import LogNotifier, MemoryStore, SmtpNotifier, WebhookNotifier
from crmrules.delivery import DeliveryError, DeliveryReport, RetryPolicy, deliver_due
from crmrules.store import MessageStatus, OutboxMessage
from localservers import MailHandler, free_port, smtp_server

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
FIRST_DELAY = RetryPolicy().first_delay

SUBJECT = "Ваш заказ №42 готов"
TEXT = "Здравствуйте, Иван Петрович!\nВаш заказ готов к выдаче.\n"
HTML = "<p>Здравствуйте, <b>Иван Петрович</b>!</p>\n"


# -- helpers


def message(key: str, channel: str, to: str, **fields: Any) -> OutboxMessage:
    return OutboxMessage(
        key=key, channel=channel, to=to, next_attempt_at=NOW, created_at=NOW, **fields
    )


def enqueue(store: MemoryStore, *messages: OutboxMessage) -> None:
    with store.transaction() as tx:
        for m in messages:
            assert tx.enqueue(m)


def stored(store: MemoryStore, key: str) -> OutboxMessage:
    with store.transaction() as tx:
        found = tx.get_message(key)
    assert found is not None
    return found


def smtp_notifier(port: int, **options: Any) -> SmtpNotifier:
    return SmtpNotifier(
        "127.0.0.1",
        port,
        sender="Отдел продаж <sales@example.com>",
        timeout=2.0,
        local_hostname="localhost",
        **options,
    )


def text_of(part: MIMEPart) -> str:
    """A text part's content with LF line ends.

    Non-ASCII text goes base64-encoded in its canonical MIME form, with CRLF
    line ends (RFC 2045); those are part of the encoding, not of the text.
    """
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def expected_message_id(key: str) -> str:
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@crmrules.local>"


# -- SMTP


def test_smtp_delivers_cyrillic_with_a_deterministic_message_id(
    mail: tuple[MailHandler, int],
) -> None:
    handler, port = mail
    store = MemoryStore()
    enqueue(
        store, message("m-1", "email", "Иван Петров <ivan@example.com>", subject=SUBJECT, text=TEXT)
    )

    report = deliver_due(store, {"email": smtp_notifier(port)}, NOW)

    assert (report.sent, report.retried, report.failed) == (1, 0, 0)
    [got] = handler.received
    assert got.mail_from == "sales@example.com"
    assert got.rcpt_tos == ["ivan@example.com"]
    parsed = got.parsed()
    assert parsed["Subject"] == SUBJECT
    assert parsed["Message-ID"] == expected_message_id("m-1")
    assert parsed["To"].addresses[0].display_name == "Иван Петров"
    assert parsed["From"].addresses[0].display_name == "Отдел продаж"
    assert parsed.get_content_type() == "text/plain"
    assert text_of(parsed) == TEXT
    assert parsed["Date"].datetime == NOW
    sent = stored(store, "m-1")
    assert sent.status is MessageStatus.SENT
    assert sent.sent_at == NOW
    assert sent.attempts == 1


def test_smtp_text_and_html_make_multipart_alternative(mail: tuple[MailHandler, int]) -> None:
    handler, port = mail
    store = MemoryStore()
    enqueue(
        store, message("m-2", "email", "ivan@example.com", subject=SUBJECT, text=TEXT, html=HTML)
    )

    deliver_due(store, {"email": smtp_notifier(port)}, NOW)

    parsed = handler.received[0].parsed()
    assert parsed.get_content_type() == "multipart/alternative"
    plain = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert plain is not None and text_of(plain) == TEXT
    assert html is not None and text_of(html) == HTML


def test_smtp_subject_with_line_breaks_stays_one_header(mail: tuple[MailHandler, int]) -> None:
    handler, port = mail
    store = MemoryStore()
    enqueue(
        store, message("m-3", "email", "ivan@example.com", subject="Привет\r\nBcc: x@y", text=".")
    )

    deliver_due(store, {"email": smtp_notifier(port)}, NOW)

    parsed = handler.received[0].parsed()
    assert parsed["Subject"] == "Привет Bcc: x@y"
    assert parsed["Bcc"] is None


def test_smtp_same_key_gives_the_same_message_id_in_two_stores(
    mail: tuple[MailHandler, int],
) -> None:
    handler, port = mail
    notifiers = {"email": smtp_notifier(port)}
    for _ in range(2):
        store = MemoryStore()
        enqueue(store, message("same-key", "email", "ivan@example.com", subject=SUBJECT, text=TEXT))
        assert deliver_due(store, notifiers, NOW).sent == 1

    ids = [r.parsed()["Message-ID"] for r in handler.received]
    assert ids == [expected_message_id("same-key")] * 2


def test_smtp_server_down_then_back() -> None:
    port = free_port()  # nothing listens yet
    store = MemoryStore()
    enqueue(store, message("m-4", "email", "ivan@example.com", subject=SUBJECT, text=TEXT))
    notifiers = {"email": smtp_notifier(port)}

    report = deliver_due(store, notifiers, NOW)

    assert (report.sent, report.retried, report.failed) == (0, 1, 0)
    pending = stored(store, "m-4")
    assert pending.status is MessageStatus.PENDING
    assert pending.attempts == 1
    assert pending.next_attempt_at == NOW + FIRST_DELAY
    assert pending.last_error is not None and "ConnectionRefusedError" in pending.last_error
    assert report.errors == [("m-4", pending.last_error)]

    # Not due again before the delay has passed.
    early = deliver_due(store, notifiers, NOW + FIRST_DELAY - timedelta(seconds=1))
    assert (early.sent, early.retried, early.failed) == (0, 0, 0)

    handler = MailHandler()
    with smtp_server(handler, port):
        report = deliver_due(store, notifiers, NOW + FIRST_DELAY)
        again = deliver_due(store, notifiers, NOW + FIRST_DELAY * 10)

    assert report.sent == 1
    assert again.sent == 0
    assert len(handler.received) == 1
    assert handler.received[0].parsed()["Subject"] == SUBJECT
    sent = stored(store, "m-4")
    assert sent.status is MessageStatus.SENT
    assert sent.attempts == 2
    assert sent.sent_at == NOW + FIRST_DELAY
    assert sent.last_error is None


def test_smtp_refused_recipient_fails_permanently(mail: tuple[MailHandler, int]) -> None:
    handler, port = mail
    store = MemoryStore()
    enqueue(store, message("m-5", "email", "nobody@example.com", subject=SUBJECT, text=TEXT))

    report = deliver_due(store, {"email": smtp_notifier(port)}, NOW)

    assert (report.sent, report.retried, report.failed) == (0, 0, 1)
    failed = stored(store, "m-5")
    assert failed.status is MessageStatus.FAILED
    assert failed.attempts == 1
    assert failed.last_error is not None and "550" in failed.last_error
    assert handler.received == []
    assert deliver_due(store, {"email": smtp_notifier(port)}, NOW + timedelta(days=1)).sent == 0


def test_smtp_gives_up_after_max_attempts() -> None:
    port = free_port()
    store = MemoryStore()
    enqueue(store, message("m-6", "email", "ivan@example.com", text=TEXT))
    policy = RetryPolicy(max_attempts=3)
    notifiers = {"email": smtp_notifier(port)}

    now = NOW
    for attempt in (1, 2):
        assert deliver_due(store, notifiers, now, policy=policy).retried == 1
        current = stored(store, "m-6")
        assert current.attempts == attempt
        assert current.next_attempt_at == now + policy.delay(attempt)
        now = current.next_attempt_at
    report = deliver_due(store, notifiers, now, policy=policy)

    assert (report.sent, report.retried, report.failed) == (0, 0, 1)
    failed = stored(store, "m-6")
    assert failed.status is MessageStatus.FAILED
    assert failed.attempts == 3


def test_smtp_password_never_appears_in_errors_or_logs(
    mail: tuple[MailHandler, int], caplog: pytest.LogCaptureFixture
) -> None:
    # aiosmtpd offers no AUTH here, so login fails after connecting.
    _, port = mail
    store = MemoryStore()
    enqueue(store, message("m-7", "email", "ivan@example.com", text=TEXT))
    notifier = smtp_notifier(port, username="robot", password="s3cret-Пароль")
    caplog.set_level(logging.DEBUG)

    report = deliver_due(store, {"email": notifier}, NOW)

    assert report.retried == 1
    error = stored(store, "m-7").last_error
    assert error is not None and "AUTH" in error
    assert "s3cret" not in error
    assert "s3cret" not in caplog.text
    assert "s3cret" not in repr(notifier)


# -- a real HTTP server


@dataclass
class Hook:
    """What the webhook server answers (these statuses first, then 200) and what it got."""

    statuses: deque[int] = field(default_factory=deque)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def hook_handler(hook: Hook) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with hook.lock:
                hook.requests.append((dict(self.headers.items()), body))
                status = hook.statuses.popleft() if hook.statuses else 200
            reply = json.dumps({"status": status}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


@contextmanager
def http_server(hook: Hook, port: int = 0) -> Iterator[str]:
    """Serves on 127.0.0.1 in a thread; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", port), hook_handler(hook))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def webhook() -> Iterator[WebhookNotifier]:
    # The local test server is on loopback: only the host's allow-list admits it.
    notifier = WebhookNotifier(
        timeout=2.0, headers={"Authorization": "Bearer token"}, allow=["127.0.0.1"]
    )
    try:
        yield notifier
    finally:
        notifier.close()


def test_webhook_posts_json_with_an_idempotency_key(webhook: WebhookNotifier) -> None:
    hook = Hook()
    store = MemoryStore()
    with http_server(hook) as base:
        url = f"{base}/hooks/crm"
        enqueue(
            store,
            message("w-1", "webhook", url, subject=SUBJECT, text=TEXT, data={"deal": "D-1"}),
        )
        report = deliver_due(store, {"webhook": webhook}, NOW)

    assert report.sent == 1
    [(headers, body)] = hook.requests
    assert headers["Idempotency-Key"] == "w-1"
    assert headers["Authorization"] == "Bearer token"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {
        "key": "w-1",
        "to": url,
        "subject": SUBJECT,
        "text": TEXT,
        "html": None,
        "data": {"deal": "D-1"},
    }
    assert stored(store, "w-1").status is MessageStatus.SENT


def test_webhook_500_is_retried_then_sent(webhook: WebhookNotifier) -> None:
    hook = Hook(statuses=deque([500, 503]))
    store = MemoryStore()
    with http_server(hook) as base:
        enqueue(store, message("w-2", "webhook", base, text="x"))
        first = deliver_due(store, {"webhook": webhook}, NOW)
        second = deliver_due(store, {"webhook": webhook}, NOW + FIRST_DELAY)
        third = deliver_due(store, {"webhook": webhook}, NOW + FIRST_DELAY * 3)

    assert (first.retried, second.retried, third.sent) == (1, 1, 1)
    assert [h["Idempotency-Key"] for h, _ in hook.requests] == ["w-2"] * 3
    sent = stored(store, "w-2")
    assert sent.status is MessageStatus.SENT
    assert sent.attempts == 3


def test_webhook_server_down_then_back(webhook: WebhookNotifier) -> None:
    with http_server(Hook()) as base:
        pass  # learn a port, then nothing listens on it
    store = MemoryStore()
    enqueue(store, message("w-3", "webhook", f"{base}/in", text="x"))

    report = deliver_due(store, {"webhook": webhook}, NOW)

    assert report.retried == 1
    pending = stored(store, "w-3")
    assert pending.status is MessageStatus.PENDING
    assert pending.attempts == 1
    assert pending.next_attempt_at == NOW + FIRST_DELAY
    assert pending.last_error is not None and "unreachable" in pending.last_error

    hook = Hook()
    port = int(base.rsplit(":", 1)[1])
    with http_server(hook, port):
        report = deliver_due(store, {"webhook": webhook}, NOW + FIRST_DELAY)

    assert report.sent == 1
    assert len(hook.requests) == 1
    assert stored(store, "w-3").status is MessageStatus.SENT


def test_webhook_400_fails_permanently(webhook: WebhookNotifier) -> None:
    hook = Hook(statuses=deque([400]))
    store = MemoryStore()
    with http_server(hook) as base:
        enqueue(store, message("w-4", "webhook", base, text="x"))
        report = deliver_due(store, {"webhook": webhook}, NOW)

    assert report.failed == 1
    failed = stored(store, "w-4")
    assert failed.status is MessageStatus.FAILED
    assert failed.attempts == 1
    assert failed.last_error is not None and "HTTP 400" in failed.last_error


def test_webhook_429_is_retried(webhook: WebhookNotifier) -> None:
    hook = Hook(statuses=deque([429]))
    store = MemoryStore()
    with http_server(hook) as base:
        enqueue(store, message("w-5", "webhook", base, text="x"))
        first = deliver_due(store, {"webhook": webhook}, NOW)
        assert stored(store, "w-5").status is MessageStatus.PENDING
        second = deliver_due(store, {"webhook": webhook}, NOW + FIRST_DELAY)

    assert (first.retried, second.sent) == (1, 1)
    assert stored(store, "w-5").status is MessageStatus.SENT


@pytest.mark.parametrize("to", ["ftp://example.com/x", "mailto:a@example.com", "http://", "no url"])
def test_webhook_refuses_non_http_addresses(webhook: WebhookNotifier, to: str) -> None:
    store = MemoryStore()
    enqueue(store, message("w-6", "webhook", to, text="x"))

    report = deliver_due(store, {"webhook": webhook}, NOW)

    assert report.failed == 1
    assert stored(store, "w-6").status is MessageStatus.FAILED


# -- log notifier, routing, policy


def test_log_notifier_writes_one_line(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    enqueue(
        store, message("l-1", "log", "manager-7", subject="Новая сделка\nD-1", text="Позвоните")
    )
    caplog.set_level(logging.INFO, logger="crmrules.notifications")

    report = deliver_due(store, {"log": LogNotifier()}, NOW)

    assert report.sent == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "crmrules.notifications"]
    assert lines == ["notification l-1 to manager-7: Новая сделка D-1 | Позвоните"]


def test_channel_without_a_notifier_stays_pending() -> None:
    store = MemoryStore()
    enqueue(store, message("s-1", "sms", "+79990000000", text="x"))

    report = deliver_due(store, {"log": LogNotifier()}, NOW)

    assert (report.sent, report.retried, report.failed) == (0, 1, 0)
    pending = stored(store, "s-1")
    assert pending.status is MessageStatus.PENDING
    assert pending.attempts == 0  # nothing was tried
    assert pending.last_error == "no notifier for channel 'sms'"
    assert pending.next_attempt_at == NOW + FIRST_DELAY

    later = deliver_due(store, {"sms": LogNotifier(name="sms")}, NOW + FIRST_DELAY)
    assert later.sent == 1


class Broken:
    """A notifier with a bug: raises something other than DeliveryError."""

    name = "broken"

    def send(self, message: OutboxMessage) -> None:
        raise RuntimeError("boom")


def test_one_broken_notifier_does_not_stop_the_others() -> None:
    store = MemoryStore()
    enqueue(
        store,
        message("b-1", "broken", "x", text="x"),
        message("b-2", "log", "y", text="y"),
    )

    report = deliver_due(store, {"broken": Broken(), "log": LogNotifier()}, NOW)

    assert (report.sent, report.retried, report.failed) == (1, 1, 0)
    assert report.errors == [("b-1", "RuntimeError: boom")]
    assert stored(store, "b-1").status is MessageStatus.PENDING
    assert stored(store, "b-2").status is MessageStatus.SENT


def test_a_permanent_delivery_error_is_not_retried() -> None:
    class Refusing:
        name = "refusing"

        def send(self, message: OutboxMessage) -> None:
            raise DeliveryError("no such chat", permanent=True)

    store = MemoryStore()
    enqueue(store, message("p-1", "refusing", "x", text="x"))

    report = deliver_due(store, {"refusing": Refusing()}, NOW)

    assert report.failed == 1
    assert stored(store, "p-1").last_error == "no such chat"


def test_limit_bounds_one_run() -> None:
    store = MemoryStore()
    enqueue(store, *(message(f"k-{i}", "log", "x", text="x") for i in range(5)))

    assert deliver_due(store, {"log": LogNotifier()}, NOW, limit=3).sent == 3
    assert deliver_due(store, {"log": LogNotifier()}, NOW, limit=3).sent == 2


def test_retry_policy_backs_off_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy()
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [
        timedelta(seconds=30),
        timedelta(seconds=60),
        timedelta(seconds=120),
        timedelta(seconds=240),
    ]
    assert policy.delay(20) == timedelta(hours=6)
    assert policy.delay(100_000) == timedelta(hours=6)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_report_is_one_line() -> None:
    report = DeliveryReport(sent=2, retried=1, failed=0, errors=[("k", "down")])
    assert str(report) == "delivery: 2 sent, 1 to retry, 0 failed"


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        deliver_due(MemoryStore(), {}, datetime(2025, 1, 1))
