"""Notification destinations: public addresses only unless the host allows more; one address.

The webhook tests post to a real http.server on 127.0.0.1 and the e-mail
tests send to a real aiosmtpd server, which is how the refusal is seen: the
server never receives the request.
"""

from __future__ import annotations

import ipaddress
import ssl
import subprocess
import threading
from email.utils import getaddresses
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from crmrules import Client, Manager
from crmrules.adapters import MemoryStore, WebhookNotifier
from crmrules.cli import main
from crmrules.delivery import deliver_due
from crmrules.destinations import Destinations
from crmrules.errors import RegulationError
from crmrules.model import _PLAIN_ADDRESS, one_address
from crmrules.rules.regulation import load_regulation
from crmrules.store import MessageStatus
from localservers import MailHandler
from test_delivery import (
    NOW,
    Hook,
    enqueue,
    hook_handler,
    http_server,
    message,
    smtp_notifier,
    stored,
)

# IANA special-purpose IPv4 ranges (RFC 6890 and successors) plus multicast: an oracle
# written out independently of Python's ipaddress flags.
NOT_PUBLIC_V4 = [
    ipaddress.IPv4Network(n)
    for n in [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    ]
]
# 192.0.0.9 and 192.0.0.10 (PCP and TURN anycast) are global by IANA's table; 192.88.99/24
# (6to4 relay anycast) is deprecated: Python and the table disagree there, so skip them.
AMBIGUOUS = [ipaddress.IPv4Network(n) for n in ["192.0.0.9/32", "192.0.0.10/32", "192.88.99.0/24"]]


def not_public(address: ipaddress.IPv4Address) -> bool:
    return any(address in network for network in NOT_PUBLIC_V4)


V4 = st.ip_addresses(v=4).filter(lambda a: not any(a in n for n in AMBIGUOUS))


@given(address=V4 | st.sampled_from(NOT_PUBLIC_V4).flatmap(lambda n: st.ip_addresses(network=n)))
def test_a_written_address_is_refused_exactly_when_it_is_not_public(
    address: ipaddress.IPv4Address,
) -> None:
    if any(address in n for n in AMBIGUOUS):
        return
    policy = Destinations()
    expected = not_public(address)
    # The dotted form, the single-number form, and IPv4-mapped IPv6 all decide alike.
    for host in (str(address), str(int(address)), f"[::ffff:{address}]"):
        assert (policy.refusal(host) is not None) == expected, host
    # An allow-list entry admits exactly its network.
    allowed = Destinations.allowing([f"{address}/32"])
    assert allowed.refusal(str(address)) is None


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://127.0.0.1:8080/hook", "127.0.0.0/8"),
        ("http://localhost/hook", "localhost"),
        ("https://10.1.2.3/hook", "10.0.0.0/8"),
        ("http://[::1]/hook", "::1"),
        ("http://[fe80::1]/hook", "fe80::/10"),
        ("http://2130706433/hook", "127.0.0.1"),
    ],
)
def test_a_literal_internal_webhook_url_is_refused_at_load(
    tmp_path: Path, url: str, allow: str
) -> None:
    path = tmp_path / "regulation.yaml"
    path.write_text(
        "version: 1\n"
        "rules:\n"
        "  - id: hook\n"
        "    on: ping\n"
        f"    then: [{{notify: {{to: '{url}', message: hi}}}}]\n",
        encoding="utf-8",
    )
    with pytest.raises(RegulationError) as caught:
        load_regulation(path)
    text = str(caught.value)
    assert text.startswith(f"{path}:5:26: notify: ")
    assert "address" in text and "WebhookNotifier(allow=[...])" in text
    # The host's allow-list, given in code, is the one way to admit it.
    load_regulation(path, allow_destinations=[allow])


def test_a_public_webhook_url_loads(tmp_path: Path) -> None:
    path = tmp_path / "regulation.yaml"
    path.write_text(
        "version: 1\nrules:\n  - id: hook\n    on: ping\n"
        "    then: [{notify: {to: 'https://hooks.example.ru/crm', message: hi}}]\n",
        encoding="utf-8",
    )
    load_regulation(path)


def test_a_webhook_to_loopback_is_refused_at_send_unless_allowed() -> None:
    hook = Hook()
    store = MemoryStore()
    with http_server(hook) as base:
        port = base.rsplit(":", 1)[1]
        enqueue(
            store,
            message("by-address", "webhook", f"{base}/x", text="x"),
            message("by-name", "webhook", f"http://localhost:{port}/x", text="x"),
        )
        plain = WebhookNotifier(timeout=2.0)
        report = deliver_due(store, {"webhook": plain}, NOW)
        assert report.failed == 2
        assert hook.requests == []  # nothing reached the server
        by_name = stored(store, "by-name")
        assert by_name.status is MessageStatus.FAILED
        assert by_name.last_error is not None
        assert "localhost resolves to 127.0.0.1, a loopback address" in by_name.last_error
        assert port not in by_name.last_error  # the error names the host, never the URL

        enqueue(store, message("allowed", "webhook", f"{base}/x", text="x"))
        allowed = WebhookNotifier(timeout=2.0, allow=["127.0.0.0/8"])
        try:
            assert deliver_due(store, {"webhook": allowed}, NOW).sent == 1
        finally:
            allowed.close()
            plain.close()
    assert len(hook.requests) == 1


def test_the_allow_list_refuses_what_is_not_an_address_or_a_name() -> None:
    with pytest.raises(ValueError, match="not an address, a network or a host name"):
        WebhookNotifier(allow=["10.0.0.0/33"])


# -- one address per address field


@pytest.mark.parametrize(
    "email",
    ["a@b.ru, victim@evil.ru", "a@b.ru; victim@evil.ru", "a@b.ru\nBcc: victim@evil.ru", "nobody"],
)
def test_an_address_field_holds_exactly_one_address(email: str) -> None:
    with pytest.raises(ValidationError, match="one e-mail address"):
        Client(id="c1", email=email)
    with pytest.raises(ValidationError, match="one e-mail address"):
        Manager(id="m1", email=email)


def test_one_address_with_a_display_name_is_fine() -> None:
    assert Client(id="c1", email="Иван Петров <ivan@example.com>").email is not None


ATOM = st.text("abcXYZ019_%+-", min_size=1, max_size=6)
LABEL = st.text("abcXYZ019-", min_size=1, max_size=6)


@given(
    st.lists(ATOM, min_size=1, max_size=3).map(".".join),
    st.lists(LABEL, min_size=1, max_size=3).map(".".join),
)
def test_a_plain_address_is_taken_as_the_parser_takes_it(local: str, domain: str) -> None:
    """The fast path for a bare address agrees with ``getaddresses``: the value is kept."""
    value = f"{local}@{domain}"
    assert _PLAIN_ADDRESS.fullmatch(value)
    assert getaddresses([value]) == [("", value)]
    assert one_address(value) == value


def test_smtp_refuses_a_message_to_several_addresses(mail: tuple[MailHandler, int]) -> None:
    handler, port = mail
    store = MemoryStore()
    enqueue(store, message("two", "email", "a@example.com, victim@example.com", text="x"))
    report = deliver_due(store, {"email": smtp_notifier(port)}, NOW)
    assert report.failed == 1
    assert handler.received == []
    failed = stored(store, "two")
    assert failed.last_error is not None and "not one address" in failed.last_error


# -- the checked address is the one connected to, and TLS still checks the name


@pytest.fixture
def localhost_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for the name localhost only, made by the openssl tool."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def test_https_to_a_resolved_name_connects_to_the_checked_address(
    localhost_cert: tuple[Path, Path],
) -> None:
    cert, key = localhost_cert
    hook = Hook()
    server = ThreadingHTTPServer(("127.0.0.1", 0), hook_handler(hook))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    trusting = httpx.Client(verify=ssl.create_default_context(cafile=str(cert)), timeout=5.0)
    try:
        port = server.server_address[1]
        store = MemoryStore()
        enqueue(store, message("tls", "webhook", f"https://localhost:{port}/in", text="x"))
        # Allowed by network, not by name: the name is resolved, checked and pinned.
        notifier = WebhookNotifier(client=trusting, allow=["127.0.0.0/8"])
        report = deliver_due(store, {"webhook": notifier}, NOW)
    finally:
        trusting.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert report.sent == 1, report.errors
    [(headers, _)] = hook.requests
    # The certificate names only localhost: it verified, so SNI and the check used the name.
    assert headers["Host"] == f"localhost:{port}"


def test_crmrules_validate_can_allow_a_destination(tmp_path: Path) -> None:
    path = tmp_path / "regulation.yaml"
    path.write_text(
        "version: 1\nrules:\n  - id: hook\n    on: ping\n"
        "    then: [{notify: {to: 'http://10.0.0.5/hook', message: hi}}]\n",
        encoding="utf-8",
    )
    refused = main(["validate", str(path)])
    assert refused == 1
    assert main(["validate", "--allow-destination", "10.0.0.0/8", str(path)]) == 0
