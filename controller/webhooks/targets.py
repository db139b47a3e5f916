"""Where a webhook may point: http(s) URLs whose host resolves only to public addresses, unless an
address falls in `webhooks.allowed_networks`. Checked when the webhook is created and again before
every delivery (DNS may have changed meanwhile); plain-http deliveries then connect to the very
address that was checked, so a rebinding between check and connect cannot redirect them.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from controller.errors import Invalid

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_URL_LENGTH = 2048


def networks(entries: list[str]) -> list[Network]:
    return [ipaddress.ip_network(entry, strict=False) for entry in entries]


def _refused(ip: Address) -> bool:
    """Private, loopback, link-local, reserved, multicast, unspecified: anything not globally routable."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


@dataclass(frozen=True)
class Target:
    url: str
    host: str
    port: int
    scheme: str
    addresses: tuple[Address, ...]

    def pinned(self) -> tuple[str, dict[str, str]]:
        """The URL to connect to and extra headers: http goes to the checked address with the Host header
        the URL names; https keeps the name (certificate checks need it; a rebound name fails them)."""
        if self.scheme != "http":
            return self.url, {}
        parts = urlsplit(self.url)
        ip = self.addresses[0]
        literal = f"[{ip}]" if ip.version == 6 else str(ip)
        netloc = f"{literal}:{self.port}"
        return urlunsplit(("http", netloc, parts.path or "/", parts.query, "")), {"Host": parts.netloc}


def check(url: str, allowed: list[Network], field: str = "url") -> Target:
    """The target, resolved and checked; Invalid (a 400 in the API) says what is wrong."""
    if len(url) > MAX_URL_LENGTH:
        raise Invalid(f"must be at most {MAX_URL_LENGTH} characters", field=field)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Invalid("is not a valid URL", field=field) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise Invalid("must be an http:// or https:// URL", field=field)
    host = parts.hostname
    if not host:
        raise Invalid("must name a host", field=field)
    port = port or (443 if scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise Invalid(f"cannot resolve host {host!r}", field=field) from None
    addresses = tuple(dict.fromkeys(ipaddress.ip_address(str(item[4][0]).split("%")[0]) for item in found))
    for ip in addresses:
        if _refused(ip) and not any(ip in network for network in allowed):
            raise Invalid(f"host {host!r} resolves to {ip}, a private, loopback or link-local address; "
                          "allow its network in webhooks.allowed_networks to use it", field=field)
    if not addresses:
        raise Invalid(f"cannot resolve host {host!r}", field=field)
    return Target(url=url, host=host, port=port, scheme=scheme, addresses=addresses)
