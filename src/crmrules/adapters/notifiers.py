"""The built-in notifiers: log, SMTP e-mail, and webhooks.

Each turns one outbox message into one delivery and raises ``DeliveryError``
when it cannot, saying whether a retry may help. Each passes the message's
idempotency key downstream (SMTP Message-ID, HTTP Idempotency-Key header), so
the duplicate that at-least-once delivery may produce can be recognised.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
import ssl
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, getaddresses, parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from crmrules.delivery import DeliveryError
from crmrules.destinations import DestinationRefused, Destinations
from crmrules.errors import require
from crmrules.store import OutboxMessage

if TYPE_CHECKING:  # httpx is the optional extra crmrules[webhook], imported when used
    import httpx

# 7bit transfer encoding: non-ASCII bodies go as base64 and headers as
# RFC 2047 words, so any server can carry them, with or without 8BITMIME.
_EMAIL_POLICY = SMTP.clone(cte_type="7bit")


def _one_line(text: str) -> str:
    """Join lines with spaces: a header or log line must never span lines."""
    return " ".join(text.splitlines()).strip()


def _httpx() -> Any:
    """The httpx module (the ``webhook`` extra), or MissingExtraError saying how to install it."""
    return require("httpx", "webhook", "WebhookNotifier")


class LogNotifier:
    """Writes one log line per message; the default channel, and handy in development."""

    def __init__(self, name: str = "log", logger: logging.Logger | None = None) -> None:
        self.name = name
        self.logger = logger or logging.getLogger("crmrules.notifications")

    def send(self, message: OutboxMessage) -> None:
        self.logger.info(
            "notification %s to %s: %s%s",
            message.key,
            _one_line(message.to),
            _one_line(message.subject),
            f" | {_one_line(message.text)}" if message.text else "",
        )

    def __repr__(self) -> str:
        return f"LogNotifier(name={self.name!r}, logger={self.logger.name!r})"


def message_id(key: str, domain: str) -> str:
    """The Message-ID for an idempotency key: the same key always gives the same id."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@{domain}>"


class SmtpNotifier:
    """Sends e-mail with ``smtplib``, one connection per message.

    The Message-ID comes from the idempotency key, so a message sent twice
    (a crash after sending, before the outbox was updated) carries the same
    id both times and mail systems can drop the duplicate.

    Errors: recipients refused with 5xx and data refused with 5xx are
    permanent. Everything else is retried, including 5xx on login or MAIL
    FROM: those are configuration problems shared by every message, and the
    messages should wait for the fix rather than all fail.
    """

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        name: str = "email",
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        use_ssl: bool = False,
        timeout: float = 10.0,
        domain: str = "crmrules.local",
        local_hostname: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if starttls and use_ssl:
            raise ValueError("use either starttls or use_ssl, not both")
        if "\r" in sender or "\n" in sender:
            raise ValueError("sender must be one line")
        self.name = name
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self._password = password
        self.starttls = starttls
        self.use_ssl = use_ssl
        self.timeout = timeout
        self.domain = domain
        self.local_hostname = local_hostname
        self.ssl_context = ssl_context

    def __repr__(self) -> str:
        # Never the password.
        return (
            f"SmtpNotifier({self.host!r}, {self.port}, name={self.name!r}, "
            f"sender={self.sender!r}, username={self.username!r})"
        )

    def build(self, message: OutboxMessage) -> EmailMessage:
        """The e-mail for a message; raises DeliveryError (permanent) if it cannot be built."""
        if "\r" in message.to or "\n" in message.to:
            raise DeliveryError("recipient address spans lines", permanent=True)
        mail = EmailMessage(policy=_EMAIL_POLICY)
        try:
            mail["From"] = self.sender
            mail["To"] = message.to
            mail["Subject"] = _one_line(message.subject)
            mail["Message-ID"] = message_id(message.key, self.domain)
            mail["Date"] = format_datetime(message.created_at)
            if message.text is not None and message.html is not None:
                mail.set_content(message.text)
                mail.add_alternative(message.html, subtype="html")
            elif message.html is not None:
                mail.set_content(message.html, subtype="html")
            else:
                mail.set_content(message.text or "")
        except (ValueError, TypeError, IndexError) as exc:
            raise DeliveryError(f"cannot build the e-mail: {exc}", permanent=True) from exc
        return mail

    def send(self, message: OutboxMessage) -> None:
        mail = self.build(message)
        sender = _addresses(self.sender)
        recipients = _addresses(message.to)
        if len(sender) != 1:
            raise DeliveryError(f"sender {self.sender!r} is not one address", permanent=True)
        if not recipients:
            raise DeliveryError(f"no recipient address in {message.to!r}", permanent=True)
        if len(recipients) != 1:  # "a@b.ru, victim@evil.ru" in a client's e-mail field
            raise DeliveryError(f"recipient {message.to!r} is not one address", permanent=True)
        try:
            refused = self._transmit(mail, sender[0], recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = {code for code, _ in exc.recipients.values()}
            detail = "; ".join(
                f"{addr}: {code} {_decode(reply)}" for addr, (code, reply) in exc.recipients.items()
            )
            raise DeliveryError(
                self._scrub(f"SMTP recipients refused: {detail}"),
                permanent=all(code >= 500 for code in codes),
            ) from None
        except smtplib.SMTPDataError as exc:
            raise DeliveryError(
                self._scrub(f"SMTP message refused: {exc.smtp_code} {_decode(exc.smtp_error)}"),
                permanent=exc.smtp_code >= 500,
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                self._scrub(f"SMTP error: {exc.smtp_code} {_decode(exc.smtp_error)}")
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            # Connection refused or reset, timeouts, TLS errors, a dropped session.
            raise DeliveryError(
                self._scrub(f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}")
            ) from None
        if refused:
            # Some recipients accepted it: a retry would send it to them again.
            logging.getLogger("crmrules.delivery").warning(
                "message %s: some recipients refused: %s",
                message.key,
                ", ".join(sorted(refused)),
            )

    def _transmit(
        self, mail: EmailMessage, sender: str, recipients: list[str]
    ) -> dict[str, tuple[int, bytes]]:
        context = None
        if self.use_ssl or self.starttls:
            context = self.ssl_context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.use_ssl:
            smtp = smtplib.SMTP_SSL(
                self.host,
                self.port,
                local_hostname=self.local_hostname,
                timeout=self.timeout,
                context=context,
            )
        else:
            smtp = smtplib.SMTP(
                self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout
            )
        try:
            if self.starttls:
                smtp.starttls(context=context)
            if self.username is not None:
                smtp.login(self.username, self._password or "")
            return smtp.send_message(mail, from_addr=sender, to_addrs=recipients)
        finally:
            _quit(smtp)

    def _scrub(self, text: str) -> str:
        """The error text without the password, whatever a server or library echoed."""
        if self._password:
            text = text.replace(self._password, "***")
        return text


def _addresses(field: str) -> list[str]:
    """The bare addresses in an address header value (display names dropped)."""
    return [addr for _, addr in getaddresses([field]) if addr]


def _decode(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _quit(smtp: smtplib.SMTP) -> None:
    """End the session; the message is already accepted, so errors here do not matter."""
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


# 408 Request Timeout and 429 Too Many Requests are the 4xx worth retrying.
_RETRYABLE_4XX = frozenset({408, 429})


class WebhookNotifier:
    """POSTs each message as JSON to the URL in its ``to``.

    The ``Idempotency-Key`` header carries the message key, so the receiver
    can ignore the duplicate that at-least-once delivery may send. Errors:
    2xx is success; 408, 429, 5xx, other non-2xx, timeouts and connection
    errors are retried; other 4xx and non-http(s) URLs fail permanently.
    On 429 and 503 the ``Retry-After`` header (seconds or a date) sets the
    earliest next attempt (see ``crmrules.delivery``).
    Neither the URL (it often holds a secret token) nor the headers go into
    errors.
    """

    def __init__(
        self,
        *,
        name: str = "webhook",
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        client: httpx.Client | None = None,
        allow: Iterable[str] = (),
    ) -> None:
        _httpx()  # a missing extra is reported when the notifier is made, not at delivery
        self.name = name
        #: Internal addresses, networks and host names admitted (see crmrules.destinations).
        self.destinations = Destinations.allowing(allow)
        self.timeout = timeout
        self.headers = dict(headers or {})
        self._client = client
        self._owns_client = client is None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"WebhookNotifier(name={self.name!r}, timeout={self.timeout!r})"

    def _http(self) -> httpx.Client:
        httpx = _httpx()
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout, follow_redirects=False)
            return self._client

    def close(self) -> None:
        """Close the HTTP client if this notifier made it (a client given to it is the caller's)."""
        with self._lock:
            if self._client is not None and self._owns_client:
                self._client.close()
                self._client = None

    def send(self, message: OutboxMessage) -> None:
        httpx = _httpx()
        url = message.to.strip()
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            parsed = httpx.URL()
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise DeliveryError("webhook address is not an http(s) URL", permanent=True)
        try:
            payload: dict[str, Any] = message.model_dump(
                mode="json", include={"key", "to", "subject", "text", "html", "data"}
            )
        except ValueError as exc:  # pydantic's serialisation errors are ValueErrors
            error = f"cannot encode the message as JSON: {exc}"
            raise DeliveryError(error, permanent=True) from exc
        headers = {**self.headers, "Idempotency-Key": message.key}
        target, extensions = self._pinned(parsed, headers)
        try:
            response = self._http().post(
                target, json=payload, headers=headers, extensions=extensions
            )
        except httpx.TimeoutException:
            raise DeliveryError("webhook timed out") from None
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook unreachable: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        reply = _one_line(response.text)[:200]
        error = f"webhook answered HTTP {status} {response.reason_phrase}".rstrip()
        if reply:
            error += f": {reply}"
        permanent = 400 <= status < 500 and status not in _RETRYABLE_4XX
        wait = retry_after(response.headers.get("Retry-After")) if status in (429, 503) else None
        raise DeliveryError(error, permanent=permanent, retry_after=wait)

    def _pinned(self, url: httpx.URL, headers: dict[str, str]) -> tuple[httpx.URL, dict[str, Any]]:
        """The URL with its host replaced by the address that was checked.

        Connecting to the checked address (not resolving the name again) keeps
        a DNS answer that changes in between from reaching an internal address.
        The Host header and TLS (SNI and certificate check) keep the name.
        """
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            address = self.destinations.resolve(url.host, port)
        except DestinationRefused as exc:
            raise DeliveryError(f"webhook destination refused: {exc}", permanent=True) from None
        except (OSError, UnicodeError) as exc:
            raise DeliveryError(f"webhook host {url.host} does not resolve: {exc}") from None
        if address is None:
            return url, {}
        headers["Host"] = url.netloc.decode("ascii")
        extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
        return url.copy_with(host=address), extensions


def retry_after(value: str | None) -> timedelta | None:
    """An HTTP Retry-After value (seconds, or an HTTP date) as a wait; None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value[:12]))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(moment - datetime.now(UTC), timedelta(0))


__all__ = ["LogNotifier", "SmtpNotifier", "WebhookNotifier", "message_id", "retry_after"]
