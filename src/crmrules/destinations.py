"""Where notifications may go: public addresses only, unless the host allows more.

A regulation names webhook URLs, so an admin (or whoever can edit the
regulation) could point one at the cloud metadata service
(``http://169.254.169.254/``), at a database on localhost or at the office
network. By default every destination that is not a public internet address
is refused: loopback, link-local, private, shared, reserved, multicast and
unspecified addresses, in IPv4 and IPv6 (IPv4-mapped forms included).

- At load time a URL whose host is written as an address (``10.0.0.5``,
  ``[::1]``, ``2130706433``, ``localhost``) is refused with its location.
- At send time the host name is resolved, every address it resolves to is
  checked, and the request goes to the address that was checked (so a DNS
  answer that changes between the check and the connection cannot slip
  through; TLS still verifies the certificate against the host name).

The host application alone can admit an internal destination, in code:
``WebhookNotifier(allow=["10.0.0.0/8", "hooks.internal"])`` at send, and the
same list as ``allow_destinations=`` when loading a regulation that writes
such an address literally.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

HINT = (
    "crmrules sends only to public addresses; the host application can allow an internal "
    "destination in code: WebhookNotifier(allow=[...]) (and allow_destinations=[...] when "
    "loading the regulation)"
)


class DestinationRefused(ValueError):
    """A destination that is not a public address and is not on the host's allow-list."""


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as an address stands for (``2130706433`` is 127.0.0.1)."""
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    try:  # the legacy IPv4 spellings getaddrinfo accepts: 2130706433, 0x7f.1, 127.1
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except (OSError, ValueError):
        return None


def _networks(
    kind: str, *networks: str
) -> list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    return [(kind, ipaddress.ip_network(network)) for network in networks]


#: IANA's special-purpose ranges (RFC 6890 and successors), written out: Python's own
#: ``is_global`` differs between versions (3.11 calls 192.0.0.11 global).
_INTERNAL = [
    *_networks("loopback", "127.0.0.0/8", "::1/128"),
    *_networks("link-local", "169.254.0.0/16", "fe80::/10"),
    *_networks("private", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"),
    *_networks("shared (carrier NAT)", "100.64.0.0/10"),
    *_networks("multicast", "224.0.0.0/4", "ff00::/8"),
    *_networks("unspecified", "0.0.0.0/8", "::/128"),
    *_networks(
        "reserved",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "fec0::/10",
    ),
]


def internal_kind(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination ("loopback", ...), or None if it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return internal_kind(embedded)
    for kind, network in _INTERNAL:
        if address.version == network.version and address in network:
            return kind
    return None if address.is_global else "reserved"


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _is_localhost(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


@dataclass(frozen=True)
class Destinations:
    """The host's allow-list: addresses, networks (CIDR) and host names admitted anyway."""

    networks: tuple[IPNetwork, ...] = ()
    names: frozenset[str] = frozenset()

    @classmethod
    def allowing(cls, allow: Iterable[str] = ()) -> Destinations:
        networks: list[IPNetwork] = []
        names: set[str] = set()
        for entry in allow:
            text = entry.strip()
            try:
                networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
            except ValueError:
                if not text or "/" in text or ":" in text:
                    raise ValueError(
                        f"allow: {entry!r} is not an address, a network or a host name"
                    ) from None
                names.add(text.lower().rstrip("."))
        return cls(tuple(networks), frozenset(names))

    def admits(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            mapped = address.ipv4_mapped
            return any(address in n or mapped in n for n in self.networks)
        return any(address in network for network in self.networks)

    def refusal(self, host: str) -> str | None:
        """Load time: why a host written in the regulation is refused, without resolving it."""
        if host.lower().rstrip(".") in self.names:
            return None
        address = literal_address(host)
        if address is None:
            return f"{host} is a loopback address" if _is_localhost(host) else None
        kind = internal_kind(address)
        if kind is None or self.admits(address):
            return None
        return f"{address} is a {kind} address"

    def resolve(self, host: str, port: int) -> str | None:
        """Send time: the checked address to connect to, or None to connect by name.

        Raises DestinationRefused for an internal address that is not allowed,
        and OSError when the name does not resolve (worth a retry).
        """
        if host.lower().rstrip(".") in self.names:
            return None
        literal = literal_address(host)
        if literal is not None:
            addresses = [literal]
        else:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        if not addresses:
            raise OSError(f"{host} has no address")
        for address in addresses:
            kind = internal_kind(address)
            if kind is not None and not self.admits(address):
                shown = f"{host} resolves to {address}," if literal is None else f"{address} is"
                raise DestinationRefused(f"{shown} a {kind} address")
        return str(addresses[0])


#: The default: public addresses only.
PUBLIC_ONLY = Destinations()

__all__ = [
    "HINT",
    "PUBLIC_ONLY",
    "DestinationRefused",
    "Destinations",
    "internal_kind",
    "literal_address",
]
