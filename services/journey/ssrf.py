"""Webhook targets must not reach inside the operator's network: a URL whose host resolves to
a private, loopback, link-local, multicast or reserved address is refused unless an allow-list
entry (a CIDR or a host name) permits it. The call then goes to the address that was checked
(`pin`), not to a second lookup, so a name that re-resolves to an internal address between the
check and the connection (DNS rebinding) gets nowhere."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedTarget(ValueError):
    """A webhook URL that points where journeys may not call."""


def _internal(address: IpAddress) -> bool:
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _allowed(host: str, address: IpAddress, allow: Sequence[str]) -> bool:
    for entry in allow:
        if entry == host:
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def resolve(host: str, port: int) -> list[IpAddress]:
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def check_url(url: str, allow: Sequence[str], resolver=resolve) -> IpAddress:  # type: ignore[no-untyped-def]
    """The address to call; BlockedTarget when any address the host resolves to is internal
    and not allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedTarget(f"not an http(s) URL: {url}")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = resolver(host, port)
        except OSError as exc:
            raise BlockedTarget(f"cannot resolve {host}: {exc}") from exc
    for address in addresses:
        if _internal(address) and not _allowed(host, address, allow):
            raise BlockedTarget(
                f"{host} resolves to {address}, an internal address; allow it with "
                "JOURNEYMAN_JOURNEY_WEBHOOK_ALLOW"
            )
    return addresses[0]


def pin(url: str, address: IpAddress) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URL with its host replaced by the checked address, the Host header the server
    expects, and (for https) the name TLS must present and verify: (url, headers, extensions)
    for httpx."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = f"[{address}]" if address.version == 6 else str(address)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (
        (f"{userinfo}@" if userinfo else "") + literal + (f":{parts.port}" if parts.port else "")
    )
    host_header = parts.netloc.rpartition("@")[2]
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return urlunsplit(parts._replace(netloc=netloc)), {"Host": host_header}, extensions
