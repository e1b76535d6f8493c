"""Real local servers for tests: an SMTP server (aiosmtpd) that records what it gets."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    """A port nothing listens on (for a moment): a server that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- a real SMTP server


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    def parsed(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class MailHandler:
    """An aiosmtpd handler that keeps what it accepts and refuses some recipients."""

    refuse: frozenset[str] = frozenset()
    received: list[Received] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        )
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server(handler: MailHandler, port: int) -> Iterator[Controller]:
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, server_hostname="localhost", ready_timeout=5.0
    )
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()
        controller.loop.close()


@pytest.fixture
def mail() -> Iterator[tuple[MailHandler, int]]:
    handler = MailHandler(refuse=frozenset({"nobody@example.com"}))
    port = free_port()
    with smtp_server(handler, port):
        yield handler, port
